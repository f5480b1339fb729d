//! Turns the raw serde model into the typed [`Config`], applying defaults and collecting every
//! error as (key path, message) for the caller to locate in the file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::raw::{
    OneOrMany, RawAuth, RawBearer, RawBreaker, RawConfig, RawHandshake, RawRateLimit, RawRetry,
    RawTls, StatusPattern,
};
use super::secret::Credential;
use super::{
    filter, AdminConfig, Batch, BreakerPolicy, Config, DeadLetterConfig, Durability, EndpointTls,
    Handshake, Mode, RateLimit, ReceiverAuth, RetryOn, RetryPolicy, RouteConfig, Secret,
    ServerConfig, StorageConfig, SubscriberConfig,
};

/// Built-in defaults, in one place so the README can quote them.
pub mod defaults {
    use std::time::Duration;

    pub const LISTEN: &str = "0.0.0.0:8080";
    pub const ADMIN_LISTEN: &str = "127.0.0.1:8081";
    pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
    pub const DATA_DIR: &str = "./fanout-data";
    pub const MAX_BODY_SIZE: u64 = 1024 * 1024;
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
    pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const CACHE_CAPACITY: u64 = 64 * 1024 * 1024;
    pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
    pub const STATE_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
    /// How long a small commit waits for more requests while they arrive together.
    pub const COMMIT_DELAY: Duration = Duration::from_micros(100);
    /// The longest `storage.commit_delay` accepted: every acknowledgement may wait for it.
    pub const MAX_COMMIT_DELAY: Duration = Duration::from_millis(10);
    /// The backlog ceiling: ingest answers 503 past this store size.
    pub const MAX_STORE_SIZE: u64 = 10 * 1024 * 1024 * 1024;
    pub const TIMEOUT: Duration = Duration::from_secs(15);
    pub const CONCURRENCY: usize = 16;
    pub const ADAPTIVE_CONCURRENCY: bool = true;
    pub const INITIAL_INTERVAL: Duration = Duration::from_secs(1);
    pub const MULTIPLIER: f64 = 2.0;
    pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
    pub const JITTER: f64 = 0.2;
    pub const MAX_ATTEMPTS: u32 = 12;
    pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
    pub const BATCH_MAX_EVENTS: usize = 100;
    pub const BATCH_MAX_WAIT: Duration = Duration::from_secs(1);
    /// `WebHook-Request-Origin` when a handshake names none.
    pub const ORIGIN: &str = "fanout";
    pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
    pub const BREAKER_FAILURES: u32 = 5;
    pub const BREAKER_FAILURE_RATE: f64 = 0.5;
    pub const BREAKER_WINDOW: Duration = Duration::from_secs(60);
    pub const BREAKER_MIN_REQUESTS: u32 = 20;
    pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
}

/// Header names fanout sets itself; a subscriber's static `headers` may not override them.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "transfer-encoding",
];

/// (key path, message) pairs, located in the file by the caller.
pub(super) type Errors = Vec<(String, String)>;

