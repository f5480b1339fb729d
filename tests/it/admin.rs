//! The operator API through real HTTP: token, subscribers, pause and resume, event lookup, dead
//! letters (list, dry run, replay, purge), reload (API, file watch, invalid file, removed and
//! restored subscriber) and metrics.

use std::time::Duration;

use crate::support::{event, wait_until, Reply, TestReceiver, TestRouter, DEADLINE};

const TOKEN: &str = "test-admin-token-0123456789";
const FAST_RETRY: &str = "initial_interval: 20ms, max_interval: 100ms, jitter: 0.1";

fn routes(erp: &str, slack: &str, extra: &str) -> String {
    format!(
        "
admin:
  token: {TOKEN}
  watch_interval: 0s
subscribers:
  erp: {{ url: '{erp}', retry: {{ {FAST_RETRY}, max_attempts: 2 }} }}
  slack: {{ url: '{slack}' }}
routes:
  - name: orders
    filters: [{{ prefix: {{ type: com.example.shop.order. }} }}]
    to: [erp]
  {extra}
"
    )
}

#[tokio::test]
async fn the_admin_api_needs_the_token_but_health_checks_do_not() {
    let erp = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &erp.url, "")).await;
    for (path, token, expected) in [
        ("/api/v1/subscribers", None, 401),
        (
            "/api/v1/subscribers",
            Some("wrong-token-of-some-length"),
            401,
        ),
        ("/api/v1/subscribers", Some(TOKEN), 200),
        ("/metrics", None, 401),
        ("/metrics", Some(TOKEN), 200),
        ("/healthz", None, 200),
        ("/readyz", None, 200),
    ] {
        let response = router
            .admin_request(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "GET {path} with {token:?}");
        if expected == 401 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    // The public port has health checks but no admin API.
    let public = router
        .client
        .get(format!("{}/api/v1/subscribers", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let ready = router
        .client
        .get(format!("{}/readyz", router.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_non_loopback_admin_listener_needs_a_token() {
    let errors = fanout::config::parse(
        "admin: { listen: '0.0.0.0:8081' }\n",
        std::path::Path::new("routes.yaml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("admin.token"), "{errors}");
    assert!(errors.contains("routes.yaml:1"), "{errors}");
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_after_recovery_and_purged() {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&healthy);
    let erp = TestReceiver::scripted(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(503).with_header("x-request-id", "req-42")
        }
    })
    .await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &slack.url, "")).await;
    for id in ["o-1", "o-2", "o-3"] {
        let status = router
            .publish(event("com.example.shop.order.created", id))
            .await
            .status();
        assert_eq!(status, 202);
    }
    let erp_id = router.id("erp");
    wait_until("three dead letters", DEADLINE, || {
        router.store.dead_letters(erp_id).unwrap().len() == 3
    })
    .await;

    // List with a filter and pagination.
    let page = router
        .admin_get(
            "/api/v1/dead-letters?subscriber=erp&status=503&limit=2",
            TOKEN,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["event"]["id"], "o-1");
    assert_eq!(page["items"][0]["attempts"], 2);
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = router
        .admin_get(
            &format!("/api/v1/dead-letters?subscriber=erp&after={next}"),
            TOKEN,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["event"]["id"], "o-3");
    assert!(rest["next"].is_null());
    let none = router
        .admin_get("/api/v1/dead-letters?status=400", TOKEN)
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (status, problem) = router
        .admin_post(
            "/api/v1/dead-letters/replay",
            TOKEN,
            serde_json::json!({ "subscriber": "nobody" }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("subscriber"));

    // The event view shows the dead delivery and both attempts.
    let view = router
        .admin_get("/api/v1/events/o-2?source=/shop/eu", TOKEN)
        .await;
    assert_eq!(view["event"]["id"], "o-2");
    let delivery = &view["deliveries"][0];
    assert_eq!(delivery["subscriber"], "erp");
    assert_eq!(delivery["state"], "dead");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(delivery["attempts"][0]["status"], 503);
    assert_eq!(
        delivery["attempts"][0]["response_headers"]["x-request-id"],
        "req-42"
    );

    // Dry run first: nothing moves.
    let (status, plan) = router
        .admin_post(
            "/api/v1/dead-letters/replay",
            TOKEN,
            serde_json::json!({ "subscriber": "erp", "dry_run": true }),
        )
        .await;
    assert_eq!((status, plan["matched"].as_u64()), (200, Some(3)));
    assert_eq!(router.store.dead_letters(erp_id).unwrap().len(), 3);

    // The subscriber recovers; replay one by id, then the rest by filter.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = erp.count();
    let one = delivery["webhook_id"].as_str().unwrap();
    let (status, done) = router
        .admin_post(
            "/api/v1/dead-letters/replay",
            TOKEN,
            serde_json::json!({ "ids": [one] }),
        )
        .await;
    assert_eq!((status, done["done"].as_u64()), (200, Some(1)));
    erp.wait_for(before + 1).await;
    let (status, done) = router
        .admin_post(
            "/api/v1/dead-letters/replay",
            TOKEN,
            serde_json::json!({ "subscriber": "erp" }),
        )
        .await;
    assert_eq!((status, done["done"].as_u64()), (200, Some(2)));
    let got = erp.wait_for(before + 3).await;
    let mut replayed: Vec<String> = got[before..]
        .iter()
        .map(|received| received.event_id())
        .collect();
    replayed.sort();
    assert_eq!(replayed, ["o-1", "o-2", "o-3"]);
    wait_until("dead letters gone", DEADLINE, || {
        router.store.dead_letters(erp_id).unwrap().is_empty()
    })
    .await;
    let view = router
        .admin_get("/api/v1/events/o-2?source=/shop/eu", TOKEN)
        .await;
    assert_eq!(
        view["deliveries"][0]["attempts"].as_array().unwrap().len(),
        3
    );

    // Purge: fail one more, then dry run and purge.
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    router
        .publish(event("com.example.shop.order.created", "o-4"))
        .await;
    wait_until("a new dead letter", DEADLINE, || {
        router.store.dead_letters(erp_id).unwrap().len() == 1
    })
    .await;
    let (status, plan) = router
        .admin_delete("/api/v1/dead-letters?subscriber=erp&dry_run=true", TOKEN)
        .await;
    assert_eq!(status, 200);
    assert_eq!(plan["matched"], 1);
    assert_eq!(router.store.dead_letters(erp_id).unwrap().len(), 1);
    let (status, done) = router
        .admin_delete("/api/v1/dead-letters?subscriber=erp", TOKEN)
        .await;
    assert_eq!(status, 200);
    assert_eq!(done["done"], 1);
    assert!(router.store.dead_letters(erp_id).unwrap().is_empty());
}

#[tokio::test]
async fn a_paused_subscriber_queues_and_delivers_on_resume() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &slack.url, "")).await;
    let (status, body) = router.subscriber_action(TOKEN, "erp", "pause").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("paused")));
    for index in 0..5 {
        router
            .publish(event(
                "com.example.shop.order.created",
                &format!("p-{index}"),
            ))
            .await;
    }
    wait_until("five pending", DEADLINE, || {
        router.store.pending(router.id("erp"), 1000).unwrap().fresh == 5
    })
    .await;
    let list = router.admin_get("/api/v1/subscribers", TOKEN).await;
    let erp_view = list["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|subscriber| subscriber["name"] == "erp")
        .unwrap()
        .clone();
    assert_eq!(erp_view["state"], "paused");
    assert_eq!(erp_view["pending"], 5);
    assert_eq!(erp.count(), 0, "a paused subscriber gets nothing");
    let (status, body) = router.subscriber_action(TOKEN, "erp", "resume").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("active")));
    erp.wait_for(5).await;
    let list = router.admin_get("/api/v1/subscribers", TOKEN).await;
    let erp_view = &list["subscribers"][0];
    assert_eq!(erp_view["name"], "erp");
    assert_eq!(erp_view["delivered_total"], 5);
    assert_eq!(erp_view["recent"]["success_rate"], 1.0);
    let (status, _) = router.subscriber_action(TOKEN, "nobody", "pause").await;
    assert_eq!(status, 404);
}

