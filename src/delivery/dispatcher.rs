//! One dispatcher per subscriber: claims due work (retries first, then new events from its cursor
//! in the log), runs up to `concurrency` attempts at once, and applies each outcome to the store.
//!
//! A dispatcher owns its subscriber's progress alone, so a slow or dead subscriber only ever
//! fills its own attempt slots. Its cursor is the lowest log position it has not finished with;
//! after a crash it resumes there (at least once: what was in flight is sent again).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::ids::{webhook_id, EventSeq, SubscriberId};
use crate::metrics::Metrics;
use crate::store::{self, AttemptRecord, DeadLetter, RetryState, Store, StoreError, StoredEvent};

use super::adaptive::Adaptive;
use super::breaker::Breaker;
use super::control::{Attempted, Control};
use super::outcome::Outcome;
use super::policy::{decide, Decision};
use super::rate_limit::TokenBucket;
use super::sender::Sender;
use crate::operational::{self, Emitter};

mod attempt;
mod health;
mod ordering;

use health::{disable, HandshakeState};
use ordering::KeyOrder;

/// Most events an ordered dispatcher holds behind busy keys before it stops reading the log.
const MAX_HELD: usize = 10_000;
/// Events read from the log per store call.
const READ_BATCH: usize = 256;
/// Log records looked at per store call (bounds the work of skipping other subscribers' events).
const SCAN_LIMIT: usize = 4096;
/// How often a moving cursor is written at most. It is not flushed by itself anyway (a crash
/// may re-deliver what finished since the last flush), and one write per finished attempt cost
/// a tenth of the delivery path.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_millis(50);
/// Most attempt records a starting dispatcher looks at to learn which events past its cursor
/// an earlier run attempted (past it, any event is assumed to have been).
const ATTEMPTED_SCAN_LIMIT: usize = 65_536;
/// Pause after a store error before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Everything a dispatcher and its attempts share.
pub struct Context {
    pub id: SubscriberId,
    /// The subscriber's policy (swapped on reload) and its operator-visible state.
    pub control: Arc<Control>,
    pub store: Store,
    pub sender: Sender,
    pub metrics: Arc<Metrics>,
    /// Woken when a dead letter is queued for forwarding (`None`: no dead-letter URL).
    pub dead_letter_outbox: Option<Arc<Notify>>,
    /// Where operational events go (`None` in tests that do not need them).
    pub events: Option<Emitter>,
    /// How long shutdown waits for attempts in flight.
    pub grace: Duration,
    /// The subscriber's OAuth 2.0 token cache.
    pub auth: super::auth::Authenticator,
    /// The client built for the endpoint's TLS settings (client certificate, roots).
    pub tls_sender: std::sync::Mutex<Option<(crate::config::EndpointTls, Sender)>>,
    /// How many dispatchers have attempts in flight (adaptive concurrency's queue is shared
    /// among them).
    pub busy: Arc<AtomicUsize>,
}

impl Context {
    /// The HTTP client for the policy in force: the shared one, or one with the endpoint's TLS
    /// settings (built once per settings).
    ///
    /// # Errors
    /// The client certificate or roots are not usable.
    pub fn sender_for(&self, tls: Option<&crate::config::EndpointTls>) -> Result<Sender, String> {
        let Some(tls) = tls else {
            return Ok(self.sender.clone());
        };
        let mut cached = self.tls_sender.lock().expect("lock");
        if let Some((settings, sender)) = cached.as_ref() {
            if settings == tls {
                return Ok(sender.clone());
            }
        }
        let sender = self
            .sender
            .for_endpoint(tls)
            .map_err(|error| format!("the endpoint's TLS settings are not usable: {error}"))?;
        *cached = Some((tls.clone(), sender.clone()));
        Ok(sender)
    }
}

struct Job {
    seq: EventSeq,
    event: Arc<Event>,
    /// `None` for a first attempt read from the log.
    retry: Option<RetryState>,
    accepted_at_ms: u64,
    /// The other members of a batch, each with an empty `rest` (none: a single delivery).
    rest: Vec<Job>,
}

impl Job {
    fn new(stored: StoredEvent, retry: Option<RetryState>) -> Job {
        Job {
            seq: stored.seq,
            event: stored.event,
            retry,
            accepted_at_ms: stored.accepted_at_ms,
            rest: Vec::new(),
        }
    }

