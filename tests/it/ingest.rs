//! `POST /events`: the three CloudEvents HTTP modes, validation, limits, dedupe.

use serde_json::json;

use crate::support::{event, wait_until, TestReceiver, TestRouter, DEADLINE};

/// One subscriber that gets every event, in order (concurrency 1), in `mode`.
fn yaml(url: &str, mode: &str) -> String {
    format!(
        "
server:
  max_body_size: 4KiB
subscribers:
  sink:
    url: {url}
    mode: {mode}
    concurrency: 1
routes:
  - name: everything
    to: [sink]
"
    )
}

#[tokio::test]
async fn binary_mode_is_accepted_and_delivered_as_sent() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url, "binary")).await;
    let response = router
        .publish_binary(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "order-1"),
                ("ce-source", "/shop/eu"),
                ("ce-type", "com.example.shop.order.created"),
                ("ce-subject", "Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln"),
                ("ce-time", "2026-11-24T10:00:00+01:00"),
                ("ce-priority", "high"),
                ("content-type", "application/json"),
            ],
            br#"{"order": 1,  "total": 42.5}"#,
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(got.header("ce-id"), Some("order-1"));
    assert_eq!(
        got.header("ce-type"),
        Some("com.example.shop.order.created")
    );
    assert_eq!(
        got.header("ce-subject"),
        Some("Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln")
    );
    assert_eq!(got.header("ce-priority"), Some("high"));
    assert_eq!(got.header("ce-time"), Some("2026-11-24T10:00:00+01:00"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.body, br#"{"order": 1,  "total": 42.5}"#);
}

#[tokio::test]
async fn binary_mode_is_converted_for_a_structured_subscriber() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url, "structured")).await;
    let response = router
        .publish_binary(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "p-1"),
                ("ce-source", "/pim"),
                ("ce-type", "com.example.shop.price.changed"),
                ("ce-subject", "sku%2042%20%22red%22"),
                ("content-type", "text/plain; charset=utf-8"),
            ],
            b"price is now 9.99",
        )
        .await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(
        got.header("content-type"),
        Some("application/cloudevents+json")
    );
    let value: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(value["subject"], "sku 42 \"red\"");
    assert_eq!(value["datacontenttype"], "text/plain; charset=utf-8");
    assert_eq!(value["data"], "price is now 9.99");
    // The official SDK reads what fanout sends.
    let parsed: cloudevents::Event = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(cloudevents::AttributesReader::id(&parsed), "p-1");
}

#[tokio::test]
async fn structured_mode_with_data_and_data_base64() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url, "binary")).await;
    let mut first = event("com.example.shop.order.created", "s-1");
    first["region"] = json!("eu");
    first["attempt"] = json!(3);
    first["express"] = json!(true);
    assert_eq!(router.publish(first).await.status(), 202);
    let second = json!({
        "specversion": "1.0", "id": "s-2", "source": "/erp", "type": "com.example.erp.invoice",
        "datacontenttype": "application/pdf", "data_base64": "JVBERi0xLjQK"
    });
    assert_eq!(router.publish(second).await.status(), 202);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].header("ce-region"), Some("eu"));
    assert_eq!(got[0].header("ce-attempt"), Some("3"));
    assert_eq!(got[0].header("ce-express"), Some("true"));
    let data: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(data, json!({ "order": "s-1", "total": 42.5 }));
    assert_eq!(got[1].header("content-type"), Some("application/pdf"));
    assert_eq!(got[1].body, b"%PDF-1.4\n");
}

#[tokio::test]
async fn batched_mode_is_all_or_nothing_and_may_be_empty() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url, "binary")).await;
    let batch = json!([
        event("t.a", "b-1"),
        event("t.b", "b-2"),
        event("t.c", "b-3")
    ]);
    let response = router
        .post("application/cloudevents-batch+json", batch.to_string())
        .await;
    assert_eq!(response.status(), 202);
    let receipt: serde_json::Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 3);

    let empty = router
        .post("application/cloudevents-batch+json", "[]")
        .await;
    assert_eq!(empty.status(), 202);

    let mut broken = event("t.d", "b-5");
    broken["time"] = json!("last tuesday");
    let bad_batch = json!([event("t.d", "b-4"), broken]);
    let response = router
        .post("application/cloudevents-batch+json", bad_batch.to_string())
        .await;
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["index"], 1);
    assert_eq!(problem["errors"][0]["attribute"], "time");

    // The valid half of the rejected batch was not stored: the sentinel comes right after b-3.
    assert_eq!(router.publish(event("t.e", "sentinel")).await.status(), 202);
    let got = receiver.wait_for(4).await;
    let ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
    assert_eq!(ids, ["b-1", "b-2", "b-3", "sentinel"]);
}