/// A pause holds back everything that has not started: while an attempt hangs and then times
/// out, none of the events read behind it is sent until the resume.
#[tokio::test]
async fn a_pause_holds_back_what_a_hanging_attempt_has_behind_it() {
    // The first request hangs until the 1 s timeout; the rest are answered at once.
    let erp = TestReceiver::scripted(|index, _| {
        if index == 0 {
            Reply::hang()
        } else {
            Reply::ok()
        }
    })
    .await;
    let text = format!(
        "
admin:
  token: {TOKEN}
  watch_interval: 0s
subscribers:
  erp: {{ url: '{}', timeout: 1s, concurrency: 1, adaptive_concurrency: false, retry: {{ {FAST_RETRY} }} }}
routes:
  - name: orders
    to: [erp]
",
        erp.url
    );
    let router = TestRouter::start(&text).await;
    // One commit: the dispatcher reads all five at once and starts the first.
    let batch = (0..5)
        .map(|index| event("com.example.shop.order.created", &format!("q-{index}")))
        .collect();
    assert_eq!(router.publish_batch(batch).await.status(), 202);
    erp.wait_for(1).await;
    let (status, _) = router.subscriber_action(TOKEN, "erp", "pause").await;
    assert_eq!(status, 200);
    // The hanging attempt times out and is scheduled again; nothing else may start meanwhile
    // (an attempt started would be in flight, then answered).
    router
        .wait_admin(
            "/api/v1/subscribers",
            TOKEN,
            "the timed-out attempt recorded, nothing in flight",
            |list| {
                let erp = &list["subscribers"][0];
                erp["retrying"] == 1 && erp["in_flight"] == 0
            },
        )
        .await;
    assert_eq!(erp.count(), 1, "a paused subscriber starts nothing more");
    let (status, _) = router.subscriber_action(TOKEN, "erp", "resume").await;
    assert_eq!(status, 200);
    let got = erp.wait_for(6).await;
    let mut ids: Vec<String> = got
        .iter()
        .skip(1)
        .map(|received| received.event_id())
        .collect();
    ids.sort();
    assert_eq!(ids, ["q-0", "q-1", "q-2", "q-3", "q-4"]);
}