    /// A batch of jobs (at least one).
    fn batch(mut members: Vec<Job>) -> Job {
        let mut head = members.remove(0);
        head.rest = members;
        head
    }

    /// Every member: the head, then the rest.
    fn members(&self) -> impl Iterator<Item = &Job> {
        std::iter::once(self).chain(self.rest.iter())
    }
}

struct Done {
    job: Job,
    outcome: Outcome,
    attempt: AttemptRecord,
}

/// The deliveries an attempt task carried (seq and retry state), given back if it panics. The
/// head apart from the rest, as in [`Job`], so that a single delivery's (the usual case) costs no
/// allocation.
struct Carried {
    head: (EventSeq, Option<RetryState>),
    rest: Vec<(EventSeq, Option<RetryState>)>,
}

impl Carried {
    fn of(job: &Job) -> Carried {
        Carried {
            head: (job.seq, job.retry.clone()),
            rest: job
                .rest
                .iter()
                .map(|member| (member.seq, member.retry.clone()))
                .collect(),
        }
    }
}

/// Whether two retries are due on the same schedule (members of one failed batch).
fn same_schedule(a: Option<&RetryState>, b: Option<&RetryState>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.attempts == b.attempts
                && a.first_attempt_ms == b.first_attempt_ms
                && a.next_attempt_ms == b.next_attempt_ms
        }
        _ => false,
    }
}

/// The dispatcher of one subscriber.
pub struct Dispatcher {
    context: Arc<Context>,
    /// Attempt tasks: their result, or (after a panic, a bug) the members they carried.
    tasks: JoinSet<Result<Done, Carried>>,
    /// Next log position to read.
    scan_pos: EventSeq,
    /// Read from the log, not started yet.
    buffer: VecDeque<StoredEvent>,
    fresh_in_flight: BTreeSet<EventSeq>,
    retries_in_flight: HashSet<EventSeq>,
    persisted_cursor: EventSeq,
    /// First attempts that succeeded and are not recorded yet: written as one compact group
    /// with the next cursor write, and always before it (a cursor past a delivery means its
    /// attempt is recorded; a crash before both sends it again, as any delivery in flight).
    delivered: Vec<store::Delivered>,
    /// When the cursor was last written, and when a newer one is due to be (if it moved since).
    cursor_written_at: tokio::time::Instant,
    cursor_due: Option<tokio::time::Instant>,
    /// Log positions up to here may already have a retry or dead-letter record (from before a
    /// restart); newer ones cannot, so they skip that lookup.
    recovered_upto: EventSeq,
    /// Of those, the ones past the cursor that an earlier run attempted (`None`: too many to
    /// list, so all of them may have been): the others' first attempt here is attempt 1.
    attempted: Option<BTreeSet<EventSeq>>,
    /// The seqs that had such a record at start (lowest, highest): outside it, none has one.
    record_span: Option<(EventSeq, EventSeq)>,
    /// The rate limit and the circuit breaker of the policy in force.
    bucket: Option<TokenBucket>,
    breaker: Option<Breaker>,
    /// Whether an attempt may start now.
    gate: Gate,
    handshake: HandshakeState,
    /// Per-key ordering, when the subscriber asks for it (taken from the policy at start).
    order: Option<KeyOrder>,
    /// When the partial batch waiting for more events is due anyway.
    batch_due: Option<u64>,
    /// The half-open circuit granted a probe; the next job started is it.
    probe_granted: bool,
    /// The head seq of the probe in flight.
    probe_seq: Option<EventSeq>,
    /// The adaptive concurrency limit (`None`: the policy's `concurrency` is the limit).
    adaptive: Option<Adaptive>,
    /// Whether this dispatcher counts in `Context::busy` (it has attempts in flight).
    counted_busy: bool,
}

/// What holds attempts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Open,
    /// The rate limit or the open circuit, until this time (ms).
    Until(u64),
    /// The half-open circuit's probe is in flight.
    Probe,
}

