//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per
//! active secret, space separated, so a receiver can rotate secrets without missing a message.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The `webhook-signature` header value for one message, or `None` when there is no secret.
pub fn sign(secrets: &[Secret], webhook_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    let timestamp = timestamp.to_string();
    // One string for all of them: `v1,<base64 of 32 bytes>` is 47 bytes, plus a space between.
    let mut header = String::with_capacity(secrets.len() * 48);
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.key()).expect("HMAC accepts keys of any length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        base64::engine::general_purpose::STANDARD
            .encode_string(mac.finalize().into_bytes(), &mut header);
    }
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_known_answer() {
        // The example from the Standard Webhooks specification.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn signs_once_per_secret_and_not_without_one() {
        let first = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let second = Secret::parse("whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=").unwrap();
        let both = sign(&[first.clone(), second], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(Some(parts[0].to_owned()), sign(&[first], "msg_1", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
        assert_eq!(sign(&[], "msg_1", 1, b"{}"), None);
    }
}