#[tokio::test]
async fn reload_changes_routing_and_keeps_the_old_table_on_errors() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &slack.url, "")).await;
    router
        .publish(event("com.example.shop.stock.low", "s-1"))
        .await;

    // A valid file through the API: stock events now go to slack.
    router.write_routes(&routes(
        &erp.url,
        &slack.url,
        "- name: stock\n    filters: [{ prefix: { type: com.example.shop.stock. } }]\n    to: [slack]",
    ));
    let (status, body) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["diff"]["routes_added"], serde_json::json!(["stock"]));
    router
        .publish(event("com.example.shop.stock.low", "s-2"))
        .await;
    let got = slack.wait_for(1).await;
    assert_eq!(
        got[0].event_id(),
        "s-2",
        "the event before the reload was unrouted"
    );

    // An invalid file: 422 naming line and key, the old routing stays, the error is reported.
    router.write_routes(&routes(
        &erp.url,
        &slack.url,
        "- name: broken\n    to: [nobody]",
    ));
    let (status, body) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 422);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("routes.yaml:") && detail.contains("nobody"),
        "{detail}"
    );
    router
        .publish(event("com.example.shop.stock.low", "s-3"))
        .await;
    slack.wait_for(2).await;
    let metrics = router.metrics(TOKEN).await;
    assert!(
        metrics.contains("fanout_config_reload_failures_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_changed_routes_file_is_reloaded_by_the_watch() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let watched = |extra: &str| {
        routes(&erp.url, &slack.url, extra).replace("watch_interval: 0s", "watch_interval: 20ms")
    };
    let router = TestRouter::start(&watched("")).await;
    router.write_routes(&watched("- name: everything\n    to: [slack]"));
    wait_until("the watch reloads the file", DEADLINE, || {
        reloads(&router) == 1
    })
    .await;
    router
        .publish(event("com.example.shop.price.changed", "w-1"))
        .await;
    assert_eq!(slack.wait_for(1).await[0].event_id(), "w-1");
    // An invalid file is reported through the API and the old routes stay.
    router.write_routes(&watched("- name: broken\n    to: [nobody]"));
    wait_until("the watch reports the error", DEADLINE, || {
        router.reloader().status().is_some_and(|status| !status.ok)
    })
    .await;
    let last = router.admin_get("/api/v1/reload", TOKEN).await;
    assert_eq!(last["last"]["ok"], false);
    assert!(
        last["last"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("nobody"),
        "{last}"
    );
    router
        .publish(event("com.example.shop.price.changed", "w-2"))
        .await;
    slack.wait_for(2).await;
}

fn reloads(router: &TestRouter) -> u64 {
    router
        .reloader()
        .successes
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_removed_subscriber_keeps_its_queue_and_resumes_when_restored() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let with_slack = routes(&erp.url, &slack.url, "- name: all\n    to: [slack]");
    let router = TestRouter::start(&with_slack).await;
    let (status, _) = router.subscriber_action(TOKEN, "slack", "pause").await;
    assert_eq!(status, 200);
    for index in 0..3 {
        router
            .publish(event(
                "com.example.shop.order.created",
                &format!("r-{index}"),
            ))
            .await;
    }
    // Remove slack (and its route) while it has three pending deliveries.
    let without = format!(
        "
admin:
  token: {TOKEN}
  watch_interval: 0s
subscribers:
  erp: {{ url: '{}' }}
routes:
  - name: orders
    to: [erp]
",
        erp.url
    );
    router.write_routes(&without);
    let (status, body) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["diff"]["subscribers_removed"],
        serde_json::json!(["slack"])
    );
    let list = router.admin_get("/api/v1/subscribers", TOKEN).await;
    let slack_view = list["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|subscriber| subscriber["name"] == "slack")
        .unwrap()
        .clone();
    assert_eq!(slack_view["state"], "orphaned");
    assert_eq!(slack_view["pending"], 3);
    // Orphaned: resuming does not deliver while it is not configured.
    router.subscriber_action(TOKEN, "slack", "resume").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.count(), 0);

    // Restored: the three arrive.
    router.write_routes(&with_slack);
    let (status, body) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    let got = slack.wait_for(3).await;
    let mut ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
    ids.sort();
    assert_eq!(ids, ["r-0", "r-1", "r-2"]);
}

