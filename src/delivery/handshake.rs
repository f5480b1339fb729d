//! CloudEvents webhook abuse protection (the HTTP webhook spec's validation handshake), pure:
//! the headers of the `OPTIONS` request, and what the answer grants. The dispatcher sends it
//! before the first delivery, delivers only after a grant, and honours the granted rate.

use crate::config::RateLimit;

pub const REQUEST_ORIGIN: &str = "webhook-request-origin";
pub const REQUEST_RATE: &str = "webhook-request-rate";
pub const ALLOWED_ORIGIN: &str = "webhook-allowed-origin";
pub const ALLOWED_RATE: &str = "webhook-allowed-rate";

/// What the receiver granted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grant {
    /// Requests per minute (`None`: no limit, `*` or not said).
    pub per_minute: Option<u64>,
}

impl Grant {
    /// The granted rate as a token bucket (a second's worth may go at once).
    pub fn rate_limit(self) -> Option<RateLimit> {
        self.per_minute.map(|per_minute| {
            let per_second = (per_minute as f64 / 60.0).max(1.0 / 60.0);
            RateLimit {
                per_second,
                burst: (per_second.ceil() as u32).max(1),
            }
        })
    }
}

/// The headers of the validation request; `rate` is what fanout would like, per minute.
pub fn request_headers(origin: &str, rate_per_minute: Option<u64>) -> Vec<(String, String)> {
    let mut headers = vec![(REQUEST_ORIGIN.to_owned(), origin.to_owned())];
    if let Some(rate) = rate_per_minute {
        headers.push((REQUEST_RATE.to_owned(), rate.to_string()));
    }
    headers
}

/// Reads the answer to the validation request.
///
/// # Errors
/// Why it is not a grant: a non-2xx status, or no `WebHook-Allowed-Origin` naming this origin
/// (or `*`).
pub fn evaluate(status: u16, headers: &[(String, String)], origin: &str) -> Result<Grant, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the validation request was answered {status}"));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    };
    match header(ALLOWED_ORIGIN) {
        Some(allowed) if allowed == "*" || allowed.eq_ignore_ascii_case(origin) => {}
        Some(allowed) => {
            return Err(format!(
                "WebHook-Allowed-Origin is {allowed:?}, not {origin:?}"
            ))
        }
        None => return Err("the answer has no WebHook-Allowed-Origin".into()),
    }
    let per_minute = match header(ALLOWED_RATE) {
        None | Some("*") => None,
        Some(rate) => Some(
            rate.parse::<u64>()
                .ok()
                .filter(|rate| *rate > 0)
                .ok_or_else(|| format!("WebHook-Allowed-Rate {rate:?} is not a positive number"))?,
        ),
    };
    Ok(Grant { per_minute })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn grants_and_refusals() {
        let origin = "fanout.example.com";
        for (status, pairs, expected) in [
            (
                200,
                vec![("WebHook-Allowed-Origin", "fanout.example.com")],
                Ok(Grant { per_minute: None }),
            ),
            (
                204,
                vec![
                    ("webhook-allowed-origin", "*"),
                    ("webhook-allowed-rate", "120"),
                ],
                Ok(Grant {
                    per_minute: Some(120),
                }),
            ),
            (
                200,
                vec![
                    ("webhook-allowed-origin", "*"),
                    ("webhook-allowed-rate", "*"),
                ],
                Ok(Grant { per_minute: None }),
            ),
            (
                200,
                vec![("webhook-allowed-origin", "other.example.com")],
                Err(
                    "WebHook-Allowed-Origin is \"other.example.com\", not \"fanout.example.com\""
                        .to_owned(),
                ),
            ),
            (
                200,
                vec![],
                Err("the answer has no WebHook-Allowed-Origin".to_owned()),
            ),
            (
                403,
                vec![("webhook-allowed-origin", "*")],
                Err("the validation request was answered 403".to_owned()),
            ),
            (
                200,
                vec![
                    ("webhook-allowed-origin", "*"),
                    ("webhook-allowed-rate", "fast"),
                ],
                Err("WebHook-Allowed-Rate \"fast\" is not a positive number".to_owned()),
            ),
        ] {
            assert_eq!(
                evaluate(status, &headers(&pairs), origin),
                expected,
                "{status} {pairs:?}"
            );
        }
        assert_eq!(
            Grant {
                per_minute: Some(120)
            }
            .rate_limit(),
            Some(RateLimit {
                per_second: 2.0,
                burst: 2
            })
        );
        assert_eq!(
            request_headers("o", Some(300)),
            headers(&[(REQUEST_ORIGIN, "o"), (REQUEST_RATE, "300")])
        );
    }
}
