use std::time::Duration;

use super::*;
use crate::config::Durability;
use crate::event::AttrValue;

fn config(durability: Durability) -> StorageConfig {
    StorageConfig {
        durability,
        dedupe_window: Duration::from_secs(60),
        retention: Duration::from_secs(3600),
        cache_capacity: 8 * 1024 * 1024,
        flush_interval: Duration::from_millis(50),
        state_flush_interval: Duration::from_millis(50),
        commit_delay: Duration::from_micros(100),
        max_size: None,
    }
}

fn event(source: &str, id: &str) -> Event {
    let attributes = [
        ("specversion", "1.0"),
        ("id", id),
        ("source", source),
        ("type", "t"),
    ];
    Event::from_attributes(
        attributes
            .iter()
            .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
            .collect(),
        Some(crate::event::Data::Json(b"{\"a\":1}".to_vec())),
    )
    .unwrap()
}

/// An attempt that got an answer with `status`.
fn answered(status: u16, at_ms: u64) -> AttemptRecord {
    AttemptRecord {
        at_ms,
        status: Some(status),
        error: None,
        latency_us: 5,
        response_excerpt: None,
        response_headers: Vec::new(),
    }
}

/// The statuses of one delivery's attempts, in order.
fn statuses(store: &Store, subscriber: SubscriberId, seq: u64) -> Vec<Option<u16>> {
    store
        .attempts(subscriber, EventSeq(seq))
        .unwrap()
        .into_iter()
        .map(|attempt| attempt.status)
        .collect()
}

fn new(source: &str, id: &str, subscribers: &[u32]) -> NewEvent {
    NewEvent {
        event: event(source, id),
        subscribers: subscribers.iter().copied().map(SubscriberId).collect(),
    }
}

#[tokio::test]
async fn accepts_dedupes_and_reads_back_per_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    let ids = store.register_subscribers(["erp", "pim"]).unwrap();
    let (erp, pim) = (ids["erp"], ids["pim"]);
    assert_ne!(erp, pim);
    assert_eq!(store.register_subscribers(["erp"]).unwrap()["erp"], erp);

    let outcome = store
        .accept(
            vec![
                new("/s", "1", &[erp.0, pim.0]),
                new("/s", "2", &[pim.0]),
                new("/s", "1", &[erp.0]),
            ],
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome[0],
        Accepted::Stored {
            seq: EventSeq(1),
            subscribers: 2
        }
    );
    assert_eq!(
        outcome[1],
        Accepted::Stored {
            seq: EventSeq(2),
            subscribers: 1
        }
    );
    assert_eq!(outcome[2], Accepted::Duplicate { seq: EventSeq(1) });
    assert_eq!(*store.committed().borrow(), EventSeq(2));

    let again = store
        .accept(
            vec![new("/s", "2", &[pim.0]), new("/other", "2", &[pim.0])],
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(again[0], Accepted::Duplicate { seq: EventSeq(2) });
    assert_eq!(
        again[1],
        Accepted::Stored {
            seq: EventSeq(3),
            subscribers: 1
        }
    );
    // Outside the dedupe window the same id is a new event.
    let later = store
        .accept(vec![new("/s", "2", &[pim.0])], 2_000 + 61_000)
        .await
        .unwrap();
    assert_eq!(
        later[0],
        Accepted::Stored {
            seq: EventSeq(4),
            subscribers: 1
        }
    );

    let (for_erp, next) = store.events_for(erp, EventSeq(1), 10, 100).unwrap();
    assert_eq!(
        for_erp.iter().map(|stored| stored.seq).collect::<Vec<_>>(),
        [EventSeq(1)]
    );
    assert_eq!(next, EventSeq(5));
    let (for_pim, _) = store.events_for(pim, EventSeq(1), 2, 100).unwrap();
    assert_eq!(
        for_pim.iter().map(|stored| stored.seq).collect::<Vec<_>>(),
        [EventSeq(1), EventSeq(2)]
    );
    assert_eq!(*for_pim[0].event, event("/s", "1"));
    assert_eq!(for_pim[0].accepted_at_ms, 1_000);
    // Event 1 went to both: the one event ingest built, kept in the tail, taken by each.
    assert!(std::sync::Arc::ptr_eq(&for_erp[0].event, &for_pim[0].event));
    assert_eq!(store.inner.shared.usage(), (0, 0));
    // Read again (a dispatcher started over from its cursor): the tail let event 1 go once
    // both had it, so it comes from the log, the same event.
    let (again, next) = store.events_for(erp, EventSeq(1), 10, 100).unwrap();
    assert_eq!(
        again.iter().map(|stored| stored.seq).collect::<Vec<_>>(),
        [EventSeq(1)]
    );
    assert_eq!(next, EventSeq(5));
    assert_eq!(*again[0].event, event("/s", "1"));
    assert_eq!(again[0].accepted_at_ms, 1_000);
    assert!(!std::sync::Arc::ptr_eq(&again[0].event, &for_erp[0].event));
}

