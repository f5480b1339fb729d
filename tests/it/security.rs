//! Secure defaults: publisher keys, JSON Schema validation, the SSRF guard, request limits, the
//! backlog ceiling and HTTPS listeners, each through real HTTP.

use serde_json::json;

use crate::support::{event, wait_until, TestReceiver, TestRouter, DEADLINE};

const KEY_SHOP: &str = "shop-key-0123456789abcdef";
const KEY_PIM: &str = "pim-key-0123456789abcdef";

fn sink(url: &str, extra: &str) -> String {
    format!(
        "
subscribers:
  sink: {{ url: '{url}', concurrency: 1, retry: {{ initial_interval: 10ms, max_attempts: 2 }} }}
routes:
  - name: all
    to: [sink]
{extra}"
    )
}

async fn publish_with(
    router: &TestRouter,
    key: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    router
        .post_with_key(key, "application/cloudevents-batch+json", body.to_string())
        .await
}

fn shop_event(id: &str) -> serde_json::Value {
    json!({ "specversion": "1.0", "id": id, "source": "/shop/eu", "type": "com.example.shop.order.created" })
}

#[tokio::test]
async fn api_keys_authenticate_and_limit_publishers() {
    let receiver = TestReceiver::start().await;
    let extra = format!(
        "api_keys:
  shop: {{ key: {KEY_SHOP}, sources: [/shop/], types: [com.example.shop.] }}
  pim: {{ key: {KEY_PIM} }}
"
    );
    let router = TestRouter::start(&sink(&receiver.url, &extra)).await;
    let before = router.store.committed().borrow().0;

    for key in [None, Some("not-a-key-at-all-0000")] {
        let response = publish_with(&router, key, json!([shop_event("a-1")])).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"fanout\""
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // A batch with one event outside the key's prefixes is refused whole, naming it.
    let mixed = json!([
        shop_event("a-2"),
        { "specversion": "1.0", "id": "a-3", "source": "/erp", "type": "com.example.shop.order.created" },
        { "specversion": "1.0", "id": "a-4", "source": "/shop/eu", "type": "com.example.erp.invoice" },
    ]);
    let response = publish_with(&router, Some(KEY_SHOP), mixed.clone()).await;
    assert_eq!(response.status(), 403);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["index"], 1, "{problem}");
    assert_eq!(problem["errors"][0]["attribute"], "source");
    assert_eq!(problem["errors"][1]["index"], 2);
    assert_eq!(problem["errors"][1]["attribute"], "type");
    assert_eq!(
        router.store.committed().borrow().0,
        before,
        "nothing stored"
    );

    // The same batch with the unrestricted key, and a clean one with the shop key.
    assert_eq!(
        publish_with(&router, Some(KEY_PIM), mixed).await.status(),
        202
    );
    assert_eq!(
        publish_with(&router, Some(KEY_SHOP), json!([shop_event("a-5")]))
            .await
            .status(),
        202
    );
    receiver.wait_for(4).await;
}

