//! Decoded events shared by the dispatchers. At fan-out N the N dispatchers reading an event
//! would each decode it (strings, data and all); here the first one decodes it and the others
//! take the same `Arc<Event>`.
//!
//! A dispatcher behind another one also takes its events from here without reading their records
//! again ([`Shared::take_run`]): each entry keeps the event's subscriber list and acceptance time,
//! which is all a read needs besides the decoding. That is served only for seqs at or past the
//! log's start (the caller checks, as for the tail): the log's records there never change, and a
//! purge never passes the lowest cursor. An entry leaves when every subscriber of the event has
//! taken it, or, oldest event first, when the entries exceed their budget of about 8 MiB or 8,192
//! events (a subscriber far behind the others reads and decodes its events itself). Entries are
//! ordered by seq (a B-tree: no hashing, and the oldest is the first).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::records::StoredEvent;
use crate::event::Event;
use crate::ids::{EventSeq, SubscriberId};

/// At most this many bytes of decoded events are kept, counted as each record's length plus
/// [`ENTRY_OVERHEAD`] (a decoded event is about its record's size, plus its strings' and the
/// entry's fixed parts). Not counted: the wire form an attempt keeps in the event once it is
/// sent (`delivery::request::Encodings`), about the record's size again per mode in use.
pub const BUDGET_BYTES: usize = 8 << 20;
/// What an entry costs beyond its record's length, for the budget.
const ENTRY_OVERHEAD: usize = 512;
/// At most this many entries, whatever their size.
const MAX_ENTRIES: usize = 8_192;

struct Entry {
    event: Arc<Event>,
    accepted_at_ms: u64,
    /// The event's subscribers, so that a reader tells its own events from the others here.
    subscribers: Box<[SubscriberId]>,
    /// Subscribers that have not taken it yet.
    remaining: usize,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<EventSeq, Entry>,
    bytes: usize,
}

impl Inner {
    /// A subscriber takes the decoding of `seq`, if there is one; the last one lets it go.
    fn take(&mut self, seq: EventSeq) -> Option<Arc<Event>> {
        let entry = self.entries.get_mut(&seq)?;
        let event = Arc::clone(&entry.event);
        entry.remaining = entry.remaining.saturating_sub(1);
        if entry.remaining == 0 {
            let bytes = entry.bytes;
            self.entries.remove(&seq);
            self.bytes -= bytes;
        }
        Some(event)
    }
}

/// The shared decodings.
pub struct Shared {
    inner: Mutex<Inner>,
    budget: usize,
}

impl Shared {
    pub fn new(budget: usize) -> Shared {
        Shared {
            inner: Mutex::new(Inner::default()),
            budget,
        }
    }

    /// The event of record `seq` (`bytes` long, accepted at `accepted_at_ms`, for `subscribers`
    /// subscribers, listed by `list` when it is kept): the shared decoding if there is one,
    /// otherwise `decode`'s, shared with the other subscribers.
    ///
    /// # Errors
    /// `decode` or `list` failed.
    pub fn get_or_decode<E>(
        &self,
        seq: EventSeq,
        bytes: usize,
        (accepted_at_ms, subscribers): (u64, usize),
        decode: impl FnOnce() -> Result<Event, E>,
        list: impl FnOnce() -> Result<Box<[SubscriberId]>, E>,
    ) -> Result<Arc<Event>, E> {
        if subscribers <= 1 {
            return decode().map(Arc::new);
        }
        if let Some(event) = self.inner.lock().expect("lock").take(seq) {
            return Ok(event);
        }
        // Decoded outside the lock: the other dispatchers do not wait for it.
        let event = Arc::new(decode()?);
        let bytes = bytes + ENTRY_OVERHEAD;
        if bytes > self.budget {
            return Ok(event);
        }
        let list = list()?;
        let mut inner = self.inner.lock().expect("lock");
        if let Some(theirs) = inner.take(seq) {
            // Another dispatcher decoded it meanwhile: take theirs, as a hit does, so that
            // its entry still goes once every subscriber has taken it.
            return Ok(theirs);
        }
        while inner.bytes + bytes > self.budget || inner.entries.len() >= MAX_ENTRIES {
            let Some((_, oldest)) = inner.entries.pop_first() else {
                break;
            };
            inner.bytes -= oldest.bytes;
        }
        inner.entries.insert(
            seq,
            Entry {
                event: Arc::clone(&event),
                accepted_at_ms,
                subscribers: list,
                remaining: subscribers - 1,
                bytes,
            },
        );
        inner.bytes += bytes;
        Ok(event)
    }