impl Dispatcher {
    /// Prepares the dispatcher from the store's state.
    ///
    /// # Errors
    /// The store could not be read.
    pub fn new(context: Context) -> Result<Dispatcher, StoreError> {
        let cursor = context.store.cursor(context.id)?;
        let disabled = context.control.disabled();
        if let Some(reason) = &disabled {
            tracing::error!(subscriber = %context.control.name, reason = %reason, "Subscriber is disabled; its deliveries are kept pending.");
        }
        let recovered_upto = *context.store.committed().borrow();
        let record_span = context.store.delivery_record_span(context.id)?;
        let attempted = context
            .store
            .attempted_from(context.id, cursor, ATTEMPTED_SCAN_LIMIT)?;
        let order = match &context.control.config().ordering {
            Some(attribute) => {
                // Deliveries waiting for a retry hold their keys from the start.
                let mut order = KeyOrder::new(attribute);
                for (seq, _) in context.store.retries(context.id)? {
                    if let Some(stored) = context.store.event(seq)? {
                        order.block(&stored.event, seq);
                    }
                }
                Some(order)
            }
            None => None,
        };
        Ok(Dispatcher {
            order,
            batch_due: None,
            probe_granted: false,
            probe_seq: None,
            adaptive: None,
            counted_busy: false,
            context: Arc::new(context),
            tasks: JoinSet::new(),
            scan_pos: cursor,
            buffer: VecDeque::new(),
            fresh_in_flight: BTreeSet::new(),
            retries_in_flight: HashSet::new(),
            persisted_cursor: cursor,
            delivered: Vec::new(),
            cursor_written_at: tokio::time::Instant::now(),
            cursor_due: None,
            recovered_upto,
            attempted,
            record_span,
            bucket: None,
            breaker: None,
            gate: Gate::Open,
            handshake: HandshakeState::default(),
        })
    }

    /// Delivers until `shutdown`, then waits up to the grace period for attempts in flight.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut committed = self.context.store.committed();
        // The waits that outlive one pass of the loop are made once (and the cursor's timer
        // moved), not made and dropped on every pass: each is a registration and its removal.
        let stopped = shutdown.cancelled();
        tokio::pin!(stopped);
        let control = Arc::clone(&self.context.control);
        let woken = control.wake.notified();
        tokio::pin!(woken);
        let cursor_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(cursor_timer);
        let mut cursor_timer_at = None;
        loop {
            // Checked here as well as waited on below: the waits are polled in order, and a
            // dispatcher whose attempts keep finishing would not reach the shutdown's.
            if shutdown.is_cancelled() {
                break;
            }
            committed.borrow_and_update();
            let validated = tokio::select! {
                biased;
                validated = self.validate() => validated,
                () = &mut stopped => break,
            };
            if !validated {
                // `validate` set the gate to its next try.
            } else if let Err(error) = self.fill() {
                tracing::error!(subscriber = %self.context.control.name, error = %error, "Dispatcher cannot read the store.");
                tokio::select! {
                    _ = tokio::time::sleep(STORE_ERROR_PAUSE) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            // After `fill`, not when attempts finish: a dispatcher whose last attempt in flight
            // has just finished is idle only until `fill` starts the next, and an idle one
            // writes at once. Written as attempts finished, a subscriber with one attempt in
            // flight (its adaptive limit at 1) wrote to sled for every delivery.
            self.save_cursor();
            // A free slot after `fill` means the log was read to the end as `fill` saw it. Wait
            // for a newer commit: `changed` fires at once if one came after the top of this
            // loop, so a commit racing with `fill` is never missed. (Waiting only when
            // `scan_pos` is past the watermark read *here* lost that race: the dispatcher
            // then slept with no task and no timer, and stalled.)
            let slot_free = self.in_flight() < self.limit() && self.gate == Gate::Open;
            let retry_timer = match self.gate {
                Gate::Open => match (self.retry_timer(), self.batch_due) {
                    (Some(retry), Some(batch)) => Some(retry.min(batch)),
                    (retry, batch) => retry.or(batch),
                },
                Gate::Until(at_ms) => Some(at_ms),
                Gate::Probe => None,
            };
            if self.cursor_due != cursor_timer_at {
                if let Some(at) = self.cursor_due {
                    cursor_timer.as_mut().reset(at);
                }
                cursor_timer_at = self.cursor_due;
            }
            // In order, not in random order: a finished attempt (what a busy dispatcher wakes
            // for) is taken without polling the other waits first, and no random draw is made.
            // Every pass reads the log and the policy anyway, so none of them is missed.
            tokio::select! {
                biased;
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    // Every attempt that has finished by now; the cursor is saved once for all
                    // of them, after the next pass's `fill`.
                    self.finish(done);
                    while let Some(done) = self.tasks.try_join_next() {
                        self.finish(done);
                    }
                    self.count_busy();
                }
                changed = committed.changed(), if slot_free && self.context.control.may_deliver() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = &mut woken => woken.set(control.wake.notified()),
                _ = sleep_until_ms(retry_timer), if retry_timer.is_some() => {}
                // The top of the loop writes the cursor that was held back.
                () = &mut cursor_timer, if self.cursor_due.is_some() => {}
                () = &mut stopped => break,
            }
        }
        self.drain().await;
    }

