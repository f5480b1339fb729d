//! Known answers: the GitHub and Standard Webhooks vectors are the ones their public docs give;
//! the Stripe, Shopify and generic ones were computed with Python's `hmac` module, independently
//! of this code.

use std::time::Duration;

use super::*;
use crate::config::sources::{Algorithm, Encoding, Verification};

const STRIPE_BODY: &str = r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2022-11-15","created":1686089970,"data":{"object":{"id":"pi_3NG8Du2eZvKYlo2C0aVuWI5X","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}},"livemode":false,"pending_webhooks":1,"type":"payment_intent.succeeded"}"#;
const STRIPE_SIGNATURE: &str = "28a7245ce5fe282b5a68d3954b61cccc78777e316c1d2e27c08c5f6bebf33176";

fn raw(text: &str) -> Secret {
    Secret::from_bytes(text.as_bytes().to_vec())
}

fn github() -> Verification {
    Verification::Hmac {
        algorithm: Algorithm::Sha256,
        header: "x-hub-signature-256".into(),
        encoding: Encoding::Hex,
        prefix: "sha256=".into(),
    }
}

#[track_caller]
fn check(
    verification: &Verification,
    secrets: &[Secret],
    headers: &[(&str, &str)],
    body: &str,
    now: i64,
    expected: Result<(), Rejection>,
) {
    let lookup = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| (*value).to_owned())
    };
    assert_eq!(
        verify(verification, secrets, &lookup, body.as_bytes(), now),
        expected
    );
}

#[test]
fn github_vector_from_its_docs() {
    let secret = [raw("It's a Secret to Everybody")];
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    check(
        &github(),
        &secret,
        &[("X-Hub-Signature-256", good)],
        "Hello, World!",
        0,
        Ok(()),
    );
    check(
        &github(),
        &secret,
        &[("X-Hub-Signature-256", good)],
        "Hello, World?",
        0,
        Err(Rejection::Mismatch),
    );
    check(
        &github(),
        &secret,
        &[],
        "Hello, World!",
        0,
        Err(Rejection::Missing),
    );
    check(
        &github(),
        &secret,
        &[("X-Hub-Signature-256", "sha1=757107")],
        "x",
        0,
        Err(Rejection::Malformed),
    );
    check(
        &github(),
        &secret,
        &[("X-Hub-Signature-256", "sha256=zz")],
        "x",
        0,
        Err(Rejection::Malformed),
    );
    // Rotation: the right secret among others.
    let rotated = [raw("the-old-secret-123"), raw("It's a Secret to Everybody")];
    check(
        &github(),
        &rotated,
        &[("X-Hub-Signature-256", good)],
        "Hello, World!",
        0,
        Ok(()),
    );
}

#[test]
fn shopify_base64() {
    let shopify = Verification::Hmac {
        algorithm: Algorithm::Sha256,
        header: "x-shopify-hmac-sha256".into(),
        encoding: Encoding::Base64,
        prefix: String::new(),
    };
    let secret = [raw("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")];
    let body = r#"{"id":820982911946154508,"email":"jon@example.com","total_price":"598.94","currency":"EUR"}"#;
    let good = "wof4LZTM6xBqIsitZmZdnu1PiANnKyS+qm8XnEBeUak=";
    check(
        &shopify,
        &secret,
        &[("X-Shopify-Hmac-Sha256", good)],
        body,
        0,
        Ok(()),
    );
    check(
        &shopify,
        &secret,
        &[("X-Shopify-Hmac-Sha256", good)],
        &body.replace("598", "998"),
        0,
        Err(Rejection::Mismatch),
    );
    check(
        &shopify,
        &secret,
        &[("X-Shopify-Hmac-Sha256", "not base64!")],
        body,
        0,
        Err(Rejection::Malformed),
    );
}

