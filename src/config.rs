//! `routes.yaml`: reading, `${VAR}` interpolation and validation into typed, compiled parts.
//!
//! The file is read once, interpolated, parsed by the one YAML function in [`raw`] and compiled by
//! [`compile`] into a [`Config`] whose parts each component takes for itself (the ingress its
//! limits, the store its storage settings, the dispatchers their subscriber policies). Every
//! error names the file, the line and the key, and all of them are reported at once.

pub mod access;
mod compile;
pub mod filter;
mod interpolate;
pub mod listener;
mod locate;
pub mod outbound;
mod raw;
pub mod schemas;
pub mod secret;
pub mod sources;
pub mod summary;
mod units;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access::{ApiKey, TokenDigest};
pub use filter::Filter;
pub use listener::{Limits, ListenerTls};
pub use outbound::Outbound;
pub use schemas::Schemas;
pub use secret::{Credential, Secret};
pub use sources::SourceConfig;

/// Environment lookup used for `${VAR}` interpolation; passed in so that nothing reads the
/// process environment behind the caller's back (and tests can pass a map).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub subscribers: Vec<SubscriberConfig>,
    pub routes: Vec<RouteConfig>,
    pub dead_letter: Option<DeadLetterConfig>,
    /// Inbound webhook sources (`POST /hooks/{name}`).
    pub sources: Vec<SourceConfig>,
    /// Publisher keys for `POST /events`; empty: no key needed.
    pub api_keys: Vec<ApiKey>,
    /// JSON Schemas of event types' data.
    pub schemas: Schemas,
    /// Where deliveries may connect.
    pub outbound: Outbound,
}

/// Listener and process settings. `listen` and `data_dir` may be overridden from the command line.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest request body accepted on `POST /events`.
    pub max_body_size: usize,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// How long shutdown waits for in-flight deliveries.
    pub shutdown_grace: Duration,
    /// Request limits of the ingest listener.
    pub limits: Limits,
    /// HTTPS instead of HTTP.
    pub tls: Option<ListenerTls>,
}

/// The operator API's listener (never the public ingest port).
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token; `None` only on a loopback listener.
    pub token: Option<String>,
    /// How often the routes file is checked for changes; `None`: no watch (SIGHUP and the API
    /// still reload).
    pub watch_interval: Option<Duration>,
    /// HTTPS instead of HTTP.
    pub tls: Option<ListenerTls>,
}

impl AdminConfig {
    /// The one rule of an admin listener: off loopback, it needs a token. Checked when the file
    /// is compiled and again when `--admin-listen` overrides the address.
    pub fn missing_token(listen: SocketAddr, token: Option<&str>) -> Option<String> {
        (token.is_none() && !listen.ip().is_loopback())
            .then(|| format!("is required when admin.listen ({listen}) is not a loopback address"))
    }
}

/// When ingest acknowledges an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// 202 only after the event is written and fsynced (group commit).
    Strict,
    /// 202 once written to the store's memory; flushed within `flush_interval`.
    Relaxed,
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub durability: Durability,
    pub dedupe_window: Duration,
    pub retention: Duration,
    pub cache_capacity: u64,
    /// The event log's background sync under `relaxed` (bounds the loss there).
    pub flush_interval: Duration,
    /// sled's background flush (`flush_every_ms`): cursors, dedupe entries, retry states and
    /// attempts. Nothing acknowledged depends on it; a longer period means fewer of sled's
    /// fsyncs for an acknowledgement's `fdatasync` to queue behind.
    pub state_flush_interval: Duration,
    /// Under `strict`, how long a commit that would carry few requests waits for more while they
    /// arrive together (`Duration::ZERO`: never); see `store::committer`.
    pub commit_delay: Duration,
    /// Ingest answers 503 once the store takes this many bytes on disk (`None`: no ceiling).
    pub max_size: Option<u64>,
}

/// How an event is put on the wire to a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Binary,
    Structured,
}

/// One subscriber and its delivery policy, defaults already applied.
#[derive(Clone, Debug)]
pub struct SubscriberConfig {
    pub name: String,
    pub url: url::Url,
    /// Signing secrets; a signature is sent for each (rotation). Empty: deliveries are unsigned.
    pub secrets: Vec<Secret>,
    pub mode: Mode,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// The most attempts in flight at once.
    pub concurrency: usize,
    /// Whether the attempts in flight adapt (1 to `concurrency`) to the round trips seen.
    pub adaptive_concurrency: bool,
    pub retry: RetryPolicy,
    /// At most this many attempts started per second, with a burst (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    pub circuit_breaker: Option<BreakerPolicy>,
    /// Disabled after failing continuously this long (`None`: never).
    pub disable_after: Option<Duration>,
    /// How fanout authenticates to the subscriber's endpoint.
    pub auth: Option<ReceiverAuth>,
    /// The CloudEvents webhook validation handshake, with the origin fanout announces.
    pub handshake: Option<Handshake>,
    /// Deliver events with the same value of this attribute one at a time, in accept order.
    pub ordering: Option<String>,
    /// Deliver in CloudEvents batched mode.
    pub batch: Option<Batch>,
    /// A client certificate (mTLS) and extra trusted roots for the endpoint.
    pub tls: Option<EndpointTls>,
}