#[tokio::test]
async fn metrics_move_as_events_flow() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &slack.url, "")).await;
    let scrape = || async { router.metrics(TOKEN).await };
    let before = scrape().await;
    assert!(
        before.contains("fanout_events_accepted_total 0"),
        "{before}"
    );
    let refused = router
        .publish(serde_json::json!({ "specversion": "1.0", "id": "x" }))
        .await;
    assert_eq!(refused.status(), 400);
    assert!(before.contains("# TYPE fanout_attempt_duration_seconds histogram"));
    for index in 0..4 {
        router
            .publish(event(
                "com.example.shop.order.created",
                &format!("m-{index}"),
            ))
            .await;
    }
    erp.wait_for(4).await;
    wait_until("delivered counted", DEADLINE, || {
        fanout::metrics::Metrics::get(&router.metrics.deliveries_succeeded) == 4
    })
    .await;
    let after = scrape().await;
    assert!(after.contains("fanout_events_accepted_total 4"), "{after}");
    assert!(after.contains("fanout_dedupe_index_entries 4"), "{after}");
    assert!(
        after.contains("fanout_events_rejected_total{reason=\"invalid_event\"} 1"),
        "{after}"
    );
    assert!(
        after.contains("fanout_deliveries_total{subscriber=\"erp\",outcome=\"delivered\"} 4"),
        "{after}"
    );
    assert!(after.contains("fanout_attempt_duration_seconds_count{subscriber=\"erp\"} 4"));
    assert!(after.contains("fanout_queue_depth{subscriber=\"erp\"} 0"));
    assert!(after.contains("fanout_subscriber_state{subscriber=\"erp\",state=\"active\"} 1"));
}