pub fn compile(raw: RawConfig, path: &Path) -> Result<Config, Errors> {
    let mut errors = Errors::new();

    let listen_text = raw
        .server
        .listen
        .clone()
        .unwrap_or_else(|| defaults::LISTEN.to_owned());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        errors.push((
            "server.listen".into(),
            format!("{listen_text:?} is not an address like 0.0.0.0:8080"),
        ));
        defaults::LISTEN
            .parse()
            .expect("the default listen address parses")
    });
    let max_body_size = raw.server.max_body_size.unwrap_or(defaults::MAX_BODY_SIZE);
    if max_body_size == 0 {
        errors.push((
            "server.max_body_size".into(),
            "must be greater than zero".into(),
        ));
    }
    if raw.server.workers == Some(0) {
        errors.push(("server.workers".into(), "must be at least 1".into()));
    }
    let limits = super::listener::limits(&raw.server, &mut errors);
    let listener_tls = raw
        .server
        .tls
        .as_ref()
        .and_then(|tls| super::listener::tls(tls, "server.tls", &mut errors));
    let server = ServerConfig {
        listen,
        data_dir: raw
            .server
            .data_dir
            .unwrap_or_else(|| defaults::DATA_DIR.into()),
        max_body_size: usize::try_from(max_body_size).unwrap_or(usize::MAX),
        workers: raw.server.workers,
        shutdown_grace: raw
            .server
            .shutdown_grace
            .unwrap_or(defaults::SHUTDOWN_GRACE),
        limits,
        tls: listener_tls,
    };

    let admin = admin(&raw.admin, &mut errors);

    let storage = StorageConfig {
        durability: raw.storage.durability.unwrap_or(Durability::Strict),
        dedupe_window: raw.storage.dedupe_window.unwrap_or(defaults::DEDUPE_WINDOW),
        retention: raw.storage.retention.unwrap_or(defaults::RETENTION),
        cache_capacity: raw
            .storage
            .cache_capacity
            .unwrap_or(defaults::CACHE_CAPACITY),
        flush_interval: raw
            .storage
            .flush_interval
            .unwrap_or(defaults::FLUSH_INTERVAL),
        state_flush_interval: raw
            .storage
            .state_flush_interval
            .unwrap_or(defaults::STATE_FLUSH_INTERVAL),
        commit_delay: raw.storage.commit_delay.unwrap_or(defaults::COMMIT_DELAY),
        max_size: Some(raw.storage.max_size.unwrap_or(defaults::MAX_STORE_SIZE))
            .filter(|size| *size > 0),
    };
    for (key, interval) in [
        ("storage.flush_interval", storage.flush_interval),
        ("storage.state_flush_interval", storage.state_flush_interval),
    ] {
        if interval.is_zero() {
            errors.push((key.into(), "must be greater than zero".into()));
        }
    }
    if storage.commit_delay > defaults::MAX_COMMIT_DELAY {
        errors.push((
            "storage.commit_delay".into(),
            format!(
                "must be at most {} (every acknowledgement may wait for it; 0s turns it off)",
                humantime::format_duration(defaults::MAX_COMMIT_DELAY)
            ),
        ));
    }

    let default_retry = retry_policy(&RawRetry::default(), None, "defaults.retry", &mut errors);
    let default_retry = retry_policy(
        &raw.defaults.retry,
        Some(&default_retry),
        "defaults.retry",
        &mut errors,
    );
    let default_timeout = raw.defaults.timeout.unwrap_or(defaults::TIMEOUT);
    let default_concurrency = raw.defaults.concurrency.unwrap_or(defaults::CONCURRENCY);
    let default_mode = raw.defaults.mode.unwrap_or(Mode::Binary);
    positive_duration(default_timeout, "defaults.timeout", &mut errors);
    if default_concurrency == 0 {
        errors.push(("defaults.concurrency".into(), "must be at least 1".into()));
    }

    let mut subscribers = Vec::with_capacity(raw.subscribers.len());
    for (name, subscriber) in raw.subscribers {
        let key = format!("subscribers.{name}");
        check_name(&name, &key, &mut errors);
        let url = parse_url(&subscriber.url, &format!("{key}.url"), &mut errors);
        let secrets = parse_secrets(subscriber.secret, &format!("{key}.secret"), &mut errors);
        let headers = check_headers(subscriber.headers, &format!("{key}.headers"), &mut errors);
        let timeout = subscriber.timeout.unwrap_or(default_timeout);
        positive_duration(timeout, &format!("{key}.timeout"), &mut errors);
        let concurrency = subscriber.concurrency.unwrap_or(default_concurrency);
        if concurrency == 0 {
            errors.push((format!("{key}.concurrency"), "must be at least 1".into()));
        }
        let adaptive_concurrency = subscriber
            .adaptive_concurrency
            .or(raw.defaults.adaptive_concurrency)
            .unwrap_or(defaults::ADAPTIVE_CONCURRENCY);
        let retry = retry_policy(
            &subscriber.retry,
            Some(&default_retry),
            &format!("{key}.retry"),
            &mut errors,
        );
        let rate_limit = subscriber
            .rate_limit
            .as_ref()
            .or(raw.defaults.rate_limit.as_ref())
            .and_then(|raw| rate_limit(raw, &format!("{key}.rate_limit"), &mut errors));
        let circuit_breaker = subscriber
            .circuit_breaker
            .as_ref()
            .or(raw.defaults.circuit_breaker.as_ref())
            .and_then(|raw| breaker(raw, &format!("{key}.circuit_breaker"), &mut errors));
        let disable_after = subscriber
            .disable_after
            .or(raw.defaults.disable_after)
            .unwrap_or(defaults::DISABLE_AFTER);
        let handshake = match subscriber.handshake {
            None | Some(RawHandshake::On(false)) => None,
            Some(RawHandshake::On(true)) => Some(Handshake {
                origin: defaults::ORIGIN.to_owned(),
            }),
            Some(RawHandshake::Full { origin }) => {
                if origin.is_empty() || origin.contains(|c: char| c.is_whitespace() || c == ',') {
                    errors.push((
                        format!("{key}.handshake.origin"),
                        format!("{origin:?} is not a DNS name"),
                    ));
                }
                Some(Handshake { origin })
            }
        };
        let ordering = subscriber.ordering.map(|ordering| ordering.key);
        if let Some(attribute) = &ordering {
            if !crate::event::is_valid_attribute_name(attribute) {
                errors.push((
                    format!("{key}.ordering.key"),
                    format!("{attribute:?} is not a CloudEvents attribute name (lower-case letters and digits)"),
                ));
            }
        }
        let batch = subscriber.batch.map(|raw| Batch {
            max_events: raw.max_events.unwrap_or(defaults::BATCH_MAX_EVENTS),
            max_wait: raw.max_wait.unwrap_or(defaults::BATCH_MAX_WAIT),
        });
        if let Some(batch) = batch {
            if !(1..=10_000).contains(&batch.max_events) {
                errors.push((
                    format!("{key}.batch.max_events"),
                    "must be 1 to 10000".into(),
                ));
            }
            if ordering.is_some() {
                errors.push((
                    format!("{key}.batch"),
                    "batched delivery cannot be combined with ordering".into(),
                ));
            }
        }
        let tls = subscriber
            .tls
            .and_then(|raw| endpoint_tls(raw, &format!("{key}.tls"), &mut errors));
        let auth = subscriber
            .auth
            .and_then(|raw| receiver_auth(raw, &format!("{key}.auth"), &mut errors));
        if let Some(url) = url {
            subscribers.push(SubscriberConfig {
                name,
                url,
                secrets,
                mode: subscriber.mode.unwrap_or(default_mode),
                headers,
                timeout,
                concurrency,
                adaptive_concurrency,
                retry,
                rate_limit,
                circuit_breaker,
                disable_after: (!disable_after.is_zero()).then_some(disable_after),
                auth,
                handshake,
                ordering,
                batch,
                tls,
            });
        }
    }

    let known: HashSet<&str> = subscribers
        .iter()
        .map(|subscriber| subscriber.name.as_str())
        .collect();
    let mut route_names = HashSet::new();
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (index, route) in raw.routes.into_iter().enumerate() {
        let key = format!("routes[{index}]");
        if route.name.is_empty() {
            errors.push((format!("{key}.name"), "must not be empty".into()));
        } else if !route_names.insert(route.name.clone()) {
            errors.push((
                format!("{key}.name"),
                format!("duplicate route name {:?}", route.name),
            ));
        }
        if route.to.is_empty() {
            errors.push((
                format!("{key}.to"),
                "must list at least one subscriber".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (position, target) in route.to.iter().enumerate() {
            if !known.contains(target.as_str()) {
                errors.push((
                    format!("{key}.to[{position}]"),
                    format!("unknown subscriber {target:?}"),
                ));
            } else if !seen.insert(target.as_str()) {
                errors.push((
                    format!("{key}.to[{position}]"),
                    format!("subscriber {target:?} is listed twice"),
                ));
            }
        }
        let filter = filter::compile_all(route.filters, &format!("{key}.filters"), &mut errors);
        routes.push(RouteConfig {
            name: route.name,
            filter,
            to: route.to,
            operational: route.operational,
        });
    }

    let dead_letter = raw.dead_letter.and_then(|raw| {
        let url = parse_url(&raw.url, "dead_letter.url", &mut errors)?;
        let timeout = raw.timeout.unwrap_or(default_timeout);
        positive_duration(timeout, "dead_letter.timeout", &mut errors);
        Some(DeadLetterConfig {
            url,
            secrets: parse_secrets(raw.secret, "dead_letter.secret", &mut errors),
            headers: check_headers(raw.headers, "dead_letter.headers", &mut errors),
            timeout,
            retry: retry_policy(
                &raw.retry,
                Some(&default_retry),
                "dead_letter.retry",
                &mut errors,
            ),
        })
    });

    let sources = raw
        .sources
        .into_iter()
        .filter_map(|(name, source)| super::sources::compile(name, source, &mut errors))
        .collect();
    let api_keys: Vec<_> = raw
        .api_keys
        .into_iter()
        .filter_map(|(name, key)| super::access::compile(name, key, &mut errors))
        .collect();
    for (index, key) in api_keys.iter().enumerate() {
        if let Some(first) = api_keys[..index]
            .iter()
            .find(|other: &&super::ApiKey| other.digest.matches(&key.digest))
        {
            errors.push((
                format!("api_keys.{}.key", key.name),
                format!("is the same key as api_keys.{}", first.name),
            ));
        }
    }
    let schemas = super::schemas::compile(raw.schemas, path, &mut errors);
    let outbound = super::outbound::compile(raw.outbound, &mut errors);
    if outbound.https_only {
        let oauth_urls = subscribers
            .iter()
            .filter_map(|subscriber| match &subscriber.auth {
                Some(ReceiverAuth::OAuth2 { token_url, .. }) => Some((
                    format!("subscribers.{}.auth.oauth2.token_url", subscriber.name),
                    token_url,
                )),
                _ => None,
            });
        let urls = subscribers
            .iter()
            .map(|subscriber| {
                (
                    format!("subscribers.{}.url", subscriber.name),
                    &subscriber.url,
                )
            })
            .chain(oauth_urls)
            .chain(
                dead_letter
                    .iter()
                    .map(|dead_letter| ("dead_letter.url".to_owned(), &dead_letter.url)),
            );
        for (key, url) in urls {
            if url.scheme() != "https" {
                errors.push((key, "must be an https:// URL (outbound.https_only)".into()));
            }
        }
    }

    if errors.is_empty() {
        Ok(Config {
            path: path.to_owned(),
            server,
            admin,
            storage,
            subscribers,
            routes,
            dead_letter,
            sources,
            api_keys,
            schemas,
            outbound,
        })
    } else {
        Err(errors)
    }
}

fn admin(raw: &super::raw::RawAdmin, errors: &mut Errors) -> AdminConfig {
    let text = raw
        .listen
        .clone()
        .unwrap_or_else(|| defaults::ADMIN_LISTEN.to_owned());
    let listen: std::net::SocketAddr = text.parse().unwrap_or_else(|_| {
        errors.push((
            "admin.listen".into(),
            format!("{text:?} is not an address like 127.0.0.1:8081"),
        ));
        defaults::ADMIN_LISTEN
            .parse()
            .expect("the default admin address parses")
    });
    let token = raw
        .token
        .as_deref()
        .filter(|token| !token.is_empty())
        .and_then(|token| {
            Credential::load(token)
                .map_err(|message| errors.push(("admin.token".into(), message)))
                .ok()
        })
        .map(|token| token.expose().to_owned());
    if let Some(message) = AdminConfig::missing_token(listen, token.as_deref()) {
        errors.push(("admin.token".into(), message));
    }
    if token.as_ref().is_some_and(|token| token.len() < 16) {
        errors.push((
            "admin.token".into(),
            "must be at least 16 characters".into(),
        ));
    }
    AdminConfig {
        listen,
        token,
        watch_interval: match raw.watch_interval {
            Some(interval) if interval.is_zero() => None,
            Some(interval) => Some(interval),
            None => Some(defaults::WATCH_INTERVAL),
        },
        tls: raw
            .tls
            .as_ref()
            .and_then(|tls| super::listener::tls(tls, "admin.tls", errors)),
    }
}

fn retry_policy(
    raw: &RawRetry,
    base: Option<&RetryPolicy>,
    key: &str,
    errors: &mut Errors,
) -> RetryPolicy {
    let policy = RetryPolicy {
        initial_interval: raw
            .initial_interval
            .or(base.map(|base| base.initial_interval))
            .unwrap_or(defaults::INITIAL_INTERVAL),
        multiplier: raw
            .multiplier
            .or(base.map(|base| base.multiplier))
            .unwrap_or(defaults::MULTIPLIER),
        max_interval: raw
            .max_interval
            .or(base.map(|base| base.max_interval))
            .unwrap_or(defaults::MAX_INTERVAL),
        jitter: raw
            .jitter
            .or(base.map(|base| base.jitter))
            .unwrap_or(defaults::JITTER),
        max_attempts: raw
            .max_attempts
            .or(base.map(|base| base.max_attempts))
            .unwrap_or(defaults::MAX_ATTEMPTS),
        max_age: raw
            .max_age
            .or(base.map(|base| base.max_age))
            .unwrap_or(defaults::MAX_AGE),
        retry_on: match &raw.retry_on {
            Some(patterns) => retry_on(patterns, &format!("{key}.retry_on"), errors),
            None => base
                .map(|base| base.retry_on.clone())
                .unwrap_or_else(|| RetryOn {
                    codes: vec![408, 429],
                    classes: vec![5],
                }),
        },
    };
    if !(policy.multiplier >= 1.0 && policy.multiplier.is_finite()) {
        errors.push((format!("{key}.multiplier"), "must be a number >= 1".into()));
    }
    if !(0.0..1.0).contains(&policy.jitter) {
        errors.push((
            format!("{key}.jitter"),
            "must be at least 0 and below 1 (0.2 means ±20 %)".into(),
        ));
    }
    if policy.max_attempts == 0 {
        errors.push((format!("{key}.max_attempts"), "must be at least 1".into()));
    }
    positive_duration(
        policy.initial_interval,
        &format!("{key}.initial_interval"),
        errors,
    );
    if policy.max_interval < policy.initial_interval {
        errors.push((
            format!("{key}.max_interval"),
            "must not be below initial_interval".into(),
        ));
    }
    policy
}

fn retry_on(patterns: &[StatusPattern], key: &str, errors: &mut Errors) -> RetryOn {
    let mut set = RetryOn {
        codes: Vec::new(),
        classes: Vec::new(),
    };
    for (index, pattern) in patterns.iter().enumerate() {
        match pattern {
            StatusPattern::Code(code) if (100..600).contains(code) => set.codes.push(*code),
            StatusPattern::Text(text)
                if text.len() == 3
                    && text.ends_with("xx")
                    && matches!(text.as_bytes()[0], b'1'..=b'5') =>
            {
                set.classes.push(u16::from(text.as_bytes()[0] - b'0'));
            }
            _ => errors.push((
                format!("{key}[{index}]"),
                "must be a status code like 429 or a class like \"5xx\"".into(),
            )),
        }
    }
    set
}

fn positive_duration(duration: Duration, key: &str, errors: &mut Errors) {
    if duration.is_zero() {
        errors.push((key.to_owned(), "must be greater than zero".into()));
    }
}

/// Refuses a subscriber, source or key name that is not [`is_name`].
pub(super) fn check_name(name: &str, key: &str, errors: &mut Errors) {
    if !is_name(name) {
        errors.push((
            key.to_owned(),
            format!("{name:?} is not a valid name (letters, digits, '-', '_' and '.')"),
        ));
    }
}

/// Whether `name` is a legal HTTP header name (token characters only).
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Reads a file the routes file names; a failure is an error at `key`.
pub(super) fn read_file(path: &Path, key: &str, errors: &mut Errors) -> Option<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| {
            errors.push((
                key.to_owned(),
                format!("cannot read {}: {error}", path.display()),
            ));
        })
        .ok()
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
}

