//! The only code that touches sled: accepted events, delivery state, attempts, dead letters.
//!
//! Layout: accepted events in the event log ([`log`], append-only segment files under `log/`);
//! everything else in one sled `Db` with a few trees (big-endian keys so scans come out in order):
//! - `events`: `seq` → event record, for the few events kept outside the log: one a retry still
//!   needs after its segment is purged, a replayed dead letter's copy, and what fanout versions
//!   before the log stored here (see [`Store::record`]);
//! - `deliveries`: per subscriber a cursor (`c`), retry states (`r`), the retry schedule (`s`),
//!   dead letters (`d`) and the dead-letter forwarding outbox (`o`);
//! - `attempts`: (`seq`, subscriber, attempt) → what happened;
//! - `delivered`: (subscriber, first seq) → a group of first attempts that succeeded, about 8
//!   bytes each (see [`records::Delivered`]): most attempts, kept without a record of their own;
//! - `meta`: subscriber name → id, disabled subscribers.
//!
//! The dedupe index (hash of `source` and `id` → `seq`, for the dedupe window) is in memory,
//! rebuilt at open from the event log's segment indexes (see [`dedupe`]).
//!
//! A delivery that has never failed has no record of its own: each subscriber's dispatcher reads
//! the event log from its cursor (or, while it keeps up, takes the newest events from memory:
//! [`tail`]). So the cost of accepting an event does not grow with fan-out,
//! and only failing deliveries pay for retry state. Ingest writes go through the group-commit
//! thread in [`committer`]; everything else writes directly.
//!
//! An event record is `[version][accepted_at][subscriber count][subscriber ids][postcard event]`,
//! the same in the log and in the `events` tree.

mod admin;
mod committer;
mod dedupe;
mod log;
pub mod records;
mod relay;
mod schedule;
mod shared;
mod tail;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::StorageConfig;
use crate::event::Event;
use crate::ids::{EventSeq, SubscriberId};

pub use admin::{DeliveryState, Pending};
pub use dedupe::dedupe_key;
use dedupe::DedupeIndex;
use records::keys;
pub use records::{AttemptRecord, DeadLetter, Delivered, RetryState, StoredEvent};
pub use relay::Relay;
use schedule::Schedule;

/// Errors of the store. Any of them means the operation did not happen (or, for a commit, that
/// nothing of it was acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store I/O: {0}")]
    Io(#[source] std::io::Error),
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    #[error("store commit failed: {0}")]
    CommitFailed(String),
    #[error("store is shut down")]
    Closed,
    #[error("the store holds {size} bytes, past its ceiling of {limit} bytes (storage.max_size); deliveries must drain or retention expire first")]
    Full { size: u64, limit: u64 },
}

/// An event to accept, with the subscribers it goes to.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: Event,
    pub subscribers: Vec<SubscriberId>,
}

/// What became of one accepted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored at `seq`, with `subscribers` deliveries pending.
    Stored { seq: EventSeq, subscribers: usize },
    /// The same `source` and `id` were accepted within the dedupe window, as `seq`.
    Duplicate { seq: EventSeq },
}

/// A retry that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueRetry {
    pub seq: EventSeq,
    pub state: RetryState,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    log: Arc<log::Log>,
    /// Events kept outside the log (see [`Store::record`]).
    events: sled::Tree,
    dedupe: Arc<Mutex<DedupeIndex>>,
    deliveries: sled::Tree,
    attempts: sled::Tree,
    delivered: sled::Tree,
    meta: sled::Tree,
    jobs: mpsc::Sender<committer::Job>,
    committed: watch::Receiver<EventSeq>,
    config: StorageConfig,
    committer: Option<thread::JoinHandle<()>>,
    /// The size on disk at the last [`Store::refresh_size`].
    size: std::sync::atomic::AtomicU64,
    /// The retry schedule, rebuilt at open from the retry records.
    schedule: Mutex<Schedule>,
    /// Decoded events the dispatchers of one event's subscribers share.
    shared: shared::Shared,
    /// The newest committed events, which dispatchers that keep up take from memory.
    tail: Arc<tail::Tail>,
}

