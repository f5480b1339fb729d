//! Hostile input: more than 300 generated malformed or hostile requests (broken JSON, wrong
//! types, invalid UTF-8, huge and too many headers, oversize and truncated bodies, wrong media
//! types, bad batches, forged signatures, stolen keys, schema breaks, SSRF targets), interleaved
//! with valid traffic. Each hostile request must get the right status with a problem+json body,
//! the valid events must all be accepted and delivered, and nothing else may be stored or
//! delivered.

use std::io::{Read, Write};
use std::net::TcpStream;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::support::{wait_until, TestReceiver, TestRouter, DEADLINE};

const KEY: &str = "hostile-test-key-0123456789";
const HOOK_SECRET: &str = "hostile-hook-secret";
const STRUCTURED: &str = "application/cloudevents+json";

/// One hostile request and the status it must get.
struct Case {
    what: String,
    path: &'static str,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    status: u16,
}

/// A small deterministic generator (no flakiness from random seeds).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() as usize) % items.len()]
    }
}

fn valid_event(id: &str) -> serde_json::Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/shop/eu",
        "type": "com.example.shop.order.created", "datacontenttype": "application/json",
        "data": { "order": 1, "total": 10.5 }
    })
}

fn structured(what: String, body: Vec<u8>, status: u16) -> Case {
    Case {
        what,
        path: "/events",
        headers: vec![
            ("content-type".into(), STRUCTURED.as_bytes().to_vec()),
            ("authorization".into(), format!("Bearer {KEY}").into_bytes()),
        ],
        body,
        status,
    }
}