#[tokio::test]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let subscriber;
    {
        let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
        subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
        store
            .accept(vec![new("/s", "1", &[subscriber.0])], 10)
            .await
            .unwrap();
        let state = RetryState {
            attempts: 1,
            first_attempt_ms: 10,
            next_attempt_ms: 500,
            last_status: Some(503),
            last_error: None,
        };
        store
            .schedule_retry(subscriber, EventSeq(1), &state)
            .unwrap();
        store.set_cursor(subscriber, EventSeq(2)).unwrap();
        store.flush().unwrap();
    }
    // Dropping the last handle closes the database, so it opens again at once.
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    assert_eq!(
        store.register_subscribers(["erp"]).unwrap()["erp"],
        subscriber
    );
    assert_eq!(store.cursor(subscriber).unwrap(), EventSeq(2));
    let due = store.due_retries(subscriber, 499, 10, |_| false).unwrap();
    assert!(due.is_empty());
    let due = store.due_retries(subscriber, 500, 10, |_| false).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].state.last_status, Some(503));
    assert!(store.has_delivery_record(subscriber, EventSeq(1)).unwrap());
    // New events continue the sequence.
    let outcome = store
        .accept(vec![new("/s", "9", &[subscriber.0])], 20)
        .await
        .unwrap();
    assert_eq!(
        outcome[0],
        Accepted::Stored {
            seq: EventSeq(2),
            subscribers: 1
        }
    );
}

#[tokio::test]
async fn retry_moves_and_dead_letters_are_atomic_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
    let subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
    store
        .accept(vec![new("/s", "1", &[subscriber.0])], 10)
        .await
        .unwrap();
    let first = RetryState {
        attempts: 1,
        first_attempt_ms: 10,
        next_attempt_ms: 100,
        last_status: Some(500),
        last_error: None,
    };
    store
        .schedule_retry(subscriber, EventSeq(1), &first)
        .unwrap();
    let second = RetryState {
        attempts: 2,
        next_attempt_ms: 300,
        ..first.clone()
    };
    store
        .schedule_retry(subscriber, EventSeq(1), &second)
        .unwrap();
    assert_eq!(store.next_retry_at(subscriber, |_| false), Some(300));
    assert_eq!(
        store.retries(subscriber).unwrap(),
        vec![(EventSeq(1), second.clone())]
    );

    let letter = DeadLetter {
        event: event("/s", "1"),
        reason: "exhausted".into(),
        last_status: Some(500),
        attempts: 3,
        first_attempt_ms: 10,
        dead_at_ms: 400,
    };
    store
        .dead_letter(subscriber, EventSeq(1), &letter, Some(&second), true)
        .unwrap();
    assert!(store.retries(subscriber).unwrap().is_empty());
    assert_eq!(store.next_retry_at(subscriber, |_| false), None);
    assert_eq!(
        store.dead_letters(subscriber).unwrap(),
        vec![(EventSeq(1), letter.clone())]
    );
    assert_eq!(
        store.outbox(10).unwrap(),
        vec![(subscriber, EventSeq(1), letter)]
    );
    store.forwarded(subscriber, EventSeq(1)).unwrap();
    assert!(store.outbox(10).unwrap().is_empty());

    // A replayed dead letter is scheduled again, and the schedule is rebuilt at open from the
    // retry records.
    assert!(store
        .replay_dead_letter(subscriber, EventSeq(1), 500)
        .unwrap());
    assert_eq!(store.next_retry_at(subscriber, |_| false), Some(500));
    let other = store.register_subscribers(["pim"]).unwrap()["pim"];
    assert_eq!(store.next_retry_at(other, |_| false), None);
    // A schedule entry as fanout versions before the in-memory schedule kept it in sled.
    let mut legacy = vec![keys::SCHEDULE];
    legacy.extend_from_slice(&[0; 20]);
    store.inner.deliveries.insert(legacy, &[]).unwrap();
    drop(store);
    let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
    assert_eq!(
        store.inner.deliveries.scan_prefix([keys::SCHEDULE]).count(),
        0,
        "legacy schedule entries go at open"
    );
    assert_eq!(store.next_retry_at(subscriber, |_| false), Some(500));
    assert_eq!(store.scheduled_retries(), 1);
    let due = store.due_retries(subscriber, 499, 10, |_| false).unwrap();
    assert!(due.is_empty(), "not due yet");
    let due = store.due_retries(subscriber, 500, 10, |_| false).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].seq, EventSeq(1));
    assert_eq!(
        due[0].state.last_error.as_deref(),
        Some("replayed dead letter: exhausted")
    );
    store
        .complete(subscriber, EventSeq(1), Some(&due[0].state))
        .unwrap();
    assert_eq!(store.scheduled_retries(), 0);
}

