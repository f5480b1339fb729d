//! Delivery through real HTTP: signatures, retries, Retry-After, 410, dead letters, isolation.

use std::collections::BTreeSet;
use std::time::Duration;

use fanout::ids::EventSeq;

use crate::support::{
    event, verify_signature, wait_until, Reply, TestReceiver, TestRouter, DEADLINE,
};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";
const SECRET_OTHER: &str = "whsec_b3RoZXItc2VjcmV0LW5vdC11c2VkLWhlcmU=";

/// Fast retries for tests.
const FAST_RETRY: &str = "initial_interval: 20ms, max_interval: 200ms, jitter: 0.1";

#[tokio::test]
async fn signatures_verify_with_every_secret_during_rotation() {
    let binary = TestReceiver::start().await;
    let structured = TestReceiver::start().await;
    let text = format!(
        "
subscribers:
  binary:
    url: '{}'
    secret: [{SECRET_A}, {SECRET_B}]
    headers: {{ X-Tenant: shop-eu }}
  structured:
    url: '{}'
    secret: {SECRET_B}
    mode: structured
routes:
  - name: all
    to: [binary, structured]
",
        binary.url, structured.url
    );
    let router = TestRouter::start(&text).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "sig-1"))
            .await
            .status(),
        202
    );
    let got = &binary.wait_for(1).await[0];
    assert!(verify_signature(SECRET_A, got), "old secret must verify");
    assert!(verify_signature(SECRET_B, got), "new secret must verify");
    assert!(
        !verify_signature(SECRET_OTHER, got),
        "an unrelated secret must not verify"
    );
    assert_eq!(
        got.header("webhook-signature").unwrap().split(' ').count(),
        2
    );
    assert_eq!(got.header("x-tenant"), Some("shop-eu"));
    let timestamp: u64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        timestamp.abs_diff(now) < 60,
        "timestamp {timestamp} is not now ({now})"
    );

    let got = &structured.wait_for(1).await[0];
    assert!(verify_signature(SECRET_B, got));
    assert!(!verify_signature(SECRET_A, got));
    // A tampered body no longer verifies.
    let mut tampered = got.clone();
    tampered.body.push(b' ');
    assert!(!verify_signature(SECRET_B, &tampered));
}

#[tokio::test]
async fn retries_after_500s_then_succeeds_with_the_same_webhook_id() {
    let receiver = TestReceiver::scripted(|n, _| {
        if n < 3 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let text = format!(
        "
subscribers:
  erp: {{ url: '{}', secret: {SECRET_A}, retry: {{ {FAST_RETRY} }} }}
routes:
  - name: all
    to: [erp]
",
        receiver.url
    );
    let router = TestRouter::start(&text).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "r-1"))
            .await
            .status(),
        202
    );
    let got = receiver.wait_for(4).await;
    let ids: BTreeSet<&str> = got
        .iter()
        .map(|received| received.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "webhook-id must be stable across retries");
    assert!(got
        .iter()
        .all(|received| verify_signature(SECRET_A, received)));
    let erp = router.id("erp");
    wait_until("retry state cleared", DEADLINE, || {
        router.store.retries(erp).unwrap().is_empty()
    })
    .await;
    wait_until("four attempts recorded", DEADLINE, || {
        router.store.attempts(erp, EventSeq(1)).unwrap().len() == 4
    })
    .await;
    let attempts = router.store.attempts(erp, EventSeq(1)).unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|attempt| attempt.status)
            .collect::<Vec<_>>(),
        [Some(500), Some(500), Some(500), Some(200)]
    );
    assert_eq!(
        attempts[0].response_excerpt.as_deref(),
        Some("answered 500")
    );
    assert!(router.store.dead_letters(erp).unwrap().is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = TestReceiver::scripted(|n, _| match n {
        0 => Reply::status(429).with_header("retry-after", "1"),
        _ => Reply::ok(),
    })
    .await;
    let text = format!(
        "
subscribers:
  erp: {{ url: '{}', retry: {{ initial_interval: 20ms, max_interval: 5s }} }}
routes:
  - name: all
    to: [erp]
",
        receiver.url
    );
    let router = TestRouter::start(&text).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "ra-1"))
            .await
            .status(),
        202
    );
    let got = receiver.wait_for(2).await;
    let gap = got[1].at.duration_since(got[0].at);
    // Without Retry-After the retry would come after about 20 ms.
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before the 1 s Retry-After"
    );
}