#[tokio::test]
async fn schemas_validate_data_and_name_each_pointer() {
    let receiver = TestReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("schemas")).unwrap();
    std::fs::write(
        dir.path()
            .join("schemas/com.example.shop.order.created.json"),
        json!({
            "type": "object",
            "required": ["order", "total"],
            "properties": {
                "order": { "type": "integer" },
                "total": { "type": "number", "minimum": 0 },
                "currency": { "type": "string", "pattern": "^[A-Z]{3}$" }
            }
        })
        .to_string(),
    )
    .unwrap();
    let router = TestRouter::start_in(&sink(&receiver.url, ""), dir).await;
    let with_data = |id: &str, data: serde_json::Value| {
        let mut event = shop_event(id);
        event["datacontenttype"] = json!("application/json");
        event["data"] = data;
        event
    };
    let before = router.store.committed().borrow().0;
    let response = publish_with(
        &router,
        None,
        json!([
            with_data("s-1", json!({ "order": 1, "total": 10 })),
            with_data(
                "s-2",
                json!({ "order": "one", "total": -5, "currency": "euro" })
            ),
        ]),
    )
    .await;
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fanout:problem:schema-violation");
    let pointers: Vec<(&str, u64)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["pointer"].as_str().unwrap(),
                error["index"].as_u64().unwrap(),
            )
        })
        .collect();
    for pointer in ["/order", "/total", "/currency"] {
        assert!(pointers.contains(&(pointer, 1)), "{pointer} in {problem}");
    }
    assert_eq!(
        router.store.committed().borrow().0,
        before,
        "a batch is all or nothing"
    );

    // Binary mode, data that is not JSON, for a type with a schema.
    let response = router
        .publish_binary(
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "s-3"),
                ("ce-source", "/shop/eu"),
                ("ce-type", "com.example.shop.order.created"),
                ("content-type", "text/plain"),
            ],
            b"order one",
        )
        .await;
    assert_eq!(response.status(), 400);
    // Valid data, and a type without a schema, pass.
    assert_eq!(
        publish_with(
            &router,
            None,
            json!([with_data("s-4", json!({ "order": 2, "total": 0.5 }))])
        )
        .await
        .status(),
        202
    );
    assert_eq!(
        router
            .publish(event("com.example.other", "s-5"))
            .await
            .status(),
        202
    );
    receiver.wait_for(2).await;
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_unless_allowed() {
    let receiver = TestReceiver::start().await;
    // No allow_networks: the receiver's 127.0.0.1 and `localhost` (a name resolving to loopback)
    // are both refused.
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let yaml = format!(
        "
outbound: {{ allow_networks: [] }}
subscribers:
  literal: {{ url: '{}', retry: {{ initial_interval: 10ms }} }}
  named: {{ url: '{by_name}', retry: {{ initial_interval: 10ms }} }}
  metadata: {{ url: 'http://169.254.169.254/latest/meta-data/', retry: {{ initial_interval: 10ms }} }}
routes:
  - name: all
    to: [literal, named, metadata]
",
        receiver.url
    );
    let router = TestRouter::start(&yaml).await;
    assert_eq!(
        router.publish(event("com.example.a", "g-1")).await.status(),
        202
    );
    for (name, kind) in [
        ("literal", "a loopback address"),
        ("named", "a loopback address"),
        ("metadata", "a cloud metadata address"),
    ] {
        let id = router.id(name);
        wait_until(&format!("{name} dead-lettered"), DEADLINE, || {
            router.store.dead_letters(id).unwrap().len() == 1
        })
        .await;
        let dead = &router.store.dead_letters(id).unwrap()[0].1;
        assert_eq!(dead.attempts, 1, "{name}: refused at once, not retried");
        assert!(
            dead.reason.contains("SSRF guard") && dead.reason.contains(kind),
            "{name}: {}",
            dead.reason
        );
    }
    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");

    // Listed, the same network is reachable.
    let allowed = TestRouter::start(&format!(
        "
outbound: {{ allow_networks: [127.0.0.0/8, '::1'] }}
subscribers:
  named: {{ url: '{by_name}' }}
routes:
  - name: all
    to: [named]
"
    ))
    .await;
    assert_eq!(
        allowed
            .publish(event("com.example.a", "g-2"))
            .await
            .status(),
        202
    );
    receiver.wait_for(1).await;
}

#[test]
fn https_only_and_bad_networks_are_config_errors() {
    let errors = fanout::config::parse(
        "outbound:\n  https_only: true\n  allow_networks: [10.0.0.0/33]\nsubscribers:\n  a: { url: 'http://example.com/hook' }\nroutes:\n  - { name: r, to: [a] }\n",
        std::path::Path::new("routes.yaml"),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("routes.yaml:3") && errors.contains("outbound.allow_networks[0]"),
        "{errors}"
    );
    assert!(
        errors.contains("routes.yaml:5")
            && errors.contains("subscribers.a.url")
            && errors.contains("https"),
        "{errors}"
    );
}

#[tokio::test]
async fn limits_on_headers_and_batch_length() {
    let receiver = TestReceiver::start().await;
    let extra = "server: { max_headers: 12, max_header_size: 2KiB, max_batch_events: 3 }\n";
    let router = TestRouter::start(&sink(&receiver.url, extra)).await;
    let mut request = router
        .client
        .post(format!("{}/events", router.url))
        .header("content-type", "application/cloudevents+json");
    for index in 0..12 {
        request = request.header(format!("x-extra-{index}"), "1");
    }
    let response = request
        .body(shop_event("l-1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("server.max_headers"),
        "{problem}"
    );

    let response = router
        .client
        .post(format!("{}/events", router.url))
        .header("content-type", "application/cloudevents+json")
        .header("x-big", "v".repeat(3000))
        .body(shop_event("l-2").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);

    let batch: Vec<serde_json::Value> = (0..4)
        .map(|index| shop_event(&format!("l-b{index}")))
        .collect();
    let response = router.publish_batch(batch).await;
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("server.max_batch_events"),
        "{problem}"
    );
    assert_eq!(router.publish(shop_event("l-3")).await.status(), 202);
}