#[tokio::test]
async fn purges_expired_dedupe_entries_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
    let subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
    store
        .accept(
            vec![
                new("/s", "1", &[subscriber.0]),
                new("/s", "2", &[subscriber.0]),
            ],
            1_000,
        )
        .await
        .unwrap();
    store
        .record_attempt(subscriber, EventSeq(1), &answered(200, 1_000), false)
        .unwrap();
    // Past the dedupe window but within retention: the id may be used again, the event stays.
    assert_eq!(store.purge_expired(1_000 + 61_000).unwrap(), 0);
    let outcome = store
        .accept(vec![new("/s", "1", &[])], 1_000 + 61_000)
        .await
        .unwrap();
    assert!(matches!(outcome[0], Accepted::Stored { .. }));
    // Past retention, but the subscriber has not finished with them: kept.
    assert_eq!(store.purge_expired(1_000 + 3_601_000).unwrap(), 0);
    store.set_cursor(subscriber, EventSeq(3)).unwrap();
    assert_eq!(store.purge_expired(1_000 + 3_601_000).unwrap(), 2);
    assert!(store.event(EventSeq(1)).unwrap().is_none());
    assert!(store.attempts(subscriber, EventSeq(1)).unwrap().is_empty());
    assert!(store.event(EventSeq(3)).unwrap().is_some());
}

/// Large events (40 KiB each, 32 of them) read back whole after reopening.
#[tokio::test]
async fn large_events_round_trip_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let pad = "x".repeat(40 * 1024);
    let large = |id: &str| {
        let attributes = [
            ("specversion", "1.0"),
            ("id", id),
            ("source", "/big"),
            ("type", "t"),
        ];
        let event = Event::from_attributes(
            attributes
                .iter()
                .map(|(name, value)| (name.to_string(), AttrValue::String(value.to_string())))
                .collect(),
            Some(crate::event::Data::Json(
                format!("{{\"pad\":\"{pad}\"}}").into_bytes(),
            )),
        )
        .unwrap();
        NewEvent {
            event,
            subscribers: vec![SubscriberId(1)],
        }
    };
    {
        let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
        for batch in 0..4 {
            let events = (0..8)
                .map(|index| large(&format!("{batch}-{index}")))
                .collect();
            store.accept(events, 10).await.unwrap();
        }
    }
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    for seq in 1..=32 {
        let stored = store
            .event(EventSeq(seq))
            .unwrap()
            .expect("the event is there");
        assert_eq!(stored.event.data_bytes().len(), pad.len() + 10);
    }
}

/// Attempt records written before `response_headers` existed still decode.
#[test]
fn attempts_of_the_first_layout_still_decode() {
    #[derive(serde::Serialize)]
    struct V1 {
        at_ms: u64,
        status: Option<u16>,
        error: Option<String>,
        latency_us: u64,
        response_excerpt: Option<String>,
    }
    let old = postcard::to_allocvec(&V1 {
        at_ms: 7,
        status: Some(503),
        error: None,
        latency_us: 9,
        response_excerpt: Some("busy".into()),
    })
    .unwrap();
    let decoded = records::decode_attempt(&old).unwrap();
    assert_eq!(
        (decoded.at_ms, decoded.status, decoded.latency_us),
        (7, Some(503), 9)
    );
    assert_eq!(decoded.response_excerpt.as_deref(), Some("busy"));
    assert!(decoded.response_headers.is_empty());
    let new = AttemptRecord {
        response_headers: vec![("retry-after".into(), "5".into())],
        ..decoded
    };
    assert_eq!(
        records::decode_attempt(&records::encode(&new).unwrap()).unwrap(),
        new
    );
}