impl Drop for Inner {
    /// Closes the commit queue and waits for the commit thread, so that once the last handle is
    /// gone the database is closed and its directory can be opened again.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

const META_NEXT_SUBSCRIBER: &[u8] = b"next_subscriber";
const META_SUBSCRIBER: &str = "subscriber/";
const META_DISABLED: &str = "disabled/";
const META_PAUSED: &str = "paused/";
const META_FAILING: &str = "failing/";
const META_DEDUPE_PURGED: &[u8] = b"dedupe_purged_upto";
const META_LOG_START: &[u8] = b"log_start";

fn parse_seq(key: &[u8]) -> Result<EventSeq, StoreError> {
    key.try_into()
        .map(|bytes| EventSeq(u64::from_be_bytes(bytes)))
        .map_err(|_| StoreError::Corrupt("event key".into()))
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its commit thread.
    ///
    /// # Errors
    /// The directory cannot be created or sled cannot open it (for instance another fanout
    /// process holds its lock).
    pub fn open(dir: &Path, config: &StorageConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::Io)?;
        let flush_ms = u64::try_from(config.state_flush_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(flush_ms))
            .open()?;
        let events = db.open_tree("events")?;
        // Where fanout versions before the in-memory index kept it: rebuilt from the log below.
        db.drop_tree("dedupe")?;
        let deliveries = db.open_tree("deliveries")?;
        let attempts = db.open_tree("attempts")?;
        let delivered = db.open_tree("delivered")?;
        let meta = db.open_tree("meta")?;

        // New events take seqs past everything the rest of the store knows of: events kept in
        // sled, and every cursor (under `relaxed` a power cut can leave the log shorter than a
        // cursor that sled flushed; a new event below it would be skipped).
        let mut floor = match events.last()? {
            Some((key, _)) => parse_seq(&key)?.0 + 1,
            None => 1,
        };
        for cursor in cursors(&deliveries) {
            floor = floor.max(cursor?);
        }
        let start = stored_u64(meta.get(META_LOG_START)?);
        let log = Arc::new(log::Log::open(
            &dir.join("log"),
            log::SEGMENT_BYTES,
            floor,
            start,
            records::event_dedupe_key,
        )?);
        let dedupe = Arc::new(Mutex::new(index_recent_events(&log, &events, &meta)?));
        let schedule = schedule_of(&deliveries)?;
        let last = log.next_seq() - 1;
        let (committed_tx, committed) = watch::channel(EventSeq(last));
        let (jobs, receiver) = mpsc::channel(4096);
        let tail = Arc::new(tail::Tail::new(tail::BUDGET_BYTES, tail::MAX_ENTRIES));
        let committer = committer::Committer {
            log: Arc::clone(&log),
            kept: events.clone(),
            dedupe: Arc::clone(&dedupe),
            durability: config.durability,
            flush_interval: config
                .flush_interval
                .max(std::time::Duration::from_millis(1)),
            dedupe_window_ms: millis(config.dedupe_window),
            commit_delay: config.commit_delay,
            committed: committed_tx,
            tail: Arc::clone(&tail),
        };
        let committer = thread::Builder::new()
            .name("fanout-commit".into())
            .spawn(move || committer.run(receiver))
            .map_err(StoreError::Io)?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                log,
                events,
                dedupe,
                deliveries,
                attempts,
                delivered,
                meta,
                jobs,
                committed,
                config: config.clone(),
                committer: Some(committer),
                size: std::sync::atomic::AtomicU64::new(0),
                schedule: Mutex::new(schedule),
                shared: shared::Shared::new(shared::BUDGET_BYTES),
                tail,
            }),
        };
        store.refresh_size()?;
        Ok(store)
    }

    fn dedupe(&self) -> std::sync::MutexGuard<'_, DedupeIndex> {
        self.inner.dedupe.lock().expect("dedupe index lock")
    }

    /// How many events the dedupe index holds.
    pub fn dedupe_index_entries(&self) -> usize {
        self.dedupe().len()
    }

    /// The record of event `seq`: from the log, else from the events kept in sled (an event a
    /// retry needed when its segment was purged, a replayed dead letter's copy, or one stored by
    /// a fanout version before the log).
    fn record(&self, seq: EventSeq) -> Result<Option<Vec<u8>>, StoreError> {
        read_record(&self.inner.log, &self.inner.events, seq)
    }

    /// Calls `visit` with every event record from `from` to `upto` in seq order (those kept in
    /// sled below the log's start, then the log's) until it returns false. `hint`: about how
    /// many records the caller expects to look at.
    fn scan_records(
        &self,
        from: EventSeq,
        upto: EventSeq,
        hint: usize,
        mut visit: impl FnMut(EventSeq, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let start = self.inner.log.start();
        if from.0 < start {
            let below = EventSeq(upto.0.min(start - 1));
            if from <= below {
                for entry in self.inner.events.range(keys::seq(from)..=keys::seq(below)) {
                    let (key, value) = entry?;
                    if !visit(parse_seq(&key)?, &value)? {
                        return Ok(());
                    }
                }
            }
        }
        self.inner
            .log
            .scan(from.0.max(start), upto.0, hint, |seq, bytes| {
                visit(EventSeq(seq), bytes)
            })
    }

    /// Stores events and their pending deliveries atomically, then (under strict durability)
    /// makes them durable before returning. Concurrent calls share one flush. All or nothing.
    ///
    /// # Errors
    /// The write or the flush failed; nothing was acknowledged.
    pub async fn accept(
        &self,
        events: Vec<NewEvent>,
        now_ms: u64,
    ) -> Result<Vec<Accepted>, StoreError> {
        self.accept_relayed(events, now_ms, None).await
    }

    /// [`Store::accept`], answered through `relay` if given: what a request handler on an actix
    /// worker uses, so one commit wakes its thread once (see [`Relay`]).
    ///
    /// # Errors
    /// The write or the flush failed; nothing was acknowledged.
    pub async fn accept_relayed(
        &self,
        events: Vec<NewEvent>,
        now_ms: u64,
        relay: Option<Relay>,
    ) -> Result<Vec<Accepted>, StoreError> {
        if let Some(limit) = self.inner.config.max_size {
            let size = self.inner.size.load(std::sync::atomic::Ordering::Relaxed);
            if size >= limit {
                return Err(StoreError::Full { size, limit });
            }
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(committer::Job {
                events,
                now_ms,
                reply,
                relay,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The highest durable event seq, updated after every commit: the dispatchers' wake-up signal.
    pub fn committed(&self) -> watch::Receiver<EventSeq> {
        self.inner.committed.clone()
    }

    /// Returns the id of every named subscriber, registering new names. A new subscriber starts
    /// after the newest event: it receives what is accepted from now on, not the history.
    ///
    /// # Errors
    /// A store read or write failed.
    pub fn register_subscribers<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, SubscriberId>, StoreError> {
        let mut ids = HashMap::new();
        let mut registered = false;
        for name in names {
            let key = format!("{META_SUBSCRIBER}{name}");
            let id = match self.inner.meta.get(&key)? {
                Some(value) => {
                    SubscriberId(u32::from_be_bytes(value.as_ref().try_into().map_err(
                        |_| StoreError::Corrupt(format!("subscriber id of {name}")),
                    )?))
                }
                None => {
                    let next = self
                        .inner
                        .meta
                        .update_and_fetch(META_NEXT_SUBSCRIBER, |old| {
                            let old = old
                                .and_then(|bytes| bytes.try_into().ok())
                                .map(u32::from_be_bytes)
                                .unwrap_or(0);
                            Some((old + 1).to_be_bytes().to_vec())
                        })?;
                    let id = SubscriberId(u32::from_be_bytes(
                        next.expect("just set")
                            .as_ref()
                            .try_into()
                            .expect("4 bytes"),
                    ));
                    let start = EventSeq(self.inner.committed.borrow().0 + 1);
                    self.set_cursor(id, start)?;
                    self.inner.meta.insert(&key, &id.0.to_be_bytes())?;
                    registered = true;
                    id
                }
            };
            ids.insert(name.to_owned(), id);
        }
        if registered {
            // Acknowledgements wait for the event log only: a durable event must never name a
            // subscriber id that a crash could hand to another name.
            self.inner.db.flush()?;
        }
        Ok(ids)
    }

    /// The first event seq this subscriber has not finished with.
    ///
    /// # Errors
    /// A store read failed.
    pub fn cursor(&self, subscriber: SubscriberId) -> Result<EventSeq, StoreError> {
        let key = keys::subscriber_prefix(keys::CURSOR, subscriber);
        Ok(match self.inner.deliveries.get(key)? {
            Some(value) => EventSeq(u64::from_be_bytes(
                value
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("cursor".into()))?,
            )),
            None => EventSeq(1),
        })
    }

    /// Moves a subscriber's cursor. Not flushed by itself: after a crash the cursor may be a
    /// little behind, which re-delivers (at least once), never skips.
    ///
    /// # Errors
    /// A store write failed.
    pub fn set_cursor(&self, subscriber: SubscriberId, seq: EventSeq) -> Result<(), StoreError> {
        self.inner.deliveries.insert(
            keys::subscriber_prefix(keys::CURSOR, subscriber),
            &keys::seq(seq),
        )?;
        Ok(())
    }

    /// Events for `subscriber` from `from` up to the durable watermark: at most `limit` of them,
    /// looking at most at `scan_limit` records. Returns them (with their `subscribers` left
    /// empty) and the seq to continue from.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn events_for(
        &self,
        subscriber: SubscriberId,
        from: EventSeq,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<StoredEvent>, EventSeq), StoreError> {
        let upto = *self.inner.committed.borrow();
        let mut found = Vec::new();
        let mut next = from;
        if from > upto {
            return Ok((found, next));
        }
        // Kept up: from memory. The log's records at or past its start never change, and a
        // purge never reaches past the lowest cursor, which this reader's is not below.
        if from.0 >= self.inner.log.start() {
            let taken = self
                .inner
                .tail
                .take(subscriber, from, upto, limit, scan_limit, &mut found);
            if taken.held {
                return Ok((found, taken.next));
            }
            // Behind the tail: another subscriber's dispatcher may have read these records
            // already, and left their decodings (with their subscriber lists) for the others.
            let next = self.inner.shared.take_run(
                subscriber,
                (from, upto),
                (limit, scan_limit),
                &mut found,
            );
            if next > from {
                return Ok((found, next));
            }
        }
        let mut scanned = 0;
        self.scan_records(from, upto, limit.min(scan_limit), |seq, value| {
            scanned += 1;
            next = EventSeq(seq.0 + 1);
            if records::event_subscribers(value)?.any(|id| id == subscriber) {
                found.push(records::decode_event_with(
                    seq,
                    value,
                    Some(&self.inner.shared),
                )?);
                if found.len() >= limit {
                    return Ok(false);
                }
            }
            Ok(scanned < scan_limit)
        })?;
        if next == from {
            // No record at all in the range (purged): continue after the watermark.
            next = EventSeq(upto.0 + 1);
        }
        Ok((found, next))
    }

    /// One stored event.
    ///
    /// # Errors
    /// A store read failed or the record is corrupt.
    pub fn event(&self, seq: EventSeq) -> Result<Option<StoredEvent>, StoreError> {
        self.record(seq)?
            .map(|value| records::decode_event(seq, &value))
            .transpose()
    }

    /// Whether this delivery already has a retry or dead-letter record (so a dispatcher reading
    /// the log after a restart must leave it to the retry path).
    ///
    /// # Errors
    /// A store read failed.
    pub fn has_delivery_record(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
    ) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .deliveries
            .contains_key(keys::delivery(keys::RETRY, subscriber, seq))?
            || self
                .inner
                .deliveries
                .contains_key(keys::delivery(keys::DEAD, subscriber, seq))?)
    }

    /// The lowest and highest seq that has a retry or dead-letter record for `subscriber`, if
    /// any: a dispatcher reading the log after a restart looks up [`Store::has_delivery_record`]
    /// only inside this span, so an empty one costs nothing per event.
    ///
    /// # Errors
    /// A store read failed or a key is corrupt.
    pub fn delivery_record_span(
        &self,
        subscriber: SubscriberId,
    ) -> Result<Option<(EventSeq, EventSeq)>, StoreError> {
        let mut span: Option<(EventSeq, EventSeq)> = None;
        for kind in [keys::RETRY, keys::DEAD] {
            let mut records = self
                .inner
                .deliveries
                .scan_prefix(keys::subscriber_prefix(kind, subscriber));
            let ends = [records.next(), records.next_back()];
            for entry in ends.into_iter().flatten() {
                let (key, _) = entry?;
                let (_, seq) = keys::parse_delivery(&key)
                    .ok_or_else(|| StoreError::Corrupt("delivery key".into()))?;
                span = Some(span.map_or((seq, seq), |(low, high)| (low.min(seq), high.max(seq))));
            }
        }
        Ok(span)
    }

    /// The seqs from `from` on that have an attempt recorded for `subscriber` (in the attempts
    /// tree or a delivered group): after a restart, what a dispatcher finds past its cursor
    /// that an earlier run already attempted. `None` when more than `limit` records would have
    /// to be looked at (the caller then assumes any seq may have history).
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn attempted_from(
        &self,
        subscriber: SubscriberId,
        from: EventSeq,
        limit: usize,
    ) -> Result<Option<std::collections::BTreeSet<EventSeq>>, StoreError> {
        let mut found = std::collections::BTreeSet::new();
        let mut looked = 0usize;
        for key in self.inner.attempts.range(keys::seq(from)..).keys() {
            let key = key?;
            looked += 1;
            if looked > limit {
                return Ok(None);
            }
            if let Some((seq, owner, _)) = keys::parse_attempt(&key) {
                if owner == subscriber {
                    found.insert(seq);
                }
            }
        }
        let lowest = EventSeq(from.0.saturating_sub(records::DELIVERED_GROUP_SPAN));
        for group in self.delivered_groups(subscriber, lowest, EventSeq(u64::MAX)) {
            let (first, value) = group?;
            let entries = records::delivered_entries(first, &value)?;
            looked += entries.len();
            if looked > limit {
                return Ok(None);
            }
            found.extend(
                entries
                    .iter()
                    .map(|entry| entry.seq)
                    .filter(|seq| *seq >= from),
            );
        }
        Ok(Some(found))
    }

    /// Retries of `subscriber` due at `now_ms`, oldest first, skipping `skip`.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn due_retries(
        &self,
        subscriber: SubscriberId,
        now_ms: u64,
        limit: usize,
        skip: impl Fn(EventSeq) -> bool,
    ) -> Result<Vec<DueRetry>, StoreError> {
        let seqs = self.schedule().due(subscriber, now_ms, limit, skip);
        let mut due = Vec::with_capacity(seqs.len());
        for seq in seqs {
            match self
                .inner
                .deliveries
                .get(keys::delivery(keys::RETRY, subscriber, seq))?
            {
                Some(value) => due.push(DueRetry {
                    seq,
                    state: records::decode(&value)?,
                }),
                // Never expected: the schedule follows every write of a retry record. Checked
                // again under the lock that writers hold, so a retry written since stays.
                None => {
                    let mut schedule = self.schedule();
                    let key = keys::delivery(keys::RETRY, subscriber, seq);
                    if !self.inner.deliveries.contains_key(key)? {
                        schedule.remove(subscriber, seq);
                    }
                }
            }
        }
        Ok(due)
    }

    /// When the earliest scheduled retry of `subscriber` not excluded by `skip` is due.
    pub fn next_retry_at(
        &self,
        subscriber: SubscriberId,
        skip: impl Fn(EventSeq) -> bool,
    ) -> Option<u64> {
        self.schedule().next(subscriber, skip)
    }

    /// The schedule in memory. A writer of retry records holds it across its sled write, so the
    /// schedule follows the writes in the order sled applied them.
    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.inner
            .schedule
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many retries are scheduled, for all subscribers.
    pub fn scheduled_retries(&self) -> usize {
        self.schedule().len()
    }

    /// Retry states of a subscriber, in seq order (for inspection and tests).
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn retries(
        &self,
        subscriber: SubscriberId,
    ) -> Result<Vec<(EventSeq, RetryState)>, StoreError> {
        self.scan_deliveries(keys::RETRY, subscriber)
    }

    /// Dead letters of a subscriber, in seq order.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn dead_letters(
        &self,
        subscriber: SubscriberId,
    ) -> Result<Vec<(EventSeq, DeadLetter)>, StoreError> {
        self.scan_deliveries(keys::DEAD, subscriber)
    }

    fn scan_deliveries<T: serde::de::DeserializeOwned>(
        &self,
        kind: u8,
        subscriber: SubscriberId,
    ) -> Result<Vec<(EventSeq, T)>, StoreError> {
        self.inner
            .deliveries
            .scan_prefix(keys::subscriber_prefix(kind, subscriber))
            .map(|entry| {
                let (key, value) = entry?;
                let (_, seq) = keys::parse_delivery(&key)
                    .ok_or_else(|| StoreError::Corrupt("delivery key".into()))?;
                Ok((seq, records::decode(&value)?))
            })
            .collect()
    }

    /// Records (or moves) a delivery's retry: one write of its retry record, which sled makes
    /// atomic by itself; the schedule in memory follows it.
    ///
    /// # Errors
    /// A store write failed.
    pub fn schedule_retry(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        state: &RetryState,
    ) -> Result<(), StoreError> {
        let value = records::encode(state)?;
        // Held across the write, so the schedule follows the writes in their order.
        let mut schedule = self.schedule();
        self.inner
            .deliveries
            .insert(keys::delivery(keys::RETRY, subscriber, seq), value)?;
        schedule.set(subscriber, seq, state.next_attempt_ms);
        Ok(())
    }

    /// A delivery succeeded: its retry record (if it had one) goes.
    ///
    /// # Errors
    /// A store write failed.
    pub fn complete(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        previous: Option<&RetryState>,
    ) -> Result<(), StoreError> {
        if previous.is_some() {
            let mut schedule = self.schedule();
            self.inner
                .deliveries
                .remove(keys::delivery(keys::RETRY, subscriber, seq))?;
            schedule.remove(subscriber, seq);
        }
        Ok(())
    }

    /// Moves a delivery to the dead letters (and to the forwarding outbox when `forward`), in one
    /// atomic write, and flushes: a dead letter is never lost once reported.
    ///
    /// # Errors
    /// A store write failed.
    pub fn dead_letter(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        letter: &DeadLetter,
        previous: Option<&RetryState>,
        forward: bool,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        if previous.is_some() {
            batch.remove(&keys::delivery(keys::RETRY, subscriber, seq));
        }
        batch.insert(
            &keys::delivery(keys::DEAD, subscriber, seq),
            records::encode(letter)?,
        );
        if forward {
            batch.insert(&keys::delivery(keys::OUTBOX, subscriber, seq), &[]);
        }
        let mut schedule = self.schedule();
        self.inner.deliveries.apply_batch(batch)?;
        if previous.is_some() {
            schedule.remove(subscriber, seq);
        }
        Ok(())
    }

    /// Dead letters waiting to be forwarded to the dead-letter URL, oldest first per subscriber.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn outbox(
        &self,
        limit: usize,
    ) -> Result<Vec<(SubscriberId, EventSeq, DeadLetter)>, StoreError> {
        let mut found = Vec::new();
        for entry in self
            .inner
            .deliveries
            .scan_prefix([keys::OUTBOX])
            .take(limit)
        {
            let (key, _) = entry?;
            let (subscriber, seq) = keys::parse_delivery(&key)
                .ok_or_else(|| StoreError::Corrupt("outbox key".into()))?;
            if let Some(value) =
                self.inner
                    .deliveries
                    .get(keys::delivery(keys::DEAD, subscriber, seq))?
            {
                found.push((subscriber, seq, records::decode(&value)?));
            } else {
                self.inner.deliveries.remove(key)?;
            }
        }
        Ok(found)
    }

    /// A dead letter reached the dead-letter URL.
    ///
    /// # Errors
    /// A store write failed.
    pub fn forwarded(&self, subscriber: SubscriberId, seq: EventSeq) -> Result<(), StoreError> {
        self.inner
            .deliveries
            .remove(keys::delivery(keys::OUTBOX, subscriber, seq))?;
        Ok(())
    }

    /// Appends an attempt to a delivery's history, numbered after the last one recorded (a
    /// replayed dead letter or an attempt repeated after a crash never overwrites history).
    /// Without `history` (the caller knows this is the delivery's first attempt ever) it is
    /// number 1, and the costly backward scan for the last number is skipped.
    ///
    /// # Errors
    /// A store write failed.
    pub fn record_attempt(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        attempt: &AttemptRecord,
        history: bool,
    ) -> Result<(), StoreError> {
        // Numbers start at 1 and have no gaps: without the first number there is no history,
        // and a point lookup is far cheaper than sled's backward iteration. Attempt 1 may be a
        // first success kept in a delivered group; the attempts tree then goes on from 2.
        let mut last = 0;
        if history {
            let mut recorded = self
                .inner
                .attempts
                .contains_key(keys::attempt(seq, subscriber, 1))?;
            if !recorded && self.delivered_attempt(subscriber, seq)?.is_some() {
                last = 1;
                recorded = self
                    .inner
                    .attempts
                    .contains_key(keys::attempt(seq, subscriber, 2))?;
            }
            if recorded {
                let prefix = keys::attempt_prefix(seq, subscriber);
                if let Some(entry) = self.inner.attempts.scan_prefix(prefix).next_back() {
                    let (key, _) = entry?;
                    last = keys::parse_attempt(&key).map_or(last, |(_, _, number)| number);
                }
            }
        }
        self.inner.attempts.insert(
            keys::attempt(seq, subscriber, last.saturating_add(1)),
            records::encode(attempt)?,
        )?;
        Ok(())
    }

    /// Records first attempts that succeeded (each the first attempt ever of its delivery, as
    /// [`Store::record_attempt`] without `history`), in compact groups: one sled write per group
    /// instead of one record per attempt.
    ///
    /// The groups are plain inserts, not a `sled::Batch`: each group stands on its own (a crash
    /// that keeps only some of them re-delivers the rest, as a cursor not yet written does), and
    /// sled seals its I/O buffer twice for every batch, each a write and a wake-up of all of its
    /// pool threads. With 16 dispatchers writing every 20 ms (as they did then), each pool thread
    /// woke about 1,100 times a second, and those threads took about 8 % of the router's CPU.
    ///
    /// # Errors
    /// A store write failed.
    pub fn record_delivered(
        &self,
        subscriber: SubscriberId,
        delivered: &mut [records::Delivered],
    ) -> Result<(), StoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        for (first, value) in records::delivered_groups(delivered)? {
            self.inner
                .delivered
                .insert(keys::delivered(subscriber, first), value)?;
        }
        Ok(())
    }

    /// The first attempt at `seq` if it is kept in a delivered group.
    fn delivered_attempt(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        let lowest = EventSeq(seq.0.saturating_sub(records::DELIVERED_GROUP_SPAN));
        for group in self.delivered_groups(subscriber, lowest, seq).rev() {
            let (first, value) = group?;
            if let Some(found) = records::find_delivered(first, &value, seq)? {
                return Ok(Some(found.attempt()));
            }
        }
        Ok(None)
    }

    /// `subscriber`'s delivered groups whose first seq is from `lowest` to `highest`, as (first
    /// seq, value), in seq order.
    fn delivered_groups(
        &self,
        subscriber: SubscriberId,
        lowest: EventSeq,
        highest: EventSeq,
    ) -> impl DoubleEndedIterator<Item = Result<(EventSeq, sled::IVec), StoreError>> {
        self.inner
            .delivered
            .range(keys::delivered(subscriber, lowest)..=keys::delivered(subscriber, highest))
            .map(|entry| {
                let (key, value) = entry?;
                let (_, first) = keys::parse_delivered(&key)
                    .ok_or_else(|| StoreError::Corrupt("delivered group key".into()))?;
                Ok((first, value))
            })
    }

    /// Every attempt of one delivery, in order.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn attempts(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut attempts: Vec<AttemptRecord> = self
            .delivered_attempt(subscriber, seq)?
            .into_iter()
            .collect();
        for entry in self
            .inner
            .attempts
            .scan_prefix(keys::attempt_prefix(seq, subscriber))
        {
            attempts.push(records::decode_attempt(&entry?.1)?);
        }
        Ok(attempts)
    }

    /// Marks a subscriber disabled (`Some(reason)`) or enabled (`None`); survives restarts.
    ///
    /// # Errors
    /// A store write failed.
    pub fn set_disabled(
        &self,
        subscriber: SubscriberId,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = format!("{META_DISABLED}{}", subscriber.0);
        match reason {
            Some(reason) => self.inner.meta.insert(key, reason.as_bytes())?,
            None => self.inner.meta.remove(key)?,
        };
        self.inner.meta.flush()?;
        Ok(())
    }

    /// Records since when a subscriber has failed without a success in between (`None`: it is
    /// not failing), so that `disable_after` counts across restarts.
    ///
    /// # Errors
    /// The store failed.
    pub fn set_failing_since(
        &self,
        subscriber: SubscriberId,
        since_ms: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = format!("{META_FAILING}{}", subscriber.0);
        match since_ms {
            Some(since_ms) => self.inner.meta.insert(key, &since_ms.to_be_bytes())?,
            None => self.inner.meta.remove(key)?,
        };
        Ok(())
    }

    /// See [`Store::set_failing_since`].
    ///
    /// # Errors
    /// The store failed.
    pub fn failing_since(&self, subscriber: SubscriberId) -> Result<Option<u64>, StoreError> {
        let key = format!("{META_FAILING}{}", subscriber.0);
        Ok(self.inner.meta.get(key)?.and_then(|value| {
            <[u8; 8]>::try_from(value.as_ref())
                .ok()
                .map(u64::from_be_bytes)
        }))
    }

    /// Why a subscriber is disabled, if it is.
    ///
    /// # Errors
    /// A store read failed.
    pub fn disabled(&self, subscriber: SubscriberId) -> Result<Option<String>, StoreError> {
        let key = format!("{META_DISABLED}{}", subscriber.0);
        Ok(self
            .inner
            .meta
            .get(key)?
            .map(|value| String::from_utf8_lossy(&value).into_owned()))
    }

    /// Removes what has outlived its window: dedupe entries older than `dedupe_window`, and
    /// events (with their attempts) older than `retention` that every subscriber is past and
    /// that no retry still needs. Returns how many events were removed.
    ///
    /// # Errors
    /// A store read or write failed.
    pub fn purge_expired(&self, now_ms: u64) -> Result<usize, StoreError> {
        let dedupe_cutoff = now_ms.saturating_sub(millis(self.inner.config.dedupe_window));
        let retention_cutoff = now_ms.saturating_sub(millis(self.inner.config.retention));
        let min_cursor = cursors(&self.inner.deliveries)
            .filter_map(Result::ok)
            .min()
            .unwrap_or(u64::MAX);
        // Dedupe entries, from where the last pass stopped.
        let from = stored_u64(self.inner.meta.get(META_DEDUPE_PURGED)?);
        let mut purged_upto = from;
        self.scan_records(EventSeq(from), EventSeq(u64::MAX), 256, |seq, value| {
            if records::event_accepted_at(value)? >= dedupe_cutoff {
                return Ok(false);
            }
            let key = records::event_dedupe_key(value)?;
            self.dedupe().remove(key, seq);
            purged_upto = seq.0 + 1;
            Ok(true)
        })?;
        if purged_upto != from {
            self.inner
                .meta
                .insert(META_DEDUPE_PURGED, &purged_upto.to_be_bytes())?;
        }
        // Events and their attempts, oldest first, while past retention and no longer needed:
        // first those kept in sled, then the log's.
        let needed = |seq: EventSeq, value: &[u8]| -> Result<bool, StoreError> {
            for subscriber in records::event_subscribers(value)? {
                if self.inner.deliveries.contains_key(keys::delivery(
                    keys::RETRY,
                    subscriber,
                    seq,
                ))? {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let forget = |seq: EventSeq, value: &[u8]| -> Result<(), StoreError> {
            if seq.0 >= purged_upto {
                let key = records::event_dedupe_key(value)?;
                self.dedupe().remove(key, seq);
            }
            for attempt in self.inner.attempts.scan_prefix(keys::seq(seq)).keys() {
                self.inner.attempts.remove(attempt?)?;
            }
            Ok(())
        };
        let mut removed = 0;
        for entry in self.inner.events.iter() {
            let (key, value) = entry?;
            let seq = parse_seq(&key)?;
            if records::event_accepted_at(&value)? >= retention_cutoff || seq.0 >= min_cursor {
                break;
            }
            if needed(seq, &value)? {
                continue;
            }
            forget(seq, &value)?;
            self.inner.events.remove(key)?;
            removed += 1;
        }
        let log_start = self.inner.log.start();
        let mut new_start = log_start;
        self.inner
            .log
            .scan(log_start, u64::MAX, 256, |seq, value| {
                let seq = EventSeq(seq);
                if records::event_accepted_at(value)? >= retention_cutoff || seq.0 >= min_cursor {
                    return Ok(false);
                }
                if needed(seq, value)? {
                    // A retry still needs it: keep a copy outside the log.
                    self.inner.events.insert(keys::seq(seq), value)?;
                } else {
                    forget(seq, value)?;
                    removed += 1;
                }
                new_start = seq.0 + 1;
                Ok(true)
            })?;
        if new_start > log_start {
            // Durable before any segment goes: a restart must not read a deleted range again.
            self.inner
                .meta
                .insert(META_LOG_START, &new_start.to_be_bytes())?;
            self.inner.db.flush()?;
            self.inner.log.purge_before(new_start)?;
        }
        // Delivered groups whose events are all gone.
        let kept_from = match self.inner.events.first()? {
            Some((key, _)) => parse_seq(&key)?.0,
            None => u64::MAX,
        };
        self.purge_delivered(EventSeq(new_start.min(kept_from)))?;
        Ok(removed)
    }

    /// Removes every delivered group that holds only seqs below `bound`.
    fn purge_delivered(&self, bound: EventSeq) -> Result<(), StoreError> {
        let delivered = &self.inner.delivered;
        let mut from = keys::delivered(SubscriberId(0), EventSeq(0));
        while let Some(entry) = delivered.range(from..).next() {
            let (key, _) = entry?;
            let (subscriber, _) = keys::parse_delivered(&key)
                .ok_or_else(|| StoreError::Corrupt("delivered group key".into()))?;
            if let Some(highest) = bound.0.checked_sub(1) {
                for group in self.delivered_groups(subscriber, EventSeq(0), EventSeq(highest)) {
                    let (first, value) = group?;
                    if records::delivered_group_last(first, &value)? < bound {
                        delivered.remove(keys::delivered(subscriber, first))?;
                    }
                }
            }
            let Some(next) = subscriber.0.checked_add(1) else {
                break;
            };
            from = keys::delivered(SubscriberId(next), EventSeq(0));
        }
        Ok(())
    }

    /// Flushes everything to disk.
    ///
    /// # Errors
    /// The flush failed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.log.sync()?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Bytes the store takes on disk.
    ///
    /// # Errors
    /// The size could not be read.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()? + self.inner.log.size())
    }

    /// Measures the size on disk again, for the ceiling `accept` enforces (`storage.max_size`).
    /// Called when the store opens and then every second.
    ///
    /// # Errors
    /// The store's files could not be measured.
    pub fn refresh_size(&self) -> Result<u64, StoreError> {
        let size = self.size_on_disk()?;
        self.inner
            .size
            .store(size, std::sync::atomic::Ordering::Relaxed);
        Ok(size)
    }
}

/// A `u64` the store keeps as 8 big-endian bytes (a mark in `meta` or `dedupe`); 0 when it is not
/// there or has another layout.
fn stored_u64(value: Option<sled::IVec>) -> u64 {
    value
        .and_then(|value| value.as_ref().try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The retry schedule of every subscriber, from the retry records. The schedule entries that
/// fanout versions before the in-memory schedule kept in sled go.
fn schedule_of(deliveries: &sled::Tree) -> Result<Schedule, StoreError> {
    let mut schedule = Schedule::default();
    for entry in deliveries.scan_prefix([keys::RETRY]) {
        let (key, value) = entry?;
        let (subscriber, seq) =
            keys::parse_delivery(&key).ok_or_else(|| StoreError::Corrupt("retry key".into()))?;
        let state: RetryState = records::decode(&value)?;
        schedule.set(subscriber, seq, state.next_attempt_ms);
    }
    let legacy: Vec<sled::IVec> = deliveries
        .scan_prefix([keys::SCHEDULE])
        .keys()
        .collect::<Result<_, _>>()?;
    for key in legacy {
        deliveries.remove(key)?;
    }
    Ok(schedule)
}

/// Every subscriber's cursor (values of another layout skipped).
fn cursors(deliveries: &sled::Tree) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
    deliveries
        .scan_prefix([keys::CURSOR])
        .filter_map(|entry| match entry {
            Ok((_, value)) => value
                .as_ref()
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
                .map(Ok),
            Err(error) => Some(Err(StoreError::from(error))),
        })
}

/// The record of event `seq` from the log, else from the events kept in sled.
fn read_record(
    log: &log::Log,
    kept: &sled::Tree,
    seq: EventSeq,
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(record) = log.get(seq.0)? {
        return Ok(Some(record));
    }
    Ok(kept.get(keys::seq(seq))?.map(|value| value.to_vec()))
}

/// The dedupe index of the events from the dedupe purge mark on (those older are past the
/// window): the keys the log's segment indexes hold, after those of the events kept in sled.
fn index_recent_events(
    log: &log::Log,
    kept: &sled::Tree,
    meta: &sled::Tree,
) -> Result<DedupeIndex, StoreError> {
    let from = stored_u64(meta.get(META_DEDUPE_PURGED)?);
    let mut index = DedupeIndex::default();
    for entry in kept.range(keys::seq(EventSeq(from))..) {
        let (key, value) = entry?;
        index.insert(records::event_dedupe_key(&value)?, parse_seq(&key)?);
    }
    log.take_keys(from, |seq, key| index.insert(key, EventSeq(seq)));
    Ok(index)
}

/// Milliseconds of a duration, saturating.
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
