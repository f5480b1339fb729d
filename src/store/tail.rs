//! The newest committed events, in memory: the commit thread adds each event as its commit
//! becomes durable (before the watermark moves), so a dispatcher that keeps up with ingest takes
//! its events from here, as the `Arc<Event>` ingest built, instead of reading each record from
//! the log and decoding it (at fan-out N, N reads of the page cache and, without
//! [`super::shared`], N decodings per event).
//!
//! Only what the log holds is kept, and the log's records at or past its start never change, so
//! an entry is served only while its seq is at or past the log's start (the caller checks); a
//! dispatcher behind the tail reads the log, or takes what another one read of it
//! ([`super::shared`]). Entries are dense in seq (a commit whose write failed leaves a gap, after
//! which the tail starts again) and leave oldest first, when they exceed about [`BUDGET_BYTES`]
//! or [`MAX_ENTRIES`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::records::StoredEvent;
use crate::event::Event;
use crate::ids::{EventSeq, SubscriberId};

/// At most this many bytes of events are kept, counted as each record's length plus
/// [`ENTRY_OVERHEAD`], once more for the wire form an attempt keeps in the event
/// (`delivery::request::Encodings`).
pub const BUDGET_BYTES: usize = 8 << 20;
/// What an entry costs beyond twice its record's length, for the budget.
const ENTRY_OVERHEAD: usize = 512;
/// At most this many entries, whatever their size.
pub const MAX_ENTRIES: usize = 8_192;
/// What an entry whose event is let go still counts for.
const LET_GO_BYTES: usize = 64;

struct Entry {
    accepted_at_ms: u64,
    subscribers: Box<[SubscriberId]>,
    /// Let go once every subscriber has taken it, so that the memory of an event everyone has
    /// is freed (and used again while still in the CPU's caches) as the last attempt ends.
    event: Option<Arc<Event>>,
    /// Subscribers that have not taken it yet.
    remaining: usize,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// The seq of `entries[0]`.
    first: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
}

/// One committed event, as the commit thread hands it over.
pub struct Committed {
    pub seq: EventSeq,
    pub accepted_at_ms: u64,
    pub subscribers: Vec<SubscriberId>,
    pub event: Event,
    /// Its record's length in the log.
    pub record_len: usize,
}

pub struct Tail {
    inner: Mutex<Inner>,
    budget: usize,
    max_entries: usize,
}

/// What [`Tail::take`] found.
pub struct Taken {
    /// The seq to read on from (past the last one looked at).
    pub next: EventSeq,
    /// Whether the tail held `from` (if not, nothing was taken: read it from the log).
    pub held: bool,
}

impl Tail {
    pub fn new(budget: usize, max_entries: usize) -> Tail {
        Tail {
            inner: Mutex::new(Inner::default()),
            budget,
            max_entries: max_entries.max(1),
        }
    }

    /// Adds the events of one durable commit, in seq order.
    pub fn extend(&self, events: impl IntoIterator<Item = Committed>) {
        let mut inner = self.inner.lock().expect("tail lock");
        for committed in events {
            let seq = committed.seq.0;
            if inner.entries.is_empty() || inner.first + inner.entries.len() as u64 != seq {
                // The first one, or after a gap: start again from here.
                inner.entries.clear();
                inner.bytes = 0;
                inner.first = seq;
            }
            // An event no subscriber will take is let go at once.
            let remaining = committed.subscribers.len();
            let (event, bytes) = match remaining {
                0 => (None, LET_GO_BYTES),
                _ => (
                    Some(Arc::new(committed.event)),
                    2 * committed.record_len + ENTRY_OVERHEAD,
                ),
            };
            while !inner.entries.is_empty()
                && (inner.bytes + bytes > self.budget || inner.entries.len() >= self.max_entries)
            {
                let oldest = inner.entries.pop_front().expect("not empty");
                inner.bytes -= oldest.bytes;
                inner.first += 1;
            }
            inner.entries.push_back(Entry {
                accepted_at_ms: committed.accepted_at_ms,
                remaining,
                subscribers: committed.subscribers.into_boxed_slice(),
                event,
                bytes,
            });
            inner.bytes += bytes;
        }
    }

    /// `subscriber`'s events from `from` up to `upto`, pushed to `found` (at most `limit` in
    /// all), looking at most at `scan_limit` entries. It stops before an event of `subscriber`'s
    /// that every subscriber has taken already (read again: the log has it); `held` is false if
    /// it stopped at `from`, or `from` is not in the tail (older, or evicted).
    pub fn take(
        &self,
        subscriber: SubscriberId,
        from: EventSeq,
        upto: EventSeq,
        limit: usize,
        scan_limit: usize,
        found: &mut Vec<StoredEvent>,
    ) -> Taken {
        let mut inner = self.inner.lock().expect("tail lock");
        let first = inner.first;
        let end = first + inner.entries.len() as u64;
        let mut next = from.0;
        if next < first || next >= end {
            return Taken {
                next: from,
                held: false,
            };
        }
        let last = upto.0.min(end - 1);
        let (mut scanned, mut freed) = (0, 0);
        while next <= last && scanned < scan_limit && found.len() < limit {
            let entry = &mut inner.entries[(next - first) as usize];
            if entry.subscribers.contains(&subscriber) {
                // Let go already (this subscriber reads it again, after a restart of its
                // dispatcher): the log has it.
                let Some(event) = &entry.event else {
                    break;
                };
                found.push(StoredEvent {
                    seq: EventSeq(next),
                    accepted_at_ms: entry.accepted_at_ms,
                    subscribers: Vec::new(),
                    event: Arc::clone(event),
                });
                entry.remaining = entry.remaining.saturating_sub(1);
                if entry.remaining == 0 {
                    entry.event = None;
                    freed += entry.bytes - LET_GO_BYTES;
                    entry.bytes = LET_GO_BYTES;
                }
            }
            scanned += 1;
            next += 1;
        }
        inner.bytes -= freed;
        Taken {
            next: EventSeq(next),
            held: next > from.0,
        }
    }

