//! The retry schedule, in memory: every retry record's due time, in time order per subscriber.
//!
//! The retry records in sled (`r` + subscriber + seq → `RetryState`) are the truth; this index
//! is rebuilt from them at open and kept in step by the store after each write. So moving a
//! retry is one sled insert of one key, which sled makes atomic by itself: no `sled::Batch`,
//! which seals sled's I/O buffer twice and wakes all of its pool threads each time.

use std::collections::{BTreeSet, HashMap};

use crate::ids::{EventSeq, SubscriberId};

#[derive(Debug, Default)]
pub struct Schedule {
    /// (subscriber, due at ms, seq), in that order.
    by_time: BTreeSet<(SubscriberId, u64, EventSeq)>,
    /// Each scheduled delivery's due time, to move or remove it.
    by_delivery: HashMap<(SubscriberId, EventSeq), u64>,
}

impl Schedule {
    /// Schedules a delivery at `at_ms`, in place of its earlier time if it had one.
    pub fn set(&mut self, subscriber: SubscriberId, seq: EventSeq, at_ms: u64) {
        if let Some(previous) = self.by_delivery.insert((subscriber, seq), at_ms) {
            self.by_time.remove(&(subscriber, previous, seq));
        }
        self.by_time.insert((subscriber, at_ms, seq));
    }

    /// Takes a delivery out of the schedule (it succeeded or went to the dead letters).
    pub fn remove(&mut self, subscriber: SubscriberId, seq: EventSeq) {
        if let Some(at_ms) = self.by_delivery.remove(&(subscriber, seq)) {
            self.by_time.remove(&(subscriber, at_ms, seq));
        }
    }

    /// `subscriber`'s deliveries due at `now_ms`, oldest first, at most `limit`, skipping `skip`.
    pub fn due(
        &self,
        subscriber: SubscriberId,
        now_ms: u64,
        limit: usize,
        skip: impl Fn(EventSeq) -> bool,
    ) -> Vec<EventSeq> {
        self.by_time
            .range((subscriber, 0, EventSeq(0))..=(subscriber, now_ms, EventSeq(u64::MAX)))
            .map(|(_, _, seq)| *seq)
            .filter(|seq| !skip(*seq))
            .take(limit)
            .collect()
    }

    /// When `subscriber`'s earliest delivery not excluded by `skip` is due.
    pub fn next(&self, subscriber: SubscriberId, skip: impl Fn(EventSeq) -> bool) -> Option<u64> {
        self.by_time
            .range((subscriber, 0, EventSeq(0))..=(subscriber, u64::MAX, EventSeq(u64::MAX)))
            .find(|(_, _, seq)| !skip(*seq))
            .map(|(_, at_ms, _)| *at_ms)
    }

    /// How many deliveries are scheduled, for all subscribers.
    pub fn len(&self) -> usize {
        self.by_delivery.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_delivery_once_in_time_order_per_subscriber() {
        let (erp, pim) = (SubscriberId(1), SubscriberId(2));
        let mut schedule = Schedule::default();
        schedule.set(erp, EventSeq(7), 300);
        schedule.set(erp, EventSeq(3), 100);
        schedule.set(pim, EventSeq(1), 50);
        schedule.set(erp, EventSeq(9), 200);
        assert_eq!(
            schedule.due(erp, 250, 10, |_| false),
            [EventSeq(3), EventSeq(9)]
        );
        assert_eq!(schedule.due(erp, 250, 1, |_| false), [EventSeq(3)]);
        assert_eq!(
            schedule.due(erp, 1_000, 10, |seq| seq == EventSeq(9)),
            [EventSeq(3), EventSeq(7)]
        );
        assert_eq!(schedule.next(erp, |_| false), Some(100));
        assert_eq!(schedule.next(erp, |seq| seq == EventSeq(3)), Some(200));
        assert_eq!(schedule.next(pim, |_| false), Some(50));

        // Moving a delivery leaves no trace at its old time.
        schedule.set(erp, EventSeq(3), 400);
        assert_eq!(schedule.due(erp, 250, 10, |_| false), [EventSeq(9)]);
        assert_eq!(schedule.len(), 4);

        schedule.remove(erp, EventSeq(9));
        schedule.remove(erp, EventSeq(42));
        assert_eq!(schedule.next(erp, |_| false), Some(300));
        assert!(schedule.due(pim, 40, 10, |_| false).is_empty());
        assert_eq!(schedule.len(), 3);
    }
}