fn parse_url(text: &str, key: &str, errors: &mut Errors) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        Ok(_) => {
            errors.push((
                key.to_owned(),
                format!("{text:?} must be an http:// or https:// URL with a host"),
            ));
            None
        }
        Err(error) => {
            errors.push((
                key.to_owned(),
                format!("{text:?} is not a valid URL ({error})"),
            ));
            None
        }
    }
}

fn parse_secrets(raw: Option<OneOrMany>, key: &str, errors: &mut Errors) -> Vec<Secret> {
    load_secrets(raw, key, errors, Secret::parse)
}

/// Loads one secret or a list (each `file:` or the value itself) and decodes each with
/// `decode`; errors name `key`, with the index when there is a list.
pub(super) fn load_secrets(
    raw: Option<OneOrMany>,
    key: &str,
    errors: &mut Errors,
    decode: impl Fn(&str) -> Result<Secret, String>,
) -> Vec<Secret> {
    let list = raw.map(OneOrMany::into_vec).unwrap_or_default();
    let single = list.len() == 1;
    list.iter()
        .enumerate()
        .filter_map(|(index, text)| {
            let key = if single {
                key.to_owned()
            } else {
                format!("{key}[{index}]")
            };
            Credential::load(text)
                .and_then(|text| decode(text.expose()))
                .map_err(|message| errors.push((key, message)))
                .ok()
        })
        .collect()
}