    async fn drain(&mut self) {
        let grace = self.context.grace;
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = self.tasks.join_next().await {
                self.finish(done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(subscriber = %self.context.control.name, in_flight = self.tasks.len(), "Attempts still in flight at shutdown; they will be sent again on restart.");
            self.tasks.shutdown().await;
        }
        self.count_busy();
        self.write_cursor(true);
    }

    fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// How many attempts may be in flight.
    fn limit(&self) -> usize {
        match &self.adaptive {
            Some(adaptive) => adaptive.limit(),
            None => self.context.control.config().concurrency,
        }
    }

    /// Starts attempts until the concurrency limit: due retries first, then new events.
    fn fill(&mut self) -> Result<(), StoreError> {
        self.gate = Gate::Open;
        self.batch_due = None;
        if !self.context.control.may_deliver() {
            return Ok(());
        }
        let now_ms = store::now_ms();
        self.sync_policies(now_ms);
        let limit = self.limit();
        let context = Arc::clone(&self.context);
        let store = &context.store;
        let id = context.id;
        // Ordering is fixed at start; a batch turned on by a reload waits for a restart there.
        let batch = context
            .control
            .config()
            .batch
            .filter(|_| self.order.is_none());
        let per_job = batch.map_or(1, |batch| batch.max_events);
        if self.in_flight() < limit {
            let due =
                store.due_retries(id, now_ms, (limit - self.in_flight()) * per_job, |seq| {
                    self.retries_in_flight.contains(&seq) || self.fresh_in_flight.contains(&seq)
                })?;
            // A failed batch's members share one retry state: they go again together.
            let mut groups: Vec<Vec<Job>> = Vec::new();
            for retry in due {
                let Some(stored) = store.event(retry.seq)? else {
                    tracing::error!(subscriber = %self.context.control.name, seq = %retry.seq, "Event of a pending retry has left the retention window; the delivery cannot be made.");
                    store.complete(id, retry.seq, Some(&retry.state))?;
                    continue;
                };
                let job = Job::new(stored, Some(retry.state));
                match groups.last_mut() {
                    Some(group)
                        if group.len() < per_job
                            && same_schedule(group[0].retry.as_ref(), job.retry.as_ref()) =>
                    {
                        group.push(job);
                    }
                    _ => groups.push(vec![job]),
                }
            }
            for group in groups {
                if self.in_flight() >= limit || !self.admit(now_ms) {
                    break;
                }
                for member in &group {
                    self.retries_in_flight.insert(member.seq);
                }
                self.spawn(Job::batch(group));
            }
        }
        if let Some(batch) = batch {
            self.fill_batches(batch, limit, now_ms)?;
            return Ok(());
        }
        // Heads of ordered keys released by finished deliveries go first.
        while self.in_flight() < limit && self.gate == Gate::Open {
            let Some(stored) = self.order.as_mut().and_then(KeyOrder::pop_ready) else {
                break;
            };
            if !self.admit(now_ms) {
                if let Some(order) = self.order.as_mut() {
                    order.unpop_ready(stored);
                }
                break;
            }
            self.start_fresh(stored);
        }
        while self.in_flight() < limit && self.gate == Gate::Open {
            if self
                .order
                .as_ref()
                .is_some_and(|order| order.held() >= MAX_HELD)
            {
                break;
            }
            let Some(stored) = self.next_fresh()? else {
                break;
            };
            if self.may_have_record(stored.seq) && store.has_delivery_record(id, stored.seq)? {
                continue;
            }
            let stored = match self.order.as_mut() {
                Some(order) => match order.offer(stored) {
                    Some(stored) => stored,
                    // Held behind its key's head.
                    None => continue,
                },
                None => stored,
            };
            if !self.admit(now_ms) {
                match self.order.as_mut() {
                    // It keeps its key: it starts first when the gate opens.
                    Some(order) => order.unpop_ready(stored),
                    None => self.buffer.push_front(stored),
                }
                break;
            }
            self.start_fresh(stored);
        }
        Ok(())
    }

    /// Whether an event read from the log may already have a retry or dead-letter record.
    fn may_have_record(&self, seq: EventSeq) -> bool {
        seq <= self.recovered_upto
            && self
                .record_span
                .is_some_and(|(low, high)| low <= seq && seq <= high)
    }

    fn start_fresh(&mut self, stored: StoredEvent) {
        self.fresh_in_flight.insert(stored.seq);
        self.spawn(Job::new(stored, None));
    }

    /// Batched delivery: new events go in batches of up to `max_events`; a smaller batch waits
    /// until `max_wait` after its oldest event's acceptance for more.
    fn fill_batches(
        &mut self,
        batch: crate::config::Batch,
        limit: usize,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        while self.in_flight() < limit && self.gate == Gate::Open {
            let mut members: Vec<StoredEvent> = Vec::new();
            while members.len() < batch.max_events {
                let Some(stored) = self.next_fresh()? else {
                    break;
                };
                if self.may_have_record(stored.seq)
                    && self
                        .context
                        .store
                        .has_delivery_record(self.context.id, stored.seq)?
                {
                    continue;
                }
                members.push(stored);
            }
            let Some(oldest) = members.first().map(|stored| stored.accepted_at_ms) else {
                break;
            };
            let due_at = oldest + store::millis(batch.max_wait);
            let full = members.len() == batch.max_events;
            if (!full && now_ms < due_at) || !self.admit(now_ms) {
                if !full && now_ms < due_at {
                    // New commits may fill it sooner; retries are not held back.
                    self.batch_due = Some(due_at);
                }
                for stored in members.into_iter().rev() {
                    self.buffer.push_front(stored);
                }
                break;
            }
            let jobs: Vec<Job> = members
                .into_iter()
                .map(|stored| {
                    self.fresh_in_flight.insert(stored.seq);
                    Job::new(stored, None)
                })
                .collect();
            self.spawn(Job::batch(jobs));
        }
        Ok(())
    }

    fn next_fresh(&mut self) -> Result<Option<StoredEvent>, StoreError> {
        loop {
            if let Some(stored) = self.buffer.pop_front() {
                return Ok(Some(stored));
            }
            if self.scan_pos > *self.context.store.committed().borrow() {
                return Ok(None);
            }
            let (events, next) = self.context.store.events_for(
                self.context.id,
                self.scan_pos,
                READ_BATCH,
                SCAN_LIMIT,
            )?;
            self.scan_pos = next;
            self.buffer.extend(events);
        }
    }

    fn spawn(&mut self, job: Job) {
        use futures_util::FutureExt as _;
        if std::mem::take(&mut self.probe_granted) {
            self.probe_seq = Some(job.seq);
        }
        let context = Arc::clone(&self.context);
        let members = Carried::of(&job);
        // Boxed: the attempt's state (about 2 KiB) is written to the heap once. Unboxed, the
        // runtime moves it by value through the task's life (into the spawn, into the task's
        // cell, and a task's stage is as large as its future when the result replaces it).
        self.tasks.spawn(Box::pin(async move {
            std::panic::AssertUnwindSafe(attempt::attempt(context, job))
                .catch_unwind()
                .await
                .map_err(|_| members)
        }));
        let in_flight = self.tasks.len();
        if let Some(adaptive) = &mut self.adaptive {
            adaptive.started(in_flight);
        }
        self.count_busy();
    }

    /// Keeps `Context::busy` in step with whether attempts are in flight.
    fn count_busy(&mut self) {
        let busy = !self.tasks.is_empty();
        if busy != self.counted_busy {
            self.counted_busy = busy;
            if busy {
                self.context.busy.fetch_add(1, Ordering::Relaxed);
            } else {
                self.context.busy.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// When the next retry not already in flight is due, if a slot is free to run it.
    fn retry_timer(&self) -> Option<u64> {
        if !self.context.control.may_deliver() || self.in_flight() >= self.limit() {
            return None;
        }
        let skip = |seq: EventSeq| {
            self.retries_in_flight.contains(&seq) || self.fresh_in_flight.contains(&seq)
        };
        let at = self.context.store.next_retry_at(self.context.id, skip);
        self.context
            .control
            .next_retry_ms
            .store(at.unwrap_or(0), Ordering::Relaxed);
        at
    }

    fn finish(&mut self, done: Result<Result<Done, Carried>, tokio::task::JoinError>) {
        let done = match done {
            Ok(Ok(done)) => done,
            Ok(Err(members)) => {
                self.panicked(members);
                return;
            }
            Err(error) => {
                // Only aborted at the end of a shutdown's grace period: sent again on restart.
                tracing::warn!(subscriber = %self.context.control.name, error = %error, "Delivery attempt task ended early.");
                return;
            }
        };
        let head = done.job.seq;
        for member in done.job.members() {
            self.fresh_in_flight.remove(&member.seq);
            self.retries_in_flight.remove(&member.seq);
        }
        let probe = self.probe_seq == Some(head);
        if probe {
            self.probe_seq = None;
        }
        self.observe(&done.outcome, probe);
        self.adapt(&done);
        if let Err(error) = self.apply(done) {
            tracing::error!(subscriber = %self.context.control.name, seq = %head, error = %error, "Cannot record a delivery outcome; it will be attempted again.");
        }
    }

    /// Feeds an attempt's round trip to the adaptive limit.
    fn adapt(&mut self, done: &Done) {
        let in_flight = self.tasks.len();
        let Some(adaptive) = &mut self.adaptive else {
            return;
        };
        // A success is a round-trip sample. Too many requests, unavailable, a timeout or no
        // connection (however `retry_on` classes them) ask for less. Other errors say nothing
        // of the endpoint's room: a fast 500 would pull the no-load time down.
        let backpressure = match (&done.outcome, done.attempt.status) {
            (Outcome::Success { .. }, _) => false,
            (_, Some(429 | 503)) | (Outcome::Retryable { status: None, .. }, None) => true,
            _ => return,
        };
        // This one counts as busy until its finished attempts are taken in.
        let busy = self.context.busy.load(Ordering::Relaxed);
        adaptive.finished(
            std::time::Instant::now(),
            Duration::from_micros(done.attempt.latency_us),
            backpressure,
            in_flight,
            busy,
        );
        self.publish_limit();
    }

    /// Shows the limit in force on the subscriber's `Control` (API, metrics), and logs a change.
    fn publish_limit(&self) {
        let limit = self.limit();
        let previous = self
            .context
            .control
            .concurrency_limit
            .swap(limit, Ordering::Relaxed);
        if previous != limit {
            let no_load_us = self.adaptive.as_ref().and_then(Adaptive::no_load_us);
            tracing::debug!(subscriber = %self.context.control.name, limit, previous, no_load_us, "Concurrency limit changed.");
        }
    }

    /// An attempt task panicked (a bug): its deliveries become retries due after the initial
    /// interval, as after a failed attempt, so nothing is lost and the cursor moves on; a probe
    /// counts as failed.
    fn panicked(&mut self, members: Carried) {
        let context = Arc::clone(&self.context);
        let name = &context.control.name;
        tracing::error!(subscriber = %name, seq = %members.head.0, "Delivery attempt panicked; the delivery is rescheduled.");
        let probe = self.probe_seq == Some(members.head.0);
        if probe {
            self.probe_seq = None;
        }
        let failed = Outcome::Retryable {
            status: None,
            error: Some("the attempt failed inside fanout".into()),
            retry_after: None,
        };
        self.observe(&failed, probe);
        let now_ms = store::now_ms();
        let retry = context.control.config().retry.initial_interval;
        for (seq, previous) in std::iter::once(members.head).chain(members.rest) {
            let state = RetryState {
                attempts: previous.as_ref().map_or(0, |state| state.attempts) + 1,
                first_attempt_ms: previous
                    .as_ref()
                    .map_or(now_ms, |state| state.first_attempt_ms),
                next_attempt_ms: now_ms + store::millis(retry),
                last_status: None,
                last_error: Some("the attempt failed inside fanout".into()),
            };
            if let Err(error) = context.store.schedule_retry(context.id, seq, &state) {
                tracing::error!(subscriber = %name, seq = %seq, error = %error, "Cannot reschedule a delivery after a panic; it stays in flight until a restart.");
                continue;
            }
            self.fresh_in_flight.remove(&seq);
            self.retries_in_flight.remove(&seq);
        }
    }

    /// Applies an outcome to each member of the job (one random draw, so a failed batch's
    /// members keep one retry schedule and go again together).
    fn apply(&mut self, done: Done) -> Result<(), StoreError> {
        let Done {
            mut job,
            outcome,
            attempt,
        } = done;
        // The draw only spreads retries (jitter): a success needs none.
        let random = if matches!(outcome, Outcome::Success { .. }) {
            0.0
        } else {
            rand::random::<f64>()
        };
        let now_ms = store::now_ms();
        let rest = std::mem::take(&mut job.rest);
        let mut result = self.apply_one(job, &outcome, &attempt, (now_ms, random));
        for member in rest {
            let applied = self.apply_one(member, &outcome, &attempt, (now_ms, random));
            result = result.and(applied);
        }
        result
    }

    fn apply_one(
        &mut self,
        job: Job,
        outcome: &Outcome,
        attempt: &AttemptRecord,
        (now_ms, random): (u64, f64),
    ) -> Result<(), StoreError> {
        let context = &self.context;
        let store = &context.store;
        let name = &context.control.name;
        let control = &context.control;
        let config = control.config();
        let attempts = job.retry.as_ref().map_or(0, |retry| retry.attempts) + 1;
        // A first attempt at an event committed after this dispatcher started, or at one from
        // before that no earlier run attempted, cannot have any history: it is attempt 1,
        // without looking for the last number recorded.
        let history = job.retry.is_some()
            || (job.seq <= self.recovered_upto
                && self
                    .attempted
                    .as_mut()
                    .is_none_or(|attempted| attempted.remove(&job.seq)));
        match store::Delivered::of(job.seq, attempt) {
            Some(delivered) if !history && matches!(outcome, Outcome::Success { .. }) => {
                self.delivered.push(delivered);
            }
            _ => store.record_attempt(context.id, job.seq, attempt, history)?,
        }
        control.attempted(Attempted {
            at_ms: attempt.at_ms,
            event: super::request::identity(&job.event),
            seq: job.seq,
            attempt: attempts,
            status: attempt.status,
            latency_us: attempt.latency_us,
            ok: matches!(outcome, Outcome::Success { .. }),
            error: attempt.error.clone(),
        });
        let first_attempt_ms = job
            .retry
            .as_ref()
            .map_or(attempt.at_ms, |retry| retry.first_attempt_ms);
        let decision = decide(
            &config.retry,
            outcome,
            attempts,
            first_attempt_ms,
            now_ms,
            random,
        );
        // A delivered or dead head lets the next event of its key go (ordered delivery).
        let finished = matches!(decision, Decision::Delivered | Decision::Dead { .. })
            .then(|| (Arc::clone(&job.event), job.seq));
        if !matches!(decision, Decision::Delivered) {
            Metrics::add(&context.metrics.attempts_failed, 1);
        }
        match decision {
            Decision::Delivered => {
                tracing::debug!(subscriber = %name, event_id = %job.event.id, webhook_id = %webhook_id(job.seq, context.id), attempt = attempts, status = ?attempt.status, latency_us = attempt.latency_us, "Delivered.");
                store.complete(context.id, job.seq, job.retry.as_ref())?;
                Metrics::add(&context.metrics.deliveries_succeeded, 1);
                Metrics::add(&control.delivered, 1);
                if job.retry.is_none() {
                    control
                        .end_to_end
                        .observe_us(now_ms.saturating_sub(job.accepted_at_ms) * 1000);
                }
            }
            Decision::Retry { at_ms } => {
                let state = RetryState {
                    attempts,
                    first_attempt_ms,
                    next_attempt_ms: at_ms,
                    last_status: attempt.status,
                    last_error: attempt.error.clone(),
                };
                store.schedule_retry(context.id, job.seq, &state)?;
                Metrics::add(&context.metrics.retries_scheduled, 1);
                Metrics::add(&control.retries_scheduled, 1);
                tracing::info!(subscriber = %name, event_id = %job.event.id, webhook_id = %webhook_id(job.seq, context.id), attempt = attempts, status = ?attempt.status, error = ?attempt.error, retry_in_ms = at_ms.saturating_sub(now_ms), "Delivery failed; retry scheduled.");
            }
            Decision::Dead { reason } => {
                let letter = DeadLetter {
                    event: Arc::unwrap_or_clone(job.event),
                    reason,
                    last_status: attempt.status,
                    attempts,
                    first_attempt_ms,
                    dead_at_ms: now_ms,
                };
                store.dead_letter(
                    context.id,
                    job.seq,
                    &letter,
                    job.retry.as_ref(),
                    context.dead_letter_outbox.is_some(),
                )?;
                Metrics::add(&context.metrics.dead_lettered, 1);
                Metrics::add(&control.dead_lettered, 1);
                if let Some(events) = &context.events {
                    if !operational::is_operational(&letter.event) {
                        events.emit(
                            operational::DELIVERY_DEAD_LETTERED,
                            (context.id, name),
                            serde_json::json!({
                                "subscriber": name,
                                "webhook_id": webhook_id(job.seq, context.id),
                                "event": {
                                    "id": letter.event.id,
                                    "source": letter.event.source,
                                    "type": letter.event.ty,
                                    "subject": letter.event.subject,
                                },
                                "reason": letter.reason,
                                "attempts": letter.attempts,
                                "last_status": letter.last_status,
                            }),
                        );
                    }
                }
                tracing::warn!(subscriber = %name, event_id = %letter.event.id, webhook_id = %webhook_id(job.seq, context.id), attempt = attempts, status = ?letter.last_status, reason = %letter.reason, "Delivery dead-lettered.");
                if let Some(outbox) = &context.dead_letter_outbox {
                    outbox.notify_one();
                }
            }
            Decision::Disable { reason } => {
                let state = RetryState {
                    attempts,
                    first_attempt_ms,
                    next_attempt_ms: now_ms,
                    last_status: attempt.status,
                    last_error: Some(reason.clone()),
                };
                store.schedule_retry(context.id, job.seq, &state)?;
                if control.disabled().is_none() {
                    disable(context, reason)?;
                }
            }
        }
        if let (Some(order), Some((event, seq))) = (self.order.as_mut(), finished) {
            order.release(&event, seq);
        }
        Ok(())
    }

    /// The lowest log position not finished with.
    fn cursor(&self) -> EventSeq {
        let mut cursor = self.scan_pos;
        if let Some(held) = self.order.as_ref().and_then(KeyOrder::lowest_held) {
            cursor = cursor.min(held);
        }
        if let Some(front) = self.buffer.front() {
            cursor = cursor.min(front.seq);
        }
        if let Some(first) = self.fresh_in_flight.first() {
            cursor = cursor.min(*first);
        }
        cursor
    }

    /// Writes the cursor if it moved; while attempts are in flight, at most every
    /// [`CURSOR_SAVE_INTERVAL`] (a later write is then due, and the run loop wakes for it).
    fn save_cursor(&mut self) {
        self.write_cursor(false);
    }

    fn write_cursor(&mut self, now: bool) {
        let cursor = self.cursor();
        if cursor == self.persisted_cursor && self.delivered.is_empty() {
            self.cursor_due = None;
            return;
        }
        // Held back only while attempts are in flight (busy): an idle dispatcher's cursor, which
        // the queue depth and delivery states are read from, is never behind.
        let due = self.cursor_written_at + CURSOR_SAVE_INTERVAL;
        if !now && !self.tasks.is_empty() && tokio::time::Instant::now() < due {
            self.cursor_due = Some(due);
            return;
        }
        let written = self
            .context
            .store
            .record_delivered(self.context.id, &mut self.delivered)
            .and_then(|()| {
                self.delivered.clear();
                if cursor == self.persisted_cursor {
                    Ok(())
                } else {
                    self.context.store.set_cursor(self.context.id, cursor)
                }
            });
        match written {
            Ok(()) => {
                self.persisted_cursor = cursor;
                self.cursor_written_at = tokio::time::Instant::now();
                self.cursor_due = None;
            }
            Err(error) => {
                self.cursor_due = Some(tokio::time::Instant::now() + STORE_ERROR_PAUSE);
                tracing::error!(subscriber = %self.context.control.name, error = %error, "Cannot save the dispatcher cursor.");
            }
        }
    }
}

async fn sleep_until_ms(at_ms: Option<u64>) {
    let wait = at_ms
        .unwrap_or(u64::MAX)
        .saturating_sub(store::now_ms())
        .max(5);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
