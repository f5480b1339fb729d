//! Delivery: per-subscriber dispatchers that sign, send, classify and reschedule, plus the
//! dead-letter forwarder. Decisions are pure ([`outcome`], [`policy`], [`signature`],
//! [`request`]); [`dispatcher`] and [`dead_letter`] only carry data between them, the store and
//! the [`sender`].

pub mod dead_letter;
pub mod dispatcher;
pub mod outcome;
pub mod policy;
pub mod request;
pub mod sender;
pub mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DeadLetterConfig, SubscriberConfig};
use crate::ids::SubscriberId;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Starts a dispatcher per subscriber, and the dead-letter forwarder when a URL is configured.
/// The tasks end after `shutdown` fires, once their attempts in flight are done or `grace` ran out.
///
/// # Errors
/// The store could not be read to resume a dispatcher.
pub fn start(
    subscribers: Vec<(SubscriberId, SubscriberConfig)>,
    dead_letter: Option<DeadLetterConfig>,
    store: &Store,
    sender: &sender::Sender,
    metrics: &Arc<Metrics>,
    grace: Duration,
    shutdown: &CancellationToken,
) -> Result<JoinSet<()>, StoreError> {
    let mut tasks = JoinSet::new();
    let outbox = dead_letter.as_ref().map(|_| Arc::new(Notify::new()));
    let names: HashMap<SubscriberId, String> = subscribers
        .iter()
        .map(|(id, config)| (*id, config.name.clone()))
        .collect();
    for (id, config) in subscribers {
        let dispatcher = dispatcher::Dispatcher::new(dispatcher::Context {
            id,
            config,
            store: store.clone(),
            sender: sender.clone(),
            metrics: Arc::clone(metrics),
            dead_letter_outbox: outbox.clone(),
            grace,
        })?;
        tasks.spawn(dispatcher.run(shutdown.clone()));
    }
    if let (Some(config), Some(wake)) = (dead_letter, outbox) {
        let forwarder = dead_letter::Forwarder {
            config,
            names,
            store: store.clone(),
            sender: sender.clone(),
            metrics: Arc::clone(metrics),
            wake,
        };
        tasks.spawn(forwarder.run(shutdown.clone()));
    }
    Ok(tasks)
}
