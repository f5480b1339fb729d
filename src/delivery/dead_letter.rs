//! Forwards dead letters to `dead_letter.url`: the original event in binary mode with extension
//! attributes naming the subscriber, the reason, the last status and the attempt count.
//!
//! Forwarding works from a durable outbox written together with the dead letter, so a dead letter
//! reaches the URL even across restarts; while the URL fails, it is retried with backoff, forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{DeadLetterConfig, Mode};
use crate::event::{AttrValue, Event};
use crate::ids::{webhook_id, EventSeq, SubscriberId};
use crate::metrics::Metrics;
use crate::store::{DeadLetter, Store};

use super::policy::backoff;
use super::request;
use super::sender::Sender;

/// Extension attribute names added to forwarded dead letters.
pub mod attributes {
    pub const SUBSCRIBER: &str = "fanoutsubscriber";
    pub const REASON: &str = "fanoutreason";
    pub const STATUS: &str = "fanoutstatus";
    pub const ATTEMPTS: &str = "fanoutattempts";
}

/// How often the outbox is looked at even without a wake-up.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

pub struct Forwarder {
    pub config: DeadLetterConfig,
    /// Subscriber names (grows on reload).
    pub names: Arc<std::sync::RwLock<HashMap<SubscriberId, String>>>,
    pub store: Store,
    pub sender: Sender,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
}

impl Forwarder {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let batch = match self.store.outbox(32) {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(error = %error, "Cannot read the dead-letter outbox.");
                    Vec::new()
                }
            };
            let mut pause = if batch.is_empty() {
                Some(POLL_INTERVAL)
            } else {
                None
            };
            for (subscriber, seq, letter) in batch {
                match self.forward(subscriber, seq, &letter).await {
                    Ok(()) => {
                        failures = 0;
                        Metrics::add(&self.metrics.dead_letters_forwarded, 1);
                        if let Err(error) = self.store.forwarded(subscriber, seq) {
                            tracing::error!(error = %error, "Cannot update the dead-letter outbox.");
                        }
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(url = %self.config.url, attempt = failures, error = %error, "Dead-letter forwarding failed; will retry.");
                        pause = Some(backoff(&self.config.retry, failures, rand::random::<f64>()));
                        break;
                    }
                }
            }
            if let Some(pause) = pause {
                tokio::select! {
                    _ = self.wake.notified(), if failures == 0 => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }

    async fn forward(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        letter: &DeadLetter,
    ) -> Result<(), String> {
        let name = self
            .names
            .read()
            .expect("lock")
            .get(&subscriber)
            .cloned()
            .unwrap_or_else(|| format!("#{subscriber}"));
        let event = annotate(&letter.event, &name, letter);
        let mut message = request::encode(&event, Mode::Binary, &self.config.headers)
            .map_err(|error| error.to_string())?;
        let id = format!("dl_{}", webhook_id(seq, subscriber));
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        let timestamp = i64::try_from(timestamp).unwrap_or(i64::MAX);
        request::sign_into(
            &mut message.headers,
            &self.config.secrets,
            &id,
            timestamp,
            &message.body,
        )
        .map_err(|error| error.to_string())?;
        let response = self
            .sender
            .post(
                self.config.url.clone(),
                message.headers,
                message.body,
                self.config.timeout,
            )
            .await
            .map_err(|error| error.to_string())?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status))
        }
    }
}

/// The dead letter's event with the extension attributes that say what failed.
pub fn annotate(event: &Event, subscriber: &str, letter: &DeadLetter) -> Event {
    let mut event = event.clone();
    let mut set = |name: &str, value: AttrValue| {
        event.extensions.retain(|(existing, _)| existing != name);
        event.extensions.push((name.to_owned(), value));
    };
    set(
        attributes::SUBSCRIBER,
        AttrValue::String(subscriber.to_owned()),
    );
    set(attributes::REASON, AttrValue::String(letter.reason.clone()));
    set(
        attributes::ATTEMPTS,
        AttrValue::Integer(i64::from(letter.attempts)),
    );
    if let Some(status) = letter.last_status {
        set(attributes::STATUS, AttrValue::Integer(i64::from(status)));
    }
    event.extensions.sort_by(|left, right| left.0.cmp(&right.0));
    event
}