#[tokio::test]
async fn attempts_with_history_are_numbered_after_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
    let subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
    // A first attempt, then two more that may follow history (a retry, a replay).
    for (status, history) in [(500, false), (503, true), (200, true)] {
        store
            .record_attempt(subscriber, EventSeq(7), &answered(status, 1_000), history)
            .unwrap();
    }
    assert_eq!(
        statuses(&store, subscriber, 7),
        [Some(500), Some(503), Some(200)]
    );
}

/// The dedupe index is in memory: at open it is built again from the log (and the events kept
/// in sled), and an index tree of earlier versions is dropped.
#[tokio::test]
async fn the_dedupe_index_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    {
        let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
        store
            .accept(vec![new("/s", "1", &[1]), new("/s", "2", &[1])], now)
            .await
            .unwrap();
        assert_eq!(store.dedupe_index_entries(), 2);
        store.inner.db.open_tree("dedupe").unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    assert_eq!(store.dedupe_index_entries(), 2);
    let names = store.inner.db.tree_names();
    assert!(!names.iter().any(|name| name.as_ref() == b"dedupe"));
    let outcome = store
        .accept(
            vec![
                new("/s", "2", &[1]),
                new("/s", "1", &[1]),
                new("/s", "3", &[1]),
            ],
            now + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![
            Accepted::Duplicate { seq: EventSeq(2) },
            Accepted::Duplicate { seq: EventSeq(1) },
            Accepted::Stored {
                seq: EventSeq(3),
                subscribers: 1
            }
        ]
    );
}

/// An event kept in sled for its retry after its segment was purged is indexed at open while
/// it is in the window; one that retention removed no longer counts.
#[tokio::test]
async fn events_kept_in_sled_are_indexed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let short_retention = StorageConfig {
        retention: Duration::from_secs(1),
        ..config(Durability::Strict)
    };
    let accepted_at = 1_000_000;
    {
        let store = Store::open(dir.path(), &short_retention).unwrap();
        let subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
        let events = vec![
            new("/s", "0", &[subscriber.0]),
            new("/s", "1", &[subscriber.0]),
        ];
        store.accept(events, accepted_at).await.unwrap();
        let state = RetryState {
            attempts: 1,
            first_attempt_ms: accepted_at,
            next_attempt_ms: accepted_at + 5_000_000,
            last_status: Some(503),
            last_error: None,
        };
        store
            .schedule_retry(subscriber, EventSeq(1), &state)
            .unwrap();
        store.set_cursor(subscriber, EventSeq(3)).unwrap();
        assert_eq!(store.purge_expired(accepted_at + 2_000).unwrap(), 1);
        assert_eq!(store.dedupe_index_entries(), 1);
    }
    let store = Store::open(dir.path(), &short_retention).unwrap();
    assert_eq!(store.dedupe_index_entries(), 1);
    let outcome = store
        .accept(
            vec![new("/s", "0", &[1]), new("/s", "1", &[1])],
            accepted_at + 3_000,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![
            Accepted::Duplicate { seq: EventSeq(1) },
            Accepted::Stored {
                seq: EventSeq(3),
                subscribers: 1
            }
        ]
    );
}

/// An index entry whose event has another `source` and `id` (their hashes collide) does not
/// make a new event a duplicate.
#[tokio::test]
async fn a_colliding_dedupe_entry_swallows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    let now = now_ms();
    store
        .accept(vec![new("/s", "other", &[1])], now)
        .await
        .unwrap();
    store.dedupe().insert(dedupe_key("/s", "lost"), EventSeq(1));
    let outcome = store
        .accept(vec![new("/s", "lost", &[1])], now)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![Accepted::Stored {
            seq: EventSeq(2),
            subscribers: 1
        }]
    );
    // The newer event takes the entry.
    assert_eq!(
        store.dedupe().get(dedupe_key("/s", "lost")),
        Some(EventSeq(2))
    );
}

