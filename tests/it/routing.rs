//! Routing through real HTTP: every filter dialect, nesting, extensions, fan-out and union.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{event, TestReceiver, TestRouter};

#[tokio::test]
async fn filters_route_each_event_to_the_right_subscribers() {
    let names = ["erp", "pim", "slack", "audit"];
    let mut receivers = Vec::new();
    for _ in names {
        receivers.push(TestReceiver::start().await);
    }
    let subscribers: String = names
        .iter()
        .zip(&receivers)
        .map(|(name, receiver)| {
            format!("  {name}: {{ url: '{}', concurrency: 1 }}\n", receiver.url)
        })
        .collect();
    let text = format!(
        "
subscribers:
{subscribers}
routes:
  - name: orders
    filters:
      - prefix: {{ type: com.example.shop.order. }}
    to: [erp, audit]
  - name: created-anywhere
    filters:
      - suffix: {{ type: .created }}
      - exact: {{ region: eu }}
    to: [slack]
  - name: catalogue-not-test
    filters:
      - any:
          - prefix: {{ type: com.example.shop.price. }}
          - all:
              - prefix: {{ type: com.example.shop.product. }}
              - not: {{ exact: {{ source: /test }} }}
    to: [pim, audit]
  - name: urgent
    filters:
      - exact: {{ priority: 1 }}
    to: [erp, slack, audit]
"
    );
    let router = TestRouter::start(&text).await;
    let with = |ty: &str, id: &str, extra: &[(&str, serde_json::Value)]| {
        let mut event = event(ty, id);
        for (key, value) in extra {
            event[*key] = value.clone();
        }
        event
    };
    let events = [
        with(
            "com.example.shop.order.created",
            "1",
            &[("region", json!("eu"))],
        ), // erp audit slack
        with(
            "com.example.shop.order.created",
            "2",
            &[("region", json!("us"))],
        ), // erp audit
        with("com.example.shop.price.changed", "3", &[]), // pim audit
        with(
            "com.example.shop.product.created",
            "4",
            &[("source", json!("/test"))],
        ), // none
        with("com.example.shop.product.updated", "5", &[]), // pim audit
        with("com.example.shop.stock.low", "6", &[("priority", json!(1))]), // erp slack audit
        with(
            "com.example.shop.order.paid",
            "7",
            &[("priority", json!(1))],
        ), // erp slack audit, once each
        with("com.example.misc", "8", &[]),               // none
    ];
    for event in events {
        assert_eq!(router.publish(event).await.status(), 202);
    }
    // Sentinels come last; with concurrency 1 each subscriber receives in accept order, so once a
    // subscriber has its sentinel, everything routed to it before has arrived.
    let sentinels = [
        with(
            "com.example.shop.order.created",
            "9",
            &[("region", json!("eu")), ("priority", json!(1))],
        ), // erp slack audit
        with("com.example.shop.price.changed", "10", &[]), // pim audit
    ];
    for sentinel in sentinels {
        assert_eq!(router.publish(sentinel).await.status(), 202);
    }
    let expected: [(&str, &[&str]); 4] = [
        ("erp", &["1", "2", "6", "7", "9"]),
        ("pim", &["3", "5", "10"]),
        ("slack", &["1", "6", "7", "9"]),
        ("audit", &["1", "2", "3", "5", "6", "7", "9", "10"]),
    ];
    for ((name, ids), receiver) in expected.iter().zip(&receivers) {
        let want: BTreeSet<String> = ids.iter().map(|id| id.to_string()).collect();
        let got = receiver.wait_for(want.len()).await;
        let got_ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
        let unique: BTreeSet<String> = got_ids.iter().cloned().collect();
        assert_eq!(unique, want, "{name}");
        assert_eq!(
            got_ids.len(),
            want.len(),
            "{name} got a duplicate: {got_ids:?}"
        );
    }
}

