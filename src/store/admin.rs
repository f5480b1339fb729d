//! The store's operator queries and commands: pause state, pending counts, finding an event and
//! its deliveries, and replaying or purging dead letters. Each command is one atomic batch.

use super::records::{self, keys, DeadLetter, RetryState, StoredEvent};
use super::{dedupe_key, parse_seq, Store, StoreError, META_PAUSED};
use crate::ids::{EventSeq, SubscriberId};

/// A subscriber's queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Events after the cursor that route to the subscriber, not attempted yet.
    pub fresh: u64,
    /// Deliveries waiting for a retry.
    pub retries: u64,
    /// False when the log was too long to count to the end (`fresh` is then a lower bound).
    pub exact: bool,
    /// When the oldest of them was accepted.
    pub oldest_accepted_ms: Option<u64>,
}

/// Where one delivery of an event stands.
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryState {
    /// Not attempted yet (the subscriber's cursor has not passed it).
    Pending,
    /// Failed at least once; retried at `next_attempt_ms`.
    Retrying(RetryState),
    Dead(Box<DeadLetter>),
    Delivered,
}

impl Store {
    /// Pauses or resumes a subscriber; survives restarts.
    ///
    /// # Errors
    /// A store write failed.
    pub fn set_paused(&self, subscriber: SubscriberId, paused: bool) -> Result<(), StoreError> {
        let key = format!("{META_PAUSED}{}", subscriber.0);
        if paused {
            self.inner.meta.insert(key, &[1])?;
        } else {
            self.inner.meta.remove(key)?;
        }
        self.inner.meta.flush()?;
        Ok(())
    }

