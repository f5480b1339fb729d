//! `sources:`: inbound webhooks from senders that do not speak CloudEvents (GitHub, Shopify,
//! Stripe, Standard Webhooks senders such as Svix, or any HMAC signer), each served at
//! `POST /hooks/{name}`. A preset fills in how the sender signs and where its event type and id
//! are; every default can be overridden.

use std::time::Duration;

use super::compile::{check_name, is_header_name, load_secrets, Errors};
use super::raw::{RawField, RawHmac, RawSource};
use super::secret::Secret;

/// Signed timestamps older (or newer) than this are refused, unless a source says otherwise.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// One inbound webhook source, validated.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The path segment: `POST /hooks/{name}`.
    pub name: String,
    pub verification: Verification,
    /// Verification keys; any one of them may have signed a request (rotation).
    pub secrets: Vec<Secret>,
    /// The CloudEvents `source` attribute.
    pub source: String,
    pub ty: Field,
    /// Put before a type read from a header or the body.
    pub type_prefix: String,
    pub id: Field,
    pub subject: Option<Field>,
}

/// How a sender signs its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// An HMAC of the raw body in one header (GitHub and Shopify are presets of this).
    Hmac {
        algorithm: Algorithm,
        /// Lower-case header name.
        header: String,
        encoding: Encoding,
        /// Text before the signature, e.g. `sha256=`.
        prefix: String,
    },
    /// `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` (several `v1` allowed).
    Stripe { tolerance: Duration },
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
    /// "id.timestamp.body">`, key from a `whsec_` secret.
    StandardWebhooks { tolerance: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// Where an attribute of the event comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A request header (lower-case name).
    Header(String),
    /// An RFC 6901 JSON pointer into the body.
    Pointer(String),
    /// A fixed value.
    Value(String),
    /// The hex SHA-256 of the body (`id` only).
    BodyHash,
}

/// What a preset fills in.
struct Preset {
    /// `None`: the source's own `hmac` settings say (`verify: hmac`).
    verification: Option<Verification>,
    ty: Option<Field>,
    type_prefix: &'static str,
    id: Field,
    /// Whether secrets are `whsec_<base64>` (decoded) rather than used as their text.
    whsec: bool,
}

fn preset(name: &str, tolerance: Duration) -> Option<Preset> {
    let header = |name: &str| Field::Header(name.to_owned());
    Some(match name {
        "github" => Preset {
            verification: Some(Verification::Hmac {
                algorithm: Algorithm::Sha256,
                header: "x-hub-signature-256".into(),
                encoding: Encoding::Hex,
                prefix: "sha256=".into(),
            }),
            ty: Some(header("x-github-event")),
            type_prefix: "com.github.",
            id: header("x-github-delivery"),
            whsec: false,
        },
        "shopify" => Preset {
            verification: Some(Verification::Hmac {
                algorithm: Algorithm::Sha256,
                header: "x-shopify-hmac-sha256".into(),
                encoding: Encoding::Base64,
                prefix: String::new(),
            }),
            ty: Some(header("x-shopify-topic")),
            type_prefix: "com.shopify.",
            id: header("x-shopify-webhook-id"),
            whsec: false,
        },
        "stripe" => Preset {
            verification: Some(Verification::Stripe { tolerance }),
            ty: Some(Field::Pointer("/type".into())),
            type_prefix: "com.stripe.",
            id: Field::Pointer("/id".into()),
            whsec: false,
        },
        "standard_webhooks" => Preset {
            verification: Some(Verification::StandardWebhooks { tolerance }),
            ty: Some(Field::Pointer("/type".into())),
            type_prefix: "",
            id: header("webhook-id"),
            whsec: true,
        },
        "hmac" => Preset {
            verification: None,
            ty: None,
            type_prefix: "",
            id: Field::BodyHash,
            whsec: false,
        },
        _ => return None,
    })
}