#[tokio::test]
async fn gone_disables_the_subscriber_and_keeps_its_deliveries() {
    let receiver = TestReceiver::scripted(|_, _| Reply::status(410)).await;
    let other = TestReceiver::start().await;
    let text = format!(
        "
subscribers:
  gone: {{ url: '{}', concurrency: 1, retry: {{ {FAST_RETRY} }} }}
  other: {{ url: '{}' }}
routes:
  - name: all
    to: [gone, other]
",
        receiver.url, other.url
    );
    let router = TestRouter::start(&text).await;
    for id in ["g-1", "g-2", "g-3"] {
        assert_eq!(
            router
                .publish(event("com.example.shop.order.created", id))
                .await
                .status(),
            202
        );
    }
    other.wait_for(3).await;
    receiver.wait_for(1).await;
    let gone = router.id("gone");
    wait_until("subscriber disabled", DEADLINE, || {
        router.store.disabled(gone).unwrap().is_some()
    })
    .await;
    // More events keep flowing to the healthy subscriber and are kept for the disabled one.
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "g-4"))
            .await
            .status(),
        202
    );
    other.wait_for(4).await;
    assert_eq!(receiver.count(), 1, "no delivery after 410");
    assert!(router
        .store
        .disabled(gone)
        .unwrap()
        .unwrap()
        .contains("410"));
    // The 410'd delivery is parked as pending, the others are still in the log after its cursor.
    assert_eq!(router.store.retries(gone).unwrap().len(), 1);
    assert!(router.store.cursor(gone).unwrap() <= EventSeq(2));
    assert!(router.store.dead_letters(gone).unwrap().is_empty());

    // After a restart it stays disabled.
    let dir = router.stop().await;
    let router = TestRouter::start_in(&text, dir).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "g-5"))
            .await
            .status(),
        202
    );
    other.wait_for(5).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn permanent_failures_and_exhaustion_go_to_dead_letters_and_the_dead_letter_url() {
    let bad_request = TestReceiver::scripted(|_, _| Reply::status(400)).await;
    let failing = TestReceiver::scripted(|_, _| Reply::status(503)).await;
    let dead_letter_sink = TestReceiver::start().await;
    let text = format!(
        "
dead_letter:
  url: '{}'
  secret: {SECRET_B}
subscribers:
  strict: {{ url: '{}' }}
  flaky: {{ url: '{}', retry: {{ {FAST_RETRY}, max_attempts: 3 }} }}
routes:
  - name: all
    to: [strict, flaky]
",
        dead_letter_sink.url, bad_request.url, failing.url
    );
    let router = TestRouter::start(&text).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "d-1"))
            .await
            .status(),
        202
    );

    let forwarded = dead_letter_sink.wait_for(2).await;
    assert_eq!(bad_request.count(), 1, "a 400 is not retried");
    assert_eq!(failing.count(), 3, "503 is retried up to max_attempts");
    let (strict, flaky) = (router.id("strict"), router.id("flaky"));
    let strict_letters = router.store.dead_letters(strict).unwrap();
    assert_eq!(strict_letters.len(), 1);
    assert_eq!(strict_letters[0].1.last_status, Some(400));
    assert_eq!(strict_letters[0].1.attempts, 1);
    assert!(strict_letters[0].1.reason.contains("400"));
    let flaky_letters = router.store.dead_letters(flaky).unwrap();
    assert_eq!(flaky_letters.len(), 1);
    assert_eq!(flaky_letters[0].1.attempts, 3);
    assert!(
        flaky_letters[0].1.reason.contains("exhausted"),
        "{}",
        flaky_letters[0].1.reason
    );
    assert_eq!(flaky_letters[0].1.event.id, "d-1");
    assert!(router.store.retries(flaky).unwrap().is_empty());

    let mut by_subscriber: Vec<(String, String, String)> = forwarded
        .iter()
        .map(|received| {
            assert!(verify_signature(SECRET_B, received));
            assert_eq!(received.header("ce-id"), Some("d-1"));
            (
                received.header("ce-fanoutsubscriber").unwrap().to_owned(),
                received.header("ce-fanoutstatus").unwrap().to_owned(),
                received.header("ce-fanoutattempts").unwrap().to_owned(),
            )
        })
        .collect();
    by_subscriber.sort();
    assert_eq!(
        by_subscriber,
        [
            ("flaky".into(), "503".into(), "3".into()),
            ("strict".into(), "400".into(), "1".into())
        ]
    );
    assert!(forwarded
        .iter()
        .all(|received| received.header("ce-fanoutreason").is_some()));
    wait_until("outbox emptied", DEADLINE, || {
        router.store.outbox(10).unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_that_never_answers_does_not_slow_another() {
    let stuck = TestReceiver::scripted(|_, _| Reply::hang()).await;
    let healthy = TestReceiver::start().await;
    let text = format!(
        "
subscribers:
  stuck: {{ url: '{}', timeout: 60s, concurrency: 2, adaptive_concurrency: false }}
  healthy: {{ url: '{}', concurrency: 2 }}
routes:
  - name: all
    to: [stuck, healthy]
",
        stuck.url, healthy.url
    );
    let router = TestRouter::start(&text).await;
    let count = 200;
    for index in 0..count {
        let response = router
            .publish(event(
                "com.example.shop.order.created",
                &format!("i-{index}"),
            ))
            .await;
        assert_eq!(response.status(), 202);
    }
    // All 200 reach the healthy subscriber while the stuck one still holds its first two
    // requests (it would take 100 timeouts of 60 s to get through its queue).
    let got = healthy.wait_for(count).await;
    assert_eq!(got.len(), count);
    assert_eq!(
        stuck.count(),
        2,
        "the stuck subscriber only ever has its two attempts in flight"
    );
}

/// Adaptive concurrency: an endpoint that takes 50 ms however many requests it holds gets all of
/// `concurrency` in flight; one that turns to 503 after 20 successes is cut back to one attempt at
/// a time, while the same 503s with `adaptive_concurrency: false` get every slot.
#[tokio::test]
async fn adaptive_concurrency_opens_up_for_a_roomy_endpoint_and_backs_off_on_503() {
    let roomy = TestReceiver::scripted(|_, _| Reply::ok().after(Duration::from_millis(50))).await;
    let unavailable = || Reply::status(503).after(Duration::from_millis(20));
    let busy = TestReceiver::scripted(move |n, _| {
        if n < 20 {
            Reply::ok().after(Duration::from_millis(20))
        } else {
            unavailable()
        }
    })
    .await;
    let pinned = TestReceiver::scripted(move |_, _| unavailable()).await;
    let retry = "initial_interval: 10ms, max_interval: 10ms, max_attempts: 100000, max_age: 1h";
    let text = format!(
        "
admin:
  token: {SECRET_A}
subscribers:
  roomy: {{ url: '{}', concurrency: 8 }}
  busy: {{ url: '{}', concurrency: 8, retry: {{ {retry} }} }}
  pinned: {{ url: '{}', concurrency: 8, adaptive_concurrency: false, retry: {{ {retry} }} }}
routes:
  - name: all
    to: [roomy, busy, pinned]
",
        roomy.url, busy.url, pinned.url
    );
    let router = TestRouter::start(&text).await;
    let count = 300;
    for index in 0..count {
        let response = router
            .publish(event(
                "com.example.shop.order.created",
                &format!("a-{index}"),
            ))
            .await;
        assert_eq!(response.status(), 202);
    }
    wait_until(
        "the roomy endpoint holding 8 requests at once",
        DEADLINE,
        || roomy.peak_in_flight() == 8,
    )
    .await;
    let metrics = router.metrics(SECRET_A).await;
    assert!(
        metrics.contains("fanout_concurrency_limit{subscriber=\"roomy\"} 8"),
        "{metrics}"
    );
    wait_until(
        "the pinned endpoint holding 8 requests at once",
        DEADLINE,
        || pinned.peak_in_flight() == 8,
    )
    .await;
    wait_until(
        "the busy endpoint's limit growing while it succeeds",
        DEADLINE,
        || busy.peak_in_flight() > 1,
    )
    .await;
    // Then its 503s cut the limit back to its floor.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let metrics = router.metrics(SECRET_A).await;
        if metrics.contains("fanout_concurrency_limit{subscriber=\"busy\"} 1\n") {
            assert!(
                metrics.contains("fanout_concurrency_limit{subscriber=\"pinned\"} 8"),
                "{metrics}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the 503s never cut the limit to 1:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    roomy.wait_for(count).await;
}

#[tokio::test]
async fn timeouts_are_retried_and_redirects_are_not_followed() {
    let slow =
        TestReceiver::scripted(|n, _| if n == 0 { Reply::hang() } else { Reply::ok() }).await;
    let target = TestReceiver::start().await;
    let redirect_to = target.url.clone();
    let redirecting = TestReceiver::scripted(move |_, _| {
        Reply::status(307).with_header("location", &redirect_to)
    })
    .await;
    let text = format!(
        "
subscribers:
  slow: {{ url: '{}', timeout: 300ms, retry: {{ {FAST_RETRY} }} }}
  moved: {{ url: '{}', retry: {{ {FAST_RETRY} }} }}
routes:
  - name: all
    to: [slow, moved]
",
        slow.url, redirecting.url
    );
    let router = TestRouter::start(&text).await;
    assert_eq!(
        router
            .publish(event("com.example.shop.order.created", "t-1"))
            .await
            .status(),
        202
    );
    slow.wait_for(2).await;
    let slow_id = router.id("slow");
    wait_until("two attempts recorded", DEADLINE, || {
        router.store.attempts(slow_id, EventSeq(1)).unwrap().len() == 2
    })
    .await;
    let attempts = router.store.attempts(slow_id, EventSeq(1)).unwrap();
    assert!(
        attempts[0].status.is_none()
            && attempts[0]
                .error
                .as_deref()
                .is_some_and(|error| error.contains("timed out")),
        "{attempts:?}"
    );
    assert_eq!(attempts[1].status, Some(200));

    let moved = router.id("moved");
    wait_until("redirect dead-lettered", DEADLINE, || {
        router.store.dead_letters(moved).unwrap().len() == 1
    })
    .await;
    assert_eq!(
        router.store.dead_letters(moved).unwrap()[0].1.last_status,
        Some(307)
    );
    assert_eq!(redirecting.count(), 1);
    assert_eq!(target.count(), 0, "the redirect must not be followed");
}

/// A steady trickle of events, each published after the previous one was acknowledged, keeps
/// the dispatcher racing with the commit watermark; every event must still arrive. (The
/// benchmark once caught a dispatcher that lost this race and went to sleep for good.)
#[tokio::test]
async fn a_steady_trickle_is_delivered_completely() {
    let receiver = TestReceiver::start().await;
    let text = format!(
        "subscribers:\n  erp: {{ url: '{}', concurrency: 4 }}\nroutes:\n  - name: all\n    to: [erp]\n",
        receiver.url
    );
    let router = std::sync::Arc::new(TestRouter::start(&text).await);
    let mut publishers = Vec::new();
    for publisher in 0..4 {
        let router = std::sync::Arc::clone(&router);
        publishers.push(tokio::spawn(async move {
            for index in 0..200 {
                let id = format!("t-{publisher}-{index}");
                let response = router
                    .publish(event("com.example.shop.order.created", &id))
                    .await;
                assert_eq!(response.status(), 202);
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let got = receiver.wait_for(800).await;
    let unique: BTreeSet<String> = got.iter().map(|received| received.event_id()).collect();
    assert_eq!(unique.len(), 800);
}