/// The dedupe key read from a record without decoding it is the event's.
#[test]
fn a_record_gives_its_dedupe_key() {
    let record = records::encode_event(7, &[SubscriberId(3)], &event("/shop", "order-1")).unwrap();
    assert_eq!(
        records::event_identity(&record).unwrap(),
        ("/shop", "order-1")
    );
    assert_eq!(
        records::event_dedupe_key(&record).unwrap(),
        dedupe_key("/shop", "order-1")
    );
}

/// Past retention, an event a retry still needs leaves the log but is kept in sled; the others
/// go, and a restart neither reads them back nor reuses their seqs.
#[tokio::test]
async fn purging_the_log_keeps_what_a_retry_needs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
        let subscriber = store.register_subscribers(["erp"]).unwrap()["erp"];
        let events = (0..5)
            .map(|index| new("/s", &index.to_string(), &[subscriber.0]))
            .collect();
        store.accept(events, 1_000).await.unwrap();
        let state = RetryState {
            attempts: 1,
            first_attempt_ms: 1_000,
            next_attempt_ms: 5_000_000,
            last_status: Some(503),
            last_error: None,
        };
        store
            .schedule_retry(subscriber, EventSeq(2), &state)
            .unwrap();
        store.set_cursor(subscriber, EventSeq(5)).unwrap();
        // Seqs 1-4 are past retention and the cursor; 2 has a retry.
        assert_eq!(store.purge_expired(1_000 + 3_601_000).unwrap(), 3);
        assert!(store.event(EventSeq(1)).unwrap().is_none());
        assert_eq!(
            store.event(EventSeq(2)).unwrap().unwrap().event.id,
            "1",
            "kept for its retry"
        );
        assert!(store.event(EventSeq(5)).unwrap().is_some());
    }
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    assert!(store.event(EventSeq(3)).unwrap().is_none());
    assert!(store.event(EventSeq(2)).unwrap().is_some());
    let (found, _) = store.scan_events(EventSeq(0), 10).unwrap();
    let seqs: Vec<u64> = found.iter().map(|stored| stored.seq.0).collect();
    assert_eq!(seqs, [2, 5]);
    let outcome = store
        .accept(vec![new("/s", "new", &[1])], 1_000 + 3_601_000)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        vec![Accepted::Stored {
            seq: EventSeq(6),
            subscribers: 1
        }]
    );
}