    /// Takes for `subscriber` the events kept here from `from` on, in seq order, up to the
    /// first seq that is not kept (or past `upto`, or `limit` events, or `scan_limit` seqs),
    /// skipping those that are not its own; returns the next seq to read. Called only for seqs
    /// at or past the log's start.
    pub fn take_run(
        &self,
        subscriber: SubscriberId,
        (from, upto): (EventSeq, EventSeq),
        (limit, scan_limit): (usize, usize),
        found: &mut Vec<StoredEvent>,
    ) -> EventSeq {
        // Room first: the other readers wait for the lock while this one runs.
        let span =
            usize::try_from(upto.0.saturating_add(1).saturating_sub(from.0)).unwrap_or(usize::MAX);
        found.reserve(limit.min(scan_limit).min(span).saturating_sub(found.len()));
        let mut inner = self.inner.lock().expect("lock");
        let mut next = from;
        let mut scanned = 0;
        while next <= upto && scanned < scan_limit && found.len() < limit {
            let Some(entry) = inner.entries.get(&next) else {
                break;
            };
            if entry.subscribers.contains(&subscriber) {
                let accepted_at_ms = entry.accepted_at_ms;
                let event = inner.take(next).expect("the entry just looked at");
                found.push(StoredEvent {
                    seq: next,
                    accepted_at_ms,
                    subscribers: Vec::new(),
                    event,
                });
            }
            scanned += 1;
            next = EventSeq(next.0 + 1);
        }
        next
    }

