//! Operational events: what happens to subscribers (disabled, circuit opened or closed, a
//! delivery dead-lettered) as CloudEvents of type `dev.fanout.*`, routed by fanout's own routing
//! table through the routes marked `operational: true` (so a catch-all route does not get them
//! by surprise), to a chat relay or a pager like any event.
//!
//! Loops are impossible by construction: an operational event is never delivered to the
//! subscriber it is about, and a dead-lettered operational event emits nothing. They are stored
//! and delivered with the usual guarantees once accepted; one raised while the process stops may
//! be lost (they describe the process, they are not producers' data).

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event::{AttrValue, Data, Event};
use crate::ids::SubscriberId;
use crate::routing::RoutingTable;
use crate::store::{self, NewEvent, Store};

/// Every operational event type starts with this.
pub const TYPE_PREFIX: &str = "dev.fanout.";
/// Their `source`.
pub const SOURCE: &str = "/fanout";
/// The extension attribute naming the subscriber the event is about (also in `subject`).
pub const SUBSCRIBER_EXTENSION: &str = "fanoutsubscriber";

pub const SUBSCRIBER_DISABLED: &str = "dev.fanout.subscriber.disabled";
pub const CIRCUIT_OPENED: &str = "dev.fanout.circuit.opened";
pub const CIRCUIT_CLOSED: &str = "dev.fanout.circuit.closed";
pub const DELIVERY_DEAD_LETTERED: &str = "dev.fanout.delivery.dead_lettered";

/// Hands operational events to the task that routes and stores them.
#[derive(Clone, Debug)]
pub struct Emitter {
    queue: mpsc::UnboundedSender<(Event, SubscriberId)>,
}

impl Emitter {
    /// Raises an event of `ty` about `subscriber` with JSON `data`.
    pub fn emit(&self, ty: &str, subscriber: (SubscriberId, &str), data: serde_json::Value) {
        let now = std::time::SystemTime::now();
        let attributes = vec![
            ("specversion".to_owned(), AttrValue::String("1.0".into())),
            (
                "id".to_owned(),
                AttrValue::String(format!("{:032x}", rand::random::<u128>())),
            ),
            ("source".to_owned(), AttrValue::String(SOURCE.into())),
            ("type".to_owned(), AttrValue::String(ty.into())),
            ("subject".to_owned(), AttrValue::String(subscriber.1.into())),
            (
                "time".to_owned(),
                AttrValue::String(humantime::format_rfc3339_millis(now).to_string()),
            ),
            (
                "datacontenttype".to_owned(),
                AttrValue::String("application/json".into()),
            ),
            (
                SUBSCRIBER_EXTENSION.to_owned(),
                AttrValue::String(subscriber.1.into()),
            ),
        ];
        let data = Data::Json(data.to_string().into_bytes());
        match Event::from_attributes(attributes, Some(data)) {
            Ok(event) => {
                // The receiver is gone only during shutdown.
                let _ = self.queue.send((event, subscriber.0));
            }
            Err(errors) => {
                tracing::error!(errors = ?errors, "Cannot build an operational event.");
            }
        }
    }
}

/// Whether an event is an operational one (its dead letters raise nothing).
pub fn is_operational(event: &Event) -> bool {
    event.source == SOURCE && event.ty.starts_with(TYPE_PREFIX)
}

/// Starts the task that routes and stores operational events until `shutdown`.
pub fn start(
    routing: Arc<ArcSwap<RoutingTable>>,
    store: Store,
    shutdown: CancellationToken,
) -> (Emitter, JoinHandle<()>) {
    let (queue, mut events) = mpsc::unbounded_channel::<(Event, SubscriberId)>();
    let task = tokio::spawn(async move {
        loop {
            let (event, about) = tokio::select! {
                next = events.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
                () = shutdown.cancelled() => return,
            };
            let mut subscribers = routing.load().operational_subscribers_for(&event);
            subscribers.retain(|id| *id != about);
            let ty = event.ty.clone();
            let routed = subscribers.len();
            let result = store
                .accept(vec![NewEvent { event, subscribers }], store::now_ms())
                .await;
            match result {
                Ok(_) => {
                    tracing::debug!(r#type = %ty, subscribers = routed, "Operational event stored.")
                }
                Err(error) => {
                    tracing::error!(r#type = %ty, error = %error, "Cannot store an operational event.")
                }
            }
        }
    });
    (Emitter { queue }, task)
}
