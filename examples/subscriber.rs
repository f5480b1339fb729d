//! A downstream service for the walk-through: one HTTP server standing in for every subscriber
//! of the example `routes.yaml` (storefront, erp, warehouse, pim, slack, dead-letters). It checks
//! each request's Standard Webhooks signature with the reference `standardwebhooks` library,
//! deduplicates on `webhook-id`, and prints what it got.
//!
//! ```text
//! cargo run --release --example subscriber                      # listens on 127.0.0.1:9000
//! FAIL_EVERY=3 cargo run --release --example subscriber         # answer 503 to every 3rd request
//! ```
//! Secrets come from the same variables (and defaults) as `routes.yaml`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use standardwebhooks::Webhook;

/// (path, secret variable, default secret): the same as routes.yaml.
const SUBSCRIBERS: [(&str, &str, &str); 7] = [
    (
        "storefront",
        "STOREFRONT_SECRET",
        "whsec_c3RvcmVmcm9udC1leGFtcGxlLXNlY3JldA==",
    ),
    (
        "erp",
        "ERP_SECRET",
        "whsec_ZXJwLWV4YW1wbGUtc2VjcmV0LWtleQ==",
    ),
    (
        "warehouse",
        "WAREHOUSE_SECRET",
        "whsec_d2FyZWhvdXNlLWV4YW1wbGUtc2VjcmV0",
    ),
    (
        "pim",
        "PIM_SECRET",
        "whsec_cGltLWV4YW1wbGUtc2VjcmV0LWtleQ==",
    ),
    (
        "slack",
        "SLACK_RELAY_SECRET",
        "whsec_c2xhY2stcmVsYXktZXhhbXBsZS1zZWNyZXQ=",
    ),
    (
        "dead-letters",
        "DEAD_LETTER_SECRET",
        "whsec_ZGVhZC1sZXR0ZXItZXhhbXBsZS1zZWNyZXQ=",
    ),
    (
        "hook",
        "SUBSCRIBER_SECRET",
        "whsec_c3Vic2NyaWJlci1leGFtcGxlLXNlY3JldA==",
    ),
];

struct State {
    verifiers: HashMap<String, Webhook>,
    seen: Mutex<HashSet<String>>,
    requests: AtomicUsize,
    fail_every: usize,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("SUBSCRIBER_LISTEN").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let fail_every = std::env::var("FAIL_EVERY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let verifiers = SUBSCRIBERS
        .iter()
        .map(|(path, variable, default)| {
            let secret = std::env::var(variable).unwrap_or_else(|_| default.to_string());
            let webhook =
                Webhook::new(&secret).unwrap_or_else(|error| panic!("{variable}: {error:?}"));
            (path.to_string(), webhook)
        })
        .collect();
    let state = web::Data::new(State {
        verifiers,
        seen: Mutex::new(HashSet::new()),
        requests: AtomicUsize::new(0),
        fail_every,
    });
    println!("example subscriber listening on http://{listen}/{{storefront,erp,warehouse,pim,slack,dead-letters}}");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/{name}", web::post().to(receive))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}

async fn receive(
    request: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let name = name.into_inner();
    let Some(verifier) = state.verifiers.get(&name) else {
        return HttpResponse::NotFound().finish();
    };
    // standardwebhooks takes http 1.x headers; actix-web 4 uses http 0.2, so copy them over.
    let mut headers = http::HeaderMap::new();
    for (key, value) in request.headers() {
        if let (Ok(key), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(key, value);
        }
    }
    if let Err(error) = verifier.verify(&body, &headers) {
        println!("✗ {name:<13} signature rejected: {error:?}");
        return HttpResponse::Unauthorized().body("bad signature");
    }
    let count = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if state.fail_every > 0 && count % state.fail_every == 0 {
        println!("… {name:<13} answering 503 to show a retry");
        return HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "2"))
            .finish();
    }
    let header = |key: &str| {
        request
            .headers()
            .get(key)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let webhook_id = header("webhook-id");
    let first = state.seen.lock().unwrap().insert(webhook_id.clone());
    let (kind, id, extra) = if header("content-type").starts_with("application/cloudevents+json") {
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |key: &str| event[key].as_str().unwrap_or("-").to_owned();
        (text("type"), text("id"), format!("data={}", event["data"]))
    } else {
        let reason = header("ce-fanoutreason");
        let extra = if reason == "-" {
            format!("data={}", String::from_utf8_lossy(&body))
        } else {
            format!("reason={reason}")
        };
        (header("ce-type"), header("ce-id"), extra)
    };
    println!(
        "✔ {name:<13} {kind} id={id} webhook-id={webhook_id}{} {extra}",
        if first { "" } else { " (duplicate, ignored)" }
    );
    HttpResponse::NoContent().finish()
}
