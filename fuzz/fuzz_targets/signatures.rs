//! Every inbound signature verifier (GitHub, Shopify, Stripe, Standard Webhooks, generic HMAC
//! SHA-256/512 hex/base64) over arbitrary headers and bodies: no panic, and no acceptance of a
//! signature that was not made with the secret.
#![no_main]

use std::time::Duration;

use fanout::config::sources::{Algorithm, Encoding, Verification};
use fanout::config::Secret;
use fanout::ingress::hooks::verify::verify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the scheme; then "header-value\nbody".
    let Some((&scheme, rest)) = data.split_first() else {
        return;
    };
    let (value, body) = match rest.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    let tolerance = Duration::from_secs(300);
    let (verification, header_names): (Verification, &[&str]) = match scheme % 6 {
        0 => (hmac(Algorithm::Sha256, Encoding::Hex, "sha256="), &["x-signature"]),
        1 => (hmac(Algorithm::Sha256, Encoding::Base64, ""), &["x-signature"]),
        2 => (hmac(Algorithm::Sha512, Encoding::Hex, ""), &["x-signature"]),
        3 => (hmac(Algorithm::Sha512, Encoding::Base64, "v1="), &["x-signature"]),
        4 => (Verification::Stripe { tolerance }, &["stripe-signature"]),
        _ => (
            Verification::StandardWebhooks { tolerance },
            &["webhook-id", "webhook-timestamp", "webhook-signature"],
        ),
    };
    // The same value under every header the scheme reads, or split on '|' across them.
    let parts: Vec<&str> = value.splitn(header_names.len(), '|').collect();
    let header = |name: &str| -> Option<String> {
        let index = header_names.iter().position(|known| *known == name)?;
        parts.get(index).map(|part| (*part).to_owned())
    };
    let secrets = [Secret::from_bytes(b"fuzzing-secret-key".to_vec())];
    let result = verify(&verification, &secrets, &header, body, 1_700_000_000);
    // A random input cannot carry a valid MAC of this secret (2^-256).
    assert!(result.is_err(), "accepted a forged signature: {value:?}");
});

fn hmac(algorithm: Algorithm, encoding: Encoding, prefix: &str) -> Verification {
    Verification::Hmac {
        algorithm,
        header: "x-signature".into(),
        encoding,
        prefix: prefix.into(),
    }
}
