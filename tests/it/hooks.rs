//! `POST /hooks/{name}`: each preset with requests as its sender makes them (headers and bodies as
//! documented by GitHub, Shopify, Stripe and Standard Webhooks), signed here independently of
//! fanout's verifier (the `hmac` crate, and the Standard Webhooks reference library).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::support::{TestReceiver, TestRouter};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const SHOPIFY_SECRET: &str = "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";
const SHOPIFY_NEXT: &str = "shpss_rotated_0f9e8d7c6b5a49382716";
const STRIPE_SECRET: &str = "whsec_test_5f1b3c9a8e7d6c5b4a39281706f5e4d3";
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ERP_SECRET: &str = "erp-shared-secret-0123456789";

/// A GitHub `push` delivery body (trimmed from GitHub's webhook payload documentation).
const GITHUB_PUSH: &str = r#"{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"id":186853002,"name":"storefront","full_name":"example/storefront","private":false},"pusher":{"name":"octocat","email":"octocat@github.com"},"sender":{"login":"octocat","id":1}}"#;

/// A Shopify `orders/create` body (trimmed from Shopify's sample order).
const SHOPIFY_ORDER: &str = r#"{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@example.com","created_at":"2026-11-30T10:00:00-05:00","currency":"EUR","total_price":"598.94","line_items":[{"id":866550311766439020,"sku":"IPOD2008BLACK","quantity":1,"price":"199.00"}]}"#;

/// A Stripe `payment_intent.succeeded` event (the shape of Stripe's event object).
const STRIPE_EVENT: &str = r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2022-11-15","created":1686089970,"data":{"object":{"id":"pi_3NG8Du2eZvKYlo2C0aVuWI5X","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}},"livemode":false,"pending_webhooks":1,"type":"payment_intent.succeeded"}"#;

