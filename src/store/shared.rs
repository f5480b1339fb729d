//! Decoded events shared by the dispatchers. At fan-out N the N dispatchers reading an event
//! would each decode it (strings, data and all); here the first one decodes it and the others
//! take the same `Arc<Event>`.
//!
//! Only decodings are kept, never the truth: every read still finds the event's record first,
//! so an event purged from the store is never served from here. An entry leaves when every
//! subscriber of the event has taken it, or, oldest event first, when the entries exceed their
//! byte budget (a subscriber far behind the others decodes its events itself). Entries are
//! ordered by seq (a B-tree: no hashing, and the oldest is the first).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::event::Event;
use crate::ids::EventSeq;

/// At most this many record bytes of decoded events are kept.
pub const BUDGET_BYTES: usize = 8 << 20;

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
        {
            let mut inner = self.inner.lock().expect("lock");
            if let Some(entry) = inner.entries.get_mut(&seq) {
                let event = Arc::clone(&entry.event);
                entry.remaining = entry.remaining.saturating_sub(1);
                if entry.remaining == 0 {
                    let bytes = entry.bytes;
                    inner.entries.remove(&seq);
                    inner.bytes -= bytes;
                }
                return Ok(event);
            }
        }
        // Decoded outside the lock: the other dispatchers do not wait for it.
        let event = Arc::new(decode()?);
        if bytes > self.budget {
            return Ok(event);
        }
        let mut inner = self.inner.lock().expect("lock");
        if inner.entries.contains_key(&seq) {
            // Another dispatcher decoded it meanwhile; its entry counts for both.
            return Ok(event);
        }
        while inner.bytes + bytes > self.budget {
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

    /// (entries, record bytes) kept now.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("lock");
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttrValue;

    fn event(id: &str) -> Event {
        let attributes = [
            ("specversion", "1.0"),
            ("id", id),
            ("source", "/s"),
            ("type", "t"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
        .collect();
        Event::from_attributes(attributes, None).unwrap()
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
        assert_eq!(shared.usage(), (1, 100));
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
        let shared = Shared::new(350);
        let mut decodes = 0;
        for seq in 1..=5 {
            take(&shared, seq, 2, &mut decodes);
        }
        // Three entries of 100 bytes fit: 3, 4 and 5.
        assert_eq!(shared.usage(), (3, 300));
        take(&shared, 5, 2, &mut decodes);
        assert_eq!(decodes, 5);
        take(&shared, 1, 2, &mut decodes);
        assert_eq!(decodes, 6, "1 was let go, so it is decoded again");
        // Bounded however many events go by.
        for seq in 6..1000 {
            take(&shared, seq, 2, &mut decodes);
        }
        let (entries, bytes) = shared.usage();
        assert!(entries <= 3 && bytes <= 350);
    }
}
