//! CloudEvents webhook abuse protection through real HTTP: the OPTIONS validation request,
//! deliveries only after a grant, the granted rate honoured, refusals retried with backoff, and
//! `WebHook-Request-Origin` on every delivery.

use std::time::Duration;

use crate::support::{event, Reply, TestReceiver, TestRouter};

const TOKEN: &str = "handshake-admin-token-0123456789";

fn routes(url: &str, extra: &str) -> String {
    format!(
        "
admin: {{ token: {TOKEN}, watch_interval: 0s }}
subscribers:
  erp:
    url: '{url}'
    handshake: {{ origin: fanout.example.com }}
    retry: {{ initial_interval: 50ms, max_interval: 100ms, jitter: 0 }}
    {extra}
routes:
  - name: all
    to: [erp]
"
    )
}

#[tokio::test]
async fn deliveries_wait_for_the_grant_and_honour_the_granted_rate() {
    let erp = TestReceiver::scripted(|_, received| {
        if received.method == "OPTIONS" {
            Reply::ok()
                .with_header("WebHook-Allowed-Origin", "fanout.example.com")
                .with_header("WebHook-Allowed-Rate", "120")
        } else {
            Reply::ok()
        }
    })
    .await;
    let router = TestRouter::start(&routes(&erp.url, "rate_limit: 600/m")).await;
    let events: Vec<serde_json::Value> = (0..5)
        .map(|index| event("com.example.shop.order.created", &format!("h-{index}")))
        .collect();
    router.publish_batch(events).await;
    let got = erp.wait_for(6).await;
    assert_eq!(got[0].method, "OPTIONS");
    assert_eq!(
        got[0].header("webhook-request-origin"),
        Some("fanout.example.com")
    );
    assert_eq!(got[0].header("webhook-request-rate"), Some("600"));
    for delivery in &got[1..] {
        assert_eq!(delivery.method, "POST");
        assert_eq!(
            delivery.header("webhook-request-origin"),
            Some("fanout.example.com")
        );
    }
    // Granted 120/min (2/s, a burst of 2) is below the configured 600/min: 5 deliveries take
    // at least 1.5 s after the first.
    let span = got[5].at - got[1].at;
    assert!(span >= Duration::from_millis(1_250), "{span:?}");
    let view = router.admin_get("/api/v1/subscribers/erp", TOKEN).await;
    assert_eq!(view["handshake"], "granted (120/min)");
}

#[tokio::test]
async fn a_refused_handshake_is_retried_and_nothing_is_delivered_meanwhile() {
    // Refused twice (wrong origin, then an error status), then granted with any origin.
    let erp = TestReceiver::scripted(|index, received| match (received.method.as_str(), index) {
        ("OPTIONS", 0) => Reply::ok().with_header("WebHook-Allowed-Origin", "someone-else.example"),
        ("OPTIONS", 1) => Reply::status(403),
        ("OPTIONS", _) => Reply::ok().with_header("WebHook-Allowed-Origin", "*"),
        _ => Reply::ok(),
    })
    .await;
    let router = TestRouter::start(&routes(&erp.url, "")).await;
    router
        .publish(event("com.example.shop.order.created", "h-1"))
        .await;
    let view = router
        .wait_admin("/api/v1/subscribers/erp", TOKEN, "a refusal", |view| {
            view["handshake"]
                .as_str()
                .is_some_and(|state| state.starts_with("refused"))
        })
        .await;
    let state = view["handshake"].as_str().unwrap();
    assert!(
        state.contains("someone-else.example") || state.contains("403"),
        "{state}"
    );
    let got = erp.wait_for(4).await;
    let methods: Vec<&str> = got
        .iter()
        .map(|received| received.method.as_str())
        .collect();
    assert_eq!(methods, ["OPTIONS", "OPTIONS", "OPTIONS", "POST"]);
    assert_eq!(got[3].event_id(), "h-1");
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(90),
        "backoff between tries"
    );
    let view = router.admin_get("/api/v1/subscribers/erp", TOKEN).await;
    assert_eq!(view["handshake"], "granted");
    assert_eq!(
        view["failed_attempts_total"], 0,
        "a refused handshake spends no attempt"
    );
}