fn yaml(url: &str) -> String {
    format!(
        r#"
subscribers:
  sink: {{ url: "{url}", concurrency: 1 }}
routes:
  - name: all
    to: [sink]
sources:
  github:
    verify: github
    secret: "{GITHUB_SECRET}"
    source: https://github.com/example/storefront
  shopify:
    verify: shopify
    secret: ["{SHOPIFY_SECRET}", "{SHOPIFY_NEXT}"]
    source: https://shop-eu.myshopify.com
    subject: {{ pointer: /id }}
  stripe:
    verify: stripe
    secret: "{STRIPE_SECRET}"
    source: https://stripe.com/acct_1
  svix:
    verify: standard_webhooks
    secret: "{SVIX_SECRET}"
    source: https://partner.example.com
  erp:
    verify: hmac
    hmac: {{ algorithm: sha512, header: X-ERP-Signature, encoding: base64, prefix: "v1=" }}
    secret: "{ERP_SECRET}"
    source: /erp
    type: {{ pointer: /kind }}
    type_prefix: com.example.erp.
"#
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn hmac256(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

async fn post_hook(
    router: &TestRouter,
    name: &str,
    headers: &[(&str, String)],
    body: &str,
) -> reqwest::Response {
    let mut request = router
        .client
        .post(format!("{}/hooks/{name}", router.url))
        .body(body.to_owned());
    for (header, value) in headers {
        request = request.header(*header, value);
    }
    request.send().await.unwrap()
}

fn github_headers(signature: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("user-agent", "GitHub-Hookshot/044aadd".into()),
        ("x-github-event", "push".into()),
        ("x-github-delivery", delivery.into()),
        ("x-github-hook-id", "292430182".into()),
        ("x-hub-signature-256", signature.into()),
    ]
}

fn committed(router: &TestRouter) -> u64 {
    router.store.committed().borrow().0
}

#[tokio::test]
async fn github_push_becomes_a_cloudevent_once() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let signature = format!(
        "sha256={}",
        hex(&hmac256(GITHUB_SECRET, &[GITHUB_PUSH.as_bytes()]))
    );
    let headers = github_headers(&signature, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    let response = post_hook(&router, "github", &headers, GITHUB_PUSH).await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(got.header("ce-type"), Some("com.github.push"));
    assert_eq!(
        got.header("ce-id"),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(
        got.header("ce-source"),
        Some("https://github.com/example/storefront")
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got.header("ce-time").is_some());
    assert_eq!(
        got.body,
        GITHUB_PUSH.as_bytes(),
        "the body is delivered byte for byte"
    );

    // GitHub redelivers with the same X-GitHub-Delivery: accepted, not delivered again.
    let again = post_hook(&router, "github", &headers, GITHUB_PUSH).await;
    assert_eq!(again.status(), 202);
    let receipt: serde_json::Value = again.json().await.unwrap();
    assert_eq!(receipt["duplicates"], 1);
    assert_eq!(receipt["accepted"], 0);
}

#[tokio::test]
async fn shopify_order_with_a_rotated_secret() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    // Signed with the second (new) secret: either may sign during a rotation.
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hmac256(SHOPIFY_NEXT, &[SHOPIFY_ORDER.as_bytes()]));
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-shopify-topic", "orders/create".into()),
        ("x-shopify-hmac-sha256", signature),
        ("x-shopify-shop-domain", "shop-eu.myshopify.com".into()),
        ("x-shopify-api-version", "2025-10".into()),
        (
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into(),
        ),
        (
            "x-shopify-event-id",
            "98880550-7158-44d4-b7cd-2c97c8a091b5".into(),
        ),
        (
            "x-shopify-triggered-at",
            "2026-11-30T15:00:00.000000Z".into(),
        ),
    ];
    let response = post_hook(&router, "shopify", &headers, SHOPIFY_ORDER).await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(got.header("ce-type"), Some("com.shopify.orders/create"));
    assert_eq!(
        got.header("ce-id"),
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    );
    assert_eq!(got.header("ce-subject"), Some("820982911946154508"));
    assert_eq!(got.body, SHOPIFY_ORDER.as_bytes());

    // A GDPR topic has no /id: the subject is optional, so it is simply left out.
    let redact = r#"{"shop_id":954889,"shop_domain":"shop-eu.myshopify.com"}"#;
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hmac256(SHOPIFY_SECRET, &[redact.as_bytes()]));
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-shopify-topic", "shop/redact".into()),
        ("x-shopify-hmac-sha256", signature),
        (
            "x-shopify-webhook-id",
            "0b6bd8a5-2f7e-4f0c-9d0e-7d1f1c3a2b10".into(),
        ),
    ];
    assert_eq!(
        post_hook(&router, "shopify", &headers, redact)
            .await
            .status(),
        202
    );
    let got = &receiver.wait_for(2).await[1];
    assert_eq!(got.header("ce-type"), Some("com.shopify.shop/redact"));
    assert_eq!(got.header("ce-subject"), None);
}

#[tokio::test]
async fn stripe_event_and_a_stale_replay() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let now = chrono::Utc::now().timestamp();
    let sign = |timestamp: i64| {
        let signature = hex(&hmac256(
            STRIPE_SECRET,
            &[
                timestamp.to_string().as_bytes(),
                b".",
                STRIPE_EVENT.as_bytes(),
            ],
        ));
        vec![
            ("content-type", "application/json; charset=utf-8".to_owned()),
            (
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)".into(),
            ),
            (
                "stripe-signature",
                format!("t={timestamp},v1={signature},v0={}", "0".repeat(64)),
            ),
        ]
    };
    let response = post_hook(&router, "stripe", &sign(now), STRIPE_EVENT).await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(
        got.header("ce-type"),
        Some("com.stripe.payment_intent.succeeded")
    );
    assert_eq!(got.header("ce-id"), Some("evt_1NG8Du2eZvKYlo2CUI79vXWy"));

    // The same request replayed ten minutes later (outside the 5 minute tolerance).
    let before = committed(&router);
    let stale = post_hook(&router, "stripe", &sign(now - 600), STRIPE_EVENT).await;
    assert_eq!(stale.status(), 401);
    assert_eq!(committed(&router), before, "nothing stored");
    let metrics = router.metrics("").await;
    assert!(
        metrics
            .contains(r#"fanout_hook_requests_total{source="stripe",outcome="timestamp_stale"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn standard_webhooks_from_the_reference_signer() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let body = r#"{"type":"invoice.paid","data":{"invoice":"in_42","amount":1999}}"#;
    let signer = standardwebhooks::Webhook::new(SVIX_SECRET).unwrap();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = signer
        .sign("msg_2Lh9KRb0pzN4LePd3XiA4P", timestamp, body.as_bytes())
        .unwrap();
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", "msg_2Lh9KRb0pzN4LePd3XiA4P".into()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    let response = post_hook(&router, "svix", &headers, body).await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(got.header("ce-type"), Some("invoice.paid"));
    assert_eq!(got.header("ce-id"), Some("msg_2Lh9KRb0pzN4LePd3XiA4P"));
}

#[tokio::test]
async fn generic_hmac_with_sha512_base64_and_a_prefix() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let body = r#"{"kind":"invoice.created","invoice":"RE-2026-0042"}"#;
    let mut mac = Hmac::<Sha512>::new_from_slice(ERP_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!(
        "v1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-erp-signature", signature),
    ];
    let response = post_hook(&router, "erp", &headers, body).await;
    assert_eq!(response.status(), 202);
    let got = &receiver.wait_for(1).await[0];
    assert_eq!(
        got.header("ce-type"),
        Some("com.example.erp.invoice.created")
    );
    // No id header configured: the id is the body's SHA-256.
    let expected_id = hex(&<Sha256 as sha2::Digest>::digest(body.as_bytes()));
    assert_eq!(got.header("ce-id"), Some(expected_id.as_str()));
}