/// Compiles one `sources.<name>` entry.
pub(super) fn compile(name: String, raw: RawSource, errors: &mut Errors) -> Option<SourceConfig> {
    let key = format!("sources.{name}");
    let before = errors.len();
    check_name(&name, &key, errors);
    let tolerance = raw.tolerance.unwrap_or(DEFAULT_TOLERANCE);
    let Some(preset) = preset(&raw.verify, tolerance) else {
        errors.push((
            format!("{key}.verify"),
            format!(
                "unknown scheme {:?}; use github, shopify, stripe, standard_webhooks or hmac",
                raw.verify
            ),
        ));
        return None;
    };
    let verification = match (preset.verification.clone(), raw.hmac) {
        (None, Some(hmac)) => hmac_settings(hmac, &format!("{key}.hmac"), errors)?,
        (None, None) => {
            errors.push((
                format!("{key}.hmac"),
                "is required with verify: hmac ({ header, algorithm, encoding, prefix })".into(),
            ));
            return None;
        }
        (Some(_), Some(_)) => {
            errors.push((
                format!("{key}.hmac"),
                format!("applies only to verify: hmac, not {}", raw.verify),
            ));
            return None;
        }
        (Some(verification), None) => verification,
    };
    if raw.tolerance.is_some() && matches!(verification, Verification::Hmac { .. }) {
        errors.push((
            format!("{key}.tolerance"),
            "applies only to schemes with a signed timestamp (stripe, standard_webhooks)".into(),
        ));
    }
    let secrets = load_secrets(Some(raw.secret), &format!("{key}.secret"), errors, |text| {
        if preset.whsec {
            Secret::parse(text)
        } else {
            Ok(Secret::from_bytes(text.as_bytes().to_vec()))
        }
    });
    if secrets.is_empty() && errors.len() == before {
        errors.push((
            format!("{key}.secret"),
            "must name at least one secret".into(),
        ));
    }
    if raw.source.is_empty() {
        errors.push((format!("{key}.source"), "must not be empty".into()));
    }
    let ty = match raw.ty {
        Some(field) => field_from(field, false, &format!("{key}.type"), errors),
        None => preset.ty.clone(),
    };
    let Some(ty) = ty else {
        if errors.len() == before {
            errors.push((
                format!("{key}.type"),
                "is required with verify: hmac ({ header }, { pointer } or { value })".into(),
            ));
        }
        return None;
    };
    let id = match raw.id {
        Some(field) => field_from(field, true, &format!("{key}.id"), errors),
        None => Some(preset.id.clone()),
    };
    let subject = raw
        .subject
        .and_then(|field| field_from(field, false, &format!("{key}.subject"), errors));
    (errors.len() == before).then(|| SourceConfig {
        name,
        verification,
        secrets,
        source: raw.source,
        ty,
        type_prefix: raw
            .type_prefix
            .unwrap_or_else(|| preset.type_prefix.to_owned()),
        id: id.expect("no error means the id compiled"),
        subject,
    })
}

fn hmac_settings(raw: RawHmac, key: &str, errors: &mut Errors) -> Option<Verification> {
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("sha256") => Algorithm::Sha256,
        Some("sha512") => Algorithm::Sha512,
        Some(other) => {
            errors.push((
                format!("{key}.algorithm"),
                format!("unknown algorithm {other:?}; use sha256 or sha512"),
            ));
            return None;
        }
    };
    let encoding = match raw.encoding.as_deref() {
        None | Some("hex") => Encoding::Hex,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            errors.push((
                format!("{key}.encoding"),
                format!("unknown encoding {other:?}; use hex or base64"),
            ));
            return None;
        }
    };
    if !is_header_name(&raw.header) {
        errors.push((
            format!("{key}.header"),
            format!("{:?} is not a valid header name", raw.header),
        ));
        return None;
    }
    Some(Verification::Hmac {
        algorithm,
        header: raw.header.to_ascii_lowercase(),
        encoding,
        prefix: raw.prefix.unwrap_or_default(),
    })
}

fn field_from(raw: RawField, is_id: bool, key: &str, errors: &mut Errors) -> Option<Field> {
    let given = [
        raw.header.is_some(),
        raw.pointer.is_some(),
        raw.value.is_some(),
        raw.body_hash.is_some(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        errors.push((
            key.to_owned(),
            "needs exactly one of header, pointer, value (and, for id, body_hash)".into(),
        ));
        return None;
    }
    if let Some(header) = raw.header {
        if !is_header_name(&header) {
            errors.push((
                format!("{key}.header"),
                format!("{header:?} is not a valid header name"),
            ));
            return None;
        }
        return Some(Field::Header(header.to_ascii_lowercase()));
    }
    if let Some(pointer) = raw.pointer {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            errors.push((
                format!("{key}.pointer"),
                format!("{pointer:?} is not a JSON pointer (RFC 6901: empty or starting with /)"),
            ));
            return None;
        }
        return Some(Field::Pointer(pointer));
    }
    if let Some(value) = raw.value {
        if value.is_empty() {
            errors.push((format!("{key}.value"), "must not be empty".into()));
            return None;
        }
        return Some(Field::Value(value));
    }
    // What is left is `body_hash` (exactly one key was given).
    match (raw.body_hash, is_id) {
        (Some(true), true) => Some(Field::BodyHash),
        (_, true) => {
            errors.push((
                format!("{key}.body_hash"),
                "only `true` makes sense here".into(),
            ));
            None
        }
        (_, false) => {
            errors.push((format!("{key}.body_hash"), "applies only to the id".into()));
            None
        }
    }
}
