//! The serde model of `routes.yaml`, exactly as written (strict: unknown keys are errors), and
//! the one function that parses YAML, so that the archived `serde_yaml` can be swapped for a
//! maintained fork in this file alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::units::{deserialize_byte_size, deserialize_duration};
use super::{Durability, Mode};

/// A YAML syntax or shape error with its position (1-based).
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Parses the (already interpolated) text of a routes file.
pub fn from_yaml(text: &str) -> Result<RawConfig, YamlError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str(text).map_err(|error| {
        let location = error.location();
        // serde_yaml appends " at line L column C" itself; the position is reported separately.
        let message = error.to_string();
        let message = match message.rfind(" at line ") {
            Some(index) if location.is_some() => message[..index].to_owned(),
            _ => message,
        };
        YamlError {
            line: location.as_ref().map(|location| location.line()),
            column: location.as_ref().map(|location| location.column()),
            message,
        }
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub defaults: RawPolicy,
    #[serde(default)]
    pub dead_letter: Option<RawDeadLetter>,
    #[serde(default, deserialize_with = "unique_names")]
    pub subscribers: BTreeMap<String, RawSubscriber>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Inbound webhooks from senders that do not speak CloudEvents, served at `/hooks/{name}`.
    #[serde(default, deserialize_with = "unique_names")]
    pub sources: BTreeMap<String, RawSource>,
    /// Publisher keys for `POST /events`; none: publishing needs no key.
    #[serde(default, deserialize_with = "unique_names")]
    pub api_keys: BTreeMap<String, RawApiKey>,
    /// JSON Schemas for event types' `data`.
    #[serde(default)]
    pub schemas: RawSchemas,
    /// Where deliveries may go.
    #[serde(default)]
    pub outbound: RawOutbound,
}

/// One inbound webhook source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `github`, `shopify`, `stripe`, `standard_webhooks` or `hmac`.
    pub verify: String,
    /// One secret or several (rotation); `file:` references allowed.
    pub secret: OneOrMany,
    /// The CloudEvents `source` of the events made from this sender's requests.
    pub source: String,
    #[serde(rename = "type")]
    pub ty: Option<RawField>,
    /// Put before a `type` read from a header or the body.
    pub type_prefix: Option<String>,
    pub id: Option<RawField>,
    pub subject: Option<RawField>,
    /// Largest accepted age (or skew) of a signed timestamp (stripe, standard_webhooks).
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub tolerance: Option<Duration>,
    /// The generic scheme's settings (`verify: hmac`).
    pub hmac: Option<RawHmac>,
}

/// Where an attribute of an inbound webhook's event comes from: exactly one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub header: Option<String>,
    pub pointer: Option<String>,
    pub value: Option<String>,
    /// `id` only: the SHA-256 of the body.
    pub body_hash: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHmac {
    /// `sha256` (default) or `sha512`.
    pub algorithm: Option<String>,
    pub header: String,
    /// `hex` (default) or `base64`.
    pub encoding: Option<String>,
    /// Text before the signature in the header, e.g. `sha256=`.
    pub prefix: Option<String>,
}

/// One publisher key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// The key (`${VAR}` or `file:` reference).
    pub key: String,
    /// `source` prefixes the key may publish; none: any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// `type` prefixes the key may publish; none: any.
    #[serde(default)]
    pub types: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemas {
    /// Folder of `<type>.json` files, relative to the routes file (default `schemas`).
    pub dir: Option<PathBuf>,
    /// Explicit `type: file` entries (relative to the routes file), besides the folder's.
    #[serde(default)]
    pub types: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    /// Networks deliveries may reach although they are not public (e.g. `127.0.0.0/8`).
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Refuse `http://` endpoint URLs.
    pub https_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "deserialize_byte_size")]
    pub max_body_size: Option<u64>,
    pub workers: Option<usize>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub shutdown_grace: Option<Duration>,
    /// Events in one batched-mode request at most.
    pub max_batch_events: Option<usize>,
    /// Request headers at most, and their total size.
    pub max_headers: Option<usize>,
    #[serde(default, deserialize_with = "deserialize_byte_size")]
    pub max_header_size: Option<u64>,
    /// How long a client may take to send the request head (slow clients are cut off).
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub request_timeout: Option<Duration>,
    /// How long an idle connection is kept open between requests (`0s`: closed after each).
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub keep_alive: Option<Duration>,
    /// Open connections at most, per worker.
    pub max_connections: Option<usize>,
    /// `{ cert, key }`: serve HTTPS (PEM files).
    pub tls: Option<RawListenerTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    /// Poll interval of the routes-file watch; `0s` turns the watch off.
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub watch_interval: Option<Duration>,
    /// `{ cert, key }`: serve the admin API over HTTPS.
    pub tls: Option<RawListenerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub durability: Option<Durability>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub dedupe_window: Option<Duration>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub retention: Option<Duration>,
    #[serde(default, deserialize_with = "deserialize_byte_size")]
    pub cache_capacity: Option<u64>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub flush_interval: Option<Duration>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub state_flush_interval: Option<Duration>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub commit_delay: Option<Duration>,
    /// Ingest answers 503 once the store is this large (`0`: no ceiling).
    #[serde(default, deserialize_with = "deserialize_byte_size")]
    pub max_size: Option<u64>,
}

