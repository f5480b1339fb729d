//! The composition root: opens the store, builds the routing table, starts the ingress and the
//! dispatchers, and owns the shutdown order (stop accepting → drain deliveries → flush the store).
//! `main` and the tests call the same [`start`].

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::delivery::{self, Dispatchers};
use crate::ids::SubscriberId;
use crate::ingress::{self, IngressState};
use crate::metrics::Metrics;
use crate::operational;
use crate::reload::Reloader;
use crate::routing::RoutingTable;
use crate::store::{self, Store};

/// Longest pause between two passes of the retention and dedupe purge.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// How often the store's size is measured for the backlog ceiling.
const SIZE_INTERVAL: Duration = Duration::from_secs(1);

/// The two listeners: public ingest and the operator API.
pub struct Listeners {
    pub ingest: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both addresses of the configuration.
    ///
    /// # Errors
    /// An address cannot be bound.
    pub fn bind(config: &Config) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            ingest: TcpListener::bind(config.server.listen)
                .with_context(|| format!("cannot listen on {}", config.server.listen))?,
            admin: TcpListener::bind(config.admin.listen).with_context(|| {
                format!("cannot listen on {} (admin.listen)", config.admin.listen)
            })?,
        })
    }
}

/// A started router.
pub struct Running {
    /// The ingest listener's address (useful with port 0).
    pub addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    pub dispatchers: Arc<Dispatchers>,
    pub reloader: Arc<Reloader>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Subscriber name → id.
    pub subscribers: HashMap<String, SubscriberId>,
    done: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until shutdown has completed.
    ///
    /// # Errors
    /// The server failed, or the final flush did.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("shutdown task failed")?
    }
}

/// Runs until `shutdown` fires and everything has stopped.
///
/// # Errors
/// See [`start`] and [`Running::wait`].
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(config, listeners, shutdown).await?.wait().await
}