/// Each invalid request gets its status and a problem naming the field; none is stored.
#[tokio::test]
async fn invalid_requests_get_problem_details_and_store_nothing() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url, "binary")).await;
    let structured = "application/cloudevents+json";
    let with = |key: &str, value: serde_json::Value| {
        let mut event = event("t", "x-1");
        event[key] = value;
        event.to_string()
    };
    let without = |key: &str| {
        let mut event = event("t", "x-1");
        event.as_object_mut().unwrap().remove(key);
        event.to_string()
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (structured, without("id"), 400, "id"),
        (structured, without("source"), 400, "source"),
        (structured, without("type"), 400, "type"),
        (structured, without("specversion"), 400, "specversion"),
        (structured, with("id", json!("")), 400, "id"),
        (
            structured,
            with("specversion", json!("0.3")),
            400,
            "specversion",
        ),
        (
            structured,
            with("time", json!("2026-13-45T99:00:00Z")),
            400,
            "time",
        ),
        (structured, with("subject", json!("")), 400, "subject"),
        (
            structured,
            with("dataschema", json!("not a uri")),
            400,
            "dataschema",
        ),
        (structured, with("Region", json!("eu")), 400, "Region"),
        (
            structured,
            with("region", json!({"nested": true})),
            400,
            "region",
        ),
        (structured, with("ratio", json!(0.5)), 400, "ratio"),
        (structured, with("type", json!(7)), 400, "type"),
        (
            structured,
            with("data_base64", json!("AAAA")),
            400,
            "data_base64",
        ),
        (structured, "{not json".into(), 400, "body"),
        (structured, "[1, 2]".into(), 400, "body"),
        (
            "application/cloudevents-batch+json",
            "{}".into(),
            400,
            "body",
        ),
        ("application/cloudevents+avro", "x".into(), 415, ""),
        ("application/json", "{}".into(), 415, ""),
        (
            structured,
            format!("{{\"pad\": \"{}\"}}", "x".repeat(5000)),
            413,
            "",
        ),
    ];
    for (content_type, body, status, attribute) in &cases {
        let response = router.post(content_type, body.clone()).await;
        assert_eq!(response.status(), *status, "{content_type} {body:.80}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{content_type} {body:.80}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], *status);
        assert!(problem["detail"]
            .as_str()
            .is_some_and(|detail| !detail.is_empty()));
        if !attribute.is_empty() {
            let named = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|error| error["attribute"] == *attribute);
            assert!(named, "{attribute} not named in {problem} for {body:.80}");
        }
    }
    // Binary mode: bad percent-encoding, a missing specversion, ce-datacontenttype.
    let binary_cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("ce-specversion", "1.0"),
                ("ce-id", "%FF%FE"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ],
            "id",
        ),
        (
            vec![("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")],
            "specversion",
        ),
        (
            vec![
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("ce-datacontenttype", "a/b"),
            ],
            "datacontenttype",
        ),
        (
            vec![
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("ce-bad_name", "x"),
            ],
            "bad_name",
        ),
    ];
    for (headers, attribute) in &binary_cases {
        let response = router.publish_binary(headers, b"{}").await;
        assert_eq!(response.status(), 400, "{headers:?}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|error| error["attribute"] == *attribute),
            "{problem}"
        );
    }
    let oversized = router
        .publish_binary(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ],
            &[b'x'; 5000],
        )
        .await;
    assert_eq!(oversized.status(), 413);

    // Still serving, and nothing of the above was stored: the sentinel is the only delivery.
    assert_eq!(router.publish(event("t", "sentinel")).await.status(), 202);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].event_id(), "sentinel");
    assert_eq!(*router.store.committed().borrow(), fanout::ids::EventSeq(1));
}

#[tokio::test]
async fn duplicates_and_unrouted_events_are_acknowledged_not_delivered() {
    let receiver = TestReceiver::start().await;
    let text = format!(
        "
subscribers:
  sink: {{ url: '{}', concurrency: 1 }}
routes:
  - name: orders
    filters: [ {{ prefix: {{ type: com.example.shop.order. }} }} ]
    to: [sink]
",
        receiver.url
    );
    let router = TestRouter::start(&text).await;
    let first = router
        .publish(event("com.example.shop.order.created", "dup-1"))
        .await;
    assert_eq!(
        first.json::<serde_json::Value>().await.unwrap()["accepted"],
        1
    );
    let again = router
        .publish(event("com.example.shop.order.created", "dup-1"))
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["duplicates"],
        1
    );
    // Same id, other source: a different event.
    let mut other = event("com.example.shop.order.created", "dup-1");
    other["source"] = json!("/shop/us");
    assert_eq!(router.publish(other).await.status(), 202);
    let unrouted = router
        .publish(event("com.example.shop.cart.abandoned", "u-1"))
        .await;
    assert_eq!(unrouted.status(), 202);
    assert_eq!(
        unrouted.json::<serde_json::Value>().await.unwrap()["unrouted"],
        1
    );
    assert_eq!(
        router
            .publish(event("com.example.shop.order.paid", "last"))
            .await
            .status(),
        202
    );

    let got = receiver.wait_for(3).await;
    let ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
    assert_eq!(ids, ["dup-1", "dup-1", "last"]);
    let sources: Vec<String> = got
        .iter()
        .map(|received| received.header("ce-source").unwrap().to_owned())
        .collect();
    assert_eq!(sources, ["/shop/eu", "/shop/us", "/shop/eu"]);
    use fanout::metrics::Metrics;
    wait_until("metrics", DEADLINE, || {
        Metrics::get(&router.metrics.events_duplicate) == 1
            && Metrics::get(&router.metrics.events_unrouted) == 1
    })
    .await;
    assert_eq!(Metrics::get(&router.metrics.events_accepted), 4);
}
