//! The byte layout of everything the store keeps: keys (big-endian, so range scans come out in
//! order) and values (a small fixed header where scans need to peek, postcard elsewhere).

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::{EventSeq, SubscriberId};

use super::StoreError;

const EVENT_RECORD_VERSION: u8 = 1;
const EVENT_HEADER_LEN: usize = 1 + 8 + 2;

/// An accepted event as read back from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub seq: EventSeq,
    pub accepted_at_ms: u64,
    /// The subscribers the routing table chose when the event was accepted.
    pub subscribers: Vec<SubscriberId>,
    pub event: Event,
}

/// Encodes an event record: `[version][accepted_at u64][count u16][subscriber u32 ...][postcard event]`.
/// The subscriber list comes first so a dispatcher can skip events not meant for it without
/// decoding them.
pub fn encode_event(
    accepted_at_ms: u64,
    subscribers: &[SubscriberId],
    event: &Event,
) -> Result<Vec<u8>, StoreError> {
    let count = u16::try_from(subscribers.len())
        .map_err(|_| StoreError::Corrupt("more than 65535 subscribers".into()))?;
    let mut out = Vec::with_capacity(
        EVENT_HEADER_LEN + 4 * subscribers.len() + 128 + event.data_bytes().len(),
    );
    out.push(EVENT_RECORD_VERSION);
    out.extend_from_slice(&accepted_at_ms.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for subscriber in subscribers {
        out.extend_from_slice(&subscriber.0.to_be_bytes());
    }
    postcard::to_io(event, &mut out)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode event: {error}")))?;
    Ok(out)
}

fn header(bytes: &[u8]) -> Result<(u64, usize), StoreError> {
    if bytes.len() < EVENT_HEADER_LEN || bytes[0] != EVENT_RECORD_VERSION {
        return Err(StoreError::Corrupt(
            "event record has an unknown layout".into(),
        ));
    }
    let accepted_at = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let count = usize::from(u16::from_be_bytes(
        bytes[9..11].try_into().expect("2 bytes"),
    ));
    if bytes.len() < EVENT_HEADER_LEN + 4 * count {
        return Err(StoreError::Corrupt("event record is truncated".into()));
    }
    Ok((accepted_at, count))
}

/// The subscriber ids in an event record's header.
pub fn event_subscribers(
    bytes: &[u8],
) -> Result<impl Iterator<Item = SubscriberId> + '_, StoreError> {
    let (_, count) = header(bytes)?;
    Ok(bytes[EVENT_HEADER_LEN..EVENT_HEADER_LEN + 4 * count]
        .chunks_exact(4)
        .map(|chunk| SubscriberId(u32::from_be_bytes(chunk.try_into().expect("4 bytes")))))
}

/// When the event in this record was accepted.
pub fn event_accepted_at(bytes: &[u8]) -> Result<u64, StoreError> {
    header(bytes).map(|(accepted_at, _)| accepted_at)
}

pub fn decode_event(seq: EventSeq, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let (accepted_at_ms, count) = header(bytes)?;
    let subscribers = event_subscribers(bytes)?.collect();
    let event = postcard::from_bytes(&bytes[EVENT_HEADER_LEN + 4 * count..])
        .map_err(|error| StoreError::Corrupt(format!("event {seq}: {error}")))?;
    Ok(StoredEvent {
        seq,
        accepted_at_ms,
        subscribers,
        event,
    })
}

/// A dedupe entry's value: the `seq` of the event and when it was accepted.
pub fn dedupe_entry(seq: EventSeq, accepted_at_ms: u64) -> [u8; 16] {
    let mut entry = [0u8; 16];
    entry[..8].copy_from_slice(&seq.0.to_be_bytes());
    entry[8..].copy_from_slice(&accepted_at_ms.to_be_bytes());
    entry
}

/// The `seq` and accept time in a dedupe entry, unless it has another layout.
pub fn parse_dedupe_entry(value: &[u8]) -> Option<(EventSeq, u64)> {
    let seq = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let at = u64::from_be_bytes(value.get(8..)?.try_into().ok()?);
    Some((EventSeq(seq), at))
}

/// Retry state of a delivery that failed at least once (or was parked by a 410).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Attempts made so far.
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub next_attempt_ms: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// A delivery that will not be retried any more, with a copy of its event so that it can be
/// inspected and replayed after the event itself has left the retention window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: Event,
    pub reason: String,
    pub last_status: Option<u16>,
    pub attempts: u32,
    pub first_attempt_ms: u64,
    pub dead_at_ms: u64,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_us: u64,
    /// The start of the response body (failures only), at most 4 KiB.
    pub response_excerpt: Option<String>,
    /// The response headers that explain an answer (failures only; see
    /// `delivery::sender::RECORDED_HEADERS`). Added after the first layout: see [`decode_attempt`].
    pub response_headers: Vec<(String, String)>,
}