/// TLS settings of one endpoint, read from files when the configuration is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointTls {
    /// The client certificate chain followed by its private key (PEM); `None`: no client
    /// certificate.
    pub identity_pem: Option<Vec<u8>>,
    /// Extra root certificates (PEM) to trust for this endpoint, besides the system's.
    pub roots_pem: Option<Vec<u8>>,
}

impl fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointTls")
            .field(
                "identity_pem",
                &self.identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("roots_pem", &self.roots_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// Batched delivery: up to `max_events` in one request, waiting at most `max_wait` after the
/// oldest event's acceptance to fill it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub max_events: usize,
    pub max_wait: Duration,
}

/// CloudEvents webhook abuse protection: an `OPTIONS` handshake before the first delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// What `WebHook-Request-Origin` says (a DNS name identifying this sender).
    pub origin: String,
}

/// Credentials a subscriber's endpoint asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ReceiverAuth {
    /// `Authorization: Bearer <token>`, or the `access_token` query parameter (`query`).
    Bearer { token: Credential, query: bool },
    Basic {
        username: String,
        password: Credential,
    },
    /// OAuth 2.0 client credentials: a token fetched from `token_url`, cached, refreshed
    /// before it expires.
    OAuth2 {
        token_url: url::Url,
        client_id: String,
        client_secret: Credential,
        scope: Option<String>,
        audience: Option<String>,
    },
}

/// A token bucket: `per_second` tokens a second, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// When the circuit breaker opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub failure_rate: f64,
    pub window: Duration,
    pub min_requests: u32,
    pub open_for: Duration,
}

/// Retry settings of one subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub initial_interval: Duration,
    pub multiplier: f64,
    pub max_interval: Duration,
    /// Relative jitter: 0.2 means each delay is drawn from ±20 % of the nominal value.
    pub jitter: f64,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No new attempt is started this long after the first one.
    pub max_age: Duration,
    /// Status codes that are retried (besides connection errors and timeouts, always retried).
    pub retry_on: RetryOn,
}

/// A set of HTTP status codes, written as codes (`429`) or classes (`"5xx"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOn {
    pub codes: Vec<u16>,
    pub classes: Vec<u16>,
}

impl RetryOn {
    pub fn contains(&self, status: u16) -> bool {
        self.codes.contains(&status) || self.classes.contains(&(status / 100))
    }
}

/// One route: when every filter matches, the event goes to each subscriber in `to`.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// `None` when the route has no filters (it matches every event).
    pub filter: Option<Filter>,
    pub to: Vec<String>,
    /// Fanout's operational events go only through routes that ask for them.
    pub operational: bool,
}

/// Where dead letters are also POSTed, with extension attributes naming what failed.
#[derive(Clone, Debug)]
pub struct DeadLetterConfig {
    pub url: url::Url,
    pub secrets: Vec<Secret>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the key, e.g. `routes[2].to[0]`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Reads and validates a configuration file.
///
/// # Errors
/// The file cannot be read, or any problem [`parse`] reports.
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the file: {error}"),
        }])
    })?;
    parse(&text, path, env)
}

/// Validates configuration text; `path` is used only in messages.
///
/// # Errors
/// Every problem found, each with the file, line and key: YAML syntax, unknown keys, wrong value
/// types, missing `${VAR}`s, unknown filter dialects or subscribers, duplicate names, bad URLs.
pub fn parse(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
    let error_at =
        |line: Option<usize>, column: Option<usize>, key: String, message: String| ConfigError {
            file: path.to_owned(),
            line,
            column,
            key,
            message,
        };
    let text = interpolate::interpolate(text, env).map_err(|errors| {
        ConfigErrors(
            errors
                .into_iter()
                .map(|error| {
                    error_at(
                        Some(error.line),
                        Some(error.column),
                        String::new(),
                        error.message,
                    )
                })
                .collect(),
        )
    })?;
    let raw = raw::from_yaml(&text).map_err(|error| {
        ConfigErrors(vec![error_at(
            error.line,
            error.column,
            String::new(),
            error.message,
        )])
    })?;
    let lines = locate::Locations::of(&text);
    compile::compile(raw, path).map_err(|errors| {
        ConfigErrors(
            errors
                .into_iter()
                .map(|(key, message)| {
                    let line = lines.find(&key);
                    error_at(line, None, key, message)
                })
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests;
