//! Ordered delivery per key (`ordering: { key: <attribute> }`): events with the same value of
//! the attribute go one at a time, in accept order; a failing head (retries included) holds back
//! only its own key, and other keys flow in parallel. Events without the attribute are not
//! ordered. This is the dispatcher's bookkeeping, kept apart and without I/O.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use crate::event::Event;
use crate::ids::EventSeq;
use crate::store::StoredEvent;

/// Keys, their heads, and the events waiting behind them.
#[derive(Debug)]
pub struct KeyOrder {
    attribute: String,
    /// Key → the seq whose delivery is in flight or waiting for a retry.
    busy: HashMap<String, EventSeq>,
    /// Key → events read from the log behind the busy head, in accept order.
    waiting: HashMap<String, VecDeque<StoredEvent>>,
    /// Heads released by a finished delivery, to start next.
    ready: VecDeque<StoredEvent>,
    held: usize,
}

impl KeyOrder {
    pub fn new(attribute: &str) -> KeyOrder {
        KeyOrder {
            attribute: attribute.to_owned(),
            busy: HashMap::new(),
            waiting: HashMap::new(),
            ready: VecDeque::new(),
            held: 0,
        }
    }

    fn key(&self, event: &Event) -> Option<String> {
        event.attribute(&self.attribute).map(|key| key.into_owned())
    }

    /// Marks the key of a delivery already pending (a retry found at start) as busy.
    pub fn block(&mut self, event: &Event, seq: EventSeq) {
        if let Some(key) = self.key(event) {
            let head = self.busy.entry(key).or_insert(seq);
            *head = (*head).min(seq);
        }
    }

    /// A fresh event from the log: given back if it may start now (its key becomes busy), or
    /// held behind its key's head.
    pub fn offer(&mut self, stored: StoredEvent) -> Option<StoredEvent> {
        let Some(key) = self.key(&stored.event) else {
            return Some(stored);
        };
        match self.busy.entry(key) {
            Entry::Occupied(busy) => {
                self.waiting
                    .entry(busy.key().clone())
                    .or_default()
                    .push_back(stored);
                self.held += 1;
                None
            }
            Entry::Vacant(free) => {
                free.insert(stored.seq);
                Some(stored)
            }
        }
    }

    /// The delivery of `seq` is finished (delivered or dead): the next event of its key, if
    /// any, becomes ready.
    pub fn release(&mut self, event: &Event, seq: EventSeq) {
        let Some(key) = self.key(event) else {
            return;
        };
        if self.busy.get(&key) != Some(&seq) {
            return;
        }
        match self.waiting.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(next) => {
                self.held -= 1;
                self.busy.insert(key.clone(), next.seq);
                self.ready.push_back(next);
                if self.waiting.get(&key).is_some_and(VecDeque::is_empty) {
                    self.waiting.remove(&key);
                }
            }
            None => {
                self.busy.remove(&key);
            }
        }
    }

    /// A released head to start (its key stays busy with it).
    pub fn pop_ready(&mut self) -> Option<StoredEvent> {
        self.ready.pop_front()
    }

    /// Gives back a ready head that could not start yet.
    pub fn unpop_ready(&mut self, stored: StoredEvent) {
        self.ready.push_front(stored);
    }

    /// Events held (waiting behind a head, or ready).
    pub fn held(&self) -> usize {
        self.held + self.ready.len()
    }

    /// The lowest log position held, which the cursor must not pass.
    pub fn lowest_held(&self) -> Option<EventSeq> {
        self.waiting
            .values()
            .filter_map(|queue| queue.front().map(|stored| stored.seq))
            .chain(self.ready.iter().map(|stored| stored.seq))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AttrValue;

    fn stored(seq: u64, subject: Option<&str>) -> StoredEvent {
        let mut attributes = vec![
            ("specversion".to_owned(), AttrValue::String("1.0".into())),
            ("id".to_owned(), AttrValue::String(seq.to_string())),
            ("source".to_owned(), AttrValue::String("/s".into())),
            ("type".to_owned(), AttrValue::String("t".into())),
        ];
        if let Some(subject) = subject {
            attributes.push(("subject".to_owned(), AttrValue::String(subject.into())));
        }
        StoredEvent {
            seq: EventSeq(seq),
            event: std::sync::Arc::new(Event::from_attributes(attributes, None).unwrap()),
            accepted_at_ms: 0,
            subscribers: Vec::new(),
        }
    }

    #[test]
    fn one_at_a_time_per_key_in_accept_order() {
        let mut order = KeyOrder::new("subject");
        let a1 = order.offer(stored(1, Some("a"))).expect("a's head starts");
        assert!(
            order.offer(stored(2, Some("a"))).is_none(),
            "a2 waits for a1"
        );
        assert!(
            order.offer(stored(3, Some("b"))).is_some(),
            "b is another key"
        );
        assert!(order.offer(stored(4, Some("a"))).is_none());
        assert!(
            order.offer(stored(5, None)).is_some(),
            "no key: not ordered"
        );
        assert_eq!((order.held(), order.lowest_held()), (2, Some(EventSeq(2))));
        assert!(
            order.pop_ready().is_none(),
            "a1 still in flight (or retrying)"
        );
        // A finished delivery of another seq (a replay) releases nothing.
        order.release(&stored(2, Some("a")).event, EventSeq(2));
        assert!(order.pop_ready().is_none());
        order.release(&a1.event, a1.seq);
        let a2 = order.pop_ready().expect("a2 is next");
        assert_eq!(a2.seq, EventSeq(2));
        assert_eq!(
            order.lowest_held(),
            Some(EventSeq(4)),
            "a2 is the caller's now"
        );
        order.unpop_ready(a2);
        assert_eq!(
            order.lowest_held(),
            Some(EventSeq(2)),
            "given back: held again"
        );
        let a2 = order.pop_ready().unwrap();
        order.release(&a2.event, a2.seq);
        assert_eq!(order.pop_ready().unwrap().seq, EventSeq(4));
        order.release(&stored(4, Some("a")).event, EventSeq(4));
        assert!(
            order.offer(stored(6, Some("a"))).is_some(),
            "a is free again"
        );
        assert_eq!(order.held(), 0);
    }

    #[test]
    fn retries_found_at_start_block_their_key() {
        let mut order = KeyOrder::new("subject");
        order.block(&stored(7, Some("a")).event, EventSeq(7));
        assert!(order.offer(stored(9, Some("a"))).is_none());
        order.release(&stored(7, Some("a")).event, EventSeq(7));
        assert_eq!(order.pop_ready().unwrap().seq, EventSeq(9));
    }
}
