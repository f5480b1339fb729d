//! Standard Webhooks signing secrets (`whsec_<base64>`), never printed.

use std::fmt;

use base64::Engine;

/// The raw key bytes of a `whsec_` secret. `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// Whether two byte strings are equal, in time that depends only on their lengths (public: a
/// digest's or a MAC's length is fixed by its algorithm), never on where they differ.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The prefix every Standard Webhooks secret carries.
pub const SECRET_PREFIX: &str = "whsec_";

impl Secret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// A message (without the secret) when the prefix is missing or the rest is not base64.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            return Err(format!(
                "a secret must start with {SECRET_PREFIX} followed by base64"
            ));
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| format!("the part after {SECRET_PREFIX} is not valid base64"))?;
        if key.len() < 16 {
            return Err(format!(
                "a secret must hold at least 16 bytes (it holds {})",
                key.len()
            ));
        }
        Ok(Secret(key))
    }

    /// A key used as given (the HMAC schemes of GitHub, Shopify and Stripe use the secret's
    /// text itself as the key).
    pub fn from_bytes(key: Vec<u8>) -> Secret {
        Secret(key)
    }

    /// The key bytes, for the signer.
    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A credential for a subscriber's endpoint (a bearer token, a password, a client secret).
/// `Debug` and `Display` redact it; only the request builder reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// `file:/path` reads the file (trailing newline removed); anything else is the value
    /// itself (which `${VAR}` interpolation may have filled from the environment).
    ///
    /// # Errors
    /// The file cannot be read, or the value is empty.
    pub fn load(text: &str) -> Result<Credential, String> {
        let value = match text.strip_prefix("file:") {
            Some(path) => std::fs::read_to_string(path.trim())
                .map_err(|error| format!("cannot read the credential file {path:?}: {error}"))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => text.to_owned(),
        };
        if value.is_empty() {
            return Err("the credential is empty".into());
        }
        Ok(Credential(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}