#[tokio::test]
async fn a_full_store_answers_503_with_retry_after() {
    let receiver = TestReceiver::start().await;
    // A ceiling of 1 KiB: once the store has been measured past it, every event is refused.
    let router = TestRouter::start(&sink(&receiver.url, "storage: { max_size: 1KiB }\n")).await;
    let mut published = 0;
    while router.store.refresh_size().unwrap() < 1024 {
        assert!(published < 100, "the store never grew past 1 KiB");
        assert_eq!(
            router
                .publish(shop_event(&format!("f-{published}")))
                .await
                .status(),
            202
        );
        published += 1;
    }
    let stored = router.store.committed().borrow().0;
    let response = router.publish(shop_event("f-full")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("storage.max_size"),
        "{problem}"
    );
    assert_eq!(
        router.store.committed().borrow().0,
        stored,
        "nothing stored"
    );
    // The process keeps serving.
    assert_eq!(
        router
            .client
            .get(format!("{}/healthz", router.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn ingest_and_admin_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), certificate.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let receiver = TestReceiver::start().await;
    let files = format!(
        "{{ cert: '{0}/tls.crt', key: '{0}/tls.key' }}",
        dir.path().display()
    );
    let router = TestRouter::start(&sink(
        &receiver.url,
        &format!("server: {{ tls: {files} }}\nadmin: {{ tls: {files} }}\n"),
    ))
    .await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let https = router.url.replace("http://", "https://");
    let response = client
        .post(format!("{https}/events"))
        .header("content-type", "application/cloudevents+json")
        .body(shop_event("t-1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    receiver.wait_for(1).await;
    let admin = router.admin.replace("http://", "https://");
    let status = client
        .get(format!("{admin}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(router
        .client
        .get(format!("{}/healthz", router.url))
        .send()
        .await
        .is_err());
}

/// Sends `bytes` on a new connection to the ingest port and reads until the router closes it or
/// `within` seconds pass: whether it closed, how long that took, and what was read.
async fn raw_exchange(
    router: &TestRouter,
    bytes: &'static [u8],
    within: u64,
) -> (bool, std::time::Duration, String) {
    use std::io::{Read, Write};
    let address = router.url.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(bytes).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(within)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let closed = stream.read_to_end(&mut answer).is_ok();
        (
            closed,
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_free_their_connection() {
    let receiver = TestReceiver::start().await;
    let extra = "server: { request_timeout: 1s, max_connections: 1 }\n";
    let router = TestRouter::start(&sink(&receiver.url, extra)).await;
    // A client that sends half a request head and then nothing (slowloris).
    let (_, waited, answer) =
        raw_exchange(&router, b"POST /events HTTP/1.1\r\nhost: x\r\n", 15).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        waited < std::time::Duration::from_secs(10),
        "cut off after {waited:?}"
    );
    // The slot is free again: normal requests are served.
    assert_eq!(router.publish(shop_event("slow-1")).await.status(), 202);
}

/// `server.keep_alive`: an idle connection is closed once it runs out, and `0s` closes each
/// connection right after its response.
#[tokio::test]
async fn idle_connections_are_closed_after_the_keep_alive() {
    let receiver = TestReceiver::start().await;
    // Closed within 4 s at 1 s (the default, 5 s, would not be), at once at 0 s.
    for (keep_alive, within) in [("1s", 4), ("0s", 15)] {
        let extra = format!("server: {{ keep_alive: {keep_alive} }}\n");
        let router = TestRouter::start(&sink(&receiver.url, &extra)).await;
        // One request, then nothing: the answer comes, then the router's close (end of stream).
        let (closed, _, answer) =
            raw_exchange(&router, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n", within).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{keep_alive}: {answer:?}"
        );
        assert!(
            closed,
            "{keep_alive}: still open after {within} s: {answer:?}"
        );
        if keep_alive == "0s" {
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{answer:?}"
            );
        }
    }
}

#[tokio::test]
async fn sources_and_keys_reload_with_the_file() {
    let receiver = TestReceiver::start().await;
    let before = sink(
        &receiver.url,
        "sources:\n  old: { verify: github, secret: s3cret, source: /old }\n",
    );
    let router = TestRouter::start(&before).await;
    router.write_routes(&sink(
        &receiver.url,
        &format!(
            "sources:\n  new: {{ verify: github, secret: s3cret, source: /new }}\napi_keys:\n  shop: {{ key: {KEY_SHOP} }}\n"
        ),
    ));
    let (status, answer) = router.admin_post("/api/v1/reload", "", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let diff = &answer["diff"];
    assert_eq!(diff["sources_added"], json!(["new"]), "{answer}");
    assert_eq!(diff["sources_removed"], json!(["old"]));
    assert_eq!(diff["api_keys_added"], json!(["shop"]));
    // In force at once: the old hook is gone, and publishing needs the key.
    let old = router
        .client
        .post(format!("{}/hooks/old", router.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404);
    assert_eq!(router.publish(shop_event("r-1")).await.status(), 401);
    assert_eq!(
        publish_with(&router, Some(KEY_SHOP), json!([shop_event("r-2")]))
            .await
            .status(),
        202
    );
}