/// Delivery policy knobs shared by `defaults` and each subscriber.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    /// Keep in flight only as many attempts (up to `concurrency`) as hold the rate.
    pub adaptive_concurrency: Option<bool>,
    pub mode: Option<Mode>,
    #[serde(default)]
    pub retry: RawRetry,
    /// Deliveries per time unit, with a burst: `50/s` or `{ rate: 50/s, burst: 100 }`.
    pub rate_limit: Option<RawRateLimit>,
    /// Stop attempting while the subscriber fails; `{}` takes every default.
    pub circuit_breaker: Option<RawBreaker>,
    /// Disable the subscriber after failing continuously this long (`0s`: never).
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub disable_after: Option<Duration>,
}

/// `50/s`, or a map with the rate and the burst.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRateLimit {
    Rate(String),
    Full { rate: String, burst: Option<u32> },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Open after this many failures in a row.
    pub failures: Option<u32>,
    /// ...or when this share of the attempts in `window` failed...
    pub failure_rate: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub window: Option<Duration>,
    /// ...counting only once the window holds this many attempts.
    pub min_requests: Option<u32>,
    /// How long it stays open before one probe is let through.
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub open_for: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub initial_interval: Option<Duration>,
    pub multiplier: Option<f64>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub max_interval: Option<Duration>,
    pub jitter: Option<f64>,
    pub max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub max_age: Option<Duration>,
    pub retry_on: Option<Vec<StatusPattern>>,
}

/// `429` or `"5xx"` in `retry_on`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusPattern {
    Code(u16),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubscriber {
    pub url: String,
    pub secret: Option<OneOrMany>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    /// Keep in flight only as many attempts (up to `concurrency`) as hold the rate.
    pub adaptive_concurrency: Option<bool>,
    pub mode: Option<Mode>,
    #[serde(default)]
    pub retry: RawRetry,
    /// Deliveries per time unit, with a burst: `50/s` or `{ rate: 50/s, burst: 100 }`.
    pub rate_limit: Option<RawRateLimit>,
    /// Stop attempting while the subscriber fails; `{}` takes every default.
    pub circuit_breaker: Option<RawBreaker>,
    /// Disable the subscriber after failing continuously this long (`0s`: never).
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub disable_after: Option<Duration>,
    /// Credentials for the endpoint.
    pub auth: Option<RawAuth>,
    /// `true`, or `{ origin: name }`.
    pub handshake: Option<RawHandshake>,
    /// `{ key: subject }`: per-key ordered delivery.
    pub ordering: Option<RawOrdering>,
    /// `{ max_events: 100, max_wait: 1s }`: CloudEvents batched mode.
    pub batch: Option<RawBatch>,
    /// `{ client_cert, client_key, ca }`: files, PEM.
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    pub max_events: Option<usize>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub max_wait: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrdering {
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHandshake {
    On(bool),
    Full { origin: String },
}

/// Exactly one of the methods.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub bearer: Option<RawBearer>,
    pub basic: Option<RawBasic>,
    pub oauth2: Option<RawOAuth2>,
}

/// `bearer: TOKEN` or `bearer: { token: TOKEN, in: header | query }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBearer {
    Token(String),
    Full {
        token: String,
        #[serde(rename = "in")]
        location: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetter {
    pub url: String,
    pub secret: Option<OneOrMany>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retry: RawRetry,
}

/// One secret or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub filters: Vec<RawFilter>,
    pub to: Vec<String>,
    /// Whether fanout's own operational events (`dev.fanout.*`) go through this route.
    #[serde(default)]
    pub operational: bool,
}

/// A CloudEvents Subscriptions API filter expression: a map with exactly one dialect key (a
/// struct rather than an enum so that an unknown dialect is reported with its line).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    pub exact: Option<BTreeMap<String, Scalar>>,
    pub prefix: Option<BTreeMap<String, Scalar>>,
    pub suffix: Option<BTreeMap<String, Scalar>>,
    pub all: Option<Vec<RawFilter>>,
    pub any: Option<Vec<RawFilter>>,
    pub not: Option<Box<RawFilter>>,
    /// A condition on a value of the JSON data.
    pub data: Option<RawDataFilter>,
    /// A CloudEvents SQL (CESQL 1.0) expression.
    pub sql: Option<String>,
}

/// `data: { path: $.a.b, <operator>: value }`: exactly one operator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataFilter {
    pub path: String,
    pub equals: Option<serde_json::Value>,
    pub not_equals: Option<serde_json::Value>,
    #[serde(rename = "in")]
    pub one_of: Option<Vec<serde_json::Value>>,
    pub not_in: Option<Vec<serde_json::Value>>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub exists: Option<bool>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<serde_json::Value>,
    pub wildcard: Option<String>,
    pub equals_ignore_case: Option<String>,
    pub cidr: Option<String>,
}

/// A filter value: YAML strings, numbers and booleans all compare as their text.
#[derive(Debug)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Text(String),
            Integer(i64),
            Boolean(bool),
        }
        Ok(Scalar(match Any::deserialize(deserializer)? {
            Any::Text(text) => text,
            Any::Integer(number) => number.to_string(),
            Any::Boolean(flag) => flag.to_string(),
        }))
    }
}

/// Deserialises a map, refusing a key given twice (serde would silently keep the last one).
fn unique_names<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visitor<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a map of names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!("duplicate name `{name}`")));
                }
                let value = map.next_value()?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Visitor(std::marker::PhantomData))
}