/// `50/s`, `3000/m`, `10/h` (also `second`, `minute`, `hour`), with an optional burst (default:
/// one second's worth, at least 1).
fn rate_limit(
    raw: &RawRateLimit,
    key: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<RateLimit> {
    let (text, burst) = match raw {
        RawRateLimit::Rate(text) => (text, None),
        RawRateLimit::Full { rate, burst } => (rate, *burst),
    };
    let parsed = text.split_once('/').and_then(|(count, unit)| {
        let count: f64 = count.trim().parse().ok()?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return None,
        };
        (count > 0.0 && count.is_finite()).then_some(count / seconds)
    });
    let Some(per_second) = parsed else {
        errors.push((
            key.to_owned(),
            format!("invalid rate {text:?}; write e.g. 50/s, 3000/m or 10/h"),
        ));
        return None;
    };
    if burst == Some(0) {
        errors.push((format!("{key}.burst"), "must be at least 1".into()));
        return None;
    }
    Some(RateLimit {
        per_second,
        burst: burst.unwrap_or_else(|| (per_second.ceil() as u32).max(1)),
    })
}

/// Reads the PEM files of an endpoint's TLS settings; each must hold what its key says.
fn endpoint_tls(raw: RawTls, key: &str, errors: &mut Vec<(String, String)>) -> Option<EndpointTls> {
    let mut read = |path: &Option<String>, field: &str, label: &str| -> Option<Option<Vec<u8>>> {
        let Some(path) = path else {
            return Some(None);
        };
        match std::fs::read(path) {
            Ok(bytes) if String::from_utf8_lossy(&bytes).contains(label) => Some(Some(bytes)),
            Ok(_) => {
                errors.push((
                    format!("{key}.{field}"),
                    format!("{path:?} holds no PEM block with {label:?}"),
                ));
                None
            }
            Err(error) => {
                errors.push((
                    format!("{key}.{field}"),
                    format!("cannot read {path:?}: {error}"),
                ));
                None
            }
        }
    };
    let cert = read(&raw.client_cert, "client_cert", "CERTIFICATE")?;
    let private_key = read(&raw.client_key, "client_key", "PRIVATE KEY")?;
    let roots = read(&raw.ca, "ca", "CERTIFICATE")?;
    let identity_pem = match (cert, private_key) {
        (Some(mut cert), Some(private_key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&private_key);
            Some(cert)
        }
        (None, None) => None,
        _ => {
            errors.push((
                key.to_owned(),
                "client_cert and client_key go together".into(),
            ));
            return None;
        }
    };
    Some(EndpointTls {
        identity_pem,
        roots_pem: roots,
    })
}

