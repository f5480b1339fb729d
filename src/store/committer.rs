//! Group commit. The committer takes every waiting ingest request, dedupes them, appends their
//! events to the event log (one write) and their keys to the in-memory dedupe index; the syncer
//! makes them durable at once (one `fdatasync` of the log segment) and only then answers them
//! and publishes the new committed sequence number.
//!
//! Under `strict` both run on one thread, one commit after the other: while it waits for the
//! disk, new requests queue, and the next commit takes them all, so batches grow with the load.
//! Two threads that overlap the next write with this sync were measured slower (BENCHMARKS.md,
//! 2026-12-04): the write is a copy into the page cache, far shorter than the sync, and on a
//! busy CPU each hand-off between the threads is a wake-up that costs more than the overlap
//! saves.
//!
//! A commit's `fdatasync` costs about the same whether it carries one request or fifty, so under
//! `strict` a commit that would carry fewer than [`SMALL_COMMIT`] requests waits `commit_delay`
//! (100 µs by default) for more, but only while requests arrive together: when the previous
//! commit carried [`COMMIT_SIBLINGS`] or more (PostgreSQL's `commit_delay` and `commit_siblings`).
//! A lone producer, whose every commit carries its one request, never waits. At moderate rates
//! on one CPU this makes fewer, larger commits, which leaves the CPU more time for the requests
//! themselves (BENCHMARKS.md, 2026-12-07).
//!
//! Under `relaxed` the syncer has a thread of its own, which answers without waiting for the
//! disk and syncs in the background every `flush_interval`.
//!
//! A duplicate of an event that is written but not yet durable (`relaxed`, or a failed sync) is
//! answered by a later commit, so its answer never comes before the original's.
//!
//! Acknowledgements wait for nothing of sled's: the dedupe index is rebuilt from the log at open
//! (see [`super::dedupe`]). A dedupe hit is trusted only once the event it names is read back
//! with the same `source` and `id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Durability;
use crate::ids::EventSeq;

use super::dedupe::{dedupe_key, DedupeIndex};
use super::log::Log;
use super::records::{self, encode_event};
use super::relay::{Answers, Relay, Reply};
use super::tail::{Committed, Tail};
use super::{Accepted, NewEvent, StoreError};

/// Most ingest requests one commit takes before flushing.
const MAX_JOBS_PER_COMMIT: usize = 1024;

/// A commit that would carry fewer requests than this may wait `commit_delay` for more.
const SMALL_COMMIT: usize = 8;

/// ... if the previous commit carried at least this many: requests are arriving together.
const COMMIT_SIBLINGS: usize = 2;

/// A sync slower than this is logged: every acknowledgement of the commit waited for it.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(50);

pub struct Job {
    pub events: Vec<NewEvent>,
    pub now_ms: u64,
    pub reply: Reply,
    /// The requesting thread's relay, which the answer goes through if given.
    pub relay: Option<Relay>,
}

pub struct Committer {
    pub log: Arc<Log>,
    /// Events kept outside the log (see `Store::record`), for checking dedupe hits.
    pub kept: sled::Tree,
    pub dedupe: Arc<Mutex<DedupeIndex>>,
    pub durability: Durability,
    /// How often the log is synced in the background under `relaxed`.
    pub flush_interval: Duration,
    pub dedupe_window_ms: u64,
    /// Under `strict`, how long a small commit waits for more requests (see the module docs).
    pub commit_delay: Duration,
    pub committed: watch::Sender<EventSeq>,
    /// The newest events, handed over as each commit becomes durable.
    pub tail: Arc<Tail>,
}

/// The events of one commit, in seq order, with their dedupe keys.
#[derive(Default)]
struct Staged {
    records: Vec<Vec<u8>>,
    keys: Vec<u64>,
    by_key: HashMap<u64, EventSeq>,
}

/// A commit written to the log, waiting for the syncer.
struct Written {
    jobs: Vec<Job>,
    outcomes: Vec<Result<Vec<Accepted>, StoreError>>,
    /// Highest sequence number written by this commit, if any.
    last_seq: Option<EventSeq>,
    /// The first seq of this commit and the length of each record written from there.
    first_seq: u64,
    record_lens: Vec<usize>,
    /// The write itself failed: answer with this error, nothing to sync.
    error: Option<String>,
}

/// Makes commits durable (`fdatasync`) and answers them.
struct Syncer {
    log: Arc<Log>,
    durability: Durability,
    flush_interval: Duration,
    /// Written to the log since its last sync (`relaxed` only).
    dirty: bool,
    committed: watch::Sender<EventSeq>,
    tail: Arc<Tail>,
}

