//! Signature checks of inbound webhooks: pure functions over the raw body bytes and the request
//! headers. Every comparison is constant-time (`Mac::verify_slice`), every configured secret is
//! tried (rotation), and the reason of a refusal is kept for logs and metrics only: the sender is
//! told no more than "not verified".

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::config::secret::constant_time_eq;
use crate::config::sources::{Algorithm, Encoding, Verification};
use crate::config::Secret;

/// Why a request was not verified (never shown to the sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The signature header (or a part the scheme needs) is absent.
    Missing,
    /// The header is there but cannot be read (bad encoding, bad layout).
    Malformed,
    /// No secret produces the signature given.
    Mismatch,
    /// The signed timestamp is outside the tolerance (replay protection).
    Stale,
}

impl Rejection {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Missing => "signature_missing",
            Rejection::Malformed => "signature_malformed",
            Rejection::Mismatch => "signature_mismatch",
            Rejection::Stale => "timestamp_stale",
        }
    }
}

/// Checks a request. `header` looks a header up by its lower-case name; `now` is Unix seconds.
///
/// # Errors
/// Why the request is not verified.
pub fn verify(
    verification: &Verification,
    secrets: &[Secret],
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now: i64,
) -> Result<(), Rejection> {
    match verification {
        Verification::Hmac {
            algorithm,
            header: name,
            encoding,
            prefix,
        } => {
            let value = header(name).ok_or(Rejection::Missing)?;
            let encoded = value
                .trim()
                .strip_prefix(prefix.as_str())
                .ok_or(Rejection::Malformed)?;
            let signature = decode(encoded.trim(), *encoding).ok_or(Rejection::Malformed)?;
            check_any(*algorithm, secrets, &[body], &[signature])
        }
        Verification::Stripe { tolerance } => {
            let value = header("stripe-signature").ok_or(Rejection::Missing)?;
            let mut timestamp = None;
            let mut signatures = Vec::new();
            // Parts that cannot be read are skipped, as Stripe's own libraries do; only v1 is an
            // HMAC-SHA256 scheme (v0 and others are ignored).
            for part in value.split(',') {
                let Some((key, item)) = part.trim().split_once('=') else {
                    continue;
                };
                match key {
                    "t" => timestamp = item.parse::<i64>().ok().or(timestamp),
                    "v1" => signatures.extend(decode(item, Encoding::Hex)),
                    _ => {}
                }
            }
            let timestamp = timestamp.ok_or(Rejection::Malformed)?;
            if signatures.is_empty() {
                return Err(Rejection::Missing);
            }
            fresh(timestamp, now, tolerance.as_secs())?;
            let signed_timestamp = timestamp.to_string();
            check_any(
                Algorithm::Sha256,
                secrets,
                &[signed_timestamp.as_bytes(), b".", body],
                &signatures,
            )
        }
        Verification::StandardWebhooks { tolerance } => {
            let id = header("webhook-id").ok_or(Rejection::Missing)?;
            let timestamp_text = header("webhook-timestamp").ok_or(Rejection::Missing)?;
            let value = header("webhook-signature").ok_or(Rejection::Missing)?;
            let timestamp = timestamp_text
                .trim()
                .parse::<i64>()
                .map_err(|_| Rejection::Malformed)?;
            let signatures: Vec<Vec<u8>> = value
                .split(' ')
                .filter_map(|item| item.strip_prefix("v1,"))
                .filter_map(|encoded| decode(encoded, Encoding::Base64))
                .collect();
            if signatures.is_empty() {
                return Err(Rejection::Malformed);
            }
            fresh(timestamp, now, tolerance.as_secs())?;
            check_any(
                Algorithm::Sha256,
                secrets,
                &[
                    id.as_bytes(),
                    b".",
                    timestamp_text.trim().as_bytes(),
                    b".",
                    body,
                ],
                &signatures,
            )
        }
    }
}

/// Whether `timestamp` is within `tolerance` seconds of `now`, either way.
fn fresh(timestamp: i64, now: i64, tolerance: u64) -> Result<(), Rejection> {
    let tolerance = i64::try_from(tolerance).unwrap_or(i64::MAX);
    if now.saturating_sub(timestamp).abs() > tolerance {
        return Err(Rejection::Stale);
    }
    Ok(())
}

/// Signatures read from one request at most: a header stuffed with candidates must not buy
/// more than a few comparisons (the MAC itself is computed once per secret).
pub const MAX_SIGNATURES: usize = 8;

/// Whether any secret's MAC over the concatenated `parts` equals any of `signatures`.
fn check_any(
    algorithm: Algorithm,
    secrets: &[Secret],
    parts: &[&[u8]],
    signatures: &[Vec<u8>],
) -> Result<(), Rejection> {
    if signatures.len() > MAX_SIGNATURES {
        return Err(Rejection::Malformed);
    }
    // Every pair is compared, even after a match, so the time taken says nothing about which.
    let mut matched = false;
    for secret in secrets {
        let expected = match algorithm {
            Algorithm::Sha256 => mac::<Hmac<Sha256>>(secret, parts),
            Algorithm::Sha512 => mac::<Hmac<Sha512>>(secret, parts),
        };
        for signature in signatures {
            matched |= constant_time_eq(&expected, signature);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(Rejection::Mismatch)
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &Secret, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.key())
        .expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn decode(text: &str, encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        Encoding::Hex => {
            if text.len() % 2 != 0 || !text.is_ascii() {
                return None;
            }
            (0..text.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests;
