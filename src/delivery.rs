//! Delivery: per-subscriber dispatchers that sign, send, classify and reschedule, plus the
//! dead-letter forwarder. Decisions are pure ([`outcome`], [`policy`], [`signature`],
//! [`request`]); [`dispatcher`] and [`dead_letter`] only carry data between them, the store and
//! the [`sender`].

pub mod adaptive;
pub mod auth;
pub mod breaker;
pub mod control;
pub mod dead_letter;
pub mod dispatcher;
pub mod handshake;
pub mod outcome;
pub mod policy;
pub mod rate_limit;
pub mod request;
pub mod sender;
pub mod signature;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DeadLetterConfig, SubscriberConfig};
use crate::ids::SubscriberId;
use crate::metrics::Metrics;
use crate::operational::Emitter;
use crate::store::{Store, StoreError};

pub use control::Control;

/// The running dispatchers, one per subscriber ever configured in this process, and what a
/// reload needs to start more. Dispatchers are never stopped by a reload: a subscriber removed
/// from the routes file becomes `orphaned` (its queue kept, nothing delivered) and resumes if it
/// comes back.
pub struct Dispatchers {
    controls: RwLock<Vec<Arc<Control>>>,
    names: Arc<RwLock<HashMap<SubscriberId, String>>>,
    tasks: Mutex<JoinSet<()>>,
    store: Store,
    sender: sender::Sender,
    metrics: Arc<Metrics>,
    outbox: Option<Arc<Notify>>,
    events: Option<Emitter>,
    grace: Duration,
    shutdown: CancellationToken,
    /// How many dispatchers have attempts in flight (they share adaptive concurrency's queue).
    busy: Arc<AtomicUsize>,
}

impl Dispatchers {
    /// Starts a dispatcher per subscriber, and the dead-letter forwarder when a URL is
    /// configured. The tasks end after `shutdown` fires, once their attempts in flight are done
    /// or `grace` ran out.
    ///
    /// # Errors
    /// The store could not be read to resume a dispatcher.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        subscribers: Vec<(SubscriberId, SubscriberConfig)>,
        dead_letter: Option<DeadLetterConfig>,
        store: &Store,
        sender: &sender::Sender,
        metrics: &Arc<Metrics>,
        events: Option<Emitter>,
        grace: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Dispatchers>, StoreError> {
        let outbox = dead_letter.as_ref().map(|_| Arc::new(Notify::new()));
        let dispatchers = Arc::new(Dispatchers {
            controls: RwLock::new(Vec::new()),
            names: Arc::default(),
            tasks: Mutex::new(JoinSet::new()),
            store: store.clone(),
            sender: sender.clone(),
            metrics: Arc::clone(metrics),
            outbox: outbox.clone(),
            events,
            grace,
            shutdown: shutdown.clone(),
            busy: Arc::default(),
        });
        for (id, config) in subscribers {
            dispatchers.spawn(id, config)?;
        }
        if let (Some(config), Some(wake)) = (dead_letter, outbox) {
            let forwarder = dead_letter::Forwarder {
                config,
                names: Arc::clone(&dispatchers.names),
                store: store.clone(),
                sender: sender.clone(),
                metrics: Arc::clone(metrics),
                wake,
            };
            dispatchers
                .tasks
                .lock()
                .expect("lock")
                .spawn(forwarder.run(shutdown.clone()));
        }
        Ok(dispatchers)
    }

    fn spawn(&self, id: SubscriberId, config: SubscriberConfig) -> Result<(), StoreError> {
        let control = Arc::new(Control::new(
            id,
            config.clone(),
            self.store.paused(id)?,
            self.store.disabled(id)?,
        ));
        if let Some(since) = self.store.failing_since(id)? {
            control
                .failing_since_ms
                .store(since, std::sync::atomic::Ordering::Relaxed);
        }
        let dispatcher = dispatcher::Dispatcher::new(dispatcher::Context {
            id,
            control: Arc::clone(&control),
            store: self.store.clone(),
            sender: self.sender.clone(),
            metrics: Arc::clone(&self.metrics),
            dead_letter_outbox: self.outbox.clone(),
            events: self.events.clone(),
            grace: self.grace,
            auth: auth::Authenticator::default(),
            tls_sender: std::sync::Mutex::new(None),
            busy: Arc::clone(&self.busy),
        })?;
        self.names
            .write()
            .expect("lock")
            .insert(id, config.name.clone());
        self.controls.write().expect("lock").push(control);
        self.tasks
            .lock()
            .expect("lock")
            .spawn(dispatcher.run(self.shutdown.clone()));
        Ok(())
    }

    /// Every subscriber's control, in the order they were started.
    pub fn controls(&self) -> Vec<Arc<Control>> {
        self.controls.read().expect("lock").clone()
    }

    pub fn control(&self, name: &str) -> Option<Arc<Control>> {
        self.controls
            .read()
            .expect("lock")
            .iter()
            .find(|control| control.name == name)
            .cloned()
    }

    /// Applies a reloaded subscriber list: new policies for the next attempt, new subscribers
    /// started, removed ones orphaned (kept, not delivering).
    ///
    /// # Errors
    /// The store could not be read to start a new dispatcher.
    pub fn apply(
        &self,
        subscribers: Vec<(SubscriberId, SubscriberConfig)>,
    ) -> Result<(), StoreError> {
        let wanted: HashMap<SubscriberId, SubscriberConfig> = subscribers.into_iter().collect();
        for control in self.controls() {
            match wanted.get(&control.id) {
                Some(config) => {
                    control.set_config(config.clone());
                    control.set_orphaned(false);
                }
                None => control.set_orphaned(true),
            }
        }
        let running: Vec<SubscriberId> = self.controls().iter().map(|control| control.id).collect();
        for (id, config) in wanted {
            if !running.contains(&id) {
                self.spawn(id, config)?;
            }
        }
        Ok(())
    }

    /// Makes every dispatcher look at its queue again (an operator queued retries).
    pub fn wake_all(&self) {
        for control in self.controls() {
            control.wake();
        }
    }

    /// Waits for every dispatcher (after shutdown fired).
    pub async fn join(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("lock"));
        while tasks.join_next().await.is_some() {}
    }
}
