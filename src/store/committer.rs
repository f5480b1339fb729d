//! Group commit in two stages, each on its own thread:
//! - the committer takes every waiting ingest request, dedupes them and writes them in one batch
//!   per tree (memory only), then hands the answers to
//! - the syncer, which takes every handed-over commit, makes them durable at once (sled `flush`
//!   plus an `fdatasync` of the data file) and only then answers them and publishes the new
//!   committed sequence number.
//!
//! While the syncer waits for the disk, the committer already writes the next batch, so a commit
//! costs max(write, sync) instead of their sum, and batches grow with the load. A duplicate of an
//! event that is written but not yet durable is answered by a later sync, so its answer never
//! comes before the original is durable.
//!
//! Why the explicit `fdatasync`: on Linux sled 0.34 makes its log "stable" with
//! `sync_file_range`, which starts and waits for write-back of the written range but does not
//! flush the drive's volatile cache nor the file size in the inode, so an acknowledged write could
//! still be lost on power failure. `fdatasync` on the same file closes that gap.
//!
//! sled writes a log entry larger than a quarter segment (128 KiB; in practice a leaf node of
//! large events, say 16 x 16 KiB) to its own file under `blobs/` and never syncs it. The syncer
//! therefore also `fdatasync`s every blob file it has not synced yet, and the directory.

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

/// A sync slower than this is logged: every acknowledgement of the commit waited for it.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(50);

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
    /// sled's directory of large log entries.
    pub blobs_dir: std::path::PathBuf,
    pub durability: Durability,
    pub dedupe_window_ms: u64,
    pub next_seq: u64,
    pub committed: watch::Sender<EventSeq>,
}

/// A commit written to the trees, waiting for the syncer.
struct Written {
    jobs: Vec<Job>,
    outcomes: Vec<Result<Vec<Accepted>, StoreError>>,
    /// Highest sequence number written by this commit, if any.
    last_seq: Option<EventSeq>,
    /// The write itself failed: answer with this error, nothing to sync.
    error: Option<String>,
}

/// The second stage: flush, fdatasync, answer.
struct Syncer {
    db: sled::Db,
    data_file: File,
    blobs_dir: std::path::PathBuf,
    /// Blob files already synced (names are sled LSNs); pruned to what still exists.
    synced_blobs: std::collections::HashSet<std::ffi::OsString>,
    durability: Durability,
    committed: watch::Sender<EventSeq>,
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
    /// Runs until every sender is dropped, then waits for the syncer to answer what is left.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let (handoff, written) = std::sync::mpsc::channel();
        let syncer = Syncer {
            db: self.db.clone(),
            data_file: self
                .data_file
                .try_clone()
                .expect("the data file handle can be cloned"),
            blobs_dir: self.blobs_dir.clone(),
            synced_blobs: std::collections::HashSet::new(),
            durability: self.durability,
            committed: self.committed.clone(),
        };
        let syncer = std::thread::Builder::new()
            .name("fanout-sync".into())
            .spawn(move || syncer.run(&written))
            .expect("the sync thread starts");
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_JOBS_PER_COMMIT {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if handoff.send(self.commit(batch)).is_err() {
                break;
            }
        }
        drop(handoff);
        let _ = syncer.join();
    }

    fn commit(&mut self, jobs: Vec<Job>) -> Written {
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
        Written {
            jobs,
            outcomes,
            last_seq: (self.next_seq > first_seq).then(|| EventSeq(self.next_seq - 1)),
            error: written.err().map(|error| error.to_string()),
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
}

impl Syncer {
    fn run(mut self, written: &std::sync::mpsc::Receiver<Written>) {
        while let Ok(first) = written.recv() {
            let mut commits = vec![first];
            commits.extend(written.try_iter());
            self.finish(commits);
        }
    }

    /// One flush for every commit taken, then the answers in commit order.
    fn finish(&mut self, commits: Vec<Written>) {
        let durable = match self.durability {
            Durability::Relaxed => Ok(()),
            Durability::Strict => self.make_durable(),
        };
        if let Err(error) = &durable {
            tracing::error!(error = %error, "Store commit failed.");
        }
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
                    let _ = job.reply.send(Err(StoreError::CommitFailed(error.clone())));
                }
                continue;
            }
            if let Some(seq) = commit.last_seq {
                self.committed.send_replace(seq);
            }
            for (job, outcome) in commit.jobs.into_iter().zip(commit.outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
    }

    fn make_durable(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let flushed = self.db.flush()?;
        let flush_time = started.elapsed();
        self.sync_new_blobs().map_err(StoreError::Io)?;
        self.data_file.sync_data().map_err(StoreError::Io)?;
        let total = started.elapsed();
        if total > SLOW_SYNC {
            tracing::warn!(
                flush_ms = flush_time.as_millis() as u64,
                fdatasync_ms = (total - flush_time).as_millis() as u64,
                flushed_bytes = flushed,
                "Slow store sync: acknowledgements waited for the disk."
            );
        }
        Ok(())
    }

    /// `fdatasync` of every blob file not synced yet, then of the directory (new names).
    fn sync_new_blobs(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut present = std::collections::HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    // sled removed it meanwhile (rewritten or collected).
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        self.synced_blobs = present;
        if synced_any {
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        Ok(())
    }
}
