//! The tasks a dispatcher's attempts run in: long-lived *lanes*, each running one attempt at a
//! time, instead of a task spawned for every attempt.
//!
//! The dispatcher hands jobs to a shared queue and takes finished attempts back from a shared
//! list; a lane takes the next job from the queue as soon as its attempt is over, in the same
//! poll, as a load generator's connection loop does. A task per attempt cost an allocation of the
//! attempt's state, a task and a join-set entry, and a wake-up and poll of the new task, for
//! every delivery.
//!
//! At most `limit` lanes run an attempt at once (the dispatcher's concurrency limit, which it
//! keeps up to date here). The queue may hold jobs beyond that (`prefetch`, chosen by the
//! dispatcher): they wait for a lane, are not sent, and stay in the dispatcher's in-flight sets,
//! so the cursor stays behind them and a crash sends them again like any attempt in flight.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{attempt, Carried, Context, Done, Job};

/// A lane wakes the dispatcher once this many attempts have finished, however full the queue.
const REPORT_AT: usize = 32;

/// What a lane gives back: the attempt's result, or (after a panic, a bug) what it carried.
pub(super) type Finished = Result<Done, Carried>;

#[derive(Default)]
struct State {
    /// Jobs handed over and not taken by a lane yet.
    ready: VecDeque<Job>,
    /// Finished attempts not taken back by the dispatcher yet.
    finished: Vec<Finished>,
    /// Lanes running an attempt, and lanes waiting for a job.
    running: usize,
    idle: usize,
    /// How many attempts may run at once.
    limit: usize,
    /// A lane wakes the dispatcher when an attempt ends with no more than this many jobs left in
    /// the queue (so it hands more over before the lanes run dry), or with many finished.
    low_water: usize,
    /// False once the dispatcher stops: no lane starts another attempt.
    open: bool,
}

impl State {
    /// Whether a lane may start the next job now.
    fn startable(&self) -> bool {
        self.open && self.running < self.limit && !self.ready.is_empty()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes a lane waiting for a job.
    work: Notify,
    /// Wakes the dispatcher when an attempt has finished.
    done: Notify,
}

/// A dispatcher's lanes.
pub(super) struct Lanes {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    /// Jobs handed over whose result has not been taken back.
    outstanding: usize,
}

impl Lanes {
    pub(super) fn new() -> Lanes {
        Lanes {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    open: true,
                    limit: 1,
                    ..State::default()
                }),
                work: Notify::new(),
                done: Notify::new(),
            }),
            tasks: JoinSet::new(),
            outstanding: 0,
        }
    }

    /// Jobs handed over (queued or running) whose result has not been taken back.
    pub(super) fn len(&self) -> usize {
        self.outstanding
    }

    pub(super) fn is_empty(&self) -> bool {
        self.outstanding == 0
    }

    /// Hands a job over; a lane starts it when fewer than the limit are running.
    pub(super) fn push(&mut self, job: Job) {
        self.outstanding += 1;
        self.lock().ready.push_back(job);
    }

    /// Sets how many attempts may run at once and how many more jobs the dispatcher keeps
    /// queued (`prefetch`), and gets lanes going for the jobs that may start: waiting ones
    /// woken, new ones spawned if there are too few. Called after a batch of [`Lanes::push`].
    pub(super) fn start(&mut self, limit: usize, prefetch: usize, context: &Arc<Context>) {
        let (wake, spawn) = {
            let mut state = self.lock();
            state.limit = limit.max(1);
            state.low_water = prefetch / 2;
            if !state.startable() {
                return;
            }
            let startable = state.ready.len().min(state.limit - state.running);
            let wake = startable.min(state.idle);
            (wake, startable - wake)
        };
        if wake > 0 {
            // One permit is enough: a lane that takes a job wakes the next if more may start.
            self.shared.work.notify_one();
        }
        for _ in 0..spawn {
            let shared = Arc::clone(&self.shared);
            let context = Arc::clone(context);
            self.tasks.spawn(lane(shared, context));
        }
    }

    /// Waits until an attempt has finished (at once if one finished since the last call).
    pub(super) async fn finished(&self) {
        self.shared.done.notified().await;
    }

    /// Takes every finished attempt back.
    pub(super) fn take_finished(&mut self, into: &mut Vec<Finished>) {
        std::mem::swap(&mut self.lock().finished, into);
        self.outstanding -= into.len();
    }

    /// Stops: no lane starts another job, and the queued ones are given back (they were not
    /// sent). The running ones finish; [`Lanes::finished`] reports them.
    pub(super) fn close(&mut self) -> Vec<Job> {
        let queued: Vec<Job> = {
            let mut state = self.lock();
            state.open = false;
            state.ready.drain(..).collect()
        };
        self.outstanding -= queued.len();
        queued
    }

    /// The queued jobs beyond those that may start now (`limit` less the running ones), given
    /// back in the order they were handed over.
    pub(super) fn take_excess(&mut self, limit: usize) -> Vec<Job> {
        let excess: Vec<Job> = {
            let mut state = self.lock();
            let keep = limit.saturating_sub(state.running).min(state.ready.len());
            state.ready.drain(keep..).collect()
        };
        self.outstanding -= excess.len();
        excess
    }

    /// Aborts the lanes (what is still running is sent again on restart).
    pub(super) async fn shutdown(&mut self) {
        self.tasks.shutdown().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("lock")
    }
}

/// One lane: takes a job when one may start, runs its attempt, gives the result back, and goes
/// on with the next job in the same poll when there is one.
async fn lane(shared: Arc<Shared>, context: Arc<Context>) {
    loop {
        let job = loop {
            let waiting = {
                let mut state = shared.state.lock().expect("lock");
                if state.open && state.running < state.limit && context.control.may_deliver() {
                    if let Some(job) = state.ready.pop_front() {
                        state.running += 1;
                        let more = state.startable() && state.idle > 0;
                        drop(state);
                        if more {
                            shared.work.notify_one();
                        }
                        break job;
                    }
                }
                state.idle += 1;
                // What finished must not wait for a lane that has nothing more to do.
                if !state.finished.is_empty() {
                    shared.done.notify_one();
                }
                shared.work.notified()
            };
            waiting.await;
            shared.state.lock().expect("lock").idle -= 1;
        };
        let carried = Carried::of(&job);
        let result = std::panic::AssertUnwindSafe(attempt::attempt(Arc::clone(&context), job))
            .catch_unwind()
            .await
            .map_err(|_| carried);
        let report = {
            let mut state = shared.state.lock().expect("lock");
            state.running -= 1;
            state.finished.push(result);
            !state.open || state.ready.len() <= state.low_water || state.finished.len() >= REPORT_AT
        };
        if report {
            shared.done.notify_one();
        }
    }
}