impl Committer {
    /// Runs until every sender is dropped and what is left is answered.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut syncer = Syncer {
            log: Arc::clone(&self.log),
            durability: self.durability,
            flush_interval: self.flush_interval,
            dirty: false,
            committed: self.committed.clone(),
            tail: Arc::clone(&self.tail),
        };
        if self.durability == Durability::Strict {
            let mut previous = 0;
            while let Some(batch) = next_batch(&mut jobs, previous, self.commit_delay) {
                previous = batch.len();
                let written = self.commit(batch);
                syncer.finish(vec![written]);
            }
            return;
        }
        let (handoff, written) = std::sync::mpsc::channel();
        let syncer = std::thread::Builder::new()
            .name("fanout-sync".into())
            .spawn(move || syncer.run(&written))
            .expect("the sync thread starts");
        // Under `relaxed` a commit is a write into the page cache: nothing to wait for.
        while let Some(batch) = next_batch(&mut jobs, 0, Duration::ZERO) {
            if handoff.send(self.commit(batch)).is_err() {
                break;
            }
        }
        drop(handoff);
        let _ = syncer.join();
    }

    fn commit(&mut self, jobs: Vec<Job>) -> Written {
        // After a failed append the log may hold part of it: always continue where it ends.
        let first_seq = self.log.next_seq();
        let mut next_seq = first_seq;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut staged = Staged::default();
        let mut index = self.dedupe.lock().expect("dedupe index lock");
        for job in &jobs {
            outcomes.push(self.stage(&index, job, &mut next_seq, &mut staged));
        }
        let last_seq = (next_seq > first_seq).then(|| EventSeq(next_seq - 1));
        let record_lens = staged.records.iter().map(Vec::len).collect();
        // The events before their dedupe entries, so an entry never names an unwritten event.
        let written = self.log.append(first_seq, &staged.records, &staged.keys);
        if written.is_ok() {
            for (seq, key) in (first_seq..).zip(&staged.keys) {
                index.insert(*key, EventSeq(seq));
            }
        }
        drop(index);
        Written {
            jobs,
            outcomes,
            last_seq,
            first_seq,
            record_lens,
            error: written.err().map(|error| error.to_string()),
        }
    }

    fn stage(
        &self,
        index: &DedupeIndex,
        job: &Job,
        next_seq: &mut u64,
        staged: &mut Staged,
    ) -> Result<Vec<Accepted>, StoreError> {
        let mut accepted = Vec::with_capacity(job.events.len());
        let mut this_job: Vec<(EventSeq, Vec<u8>, u64)> = Vec::with_capacity(job.events.len());
        for new in &job.events {
            let key = dedupe_key(&new.event.source, &new.event.id);
            if let Some(seq) = self.recent_duplicate(index, key, &new.event, job.now_ms)? {
                accepted.push(Accepted::Duplicate { seq });
                continue;
            }
            let earlier = staged.by_key.get(&key).copied().or_else(|| {
                this_job
                    .iter()
                    .find(|(_, _, staged_key)| *staged_key == key)
                    .map(|(seq, ..)| *seq)
            });
            if let Some(seq) = earlier {
                accepted.push(Accepted::Duplicate { seq });
                continue;
            }
            let seq = EventSeq(*next_seq + this_job.len() as u64);
            let record = encode_event(job.now_ms, &new.subscribers, &new.event)?;
            this_job.push((seq, record, key));
            accepted.push(Accepted::Stored {
                seq,
                subscribers: new.subscribers.len(),
            });
        }
        // Only a job whose every event could be staged is written: a batch is all or nothing.
        *next_seq += this_job.len() as u64;
        for (seq, record, key) in this_job {
            staged.by_key.insert(key, seq);
            staged.records.push(record);
            staged.keys.push(key);
        }
        Ok(accepted)
    }

    fn recent_duplicate(
        &self,
        index: &DedupeIndex,
        key: u64,
        event: &crate::event::Event,
        now_ms: u64,
    ) -> Result<Option<EventSeq>, StoreError> {
        let Some(seq) = index.get(key) else {
            return Ok(None);
        };
        let Some(record) = super::read_record(&self.log, &self.kept, seq)? else {
            return Ok(None);
        };
        if now_ms.saturating_sub(records::event_accepted_at(&record)?) >= self.dedupe_window_ms {
            return Ok(None);
        }
        // An event whose key collides with this one's is not a duplicate.
        let (source, id) = records::event_identity(&record)?;
        Ok((source == event.source && id == event.id).then_some(seq))
    }
}

/// Waits for the next request and takes every other one waiting with it (up to
/// [`MAX_JOBS_PER_COMMIT`]); if that is few while the `previous` commit carried several, waits
/// `delay` once and takes what came meanwhile. `None` once every sender is dropped.
fn next_batch(
    jobs: &mut mpsc::Receiver<Job>,
    previous: usize,
    delay: Duration,
) -> Option<Vec<Job>> {
    let mut batch = vec![jobs.blocking_recv()?];
    take_waiting(jobs, &mut batch);
    if worth_waiting(previous, batch.len(), delay) {
        std::thread::sleep(delay);
        take_waiting(jobs, &mut batch);
    }
    Some(batch)
}

