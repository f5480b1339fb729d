//! Endpoint health through real HTTP: the rate limit, the circuit breaker (open, half-open probe,
//! closed, without spending attempts), auto-disable that keeps every delivery, and operational
//! events routed to a subscriber without loops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{event, Reply, TestReceiver, TestRouter, DEADLINE};

const TOKEN: &str = "health-admin-token-0123456789";

/// A receiver that answers `failure` until `healthy` is set, then 200.
async fn switchable(failure: u16) -> (TestReceiver, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let receiver = TestReceiver::scripted(move |_, _| {
        Reply::status(if flag.load(Ordering::SeqCst) {
            200
        } else {
            failure
        })
    })
    .await;
    (receiver, healthy)
}

/// Polls the admin API until `subscriber`'s view satisfies `condition`.
async fn wait_view(
    router: &TestRouter,
    subscriber: &str,
    what: &str,
    condition: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    router
        .wait_admin(
            &format!("/api/v1/subscribers/{subscriber}"),
            TOKEN,
            &format!("{subscriber} {what}"),
            condition,
        )
        .await
}

/// The operational events `ops` received: (type, subject).
fn operational(ops: &TestReceiver) -> Vec<(String, String)> {
    ops.received()
        .iter()
        .map(|received| {
            (
                received.header("ce-type").unwrap_or_default().to_owned(),
                received.header("ce-subject").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_rate_limit_spaces_deliveries_without_failing_them() {
    let erp = TestReceiver::start().await;
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp: {{ url: '{}', rate_limit: {{ rate: 20/s, burst: 2 }} }}
routes:
  - name: all
    to: [erp]
",
        erp.url
    ))
    .await;
    let events: Vec<serde_json::Value> = (0..22)
        .map(|index| event("com.example.shop.order.created", &format!("r-{index}")))
        .collect();
    let response = router.publish_batch(events).await;
    assert_eq!(response.status(), 202);
    let received = erp.wait_for(22).await;
    // 2 at once, then one every 50 ms: the 22nd starts a second after the first. Receipt
    // times can only stretch that, except for the first request's own latency.
    let span = received[21].at - received[0].at;
    assert!(
        span >= Duration::from_millis(750),
        "22 deliveries in {span:?}"
    );
    let view = router.admin_get("/api/v1/subscribers/erp", TOKEN).await;
    assert_eq!(view["failed_attempts_total"], 0, "waiting is not failing");
    assert_eq!(view["policy"]["rate_limit"]["burst"], 2);
}

#[tokio::test]
async fn the_circuit_breaker_opens_probes_once_and_closes_without_spending_attempts() {
    let (erp, healthy) = switchable(503).await;
    let ops = TestReceiver::start().await;
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp:
    url: '{}'
    concurrency: 4
    retry: {{ initial_interval: 200ms, max_interval: 200ms, jitter: 0, max_attempts: 50 }}
    circuit_breaker: {{ failures: 3, open_for: 300ms, min_requests: 100 }}
  ops: {{ url: '{}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}]
    to: [erp]
  - name: operations
    operational: true
    filters: [{{ prefix: {{ type: dev.fanout. }} }}]
    to: [ops, erp]
",
        erp.url, ops.url
    ))
    .await;
    for id in ["c-1", "c-2", "c-3"] {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
    }
    // Three failures in a row open the circuit.
    wait_view(&router, "erp", "opened", |view| view["circuit"] == "open").await;
    assert_eq!(erp.count(), 3);
    // After open_for, exactly one probe; it fails, and the circuit opens again.
    erp.wait_for(4).await;
    wait_view(&router, "erp", "reopened", |view| {
        view["circuit"] == "open" && view["failed_attempts_total"] == 4
    })
    .await;
    healthy.store(true, Ordering::SeqCst);
    // The next probe succeeds and closes the circuit; the rest flows.
    wait_view(&router, "erp", "closed and delivered", |view| {
        view["circuit"] == "closed" && view["delivered_total"] == 3
    })
    .await;
    let received = erp.received();
    assert_eq!(received.len(), 7, "3 failures, 2 probes, 2 retries");
    for gap in [
        received[3].at - received[2].at,
        received[4].at - received[3].at,
    ] {
        assert!(
            gap >= Duration::from_millis(290),
            "no attempt while open: {gap:?}"
        );
    }
    // Attempts are only those made: none were counted while the circuit was open.
    let mut recorded = 0;
    for id in ["c-1", "c-2", "c-3"] {
        let found = router
            .admin_get(&format!("/api/v1/events/{id}?source=/shop/eu"), TOKEN)
            .await;
        recorded += found["deliveries"][0]["attempts"].as_array().unwrap().len();
    }
    assert_eq!(recorded, 7);
    let metrics = router.metrics(TOKEN).await;
    assert!(metrics.contains("fanout_circuit_opened_total{subscriber=\"erp\"} 2"));
    assert!(metrics.contains("fanout_circuit_state{subscriber=\"erp\",state=\"closed\"} 1"));
    // Operational events reach ops, and never the subscriber they are about.
    let deadline = Instant::now() + DEADLINE;
    let expected = vec![
        ("dev.fanout.circuit.opened".to_owned(), "erp".to_owned()),
        ("dev.fanout.circuit.opened".to_owned(), "erp".to_owned()),
        ("dev.fanout.circuit.closed".to_owned(), "erp".to_owned()),
    ];
    while operational(&ops) != expected {
        assert!(Instant::now() < deadline, "ops got {:?}", operational(&ops));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(erp
        .received()
        .iter()
        .all(|received| received.header("ce-type") == Some("com.example.shop.order.created")));
}

#[tokio::test]
async fn a_continuously_failing_subscriber_is_disabled_and_keeps_its_deliveries() {
    let (erp, healthy) = switchable(500).await;
    let ops = TestReceiver::start().await;
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp:
    url: '{}'
    disable_after: 300ms
    retry: {{ initial_interval: 30ms, max_interval: 30ms, jitter: 0, max_attempts: 1000 }}
  ops: {{ url: '{}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}]
    to: [erp]
  - name: operations
    operational: true
    filters: [{{ prefix: {{ type: dev.fanout. }} }}]
    to: [ops]
",
        erp.url, ops.url
    ))
    .await;
    router
        .publish(event("com.example.shop.order.created", "d-1"))
        .await;
    let view = wait_view(&router, "erp", "disabled", |view| {
        view["state"] == "disabled"
    })
    .await;
    assert!(
        view["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("failing continuously since"),
        "{view}"
    );
    assert!(view["failing_since"].is_string());
    let attempts_when_disabled = erp.count();
    for id in ["d-2", "d-3"] {
        assert_eq!(
            router
                .publish(event("com.example.shop.order.created", id))
                .await
                .status(),
            202
        );
    }
    wait_view(&router, "erp", "holding three", |view| view["pending"] == 3).await;
    assert_eq!(
        erp.count(),
        attempts_when_disabled,
        "nothing sent while disabled"
    );
    let disabled = ops.wait_for(1).await;
    assert_eq!(
        disabled[0].header("ce-type"),
        Some("dev.fanout.subscriber.disabled")
    );
    let data: serde_json::Value = serde_json::from_slice(&disabled[0].body).unwrap();
    assert_eq!(data["subscriber"], "erp");

    healthy.store(true, Ordering::SeqCst);
    let (status, _) = router.subscriber_action(TOKEN, "erp", "resume").await;
    assert_eq!(status, 200);
    let view = wait_view(&router, "erp", "delivered everything", |view| {
        view["delivered_total"] == 3
    })
    .await;
    assert_eq!(view["state"], "active");
    assert!(view["failing_since"].is_null());
    let found = router
        .admin_get("/api/v1/events/d-3?source=/shop/eu", TOKEN)
        .await;
    assert_eq!(found["deliveries"][0]["state"], "delivered");
}

#[tokio::test]
async fn dead_letters_raise_operational_events_that_cannot_loop() {
    let erp = TestReceiver::scripted(|_, _| Reply::status(400)).await;
    // The operations relay itself rejects everything: its own dead letters raise nothing.
    let ops = TestReceiver::scripted(|_, _| Reply::status(400)).await;
    let router = TestRouter::start(&format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp: {{ url: '{}' }}
  ops: {{ url: '{}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}]
    to: [erp]
  - name: operations
    operational: true
    filters: [{{ prefix: {{ type: dev.fanout. }} }}]
    to: [ops]
",
        erp.url, ops.url
    ))
    .await;
    let ops_id = router.id("ops");
    for (index, id) in ["x-1", "x-2"].iter().enumerate() {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
        crate::support::wait_until("ops dead-lettered the notice", DEADLINE, || {
            router.store.dead_letter_count(ops_id) == index as u64 + 1
        })
        .await;
    }
    let got = ops.received();
    assert_eq!(
        got.len(),
        2,
        "one notice per dead letter, none about the notices"
    );
    let notice: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        got[0].header("ce-type"),
        Some("dev.fanout.delivery.dead_lettered")
    );
    assert_eq!(got[0].header("ce-source"), Some("/fanout"));
    assert_eq!(notice["subscriber"], "erp");
    assert_eq!(notice["event"]["id"], "x-1");
    assert_eq!(notice["last_status"], 400);
    let page = router.admin_get("/api/v1/events?limit=100", TOKEN).await;
    let types: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "com.example.shop.order.created",
            "dev.fanout.delivery.dead_lettered",
            "com.example.shop.order.created",
            "dev.fanout.delivery.dead_lettered"
        ]
    );
}
