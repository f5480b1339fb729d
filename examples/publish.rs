//! Publishes sample e-commerce events to fanout: an order created (a big one, so Slack hears of
//! it too), a price change, a low-stock alert and a delivered shipment. Events are built with the
//! official CloudEvents SDK and sent in structured mode, except the last, sent in binary mode.
//!
//! ```text
//! cargo run --release --example publish                         # to http://127.0.0.1:8080/events
//! FANOUT_URL=http://127.0.0.1:9090/events cargo run --release --example publish
//! ```

use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("FANOUT_URL").unwrap_or_else(|_| "http://127.0.0.1:8080/events".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let event = |kind: &str, subject: &str, data: serde_json::Value| {
        EventBuilderV10::new()
            .id(format!("{kind}-{run}"))
            .source("/shop/eu")
            .ty(format!("com.example.shop.{kind}"))
            .subject(subject)
            .time(chrono::Utc::now())
            .data("application/json", data)
    };
    let events = [
        event(
            "order.created",
            "orders/1001",
            json!({ "order": 1001, "total": 1299.0, "currency": "EUR", "items": 3 }),
        )
        .extension("priority", "high")
        .build()?,
        event(
            "price.changed",
            "products/sku-42",
            json!({ "sku": "sku-42", "old": 19.99, "new": 17.49 }),
        )
        .build()?,
        event(
            "stock.low",
            "products/sku-7",
            json!({ "sku": "sku-7", "available": 3, "threshold": 10 }),
        )
        .build()?,
    ];
    for event in &events {
        let response = client
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(event)?)
            .send()
            .await?;
        println!(
            "{} {} -> {} {}",
            event.ty(),
            event.id(),
            response.status(),
            response.text().await?
        );
    }
    // Binary mode: attributes in ce-* headers, the data as the body.
    let response = client
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", format!("shipment.delivered-{run}"))
        .header("ce-source", "/carrier/dhl")
        .header("ce-type", "com.example.shop.shipment.delivered")
        .header("ce-subject", "orders/1001")
        .header("content-type", "application/json")
        .body(json!({ "order": 1001, "tracking": "JJD000390007" }).to_string())
        .send()
        .await?;
    println!(
        "com.example.shop.shipment.delivered (binary mode) -> {} {}",
        response.status(),
        response.text().await?
    );
    Ok(())
}