/// Starts everything on `listener` and returns once it is serving.
///
/// # Errors
/// The store cannot be opened (missing permissions, another process holds it) or the listener
/// cannot be used.
pub async fn start(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let Listeners {
        ingest: listener,
        admin: admin_listener,
    } = listeners;
    let data_dir = config.server.data_dir.clone();
    let store = Store::open(&data_dir, &config.storage)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let subscribers = store.register_subscribers(
        config
            .subscribers
            .iter()
            .map(|subscriber| subscriber.name.as_str()),
    )?;
    let routing = Arc::new(ArcSwap::from_pointee(RoutingTable::new(
        &config.routes,
        &subscribers,
    )));
    let metrics = Arc::new(Metrics::default());
    let sender = delivery::sender::Sender::new(config.outbound.clone())
        .context("cannot build the HTTP client")?;
    let admission = Arc::new(ArcSwap::from_pointee(ingress::admission::Admission::new(
        &config,
    )));

    let grace = config.server.shutdown_grace;
    let (emitter, operational_task) =
        operational::start(Arc::clone(&routing), store.clone(), shutdown.clone());
    let dispatchers = Dispatchers::start(
        config
            .subscribers
            .iter()
            .map(|subscriber| (subscribers[&subscriber.name], subscriber.clone()))
            .collect(),
        config.dead_letter.clone(),
        &store,
        &sender,
        &metrics,
        Some(emitter),
        grace,
        &shutdown,
    )?;

    let reloader = Arc::new(Reloader::new(
        config.clone(),
        Arc::clone(&routing),
        Arc::clone(&admission),
        Arc::clone(&dispatchers),
        store.clone(),
    ));
    let limits = config.server.limits;
    let state = web::Data::new(IngressState {
        routing,
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        admission,
        max_body_size: config.server.max_body_size,
        limits,
        shutdown: shutdown.clone(),
    });
    let addr = listener.local_addr()?;
    let workers = config
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(ingress::configure)
    })
    .workers(workers)
    .max_connections(limits.max_connections)
    .client_request_timeout(limits.request_timeout)
    .keep_alive(if limits.keep_alive.is_zero() {
        actix_web::http::KeepAlive::Disabled
    } else {
        actix_web::http::KeepAlive::Timeout(limits.keep_alive)
    })
    .disable_signals()
    .shutdown_timeout(grace.as_secs().max(1));
    let server = match &config.server.tls {
        Some(tls) => server.listen_rustls_0_23(listener, server_tls(tls)?)?,
        None => server.listen(listener)?,
    }
    .run();
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);

    let admin_addr = admin_listener.local_addr()?;
    let sampler = Arc::new(admin::stats::Sampler::default());
    let sampling = tokio::spawn(Arc::clone(&sampler).run(
        Arc::clone(&metrics),
        admin::stats::SAMPLE_INTERVAL,
        shutdown.clone(),
    ));
    let admin_state = web::Data::new(AdminState {
        store: store.clone(),
        dispatchers: Arc::clone(&dispatchers),
        reloader: Arc::clone(&reloader),
        metrics: Arc::clone(&metrics),
        token_digest: AdminState::token_digest(config.admin.token.as_deref()),
        shutdown: shutdown.clone(),
        jobs: admin::Jobs::default(),
        sampler,
    });
    let admin_server = HttpServer::new(move || {
        App::new()
            .app_data(admin_state.clone())
            .configure(admin::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1);
    let admin_server = match &config.admin.tls {
        Some(tls) => admin_server.listen_rustls_0_23(admin_listener, server_tls(tls)?)?,
        None => admin_server.listen(admin_listener)?,
    }
    .run();
    let admin_handle = admin_server.handle();
    let admin_task = tokio::spawn(admin_server);
    let watcher = tokio::spawn(Arc::clone(&reloader).watch(
        Reloader::hangup_signal(),
        config.admin.watch_interval,
        shutdown.clone(),
    ));
    let purge_interval = (config.storage.dedupe_window.min(config.storage.retention) / 10)
        .clamp(Duration::from_millis(100), PURGE_INTERVAL);
    let purge = tokio::spawn(purge_loop(store.clone(), purge_interval, shutdown.clone()));
    let measure = tokio::spawn(measure_loop(store.clone(), shutdown.clone()));
    tracing::info!(listen = %addr, admin = %admin_addr, data_dir = %data_dir.display(), subscribers = subscribers.len(), routes = config.routes.len(), "fanout is serving.");

    let final_store = store.clone();
    let joined = Arc::clone(&dispatchers);
    let done = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!("Shutting down: no new events accepted.");
        server_handle.stop(true).await;
        let served = server_task.await;
        joined.join().await;
        let _ = operational_task.await;
        let _ = purge.await;
        let _ = measure.await;
        let _ = watcher.await;
        let _ = sampling.await;
        admin_handle.stop(true).await;
        let _ = admin_task.await;
        final_store.flush().context("final flush failed")?;
        tracing::info!("Shutdown complete.");
        served
            .context("server task failed")?
            .context("server failed")
    });
    Ok(Running {
        addr,
        admin_addr,
        dispatchers,
        reloader,
        store,
        metrics,
        subscribers,
        done,
    })
}

/// The rustls settings of a listener.
fn server_tls(tls: &crate::config::ListenerTls) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no usable protocol versions")?
        .with_no_client_auth()
        .with_single_cert(tls.certificates.clone(), tls.key.clone_key())
        .context("TLS: the certificate and key do not make a usable pair")
}

/// Measures the store's size every second, for the backlog ceiling (`storage.max_size`).
async fn measure_loop(store: Store, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SIZE_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.refresh_size()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(error = %error, "Cannot measure the store's size."),
            Err(error) => tracing::error!(error = %error, "Store size task failed."),
        }
    }
}

async fn purge_loop(store: Store, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.purge_expired(store::now_ms())).await {
            Ok(Ok(removed)) if removed > 0 => tracing::debug!(removed, "Expired events purged."),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(error = %error, "Purge of expired events failed."),
            Err(error) => tracing::error!(error = %error, "Purge task failed."),
        }
    }
}