#[test]
fn stripe_timestamped() {
    let stripe = Verification::Stripe {
        tolerance: Duration::from_secs(300),
    };
    let secret = [raw("whsec_test_5f1b3c9a8e7d6c5b4a39281706f5e4d3")];
    let header = format!("t=1686089971,v1={STRIPE_SIGNATURE},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
    let now = 1_686_089_971 + 10;
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &header)],
        STRIPE_BODY,
        now,
        Ok(()),
    );
    // Several v1 signatures (Stripe sends one per active secret while rolling).
    let two = format!("t=1686089971,v1={},v1={STRIPE_SIGNATURE}", "ab".repeat(32));
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &two)],
        STRIPE_BODY,
        now,
        Ok(()),
    );
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &header)],
        STRIPE_BODY,
        now + 600,
        Err(Rejection::Stale),
    );
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &header)],
        STRIPE_BODY,
        now - 600,
        Err(Rejection::Stale),
    );
    // A changed timestamp breaks the signature (it is signed).
    let moved = header.replace("t=1686089971", "t=1686089972");
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &moved)],
        STRIPE_BODY,
        now,
        Err(Rejection::Mismatch),
    );
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", "v1=abcd")],
        STRIPE_BODY,
        now,
        Err(Rejection::Malformed),
    );
    // Unreadable parts are skipped, as Stripe's libraries do.
    let sloppy = format!("t=1686089971,,junk,v1=nothex,v1={STRIPE_SIGNATURE},");
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &sloppy)],
        STRIPE_BODY,
        now,
        Ok(()),
    );
    // A header stuffed with candidates is refused before any of them is compared.
    let stuffed = format!("t=1686089971,{}v1={STRIPE_SIGNATURE}", "v1=00,".repeat(8));
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", &stuffed)],
        STRIPE_BODY,
        now,
        Err(Rejection::Malformed),
    );
    check(
        &stripe,
        &secret,
        &[("Stripe-Signature", "t=1686089971")],
        STRIPE_BODY,
        now,
        Err(Rejection::Missing),
    );
    check(
        &stripe,
        &[raw("whsec_another_secret_entirely")],
        &[("Stripe-Signature", &header)],
        STRIPE_BODY,
        now,
        Err(Rejection::Mismatch),
    );
}

#[test]
fn standard_webhooks_vector_from_the_spec() {
    let scheme = Verification::StandardWebhooks {
        tolerance: Duration::from_secs(300),
    };
    let secret = [Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()];
    let body = r#"{"test": 2432232314}"#;
    let headers = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    check(&scheme, &secret, &headers, body, 1_614_265_330, Ok(()));
    let several = [
        headers[0],
        headers[1],
        (
            "webhook-signature",
            "v1a,xyz v1,Zm9vYmFy v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    check(&scheme, &secret, &several, body, 1_614_265_330, Ok(()));
    check(
        &scheme,
        &secret,
        &headers,
        body,
        1_614_265_330 + 301,
        Err(Rejection::Stale),
    );
    let other_id = [("webhook-id", "msg_other"), headers[1], headers[2]];
    check(
        &scheme,
        &secret,
        &other_id,
        body,
        1_614_265_330,
        Err(Rejection::Mismatch),
    );
    check(
        &scheme,
        &secret,
        &headers[..2],
        body,
        1_614_265_330,
        Err(Rejection::Missing),
    );
}

#[test]
fn generic_sha512_hex() {
    let scheme = Verification::Hmac {
        algorithm: Algorithm::Sha512,
        header: "x-signature".into(),
        encoding: Encoding::Hex,
        prefix: String::new(),
    };
    let secret = [raw("generic-secret-of-sixteen+")];
    let good = "fce8d291be2d3d2c5f4be5377bdbd699bc1814a85628251b296675d743f798385471942d98d404f8dae6f71e2d45b18bf6663bd85906bb9f0cb66e2dd167186a";
    check(
        &scheme,
        &secret,
        &[("X-Signature", good)],
        r#"{"a":1}"#,
        0,
        Ok(()),
    );
    check(
        &scheme,
        &secret,
        &[("X-Signature", &good.to_uppercase())],
        r#"{"a":1}"#,
        0,
        Ok(()),
    );
    check(
        &scheme,
        &secret,
        &[("X-Signature", &good[..64])],
        r#"{"a":1}"#,
        0,
        Err(Rejection::Mismatch),
    );
}