fn rfc3339(offset_seconds: i64) -> String {
    let now = std::time::SystemTime::now();
    let at = if offset_seconds >= 0 {
        now + Duration::from_secs(offset_seconds.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_seconds.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(at).to_string()
}

#[tokio::test]
async fn the_archive_is_searchable_and_replays_a_time_range() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(
        &erp.url,
        &slack.url,
        "- name: stock\n    filters: [{ prefix: { type: com.example.shop.stock. } }]\n    to: [slack]",
    ))
    .await;
    for id in ["a-1", "a-2", "a-3"] {
        router
            .publish(event("com.example.shop.order.created", id))
            .await;
    }
    router
        .publish(event("com.example.shop.stock.low", "a-4"))
        .await;
    let first = erp.wait_for(3).await;
    slack.wait_for(1).await;

    // Search with a filter and pagination.
    let page = router
        .admin_get(
            "/api/v1/events?type_prefix=com.example.shop.order.&limit=2",
            TOKEN,
        )
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "a-1");
    assert_eq!(items[0]["subscribers"], serde_json::json!(["erp"]));
    let next = page["next"].as_u64().unwrap();
    let rest = router
        .admin_get(
            &format!("/api/v1/events?type_prefix=com.example.shop.order.&after={next}"),
            TOKEN,
        )
        .await;
    let ids: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-3"]);
    let future = router
        .admin_get(&format!("/api/v1/events?since={}", rfc3339(3600)), TOKEN)
        .await;
    assert!(future["items"].as_array().unwrap().is_empty());

    // Replay the last hour to erp: a dry run first, then for real.
    wait_until("erp's cursor passes the events", DEADLINE, || {
        router.store.pending(router.id("erp"), 100).unwrap().fresh == 0
    })
    .await;
    let body = serde_json::json!({ "since": rfc3339(-3600), "until": rfc3339(60), "subscriber": "erp", "dry_run": true });
    let (status, plan) = router.admin_post("/api/v1/replay", TOKEN, body).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        (plan["matched"].as_u64(), plan["queued"].as_u64()),
        (Some(3), Some(0))
    );
    let body =
        serde_json::json!({ "since": rfc3339(-3600), "until": rfc3339(60), "subscriber": "erp" });
    let (status, done) = router.admin_post("/api/v1/replay", TOKEN, body).await;
    assert_eq!((status, done["queued"].as_u64()), (200, Some(3)));
    let got = erp.wait_for(6).await;
    // The event view lists the first attempt (a first success, kept in a compact group) and
    // then the replay's, numbered after it.
    let deadline = std::time::Instant::now() + DEADLINE;
    let statuses = loop {
        let view = router
            .admin_get("/api/v1/events/a-1?source=/shop/eu", TOKEN)
            .await;
        let attempts = view["deliveries"][0]["attempts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if attempts.len() >= 2 || std::time::Instant::now() > deadline {
            break attempts
                .iter()
                .map(|attempt| (attempt["number"].as_u64(), attempt["status"].as_u64()))
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(statuses, [(Some(1), Some(200)), (Some(2), Some(200))]);
    let mut original: Vec<&str> = first
        .iter()
        .map(|received| received.header("webhook-id").unwrap())
        .collect();
    let mut replayed: Vec<&str> = got[3..]
        .iter()
        .map(|received| received.header("webhook-id").unwrap())
        .collect();
    original.sort_unstable();
    replayed.sort_unstable();
    assert_eq!(
        original, replayed,
        "a replay keeps each delivery's webhook-id"
    );

    // By route: what `stock` matches, to its subscribers.
    wait_until("the replayed retries complete", DEADLINE, || {
        router.store.retries(router.id("erp")).unwrap().is_empty()
    })
    .await;
    let body =
        serde_json::json!({ "since": rfc3339(-3600), "until": rfc3339(60), "route": "stock" });
    let (status, done) = router.admin_post("/api/v1/replay", TOKEN, body).await;
    assert_eq!((status, done["queued"].as_u64()), (200, Some(1)));
    assert_eq!(slack.wait_for(2).await[1].event_id(), "a-4");

    let body = serde_json::json!({ "since": rfc3339(-3600), "until": rfc3339(60) });
    let (status, problem) = router.admin_post("/api/v1/replay", TOKEN, body).await;
    assert_eq!(status, 400);
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("subscriber, route"));
}