/// First successes are kept in compact groups: found again by seq (groups may overlap, a
/// group spans at most `DELIVERED_GROUP_SPAN` seqs), numbered 1 before later attempts, per
/// subscriber, and purged only when none of their seqs is left.
#[tokio::test]
async fn first_successes_are_kept_in_compact_groups() {
    let dir = tempfile::tempdir().unwrap();
    let success = |seq: u64, status: u16| Delivered {
        seq: EventSeq(seq),
        at_ms: 1_000 + seq,
        status,
        latency_us: 300 + seq,
    };
    {
        let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
        let ids = store.register_subscribers(["erp", "pim"]).unwrap();
        let (erp, pim) = (ids["erp"], ids["pim"]);
        // Out of order, and one seq too far from the rest for their group.
        let mut first = vec![
            success(9, 200),
            success(3, 201),
            success(5_003, 202),
            success(20, 200),
            success(5, 204),
        ];
        store.record_delivered(erp, &mut first).unwrap();
        // A later group overlapping the first one's span.
        store
            .record_delivered(erp, &mut [success(6, 200), success(4, 200)])
            .unwrap();
        store.record_delivered(pim, &mut [success(9, 299)]).unwrap();

        let found = store.attempts(erp, EventSeq(5)).unwrap();
        assert_eq!(found, vec![success(5, 204).attempt()]);
        assert_eq!(found[0].latency_us, 305);
        for (seq, status) in [(3, 201), (4, 200), (6, 200), (9, 200), (5_003, 202)] {
            assert_eq!(statuses(&store, erp, seq), [Some(status)], "seq {seq}");
        }
        for seq in [1, 7, 21, 4_000, 5_004] {
            assert!(statuses(&store, erp, seq).is_empty(), "seq {seq}");
        }
        assert_eq!(statuses(&store, pim, 9), [Some(299)]);
        assert!(statuses(&store, pim, 3).is_empty());

        // A replay or a repeat after a crash goes on from the grouped attempt 1.
        for status in [500, 503] {
            store
                .record_attempt(erp, EventSeq(5), &answered(status, 9_000), true)
                .unwrap();
        }
        assert_eq!(statuses(&store, erp, 5), [Some(204), Some(500), Some(503)]);

        // What a dispatcher starting at cursor 5 learns was attempted before.
        store
            .record_attempt(pim, EventSeq(7), &answered(500, 9_000), false)
            .unwrap();
        let attempted = store
            .attempted_from(erp, EventSeq(5), 100)
            .unwrap()
            .unwrap();
        let seqs: Vec<u64> = attempted.iter().map(|seq| seq.0).collect();
        assert_eq!(seqs, [5, 6, 9, 20, 5_003]);
        assert_eq!(
            store.attempted_from(erp, EventSeq(5), 3).unwrap(),
            None,
            "over the limit"
        );

        // Only groups with every seq below the bound go.
        store.purge_delivered(EventSeq(10)).unwrap();
        assert!(statuses(&store, erp, 4).is_empty(), "the group of 4 and 6");
        assert_eq!(
            statuses(&store, erp, 3),
            [Some(201)],
            "the group spans to 20"
        );
        assert!(
            statuses(&store, pim, 9).is_empty(),
            "each subscriber's groups"
        );
        assert_eq!(statuses(&store, erp, 5_003), [Some(202)]);
        store.purge_delivered(EventSeq(21)).unwrap();
        assert!(statuses(&store, erp, 3).is_empty());
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), &config(Durability::Relaxed)).unwrap();
    let erp = store.register_subscribers(["erp"]).unwrap()["erp"];
    assert_eq!(statuses(&store, erp, 5_003), [Some(202)], "after reopening");

    // Compact: a thousand consecutive first successes take under 12 bytes each.
    let mut many: Vec<Delivered> = (1..=1_000).map(|seq| success(seq, 200)).collect();
    let groups = records::delivered_groups(&mut many).unwrap();
    assert_eq!(groups.len(), 1);
    assert!(groups[0].1.len() < 12_000, "{} bytes", groups[0].1.len());
}

#[tokio::test]
async fn a_dispatcher_behind_takes_what_another_read_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (erp, pim);
    {
        let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
        let ids = store.register_subscribers(["erp", "pim"]).unwrap();
        (erp, pim) = (ids["erp"], ids["pim"]);
        store
            .accept(
                vec![
                    new("/s", "1", &[erp.0, pim.0]),
                    new("/s", "2", &[erp.0]),
                    new("/s", "3", &[erp.0, pim.0]),
                    new("/s", "4", &[pim.0]),
                    new("/s", "5", &[erp.0, pim.0]),
                ],
                1_000,
            )
            .await
            .unwrap();
    }
    // Reopened, so the tail is empty: the first reader reads the log, and leaves the events it
    // shares with pim decoded for it.
    let store = Store::open(dir.path(), &config(Durability::Strict)).unwrap();
    let seqs = |found: &[StoredEvent]| found.iter().map(|stored| stored.seq.0).collect::<Vec<_>>();
    let (for_erp, next) = store.events_for(erp, EventSeq(1), 10, 100).unwrap();
    assert_eq!((seqs(&for_erp), next), (vec![1, 2, 3, 5], EventSeq(6)));
    assert_eq!(store.inner.shared.usage().0, 3);
    // pim takes 1 from there; 2 was never kept (erp's alone), so the log is read from there on.
    let (first, next) = store.events_for(pim, EventSeq(1), 10, 100).unwrap();
    assert_eq!((seqs(&first), next), (vec![1], EventSeq(2)));
    assert!(std::sync::Arc::ptr_eq(&first[0].event, &for_erp[0].event));
    assert_eq!(first[0].accepted_at_ms, 1_000);
    let (rest, next) = store.events_for(pim, next, 10, 100).unwrap();
    assert_eq!((seqs(&rest), next), (vec![3, 4, 5], EventSeq(6)));
    assert!(std::sync::Arc::ptr_eq(&rest[0].event, &for_erp[2].event));
    assert_eq!(*rest[1].event, event("/s", "4"));
    assert_eq!(store.inner.shared.usage(), (0, 0));
}
