//! Reloading `routes.yaml` while serving: validate the whole file, then swap the routing table and
//! hand the subscriber policies to the dispatchers. An invalid file changes nothing; its errors are
//! kept for the admin API and counted until a valid file arrives.
//!
//! Requests already routed keep the table they started with (the table is an `Arc` snapshot);
//! a changed URL, secret or policy applies from the next attempt. Settings of the listeners and
//! the store (`server`, `admin`, `storage`) need a restart; a reload reports them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SubscriberConfig};
use crate::delivery::Dispatchers;
use crate::ingress::admission::Admission;
use crate::routing::RoutingTable;
use crate::store::{self, Store};

/// What a successful reload changed.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub subscribers_added: Vec<String>,
    pub subscribers_removed: Vec<String>,
    pub subscribers_changed: Vec<String>,
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    pub routes_changed: Vec<String>,
    pub sources_added: Vec<String>,
    pub sources_removed: Vec<String>,
    pub sources_changed: Vec<String>,
    pub api_keys_added: Vec<String>,
    pub api_keys_removed: Vec<String>,
    pub api_keys_changed: Vec<String>,
    /// Event types whose JSON Schema was added, removed or changed.
    pub schemas_added: Vec<String>,
    pub schemas_removed: Vec<String>,
    pub schemas_changed: Vec<String>,
    /// Changed settings that take effect only after a restart.
    pub restart_required: Vec<String>,
}

/// The outcome of the last reload, for the admin API.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub at_ms: u64,
    pub ok: bool,
    /// The errors of the last attempt, each naming file, line and key (empty when it worked).
    pub errors: Vec<String>,
}

/// Reloads the routes file into the running router.
pub struct Reloader {
    path: PathBuf,
    current: Mutex<Config>,
    routing: Arc<ArcSwap<RoutingTable>>,
    admission: Arc<ArcSwap<Admission>>,
    dispatchers: Arc<Dispatchers>,
    store: Store,
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    status: Mutex<Option<Status>>,
    /// Modification time and size of the file as last read (the watch compares against it).
    seen: Mutex<Option<(SystemTime, u64)>>,
}

impl Reloader {
    pub fn new(
        config: Config,
        routing: Arc<ArcSwap<RoutingTable>>,
        admission: Arc<ArcSwap<Admission>>,
        dispatchers: Arc<Dispatchers>,
        store: Store,
    ) -> Reloader {
        Reloader {
            seen: Mutex::new(stamp(&config.path)),
            path: config.path.clone(),
            current: Mutex::new(config),
            routing,
            admission,
            dispatchers,
            store,
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            status: Mutex::new(None),
        }
    }

    /// The routing table in force.
    pub fn routing(&self) -> Arc<RoutingTable> {
        self.routing.load_full()
    }

    /// The routes in force, as configured (names, not ids), for the admin API.
    pub fn routes(&self) -> Vec<config::RouteConfig> {
        self.current.lock().expect("lock").routes.clone()
    }

    /// The routes file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn status(&self) -> Option<Status> {
        self.status.lock().expect("lock").clone()
    }

    /// Reads, validates and applies the routes file.
    ///
    /// # Errors
    /// The file is invalid (every error, located) or the store failed; nothing changed.
    pub fn reload(&self) -> Result<Diff, Vec<String>> {
        let env = |name: &str| std::env::var(name).ok();
        *self.seen.lock().expect("lock") = stamp(&self.path);
        let result = config::load(&self.path, &env)
            .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())
            .and_then(|new| self.apply(new).map_err(|error| vec![error]));
        let now = store::now_ms();
        match &result {
            Ok(diff) => {
                self.successes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(diff = ?diff, "Routes reloaded.");
                *self.status.lock().expect("lock") = Some(Status {
                    at_ms: now,
                    ok: true,
                    errors: Vec::new(),
                });
            }
            Err(errors) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                for error in errors {
                    tracing::error!(error = %error, "Routes reload failed; the previous routes stay in force.");
                }
                *self.status.lock().expect("lock") = Some(Status {
                    at_ms: now,
                    ok: false,
                    errors: errors.clone(),
                });
            }
        }
        result
    }

    fn apply(&self, mut new: Config) -> Result<Diff, String> {
        let mut current = self.current.lock().expect("lock");
        // Overrides from the command line stay; these sections are not reloadable.
        let diff = diff(&current, &new);
        new.server = current.server.clone();
        new.storage = current.storage.clone();
        new.admin = current.admin.clone();
        new.outbound = current.outbound.clone();
        let ids = self
            .store
            .register_subscribers(
                new.subscribers
                    .iter()
                    .map(|subscriber| subscriber.name.as_str()),
            )
            .map_err(|error| error.to_string())?;
        let table = RoutingTable::new(&new.routes, &ids);
        self.dispatchers
            .apply(
                new.subscribers
                    .iter()
                    .map(|subscriber| (ids[&subscriber.name], subscriber.clone()))
                    .collect(),
            )
            .map_err(|error| error.to_string())?;
        self.routing.store(Arc::new(table));
        self.admission.store(Arc::new(Admission::new(&new)));
        *current = new;
        Ok(diff)
    }

    /// Listens for SIGHUP. Call it before announcing that the process serves: until the handler
    /// is installed, SIGHUP's default action ends the process.
    pub fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(error = %error, "Cannot listen for SIGHUP; reload by file change or the admin API.");
                None
            }
        }
    }

    /// Reloads on SIGHUP (from [`Reloader::hangup_signal`]) and, when `interval` is set, whenever the file's modification time or
    /// size changes. Runs until `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        mut hangup: Option<tokio::signal::unix::Signal>,
        interval: Option<Duration>,
        shutdown: CancellationToken,
    ) {
        let period = interval.unwrap_or(Duration::from_secs(3600));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = async { match hangup.as_mut() { Some(signal) => signal.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading the routes file.");
                    let _ = self.reload();
                }
                () = tokio::time::sleep(period), if interval.is_some() => {
                    let now = stamp(&self.path);
                    if now.is_some() && now != *self.seen.lock().expect("lock") {
                        tracing::info!(file = %self.path.display(), "Routes file changed: reloading.");
                        let _ = self.reload();
                    }
                }
            }
        }
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A comparable fingerprint of a subscriber's policy (secrets by their key bytes).
fn fingerprint(subscriber: &SubscriberConfig) -> String {
    let keys: Vec<&[u8]> = subscriber
        .secrets
        .iter()
        .map(|secret| secret.key())
        .collect();
    format!("{subscriber:?} {keys:?}")
}