/// The contract test: every operation of the served OpenAPI document, called with the
/// document's own examples, answers with a status the document lists and the media type it
/// names; and a path the document does not list is 404.
#[tokio::test]
async fn the_openapi_document_matches_what_is_served() {
    let erp = TestReceiver::start().await;
    let slack = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&erp.url, &slack.url, "")).await;
    router
        .publish(event("com.example.shop.order.created", "o-1"))
        .await;
    erp.wait_for(1).await;
    let document = router.admin_get("/api/v1/openapi.json", TOKEN).await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            operations += 1;
            let mut url = path.clone();
            let mut query = Vec::new();
            for param in operation["parameters"].as_array().unwrap() {
                let (name, example) = (
                    param["name"].as_str().unwrap(),
                    param["example"].as_str().unwrap(),
                );
                match param["in"].as_str().unwrap() {
                    "path" => url = url.replace(&format!("{{{name}}}"), example),
                    _ if param["required"] == true => query.push(format!("{name}={example}")),
                    _ => {}
                }
            }
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = router.admin_request(method.clone(), &url, Some(TOKEN));
            if let Some(example) =
                operation["requestBody"]["content"]["application/json"].get("example")
            {
                request = request.json(example);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16().to_string();
            let documented = &operation["responses"][&status];
            assert!(
                documented.is_object(),
                "{method} {url} answered {status}, not in the document"
            );
            let media = documented["content"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                content_type.starts_with(&media),
                "{method} {url}: {content_type}, documented {media}"
            );
            // Without the token, every operation is refused as documented.
            let refused = router
                .admin_request(method.clone(), &url, None)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 401, "{method} {url} without a token");
            assert!(operation["responses"]["401"].is_object());
        }
    }
    assert!(operations >= 12, "{operations} operations documented");
    let missing = router
        .admin_request(reqwest::Method::GET, "/api/v1/nothing-here", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_changed_url_applies_to_the_next_attempt() {
    let old = TestReceiver::start().await;
    let new = TestReceiver::start().await;
    let router = TestRouter::start(&routes(&old.url, &old.url, "")).await;
    router
        .publish(event("com.example.shop.order.created", "u-1"))
        .await;
    old.wait_for(1).await;
    router.write_routes(&routes(&new.url, &old.url, ""));
    let (status, body) = router
        .admin_post("/api/v1/reload", TOKEN, serde_json::Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["diff"]["subscribers_changed"],
        serde_json::json!(["erp"])
    );
    router
        .publish(event("com.example.shop.order.created", "u-2"))
        .await;
    assert_eq!(new.wait_for(1).await[0].event_id(), "u-2");
    assert_eq!(old.count(), 1);
}