fn cases() -> Vec<Case> {
    let mut rng = Lcg(0x5eed);
    let mut cases = Vec::new();
    let good = valid_event("template").to_string().into_bytes();

    // Broken JSON: every truncation point of a valid event, and stray bytes.
    for cut in (1..good.len() - 1).step_by(good.len() / 40) {
        cases.push(structured(
            format!("truncated JSON at {cut}"),
            good[..cut].to_vec(),
            400,
        ));
    }
    for junk in [
        "",
        "{",
        "}",
        "[]",
        "null",
        "42",
        "\"event\"",
        "{\"id\":}",
        "{,}",
        "{\"a\":1,,}",
        "\u{feff}{}",
    ] {
        cases.push(structured(
            format!("not an event: {junk:?}"),
            junk.as_bytes().to_vec(),
            400,
        ));
    }

    // Wrong types and broken rules, one attribute at a time.
    let wrong: [(&str, serde_json::Value); 16] = [
        ("id", json!(1)),
        ("id", json!("")),
        ("id", json!(null)),
        ("source", json!(true)),
        ("source", json!({})),
        ("type", json!([])),
        ("type", json!("")),
        ("specversion", json!("0.3")),
        ("specversion", json!(1.0)),
        ("time", json!("yesterday")),
        ("time", json!(1_700_000_000)),
        ("dataschema", json!("not a uri")),
        ("subject", json!("")),
        ("BadName", json!("x")),
        ("ext", json!(1.5)),
        ("ext", json!({ "nested": true })),
    ];
    for round in 0..3 {
        for (attribute, value) in &wrong {
            let mut event = valid_event(&format!("wrong-{round}-{attribute}"));
            event[*attribute] = value.clone();
            cases.push(structured(
                format!("{attribute} = {value}"),
                event.to_string().into_bytes(),
                400,
            ));
        }
    }
    for attribute in ["id", "source", "type", "specversion"] {
        let mut event = valid_event("missing");
        event.as_object_mut().unwrap().remove(attribute);
        cases.push(structured(
            format!("missing {attribute}"),
            event.to_string().into_bytes(),
            400,
        ));
    }

    // Invalid UTF-8 in bodies.
    for index in 0..40 {
        let mut body = good.clone();
        let at = 5 + (rng.next() as usize) % (body.len() - 10);
        body[at] = *rng.pick(&[0xff, 0xfe, 0xc0, 0x80, 0xed]);
        cases.push(structured(
            format!("invalid UTF-8 #{index} at {at}"),
            body,
            400,
        ));
    }

    // Schema violations (the type has a schema).
    for (index, data) in [
        json!({ "order": "x", "total": 1 }),
        json!({ "total": 1 }),
        json!({ "order": 1, "total": -1 }),
        json!([1, 2, 3]),
        json!("text"),
        json!(null),
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = valid_event(&format!("schema-{index}"));
        event["data"] = data;
        cases.push(structured(
            format!("schema break #{index}"),
            event.to_string().into_bytes(),
            400,
        ));
    }

    // Wrong media types, and no CloudEvent at all.
    for media_type in [
        "text/plain",
        "application/json",
        "application/xml",
        "application/cloudevents+xml",
        "application/cloudevents+avro",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ] {
        for round in 0..3 {
            let mut case = structured(
                format!("media type {media_type:?} #{round}"),
                good.clone(),
                415,
            );
            case.headers[0].1 = media_type.as_bytes().to_vec();
            cases.push(case);
        }
    }

    // Bad batches.
    for (index, body) in [
        json!({ "not": "an array" }),
        json!([1, 2]),
        json!([null]),
        json!([valid_event("b-ok"), { "id": "b-bad" }]),
        json!([valid_event("b-ok2"), valid_event("b-ok3"), "x"]),
        json!([[valid_event("nested")]]),
        json!((0..6)
            .map(|index| valid_event(&format!("b-many-{index}")))
            .collect::<Vec<_>>()),
    ]
    .into_iter()
    .enumerate()
    {
        for round in 0..3 {
            let mut case = structured(
                format!("bad batch #{index}.{round}"),
                body.to_string().into_bytes(),
                400,
            );
            case.headers[0].1 = b"application/cloudevents-batch+json".to_vec();
            cases.push(case);
        }
    }

    // Binary mode with broken headers.
    let binary = |what: &str, headers: Vec<(&str, &[u8])>, status: u16| {
        let mut all: Vec<(String, Vec<u8>)> =
            vec![("authorization".into(), format!("Bearer {KEY}").into_bytes())];
        all.extend(
            headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_vec())),
        );
        Case {
            what: what.to_owned(),
            path: "/events",
            headers: all,
            body: br#"{"order":1,"total":1}"#.to_vec(),
            status,
        }
    };
    let base: Vec<(&str, &[u8])> = vec![
        ("ce-specversion", b"1.0"),
        ("ce-id", b"bin-1"),
        ("ce-source", b"/shop/eu"),
        ("ce-type", b"com.example.shop.order.created"),
        ("content-type", b"application/json"),
    ];
    for round in 0..4 {
        for (name, value) in [
            ("ce-specversion", &b"2.0"[..]),
            ("ce-id", b""),
            ("ce-time", b"not-a-time"),
            ("ce-source", b""),
            ("ce-subject", b"%C3%28"),
            ("ce-type", b"\xff\xfe"),
            ("ce-dataschema", b"relative/path"),
        ] {
            let mut headers = base.clone();
            headers.retain(|(header, _)| *header != name);
            headers.push((name, value));
            cases.push(binary(&format!("binary {name} #{round}"), headers, 400));
        }
        let mut missing = base.clone();
        missing.remove(round % 4);
        cases.push(binary(
            &format!("binary without {}", base[round % 4].0),
            missing,
            400,
        ));
    }

    // Header floods and giant headers.
    for count in [70, 80, 88] {
        let mut case = structured(format!("{count} headers"), good.clone(), 431);
        for index in 0..count {
            case.headers
                .push((format!("x-flood-{index}"), b"1".to_vec()));
        }
        cases.push(case);
    }
    for size in [17_000, 30_000, 60_000, 100_000] {
        let mut case = structured(format!("a {size} byte header"), good.clone(), 431);
        case.headers.push(("x-huge".into(), vec![b'a'; size]));
        cases.push(case);
    }

    // Oversize bodies.
    for size in [64 * 1024 + 1, 100_000, 1_000_000] {
        let mut event = valid_event("big");
        event["data"] = json!({ "order": 1, "total": 1, "pad": "x".repeat(size) });
        cases.push(structured(
            format!("a {size} byte body"),
            event.to_string().into_bytes(),
            413,
        ));
    }

    // Missing, wrong and malformed publisher keys.
    for (index, value) in [
        None,
        Some("Bearer wrong-key-0000000000"),
        Some("Basic aG9zdGlsZTpwYXNz"),
        Some("Bearer"),
        Some("bearer  "),
        Some(&format!("Bearer {KEY}x")[..]),
        Some(&KEY[..KEY.len() - 1]),
    ]
    .into_iter()
    .enumerate()
    {
        for round in 0..3 {
            let mut case = structured(format!("key #{index}.{round}"), good.clone(), 401);
            match value {
                Some(value) => case.headers[1].1 = value.as_bytes().to_vec(),
                None => {
                    case.headers.remove(1);
                }
            }
            cases.push(case);
        }
    }

    // Forged webhook signatures.
    let body = br#"{"ref":"refs/heads/main","pusher":{"name":"mallory"}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let real: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    for index in 0..50 {
        let forged = match index % 5 {
            0 => (0..64).map(|_| *rng.pick(b"07af")).collect::<Vec<u8>>(),
            1 => {
                let mut flipped = real.clone().into_bytes();
                flipped[index % 64] = if flipped[index % 64] == b'0' {
                    b'1'
                } else {
                    b'0'
                };
                flipped
            }
            2 => real.as_bytes()[..(index % 63) + 1].to_vec(),
            3 => b"not hex at all, zz".to_vec(),
            _ => real.to_uppercase().replace('A', "G").into_bytes(),
        };
        let mut header = b"sha256=".to_vec();
        header.extend(forged);
        cases.push(Case {
            what: format!("forged signature #{index}"),
            path: "/hooks/github",
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x-github-event".into(), b"push".to_vec()),
                (
                    "x-github-delivery".into(),
                    format!("forged-{index}").into_bytes(),
                ),
                ("x-hub-signature-256".into(), header),
            ],
            body: body.to_vec(),
            status: 401,
        });
    }
    cases.push(Case {
        what: "unknown hook source".into(),
        path: "/hooks/none",
        headers: vec![],
        body: b"{}".to_vec(),
        status: 404,
    });
    cases
}