fn receiver_auth(
    raw: RawAuth,
    key: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<ReceiverAuth> {
    let credential = |text: &str, field: &str, errors: &mut Vec<(String, String)>| {
        Credential::load(text)
            .map_err(|error| errors.push((format!("{key}.{field}"), error)))
            .ok()
    };
    let RawAuth {
        bearer,
        basic,
        oauth2,
    } = raw;
    let methods = usize::from(bearer.is_some())
        + usize::from(basic.is_some())
        + usize::from(oauth2.is_some());
    if methods != 1 {
        errors.push((
            key.to_owned(),
            "give exactly one method: bearer, basic or oauth2".into(),
        ));
        return None;
    }
    if let Some(bearer) = bearer {
        let (token, location) = match bearer {
            RawBearer::Token(token) => (token, None),
            RawBearer::Full { token, location } => (token, location),
        };
        let query = match location.as_deref() {
            None | Some("header") => false,
            Some("query") => true,
            Some(other) => {
                errors.push((
                    format!("{key}.bearer.in"),
                    format!(
                        "{other:?}: write header (Authorization: Bearer) or query (access_token)"
                    ),
                ));
                return None;
            }
        };
        return Some(ReceiverAuth::Bearer {
            token: credential(&token, "bearer.token", errors)?,
            query,
        });
    }
    if let Some(basic) = basic {
        if basic.username.contains(':') {
            errors.push((
                format!("{key}.basic.username"),
                "a basic-auth user name cannot contain ':'".into(),
            ));
            return None;
        }
        return Some(ReceiverAuth::Basic {
            username: basic.username,
            password: credential(&basic.password, "basic.password", errors)?,
        });
    }
    let oauth2 = oauth2.expect("one method");
    let token_url = parse_url(
        &oauth2.token_url,
        &format!("{key}.oauth2.token_url"),
        errors,
    )?;
    Some(ReceiverAuth::OAuth2 {
        token_url,
        client_id: oauth2.client_id,
        client_secret: credential(&oauth2.client_secret, "oauth2.client_secret", errors)?,
        scope: oauth2.scope,
        audience: oauth2.audience,
    })
}

fn breaker(
    raw: &RawBreaker,
    key: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<BreakerPolicy> {
    let policy = BreakerPolicy {
        failures: raw.failures.unwrap_or(defaults::BREAKER_FAILURES),
        failure_rate: raw.failure_rate.unwrap_or(defaults::BREAKER_FAILURE_RATE),
        window: raw.window.unwrap_or(defaults::BREAKER_WINDOW),
        min_requests: raw.min_requests.unwrap_or(defaults::BREAKER_MIN_REQUESTS),
        open_for: raw.open_for.unwrap_or(defaults::BREAKER_OPEN_FOR),
    };
    let before = errors.len();
    if policy.failures == 0 {
        errors.push((format!("{key}.failures"), "must be at least 1".into()));
    }
    if !(policy.failure_rate > 0.0 && policy.failure_rate <= 1.0) {
        errors.push((
            format!("{key}.failure_rate"),
            "must be above 0 and at most 1".into(),
        ));
    }
    positive_duration(policy.window, &format!("{key}.window"), errors);
    positive_duration(policy.open_for, &format!("{key}.open_for"), errors);
    (errors.len() == before).then_some(policy)
}

fn check_headers(
    headers: BTreeMap<String, String>,
    key: &str,
    errors: &mut Errors,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if !is_header_name(&name) {
            errors.push((
                format!("{key}.{name}"),
                format!("{name:?} is not a valid header name"),
            ));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("ce-") {
            errors.push((
                format!("{key}.{name}"),
                format!("{name} is set by fanout and cannot be configured"),
            ));
        } else if value
            .bytes()
            .any(|byte| byte < 0x20 && byte != b'\t' || byte == 0x7f)
        {
            errors.push((
                format!("{key}.{name}"),
                "header values must not contain control characters".into(),
            ));
        } else {
            out.push((name, value));
        }
    }
    out
}