    /// Whether a subscriber is paused.
    ///
    /// # Errors
    /// A store read failed.
    pub fn paused(&self, subscriber: SubscriberId) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .meta
            .contains_key(format!("{META_PAUSED}{}", subscriber.0))?)
    }

    /// Deliveries waiting for a subscriber: events after its cursor that route to it (counting
    /// at most `scan_limit` log records; the bool says whether the count is exact) plus retries.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn pending(
        &self,
        subscriber: SubscriberId,
        scan_limit: usize,
    ) -> Result<Pending, StoreError> {
        let cursor = self.cursor(subscriber)?;
        let upto = *self.inner.committed.borrow();
        let mut fresh = 0u64;
        let mut scanned = 0usize;
        let mut exact = true;
        let mut oldest: Option<u64> = None;
        if cursor <= upto {
            self.scan_records(cursor, upto, scan_limit, |seq, value| {
                if scanned == scan_limit {
                    exact = false;
                    return Ok(false);
                }
                scanned += 1;
                if records::event_subscribers(value)?.any(|id| id == subscriber)
                    && !self.has_delivery_record(subscriber, seq)?
                {
                    fresh += 1;
                    if oldest.is_none() {
                        oldest = Some(records::event_accepted_at(value)?);
                    }
                }
                Ok(true)
            })?;
        }
        let mut retries = 0u64;
        for entry in self
            .inner
            .deliveries
            .scan_prefix(keys::subscriber_prefix(keys::RETRY, subscriber))
        {
            let (key, _) = entry?;
            retries += 1;
            if retries == 1 {
                // The lowest seq is the oldest accepted.
                if let Some((_, seq)) = keys::parse_delivery(&key) {
                    if let Some(value) = self.record(seq)? {
                        let at = records::event_accepted_at(&value)?;
                        oldest = Some(oldest.map_or(at, |fresh_oldest| fresh_oldest.min(at)));
                    }
                }
            }
        }
        Ok(Pending {
            fresh,
            retries,
            exact,
            oldest_accepted_ms: oldest,
        })
    }

    /// How many dead letters a subscriber has.
    pub fn dead_letter_count(&self, subscriber: SubscriberId) -> u64 {
        self.inner
            .deliveries
            .scan_prefix(keys::subscriber_prefix(keys::DEAD, subscriber))
            .count() as u64
    }

    /// The event with this `source` and `id`: through the dedupe index while it holds the
    /// event, else by scanning the retained log (newest first, at most `scan_limit` records).
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn find_event(
        &self,
        source: &str,
        id: &str,
        scan_limit: usize,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let indexed = self.dedupe().get(dedupe_key(source, id));
        if let Some(seq) = indexed {
            if let Some(stored) = self.event(seq)? {
                if stored.event.source == source && stored.event.id == id {
                    return Ok(Some(stored));
                }
            }
        }
        // Newest first: the log down to its start, then the events kept in sled.
        let upto = self.inner.committed.borrow().0;
        let start = self.inner.log.start().max(1);
        let mut looked = 0;
        let mut seq = upto;
        while seq >= start && looked < scan_limit {
            if let Some(value) = self.record(EventSeq(seq))? {
                let stored = records::decode_event(EventSeq(seq), &value)?;
                if stored.event.source == source && stored.event.id == id {
                    return Ok(Some(stored));
                }
            }
            looked += 1;
            seq -= 1;
        }
        for entry in self
            .inner
            .events
            .range(..keys::seq(EventSeq(start)))
            .rev()
            .take(scan_limit - looked)
        {
            let (key, value) = entry?;
            let stored = records::decode_event(parse_seq(&key)?, &value)?;
            if stored.event.source == source && stored.event.id == id {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// Where the delivery of `seq` to `subscriber` stands.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn delivery_state(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
    ) -> Result<DeliveryState, StoreError> {
        let deliveries = &self.inner.deliveries;
        if let Some(value) = deliveries.get(keys::delivery(keys::RETRY, subscriber, seq))? {
            return Ok(DeliveryState::Retrying(records::decode(&value)?));
        }
        if let Some(value) = deliveries.get(keys::delivery(keys::DEAD, subscriber, seq))? {
            return Ok(DeliveryState::Dead(Box::new(records::decode(&value)?)));
        }
        if self.cursor(subscriber)? > seq {
            Ok(DeliveryState::Delivered)
        } else {
            Ok(DeliveryState::Pending)
        }
    }

    /// Every dead letter, subscriber by subscriber in seq order, starting after `after`.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn scan_dead_letters(
        &self,
        after: Option<(SubscriberId, EventSeq)>,
    ) -> impl Iterator<Item = Result<(SubscriberId, EventSeq, DeadLetter), StoreError>> + '_ {
        let start = match after {
            Some((subscriber, seq)) => {
                keys::delivery(keys::DEAD, subscriber, EventSeq(seq.0 + 1)).to_vec()
            }
            None => vec![keys::DEAD],
        };
        self.inner
            .deliveries
            .range(start..vec![keys::DEAD + 1])
            .map(|entry| {
                let (key, value) = entry?;
                let (subscriber, seq) = keys::parse_delivery(&key)
                    .ok_or_else(|| StoreError::Corrupt("dead-letter key".into()))?;
                Ok((subscriber, seq, records::decode(&value)?))
            })
    }

    /// Puts a dead letter back in its subscriber's queue with a fresh retry budget, due now.
    /// If its event has left the retention window, the dead letter's copy is stored again.
    /// Returns false if there was no such dead letter.
    ///
    /// # Errors
    /// A store write failed.
    pub fn replay_dead_letter(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let dead_key = keys::delivery(keys::DEAD, subscriber, seq);
        let Some(value) = self.inner.deliveries.get(dead_key)? else {
            return Ok(false);
        };
        let letter: DeadLetter = records::decode(&value)?;
        if self.record(seq)?.is_none() {
            let record = records::encode_event(now_ms, &[subscriber], &letter.event)?;
            self.inner.events.insert(keys::seq(seq), record)?;
        }
        let state = RetryState {
            attempts: 0,
            first_attempt_ms: now_ms,
            next_attempt_ms: now_ms,
            last_status: letter.last_status,
            last_error: Some(format!("replayed dead letter: {}", letter.reason)),
        };
        let mut batch = sled::Batch::default();
        batch.insert(
            &keys::delivery(keys::RETRY, subscriber, seq),
            records::encode(&state)?,
        );
        batch.remove(&dead_key);
        batch.remove(&keys::delivery(keys::OUTBOX, subscriber, seq));
        let mut schedule = self.schedule();
        self.inner.deliveries.apply_batch(batch)?;
        schedule.set(subscriber, seq, state.next_attempt_ms);
        Ok(true)
    }

    /// Deletes a dead letter for good. Returns false if there was none.
    ///
    /// # Errors
    /// A store write failed.
    pub fn purge_dead_letter(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
    ) -> Result<bool, StoreError> {
        let mut batch = sled::Batch::default();
        let dead_key = keys::delivery(keys::DEAD, subscriber, seq);
        let existed = self.inner.deliveries.contains_key(dead_key)?;
        batch.remove(&dead_key);
        batch.remove(&keys::delivery(keys::OUTBOX, subscriber, seq));
        self.inner.deliveries.apply_batch(batch)?;
        Ok(existed)
    }

    /// Retained events from `after` (exclusive) on, in accept order, at most `scan_limit` looked
    /// at. Returns the events and the last seq looked at.
    ///
    /// # Errors
    /// A store read failed or a record is corrupt.
    pub fn scan_events(
        &self,
        after: EventSeq,
        scan_limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<EventSeq>), StoreError> {
        let upto = *self.inner.committed.borrow();
        let mut found = Vec::new();
        let mut last = None;
        if after >= upto {
            return Ok((found, last));
        }
        self.scan_records(EventSeq(after.0 + 1), upto, scan_limit, |seq, value| {
            last = Some(seq);
            found.push(records::decode_event(seq, value)?);
            Ok(found.len() < scan_limit)
        })?;
        Ok((found, last))
    }

    /// Queues a retained, already delivered event for `subscriber` again (archive replay): a
    /// fresh retry record, due now, under the same `webhook-id`. Deliveries still pending, being
    /// retried or dead are left as they are (dead letters have their own replay). Returns
    /// whether it was queued.
    ///
    /// # Errors
    /// A store write failed.
    pub fn requeue(
        &self,
        subscriber: SubscriberId,
        seq: EventSeq,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if self.cursor(subscriber)? <= seq || self.has_delivery_record(subscriber, seq)? {
            return Ok(false);
        }
        if self.record(seq)?.is_none() {
            return Ok(false);
        }
        let state = RetryState {
            attempts: 0,
            first_attempt_ms: now_ms,
            next_attempt_ms: now_ms,
            last_status: None,
            last_error: Some("archive replay".into()),
        };
        self.schedule_retry(subscriber, seq, &state)?;
        Ok(true)
    }
}