#[tokio::test]
async fn unverified_requests_get_a_bare_401_and_store_nothing() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let good = format!(
        "sha256={}",
        hex(&hmac256(GITHUB_SECRET, &[GITHUB_PUSH.as_bytes()]))
    );
    let wrong_secret = format!(
        "sha256={}",
        hex(&hmac256("not the secret", &[GITHUB_PUSH.as_bytes()]))
    );
    let before = committed(&router);
    let mut details = Vec::new();
    for (headers, body) in [
        (github_headers(&wrong_secret, "d-1"), GITHUB_PUSH.to_owned()),
        (
            github_headers(&good, "d-2"),
            GITHUB_PUSH.replace("octocat", "mallory"),
        ),
        (
            github_headers("sha256=nothex", "d-3"),
            GITHUB_PUSH.to_owned(),
        ),
        (
            github_headers(&good.replace("sha256=", "sha1="), "d-4"),
            GITHUB_PUSH.to_owned(),
        ),
        (
            github_headers(&good, "d-5")[..5].to_vec(),
            GITHUB_PUSH.to_owned(),
        ),
    ] {
        let response = post_hook(&router, "github", &headers, &body).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        details.push(problem["detail"].as_str().unwrap().to_owned());
    }
    // One message for every failure: nothing tells a forger which part was wrong.
    details.dedup();
    assert_eq!(details, ["the webhook signature could not be verified"]);
    assert_eq!(committed(&router), before, "nothing stored");
    let metrics = router.metrics("").await;
    for (outcome, count) in [
        ("signature_mismatch", 2),
        ("signature_malformed", 2),
        ("signature_missing", 1),
    ] {
        let line =
            format!(r#"fanout_hook_requests_total{{source="github",outcome="{outcome}"}} {count}"#);
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // An unknown source is a 404, and is not counted.
    let response = post_hook(&router, "nosuch", &[], "{}").await;
    assert_eq!(response.status(), 404);
    assert!(!router.metrics("").await.contains("nosuch"));
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn a_verified_request_without_its_type_is_a_400_naming_it() {
    let receiver = TestReceiver::start().await;
    let router = TestRouter::start(&yaml(&receiver.url)).await;
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"id":"evt_1","object":"event"}"#;
    let signature = hex(&hmac256(
        STRIPE_SECRET,
        &[now.to_string().as_bytes(), b".", body.as_bytes()],
    ));
    let headers = vec![("stripe-signature", format!("t={now},v1={signature}"))];
    let response = post_hook(&router, "stripe", &headers, body).await;
    assert_eq!(response.status(), 400);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["attribute"], "type", "{problem}");
    assert!(problem["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("/type"));
}