    /// (entries, bytes counted against the budget) kept now.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("lock");
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        crate::event::minimal(id)
    }

    fn list(subscribers: usize) -> Result<Box<[SubscriberId]>, ()> {
        Ok((1..=subscribers as u32).map(SubscriberId).collect())
    }

    fn take(shared: &Shared, seq: u64, subscribers: usize, decodes: &mut usize) -> Arc<Event> {
        shared
            .get_or_decode(
                EventSeq(seq),
                100,
                (seq * 10, subscribers),
                || {
                    *decodes += 1;
                    Ok::<_, ()>(event(&seq.to_string()))
                },
                || list(subscribers),
            )
            .unwrap()
    }

    #[test]
    fn an_event_is_decoded_once_for_all_its_subscribers_then_let_go() {
        let shared = Shared::new(BUDGET_BYTES);
        let mut decodes = 0;
        let first = take(&shared, 1, 3, &mut decodes);
        assert_eq!(shared.usage(), (1, 100 + ENTRY_OVERHEAD));
        let second = take(&shared, 1, 3, &mut decodes);
        let third = take(&shared, 1, 3, &mut decodes);
        assert_eq!(decodes, 1);
        assert!(Arc::ptr_eq(&first, &second) && Arc::ptr_eq(&second, &third));
        assert_eq!(third.id, "1");
        // Every subscriber took it: nothing is kept.
        assert_eq!(shared.usage(), (0, 0));
        // A subscriber reading it again (a retry) decodes it again.
        take(&shared, 1, 3, &mut decodes);
        assert_eq!(decodes, 2);
    }

    #[test]
    fn a_single_subscriber_event_is_not_kept() {
        let shared = Shared::new(BUDGET_BYTES);
        let mut decodes = 0;
        take(&shared, 1, 1, &mut decodes);
        take(&shared, 1, 1, &mut decodes);
        assert_eq!(decodes, 2);
        assert_eq!(shared.usage(), (0, 0));
    }

    #[test]
    fn the_budget_lets_the_oldest_go() {
        let entry = 100 + ENTRY_OVERHEAD;
        let shared = Shared::new(3 * entry + 50);
        let mut decodes = 0;
        for seq in 1..=5 {
            take(&shared, seq, 2, &mut decodes);
        }
        // Three entries fit: 3, 4 and 5.
        assert_eq!(shared.usage(), (3, 3 * entry));
        take(&shared, 5, 2, &mut decodes);
        assert_eq!(decodes, 5);
        take(&shared, 1, 2, &mut decodes);
        assert_eq!(decodes, 6, "1 was let go, so it is decoded again");
        // Bounded however many events go by.
        for seq in 6..1000 {
            take(&shared, seq, 2, &mut decodes);
        }
        let (entries, bytes) = shared.usage();
        assert!(entries <= 3 && bytes <= 3 * entry + 50);
    }

    #[test]
    fn two_readers_that_miss_at_once_share_the_first_decoding() {
        let shared = Shared::new(BUDGET_BYTES);
        let mut second = None;
        // The second reader's whole read runs while the first reader decodes (a decode runs
        // outside the lock), so both miss; the second one leaves its decoding in the map.
        let first = shared
            .get_or_decode(
                EventSeq(1),
                100,
                (10, 2),
                || {
                    let mut decodes = 0;
                    let other = take(&shared, 1, 2, &mut decodes);
                    assert_eq!(shared.usage().0, 1);
                    second = Some(Arc::clone(&other));
                    Ok::<_, ()>((*other).clone())
                },
                || list(2),
            )
            .unwrap();
        // The first reader took that entry instead of its own copy: nothing lingers.
        assert!(Arc::ptr_eq(&first, &second.unwrap()));
        assert_eq!(shared.usage(), (0, 0));
    }

    #[test]
    fn a_reader_behind_takes_its_own_events_of_a_run_without_decoding() {
        let shared = Shared::new(BUDGET_BYTES);
        let mut decodes = 0;
        // Seqs 1 to 3 kept for three subscribers, 4 not kept, 5 kept.
        for seq in [1, 2, 3, 5] {
            take(&shared, seq, 3, &mut decodes);
        }
        // (subscriber, from, upto, limit, scan limit) -> (next, seqs taken)
        let run = |subscriber, from, upto, limit, scan_limit| {
            let mut found = Vec::new();
            let next = shared.take_run(
                SubscriberId(subscriber),
                (EventSeq(from), EventSeq(upto)),
                (limit, scan_limit),
                &mut found,
            );
            let taken: Vec<_> = found.iter().map(|stored| stored.seq.0).collect();
            (next.0, taken, found)
        };
        // The run stops at 4, the first seq not kept: the log has it.
        let (next, taken, found) = run(2, 1, 10, 10, 100);
        assert_eq!((next, taken), (4, vec![1, 2, 3]));
        assert_eq!(
            (found[0].event.id.as_str(), found[0].accepted_at_ms),
            ("1", 10)
        );
        assert_eq!(decodes, 4);
        // Not a subscriber of these: skipped, taken by no one, the entries stay.
        let (next, taken, _) = run(7, 1, 10, 10, 100);
        assert_eq!((next, taken), (4, vec![]));
        assert_eq!(shared.usage().0, 4);
        // The third subscriber takes them last: they are let go. The limits hold.
        let (next, taken, _) = run(3, 1, 10, 2, 100);
        assert_eq!((next, taken), (3, vec![1, 2]), "two events at most");
        let (next, taken, _) = run(3, 3, 3, 10, 100);
        assert_eq!((next, taken), (4, vec![3]), "not past upto");
        assert_eq!(shared.usage().0, 1, "only 5 is left");
        assert_eq!(run(3, 5, 9, 10, 0).0, 5, "no seq may be looked at");
    }

    #[test]
    fn entries_are_capped_in_number_too() {
        let shared = Shared::new(usize::MAX);
        let mut decodes = 0;
        for seq in 0..(MAX_ENTRIES as u64 + 100) {
            take(&shared, seq, 2, &mut decodes);
        }
        assert_eq!(shared.usage().0, MAX_ENTRIES);
    }
}