/// The first layout of [`AttemptRecord`], without `response_headers`.
#[derive(Deserialize)]
struct AttemptRecordV1 {
    at_ms: u64,
    status: Option<u16>,
    error: Option<String>,
    latency_us: u64,
    response_excerpt: Option<String>,
}

/// Decodes an attempt in the current layout, or in the first one (postcard is not
/// self-describing: a V1 record ends where the current layout expects the header list, so it
/// fails to decode as the current one and is read as V1).
pub fn decode_attempt(bytes: &[u8]) -> Result<AttemptRecord, StoreError> {
    decode::<AttemptRecord>(bytes).or_else(|error| {
        let v1: AttemptRecordV1 = postcard::from_bytes(bytes).map_err(|_| error)?;
        Ok(AttemptRecord {
            at_ms: v1.at_ms,
            status: v1.status,
            error: v1.error,
            latency_us: v1.latency_us,
            response_excerpt: v1.response_excerpt,
            response_headers: Vec::new(),
        })
    })
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode record: {error}")))
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|error| StoreError::Corrupt(format!("cannot decode record: {error}")))
}

/// Keys of the `deliveries` tree. One tree, so that moving a delivery between states (retry,
/// schedule entry, dead letter, outbox) is one atomic batch.
pub mod keys {
    use crate::ids::{EventSeq, SubscriberId};

    pub const RETRY: u8 = b'r';
    pub const SCHEDULE: u8 = b's';
    pub const DEAD: u8 = b'd';
    pub const OUTBOX: u8 = b'o';
    pub const CURSOR: u8 = b'c';

    pub fn seq(seq: EventSeq) -> [u8; 8] {
        seq.0.to_be_bytes()
    }

    pub fn subscriber_prefix(kind: u8, subscriber: SubscriberId) -> [u8; 5] {
        let mut key = [kind, 0, 0, 0, 0];
        key[1..].copy_from_slice(&subscriber.0.to_be_bytes());
        key
    }

    /// `kind | subscriber | seq`, for retry, dead-letter and outbox entries.
    pub fn delivery(kind: u8, subscriber: SubscriberId, seq: EventSeq) -> [u8; 13] {
        let mut key = [0; 13];
        key[..5].copy_from_slice(&subscriber_prefix(kind, subscriber));
        key[5..].copy_from_slice(&seq.0.to_be_bytes());
        key
    }

    /// `s | subscriber | next_attempt_ms | seq`: the retry schedule in time order.
    pub fn schedule(subscriber: SubscriberId, at_ms: u64, seq: EventSeq) -> [u8; 21] {
        let mut key = [0; 21];
        key[..5].copy_from_slice(&subscriber_prefix(SCHEDULE, subscriber));
        key[5..13].copy_from_slice(&at_ms.to_be_bytes());
        key[13..].copy_from_slice(&seq.0.to_be_bytes());
        key
    }

    /// Splits a `kind | subscriber | seq` key.
    pub fn parse_delivery(key: &[u8]) -> Option<(SubscriberId, EventSeq)> {
        let subscriber = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
        let seq = u64::from_be_bytes(key.get(5..13)?.try_into().ok()?);
        Some((SubscriberId(subscriber), EventSeq(seq)))
    }

    /// Splits a schedule key into (time, seq).
    pub fn parse_schedule(key: &[u8]) -> Option<(u64, EventSeq)> {
        let at = u64::from_be_bytes(key.get(5..13)?.try_into().ok()?);
        let seq = u64::from_be_bytes(key.get(13..21)?.try_into().ok()?);
        Some((at, EventSeq(seq)))
    }

    /// The attempts of one delivery: the first 12 bytes of [`attempt`]'s keys.
    pub fn attempt_prefix(seq: EventSeq, subscriber: SubscriberId) -> [u8; 12] {
        let mut prefix = [0; 12];
        prefix[..8].copy_from_slice(&seq.0.to_be_bytes());
        prefix[8..].copy_from_slice(&subscriber.0.to_be_bytes());
        prefix
    }

    /// `seq | subscriber | attempt` in the attempts tree.
    pub fn attempt(seq: EventSeq, subscriber: SubscriberId, attempt: u32) -> [u8; 16] {
        let mut key = [0; 16];
        key[..12].copy_from_slice(&attempt_prefix(seq, subscriber));
        key[12..].copy_from_slice(&attempt.to_be_bytes());
        key
    }
}
