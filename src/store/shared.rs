//! Decoded events shared by the dispatchers. At fan-out N the N dispatchers reading an event
//! would each decode it (strings, data and all); here the first one decodes it and the others
//! take the same `Arc<Event>`.
//!
//! Only decodings are kept, never the truth: every read still finds the event's record first,
//! so an event purged from the store is never served from here. An entry leaves when every
//! subscriber of the event has taken it, or, oldest event first, when the entries exceed their
//! budget of about 8 MiB or 8,192 events (a subscriber far behind the others decodes its events
//! itself). Entries are ordered by seq (a B-tree: no hashing, and the oldest is the first).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::event::Event;
use crate::ids::EventSeq;

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

    /// The event of record `seq` (`bytes` long, for `subscribers` subscribers): the shared
    /// decoding if there is one, otherwise `decode`'s, shared with the other subscribers.
    ///
    /// # Errors
    /// `decode` failed.
    pub fn get_or_decode<E>(
        &self,
        seq: EventSeq,
        bytes: usize,
        subscribers: usize,
        decode: impl FnOnce() -> Result<Event, E>,
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
                remaining: subscribers - 1,
                bytes,
            },
        );
        inner.bytes += bytes;
        Ok(event)
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

    fn take(shared: &Shared, seq: u64, subscribers: usize, decodes: &mut usize) -> Arc<Event> {
        shared
            .get_or_decode(EventSeq(seq), 100, subscribers, || {
                *decodes += 1;
                Ok::<_, ()>(event(&seq.to_string()))
            })
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
            .get_or_decode(EventSeq(1), 100, 2, || {
                let mut decodes = 0;
                let other = take(&shared, 1, 2, &mut decodes);
                assert_eq!(shared.usage().0, 1);
                second = Some(Arc::clone(&other));
                Ok::<_, ()>((*other).clone())
            })
            .unwrap();
        // The first reader took that entry instead of its own copy: nothing lingers.
        assert!(Arc::ptr_eq(&first, &second.unwrap()));
        assert_eq!(shared.usage(), (0, 0));
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