    /// (entries, bytes counted against the budget) kept now.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("tail lock");
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        crate::event::minimal(id)
    }

    fn committed(seq: u64, subscribers: &[u32]) -> Committed {
        Committed {
            seq: EventSeq(seq),
            accepted_at_ms: 1_000 + seq,
            subscribers: subscribers.iter().copied().map(SubscriberId).collect(),
            event: event(&format!("e{seq}")),
            record_len: 100,
        }
    }

    fn take(
        tail: &Tail,
        subscriber: u32,
        from: u64,
        upto: u64,
        limit: usize,
    ) -> (Vec<u64>, u64, bool) {
        let mut found = Vec::new();
        let taken = tail.take(
            SubscriberId(subscriber),
            EventSeq(from),
            EventSeq(upto),
            limit,
            usize::MAX,
            &mut found,
        );
        for stored in &found {
            assert_eq!(stored.event.id, format!("e{}", stored.seq.0));
            assert_eq!(stored.accepted_at_ms, 1_000 + stored.seq.0);
        }
        (
            found.iter().map(|stored| stored.seq.0).collect(),
            taken.next.0,
            taken.held,
        )
    }

    #[test]
    fn serves_a_subscribers_events_up_to_the_watermark() {
        let tail = Tail::new(BUDGET_BYTES, MAX_ENTRIES);
        tail.extend((5..=9).map(|seq| committed(seq, if seq % 2 == 0 { &[1, 2] } else { &[2] })));
        assert_eq!(take(&tail, 1, 5, 9, 10), (vec![6, 8], 10, true));
        // At most `limit`, and on from just past the last one found.
        assert_eq!(take(&tail, 2, 5, 9, 2), (vec![5, 6], 7, true));
        // Up to the watermark given.
        assert_eq!(take(&tail, 2, 7, 8, 10), (vec![7, 8], 9, true));
        // Not held: before the first, past the last.
        assert_eq!(take(&tail, 2, 4, 9, 10), (vec![], 4, false));
        assert_eq!(take(&tail, 2, 10, 12, 10), (vec![], 10, false));
        // The scan limit bounds what is looked at, found or not.
        let mut found = Vec::new();
        let taken = tail.take(SubscriberId(3), EventSeq(5), EventSeq(9), 10, 2, &mut found);
        assert!(found.is_empty());
        assert_eq!((taken.next, taken.held), (EventSeq(7), true));
    }

    #[test]
    fn lets_an_event_go_once_every_subscriber_has_taken_it() {
        let entry = 2 * 100 + ENTRY_OVERHEAD;
        let tail = Tail::new(BUDGET_BYTES, MAX_ENTRIES);
        tail.extend((1..=3).map(|seq| committed(seq, &[1, 2])));
        tail.extend([committed(4, &[])]);
        assert_eq!(tail.usage(), (4, 3 * entry + LET_GO_BYTES));
        assert_eq!(take(&tail, 1, 1, 4, 10), (vec![1, 2, 3], 5, true));
        assert_eq!(tail.usage(), (4, 3 * entry + LET_GO_BYTES));
        assert_eq!(take(&tail, 2, 1, 2, 10), (vec![1, 2], 3, true));
        assert_eq!(tail.usage(), (4, entry + 3 * LET_GO_BYTES));
        // Read again (a dispatcher started over from its cursor): up to the first one let go,
        // and from there on the log. A second read counts as another subscriber's would.
        assert_eq!(take(&tail, 2, 1, 4, 10), (vec![], 1, false));
        assert_eq!(take(&tail, 1, 3, 4, 10), (vec![3], 5, true));
        assert_eq!(tail.usage(), (4, 4 * LET_GO_BYTES));
        assert_eq!(take(&tail, 2, 3, 4, 10), (vec![], 3, false));
    }

    #[test]
    fn evicts_oldest_first_and_starts_again_after_a_gap() {
        let entry = 2 * 100 + ENTRY_OVERHEAD;
        let tail = Tail::new(3 * entry + 10, MAX_ENTRIES);
        tail.extend((1..=5).map(|seq| committed(seq, &[1, 2])));
        assert_eq!(tail.usage(), (3, 3 * entry));
        assert_eq!(take(&tail, 1, 2, 5, 10), (vec![], 2, false));
        assert_eq!(take(&tail, 1, 3, 5, 10), (vec![3, 4, 5], 6, true));
        // A failed commit's seqs are never added: the tail holds only what follows the gap.
        tail.extend([committed(8, &[1])]);
        assert_eq!(tail.usage(), (1, entry));
        assert_eq!(take(&tail, 1, 5, 8, 10), (vec![], 5, false));
        assert_eq!(take(&tail, 1, 8, 8, 10), (vec![8], 9, true));

        let by_count = Tail::new(BUDGET_BYTES, 2);
        by_count.extend((1..=4).map(|seq| committed(seq, &[1])));
        assert_eq!(by_count.usage(), (2, 2 * entry));
        assert_eq!(take(&by_count, 1, 3, 4, 10), (vec![3, 4], 5, true));
    }
}