/// Whether a commit of `taken` requests waits `delay` for more, after one of `previous`.
fn worth_waiting(previous: usize, taken: usize, delay: Duration) -> bool {
    !delay.is_zero() && previous >= COMMIT_SIBLINGS && taken < SMALL_COMMIT
}

fn take_waiting(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_JOBS_PER_COMMIT {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

impl Syncer {
    fn run(mut self, written: &std::sync::mpsc::Receiver<Written>) {
        loop {
            let first = match written.recv_timeout(self.flush_interval) {
                Ok(first) => first,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.background_sync();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut commits = vec![first];
            commits.extend(written.try_iter());
            self.finish(commits);
        }
        self.background_sync();
    }

    /// Under `relaxed`: syncs what was acknowledged since the last sync.
    fn background_sync(&mut self) {
        if std::mem::take(&mut self.dirty) {
            if let Err(error) = self.log.sync() {
                tracing::error!(error = %error, "Background sync of the event log failed.");
                self.dirty = true;
            }
        }
    }

    /// One sync for every commit taken, then the answers in commit order.
    fn finish(&mut self, commits: Vec<Written>) {
        let durable = match self.durability {
            Durability::Relaxed => {
                self.dirty = true;
                Ok(())
            }
            Durability::Strict => self.make_durable(),
        };
        if let Err(error) = &durable {
            tracing::error!(error = %error, "Store commit failed.");
        }
        let mut answers = Answers::default();
        for commit in commits {
            let failure = commit
                .error
                .clone()
                .or_else(|| durable.as_ref().err().map(ToString::to_string));
            if let Some(error) = failure {
                if commit.error.is_some() {
                    tracing::error!(error = %error, "Store write failed.");
                }
                // Nothing of this commit is acknowledged; later seqs keep counting up.
                for job in commit.jobs {
                    let failed = Err(StoreError::CommitFailed(error.clone()));
                    answers.add(job.relay, job.reply, failed);
                }
                continue;
            }
            // The tail before the watermark (a dispatcher it wakes finds the events there), and
            // both before any answer.
            let mut committed = Vec::new();
            let mut replies = Vec::with_capacity(commit.jobs.len());
            for (job, outcome) in commit.jobs.into_iter().zip(commit.outcomes) {
                let Job {
                    events,
                    now_ms,
                    reply,
                    relay,
                } = job;
                if let Ok(accepted) = &outcome {
                    for (new, accepted) in events.into_iter().zip(accepted) {
                        if let Accepted::Stored { seq, .. } = *accepted {
                            committed.push(Committed {
                                seq,
                                accepted_at_ms: now_ms,
                                subscribers: new.subscribers,
                                event: new.event,
                                record_len: commit.record_lens[(seq.0 - commit.first_seq) as usize],
                            });
                        }
                    }
                }
                replies.push((relay, reply, outcome));
            }
            self.tail.extend(committed);
            if let Some(seq) = commit.last_seq {
                self.committed.send_replace(seq);
            }
            for (relay, reply, outcome) in replies {
                answers.add(relay, reply, outcome);
            }
        }
        answers.send();
    }

    fn make_durable(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        self.log.sync()?;
        let took = started.elapsed();
        if took > SLOW_SYNC {
            tracing::warn!(
                fdatasync_ms = took.as_millis() as u64,
                "Slow store sync: acknowledgements waited for the disk."
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            events: Vec::new(),
            now_ms: 0,
            reply: tokio::sync::oneshot::channel().0,
            relay: None,
        }
    }

    #[test]
    fn only_a_small_commit_after_a_shared_one_waits() {
        let delay = Duration::from_micros(100);
        assert!(worth_waiting(2, 1, delay));
        assert!(worth_waiting(40, SMALL_COMMIT - 1, delay));
        assert!(!worth_waiting(40, SMALL_COMMIT, delay), "already large");
        assert!(!worth_waiting(1, 1, delay), "a lone producer never waits");
        assert!(!worth_waiting(0, 1, delay), "nor does the first commit");
        assert!(!worth_waiting(40, 1, Duration::ZERO), "0s turns it off");
    }

    #[test]
    fn a_request_sent_during_the_delay_joins_the_commit() {
        let (sender, mut jobs) = mpsc::channel(16);
        let producer = std::thread::spawn(move || {
            sender.blocking_send(job()).expect("the committer listens");
            // Once the committer has taken the first request, send the second: with the delay
            // it lands in the same commit, without it in the next.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sender.capacity() < sender.max_capacity() {
                assert!(std::time::Instant::now() < deadline, "never taken");
                std::thread::yield_now();
            }
            sender.blocking_send(job()).expect("the committer listens");
        });
        let batch =
            next_batch(&mut jobs, COMMIT_SIBLINGS, Duration::from_secs(1)).expect("a batch");
        assert_eq!(batch.len(), 2);
        producer.join().expect("the producer");
        assert!(
            next_batch(&mut jobs, 2, Duration::ZERO).is_none(),
            "sender dropped"
        );
    }
}
