//! Group commit: one thread takes every waiting ingest request, writes them in one batch per tree,
//! flushes once (sled `flush` plus an `fdatasync` of the data file), then answers them all.
//!
//! Why the explicit `fdatasync`: on Linux sled 0.34 makes its log "stable" with
//! `sync_file_range`, which starts and waits for write-back of the written range but does not
//! flush the drive's volatile cache nor the file size in the inode, so an acknowledged write could
//! still be lost on power failure. `fdatasync` on the same file closes that gap.

use std::collections::HashMap;
use std::fs::File;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Durability;
use crate::ids::EventSeq;

use super::records::encode_event;
use super::{Accepted, NewEvent, StoreError};

/// Most ingest requests one commit takes before flushing.
const MAX_JOBS_PER_COMMIT: usize = 1024;

pub struct Job {
    pub events: Vec<NewEvent>,
    pub now_ms: u64,
    pub reply: oneshot::Sender<Result<Vec<Accepted>, StoreError>>,
}

pub struct Committer {
    pub db: sled::Db,
    pub events: sled::Tree,
    pub dedupe: sled::Tree,
    pub data_file: File,
    pub durability: Durability,
    pub dedupe_window_ms: u64,
    pub next_seq: u64,
    pub committed: watch::Sender<EventSeq>,
}

/// The dedupe key of an event: a hash of its `source` and `id`, which together identify it.
pub fn dedupe_key(source: &str, id: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    digest[..16].try_into().expect("16 bytes")
}

impl Committer {
    /// Runs until every sender is dropped.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_JOBS_PER_COMMIT {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, jobs: Vec<Job>) {
        let first_seq = self.next_seq;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut event_batch = sled::Batch::default();
        let mut dedupe_batch = sled::Batch::default();
        let mut in_this_commit = HashMap::new();
        for job in &jobs {
            outcomes.push(self.stage(
                job,
                &mut event_batch,
                &mut dedupe_batch,
                &mut in_this_commit,
            ));
        }
        // The event before its dedupe entry: sled recovers a prefix of its log, so a crash can
        // lose the dedupe entry of a stored event (a possible duplicate), never the reverse.
        let written = self
            .events
            .apply_batch(event_batch)
            .and_then(|()| self.dedupe.apply_batch(dedupe_batch))
            .map_err(StoreError::from);
        let result = match (written, self.durability) {
            (Err(error), _) => Err(error),
            (Ok(()), Durability::Relaxed) => Ok(()),
            (Ok(()), Durability::Strict) => self.make_durable(),
        };
        match result {
            Ok(()) => {
                if self.next_seq > first_seq {
                    self.committed.send_replace(EventSeq(self.next_seq - 1));
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "Store commit failed.");
                // Nothing of this commit was acknowledged; later seqs may reuse the numbers only
                // if the write did not reach the tree, so keep counting up to stay safe.
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(StoreError::CommitFailed(error.to_string())));
                }
            }
        }
    }

    fn stage(
        &mut self,
        job: &Job,
        event_batch: &mut sled::Batch,
        dedupe_batch: &mut sled::Batch,
        in_this_commit: &mut HashMap<[u8; 16], EventSeq>,
    ) -> Result<Vec<Accepted>, StoreError> {
        let mut accepted = Vec::with_capacity(job.events.len());
        let mut staged = Vec::with_capacity(job.events.len());
        for new in &job.events {
            let key = dedupe_key(&new.event.source, &new.event.id);
            if let Some(seq) = self.recent_duplicate(&key, job.now_ms)? {
                accepted.push(Accepted::Duplicate { seq });
                continue;
            }
            let earlier = in_this_commit.get(&key).copied().or_else(|| {
                staged
                    .iter()
                    .find(|(_, _, staged_key, _)| *staged_key == key)
                    .map(|(seq, ..)| *seq)
            });
            if let Some(seq) = earlier {
                accepted.push(Accepted::Duplicate { seq });
                continue;
            }
            let seq = EventSeq(self.next_seq + staged.len() as u64);
            let record = encode_event(job.now_ms, &new.subscribers, &new.event)?;
            let mut dedupe_value = [0u8; 16];
            dedupe_value[..8].copy_from_slice(&seq.0.to_be_bytes());
            dedupe_value[8..].copy_from_slice(&job.now_ms.to_be_bytes());
            staged.push((seq, record, key, dedupe_value));
            accepted.push(Accepted::Stored {
                seq,
                subscribers: new.subscribers.len(),
            });
        }
        // Only a job whose every event could be staged is written: a batch is all or nothing.
        self.next_seq += staged.len() as u64;
        for (seq, record, key, dedupe_value) in staged {
            in_this_commit.insert(key, seq);
            event_batch.insert(&seq.0.to_be_bytes(), record);
            dedupe_batch.insert(&key, &dedupe_value);
        }
        Ok(accepted)
    }

    fn recent_duplicate(
        &self,
        key: &[u8; 16],
        now_ms: u64,
    ) -> Result<Option<EventSeq>, StoreError> {
        let Some(value) = self.dedupe.get(key)? else {
            return Ok(None);
        };
        if value.len() != 16 {
            return Ok(None);
        }
        let seq = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
        let at = u64::from_be_bytes(value[8..].try_into().expect("8 bytes"));
        Ok((now_ms.saturating_sub(at) < self.dedupe_window_ms).then_some(EventSeq(seq)))
    }

    fn make_durable(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.data_file.sync_data().map_err(StoreError::Io)
    }
}