#[tokio::test]
async fn one_event_fans_out_to_three_subscribers_once_each() {
    let receivers = [
        TestReceiver::start().await,
        TestReceiver::start().await,
        TestReceiver::start().await,
    ];
    let text = format!(
        "
subscribers:
  a: {{ url: '{}' }}
  b: {{ url: '{}' }}
  c: {{ url: '{}' }}
routes:
  - name: one
    to: [a, b]
  - name: two
    filters: [ {{ prefix: {{ type: com. }} }} ]
    to: [b, c]
  - name: three
    filters: [ {{ exact: {{ type: com.example.shop.order.created }} }} ]
    to: [a, b, c]
",
        receivers[0].url, receivers[1].url, receivers[2].url
    );
    let router = TestRouter::start(&text).await;
    let response = router
        .publish(event("com.example.shop.order.created", "fan-1"))
        .await;
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["deliveries"],
        3
    );
    let ids: Vec<String> = receivers
        .iter()
        .map(|receiver| receiver.url.clone())
        .collect();
    for receiver in &receivers {
        receiver.wait_for(1).await;
    }
    // Another event after it proves nothing more is on its way for fan-1.
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "fan-2"))
            .await
            .status(),
        202
    );
    for receiver in &receivers {
        let got = receiver.wait_for(2).await;
        let ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
        let fan1 = ids.iter().filter(|id| *id == "fan-1").count();
        assert_eq!(fan1, 1, "{ids:?}");
    }
    // Each subscriber has its own webhook-id for the same event.
    let webhook_ids: BTreeSet<String> = receivers
        .iter()
        .map(|receiver| {
            receiver.received()[0]
                .header("webhook-id")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(webhook_ids.len(), 3, "{ids:?}");
}

#[tokio::test]
async fn data_and_sql_filters_route_through_real_http() {
    let eu = TestReceiver::start().await;
    let big = TestReceiver::start().await;
    let sql = TestReceiver::start().await;
    let text = format!(
        "
subscribers:
  eu: {{ url: '{}', concurrency: 1 }}
  big: {{ url: '{}', concurrency: 1 }}
  sql: {{ url: '{}', concurrency: 1 }}
routes:
  - name: eu-shipping
    filters:
      - data: {{ path: $.shipping.country, in: [DE, AT, FR] }}
      - not: {{ data: {{ path: $.customer.ip, cidr: 10.0.0.0/8 }} }}
    to: [eu]
  - name: big-orders
    filters:
      - any:
          - data: {{ path: $.total, gte: 1000 }}
          - data: {{ path: '$.items[0].sku', wildcard: 'VIP-*' }}
    to: [big]
  - name: sql
    filters:
      - sql: \"type LIKE 'com.example.shop.order.%' AND priority = 'high' AND INT(attempt) < 3\"
    to: [sql]
",
        eu.url, big.url, sql.url
    );
    let router = TestRouter::start(&text).await;
    let order = |id: &str, data: serde_json::Value, extra: &[(&str, &str)]| {
        let mut event = event("com.example.shop.order.created", id);
        event["data"] = data;
        for (key, value) in extra {
            event[*key] = json!(value);
        }
        event
    };
    let events = [
        order(
            "1",
            json!({ "shipping": { "country": "DE" }, "total": 20 }),
            &[],
        ), // eu
        order(
            "2",
            json!({ "shipping": { "country": "DE" }, "customer": { "ip": "10.1.1.1" }, "total": 2000 }),
            &[("priority", "high"), ("attempt", "1")],
        ), // big sql (internal IP: not eu)
        order(
            "3",
            json!({ "shipping": { "country": "US" }, "items": [{ "sku": "VIP-7" }] }),
            &[("priority", "high"), ("attempt", "5")],
        ), // big
        order("4", json!("not an object"), &[("priority", "low")]), // none
    ];
    for event in events {
        assert_eq!(router.publish(event).await.status(), 202);
    }
    // Non-JSON data never matches a data filter.
    let response = router
        .publish_binary(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "5"),
                ("ce-source", "/shop/eu"),
                ("ce-type", "com.example.shop.order.created"),
                ("ce-priority", "high"),
                ("ce-attempt", "0"),
                ("content-type", "text/plain"),
            ],
            b"shipping.country=DE",
        )
        .await;
    assert_eq!(response.status(), 202);
    // Sentinels: one per subscriber, last.
    router
        .publish(order(
            "9",
            json!({ "shipping": { "country": "FR" }, "total": 5000 }),
            &[("priority", "high"), ("attempt", "2")],
        ))
        .await;
    for (receiver, ids) in [
        (&eu, vec!["1", "9"]),
        (&big, vec!["2", "3", "9"]),
        (&sql, vec!["2", "5", "9"]),
    ] {
        let got: Vec<String> = receiver
            .wait_for(ids.len())
            .await
            .iter()
            .map(|received| received.event_id())
            .collect();
        assert_eq!(got, ids, "{}", receiver.url);
    }
}