/// (added, removed, changed) names between two name → fingerprint maps.
fn changes(
    old: &BTreeMap<&str, String>,
    new: &BTreeMap<&str, String>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (name, print) in new {
        match old.get(name) {
            None => added.push((*name).to_owned()),
            Some(before) if before != print => changed.push((*name).to_owned()),
            Some(_) => {}
        }
    }
    let removed = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|name| (*name).to_owned())
        .collect();
    (added, removed, changed)
}

fn subscribers(config: &Config) -> BTreeMap<&str, String> {
    config
        .subscribers
        .iter()
        .map(|subscriber| (subscriber.name.as_str(), fingerprint(subscriber)))
        .collect()
}

fn sources(config: &Config) -> BTreeMap<&str, String> {
    config
        .sources
        .iter()
        .map(|source| {
            let keys: Vec<&[u8]> = source.secrets.iter().map(|secret| secret.key()).collect();
            (source.name.as_str(), format!("{source:?} {keys:?}"))
        })
        .collect()
}

fn api_keys(config: &Config) -> BTreeMap<&str, String> {
    config
        .api_keys
        .iter()
        .map(|key| {
            (
                key.name.as_str(),
                format!("{key:?} {:?}", key.digest.as_bytes()),
            )
        })
        .collect()
}

fn schemas(config: &Config) -> BTreeMap<&str, String> {
    config
        .schemas
        .iter()
        .map(|(ty, schema)| (ty, format!("{} {:?}", schema.file.display(), schema.digest)))
        .collect()
}

fn routes(config: &Config) -> BTreeMap<&str, String> {
    config
        .routes
        .iter()
        .map(|route| (route.name.as_str(), format!("{route:?}")))
        .collect()
}

fn diff(old: &Config, new: &Config) -> Diff {
    let (subscribers_added, subscribers_removed, subscribers_changed) =
        changes(&subscribers(old), &subscribers(new));
    let (routes_added, routes_removed, routes_changed) = changes(&routes(old), &routes(new));
    let (sources_added, sources_removed, sources_changed) = changes(&sources(old), &sources(new));
    let (api_keys_added, api_keys_removed, api_keys_changed) =
        changes(&api_keys(old), &api_keys(new));
    let (schemas_added, schemas_removed, schemas_changed) = changes(&schemas(old), &schemas(new));
    let mut diff = Diff {
        subscribers_added,
        subscribers_removed,
        subscribers_changed,
        routes_added,
        routes_removed,
        routes_changed,
        sources_added,
        sources_removed,
        sources_changed,
        api_keys_added,
        api_keys_removed,
        api_keys_changed,
        schemas_added,
        schemas_removed,
        schemas_changed,
        restart_required: Vec::new(),
    };
    if format!("{:?}", old.storage) != format!("{:?}", new.storage) {
        diff.restart_required.push("storage".into());
    }
    if new.admin.token != old.admin.token || new.admin.tls != old.admin.tls {
        diff.restart_required.push("admin".into());
    }
    if old.server.max_body_size != new.server.max_body_size
        || old.server.workers != new.server.workers
        || old.server.limits != new.server.limits
        || old.server.tls != new.server.tls
    {
        diff.restart_required.push("server".into());
    }
    if format!("{:?}", old.dead_letter) != format!("{:?}", new.dead_letter) {
        diff.restart_required.push("dead_letter".into());
    }
    if old.outbound != new.outbound {
        diff.restart_required.push("outbound".into());
    }
    diff
}