fn yaml(url: &str) -> String {
    format!(
        "
server: {{ max_body_size: 64KiB, max_batch_events: 5 }}
api_keys:
  shop: {{ key: {KEY} }}
outbound: {{ allow_networks: [127.0.0.0/8] }}
subscribers:
  sink: {{ url: '{url}' }}
  internal: {{ url: 'http://10.0.0.1/admin', retry: {{ initial_interval: 10ms }} }}
  metadata: {{ url: 'http://169.254.169.254/latest/meta-data/iam', retry: {{ initial_interval: 10ms }} }}
  ipv6-local: {{ url: 'http://[fe80::1]/', retry: {{ initial_interval: 10ms }} }}
  mapped: {{ url: 'http://[::ffff:192.168.0.1]/', retry: {{ initial_interval: 10ms }} }}
routes:
  - name: valid
    filters: [ {{ exact: {{ type: com.example.shop.order.created }} }} ]
    to: [sink]
  - name: ssrf
    filters: [ {{ exact: {{ type: com.example.ssrf }} }} ]
    to: [internal, metadata, ipv6-local, mapped]
sources:
  github: {{ verify: github, secret: {HOOK_SECRET}, source: /github }}
"
    )
}

#[tokio::test]
async fn hostile_requests_are_refused_and_valid_traffic_flows() {
    let receiver = TestReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("schemas")).unwrap();
    std::fs::write(
        dir.path().join("schemas/com.example.shop.order.created.json"),
        json!({ "type": "object", "required": ["order", "total"],
                "properties": { "order": { "type": "integer" }, "total": { "type": "number", "minimum": 0 } } })
        .to_string(),
    )
    .unwrap();
    let router = TestRouter::start_in(&yaml(&receiver.url), dir).await;
    let cases = cases();
    assert!(cases.len() >= 300, "{} cases", cases.len());

    let mut valid = 0;
    for (index, case) in cases.iter().enumerate() {
        let mut request = router.client.post(format!("{}{}", router.url, case.path));
        for (name, value) in &case.headers {
            request = request.header(
                name.as_str(),
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let response = request.body(case.body.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap()),
            Some("application/problem+json"),
            "{}",
            case.what
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], case.status, "{}: {problem}", case.what);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{}",
            case.what
        );

        // Valid traffic keeps flowing in between.
        if index % 10 == 0 {
            let response = router
                .post_with_key(
                    Some(KEY),
                    STRUCTURED,
                    valid_event(&format!("valid-{valid}")).to_string(),
                )
                .await;
            assert_eq!(response.status(), 202, "valid event after {}", case.what);
            valid += 1;
        }
    }

    // Truncated bodies on raw connections: the client goes away mid-body.
    for declared in [200, 5000] {
        let mut stream = TcpStream::connect(router.url.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "POST /events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/cloudevents+json\r\ncontent-length: {declared}\r\n\r\n{{\"specversion\":\"1.0\",\"id\":\"cut"
        )
        .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            !String::from_utf8_lossy(&answer).contains(" 202 "),
            "a truncated body is not accepted"
        );
    }

    // Valid events whose only subscribers are SSRF targets: accepted, never delivered.
    for index in 0..5 {
        let event = json!({ "specversion": "1.0", "id": format!("ssrf-{index}"), "source": "/x", "type": "com.example.ssrf" });
        let response = router
            .post_with_key(Some(KEY), STRUCTURED, event.to_string())
            .await;
        assert_eq!(response.status(), 202);
    }
    for name in ["internal", "metadata", "ipv6-local", "mapped"] {
        let id = router.id(name);
        wait_until(&format!("{name}'s deliveries refused"), DEADLINE, || {
            router.store.dead_letters(id).unwrap().len() == 5
        })
        .await;
        for (_, dead) in router.store.dead_letters(id).unwrap() {
            assert!(
                dead.reason.contains("SSRF guard"),
                "{name}: {}",
                dead.reason
            );
            assert_eq!(dead.attempts, 1);
        }
    }

    // Exactly the valid events were stored and delivered.
    let got = receiver.wait_for(valid).await;
    let mut ids: Vec<String> = got.iter().map(|received| received.event_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), valid, "each valid event delivered once: {ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("valid-")), "{ids:?}");
    // fanout's own operational events (dev.fanout.delivery.dead_lettered, source /fanout) are
    // stored too, as they are raised; everything else stored is what was published validly.
    let (stored, _) = router
        .store
        .scan_events(fanout::ids::EventSeq(0), 10_000)
        .unwrap();
    let published: Vec<&str> = stored
        .iter()
        .filter(|stored| stored.event.source != "/fanout")
        .map(|stored| stored.event.id.as_str())
        .collect();
    assert_eq!(
        published.len(),
        valid + 5,
        "nothing invalid was stored: {published:?}"
    );
    assert!(published
        .iter()
        .all(|id| id.starts_with("valid-") || id.starts_with("ssrf-")));
}
