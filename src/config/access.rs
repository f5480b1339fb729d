//! `api_keys:`: who may publish to `POST /events`. Each key is kept only as its SHA-256 digest
//! (compared in constant time) and may be limited to `source` and `type` prefixes.

use sha2::{Digest, Sha256};

use super::compile::{check_name, Errors};
use super::raw::RawApiKey;
use super::secret::Credential;

/// One publisher key, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's name, for logs and metrics (never the key).
    pub name: String,
    pub digest: TokenDigest,
    /// `source` prefixes the key may publish; empty: any.
    pub sources: Vec<String>,
    /// `type` prefixes the key may publish; empty: any.
    pub types: Vec<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("sources", &self.sources)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Whether this key may publish an event with this `source` and `type`.
    pub fn permits(&self, source: &str, ty: &str) -> Result<(), &'static str> {
        let within = |prefixes: &[String], value: &str| {
            prefixes.is_empty()
                || prefixes
                    .iter()
                    .any(|prefix| value.starts_with(prefix.as_str()))
        };
        if !within(&self.sources, source) {
            return Err("source");
        }
        if !within(&self.types, ty) {
            return Err("type");
        }
        Ok(())
    }
}

/// The SHA-256 of a token: what is kept of admin tokens and publisher keys, so that comparing a
/// presented token takes the same time whatever it holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    /// The first bytes of the digest only: enough to tell two keys apart in a reload diff,
    /// nothing that helps guess the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// The digest, for change detection (never shown).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        super::secret::constant_time_eq(&self.0, &other.0)
    }
}

/// Compiles `api_keys.<name>`.
pub(super) fn compile(name: String, raw: RawApiKey, errors: &mut Errors) -> Option<ApiKey> {
    let key = format!("api_keys.{name}");
    check_name(&name, &key, errors);
    let credential = Credential::load(&raw.key)
        .map_err(|message| errors.push((format!("{key}.key"), message)))
        .ok()?;
    if credential.expose().len() < 16 {
        errors.push((
            format!("{key}.key"),
            "must be at least 16 characters long".into(),
        ));
        return None;
    }
    for (field, prefixes) in [("sources", &raw.sources), ("types", &raw.types)] {
        if let Some(index) = prefixes.iter().position(String::is_empty) {
            errors.push((
                format!("{key}.{field}[{index}]"),
                "must not be empty (leave the list out to allow any)".into(),
            ));
        }
    }
    Some(ApiKey {
        name,
        digest: TokenDigest::of(credential.expose()),
        sources: raw.sources,
        types: raw.types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_limit_what_a_key_publishes() {
        let key = ApiKey {
            name: "shop".into(),
            digest: TokenDigest::of("0123456789abcdef"),
            sources: vec!["/shop/".into()],
            types: vec!["com.example.shop.".into(), "com.example.pim.".into()],
        };
        assert_eq!(
            key.permits("/shop/eu", "com.example.shop.order.created"),
            Ok(())
        );
        assert_eq!(key.permits("/shop/eu", "com.example.pim.product"), Ok(()));
        assert_eq!(
            key.permits("/erp", "com.example.shop.order.created"),
            Err("source")
        );
        assert_eq!(
            key.permits("/shop/eu", "com.example.erp.invoice"),
            Err("type")
        );
        let open = ApiKey {
            sources: vec![],
            types: vec![],
            ..key
        };
        assert_eq!(open.permits("/anything", "any.type"), Ok(()));
    }

    #[test]
    fn digests_compare_by_content() {
        let digest = TokenDigest::of("a-token-of-sixteen");
        assert!(digest.matches(&TokenDigest::of("a-token-of-sixteen")));
        assert!(!digest.matches(&TokenDigest::of("a-token-of-sixteeN")));
    }
}
