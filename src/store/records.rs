//! The byte layout of everything the store keeps: keys (big-endian, so range scans come out in
//! order) and values (a small fixed header where scans need to peek, postcard elsewhere).

use std::sync::Arc;

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
    /// The subscribers the routing table chose when the event was accepted (empty when read for
    /// a dispatcher, see [`decode_event_with`]).
    pub subscribers: Vec<SubscriberId>,
    /// Shared: the dispatchers of an event's subscribers may hold the same decoding.
    pub event: Arc<Event>,
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
    decode_event_with(seq, bytes, None)
}

/// Decodes an event record, taking the event from `shared` when another subscriber's dispatcher
/// has decoded it (and leaving this decoding there for the others). Read for a dispatcher (with
/// `shared`), its `subscribers` are left empty: a dispatcher reads only its own events, and at
/// fan-out N the list would be allocated N times per event.
pub fn decode_event_with(
    seq: EventSeq,
    bytes: &[u8],
    shared: Option<&super::shared::Shared>,
) -> Result<StoredEvent, StoreError> {
    let (accepted_at_ms, count) = header(bytes)?;
    let subscribers = match shared {
        Some(_) => Vec::new(),
        None => event_subscribers(bytes)?.collect(),
    };
    let decode = || {
        postcard::from_bytes(&bytes[EVENT_HEADER_LEN + 4 * count..])
            .map_err(|error| StoreError::Corrupt(format!("event {seq}: {error}")))
    };
    let event = match shared {
        Some(shared) => {
            shared.get_or_decode(seq, bytes.len(), (accepted_at_ms, count), decode, || {
                Ok(event_subscribers(bytes)?.collect())
            })?
        }
        None => Arc::new(decode()?),
    };
    Ok(StoredEvent {
        seq,
        accepted_at_ms,
        subscribers,
        event,
    })
}

/// The `source` and `id` of the event in this record (the first two fields of the postcard
/// event), read without decoding the rest.
pub fn event_identity(bytes: &[u8]) -> Result<(&str, &str), StoreError> {
    #[derive(Deserialize)]
    struct Identity<'a> {
        id: &'a str,
        source: &'a str,
    }
    let (_, count) = header(bytes)?;
    let (identity, _): (Identity, _) =
        postcard::take_from_bytes(&bytes[EVENT_HEADER_LEN + 4 * count..])
            .map_err(|error| StoreError::Corrupt(format!("event identity: {error}")))?;
    Ok((identity.source, identity.id))
}

/// The dedupe key of the event in this record.
pub fn event_dedupe_key(bytes: &[u8]) -> Result<u64, StoreError> {
    let (source, id) = event_identity(bytes)?;
    Ok(super::dedupe_key(source, id))
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

/// Most seqs one delivered group spans (`last - first`), so that the groups that can hold a
/// seq are those whose first seq lies at most this far below it.
pub const DELIVERED_GROUP_SPAN: u64 = 4096;
const DELIVERED_GROUP_VERSION: u8 = 1;

/// A first attempt that succeeded, with nothing more to tell than its status and timing: the
/// common case, which is kept in a compact group of its kind instead of a record of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub seq: EventSeq,
    pub at_ms: u64,
    pub status: u16,
    pub latency_us: u64,
}

impl Delivered {
    /// `attempt` at `seq` as a delivered-group entry, if it is a plain success.
    pub fn of(seq: EventSeq, attempt: &AttemptRecord) -> Option<Delivered> {
        let plain = attempt.error.is_none()
            && attempt.response_excerpt.is_none()
            && attempt.response_headers.is_empty();
        let status = attempt.status.filter(|_| plain)?;
        Some(Delivered {
            seq,
            at_ms: attempt.at_ms,
            status,
            latency_us: attempt.latency_us,
        })
    }

    pub fn attempt(&self) -> AttemptRecord {
        AttemptRecord {
            at_ms: self.at_ms,
            status: Some(self.status),
            error: None,
            latency_us: self.latency_us,
            response_excerpt: None,
            response_headers: Vec::new(),
        }
    }
}

/// A delivered group's value after its version byte: seqs and times as deltas (postcard
/// writes them as varints), about 8 bytes an entry.
#[derive(Serialize, Deserialize)]
struct DeliveredGroup {
    /// `last seq - first seq`; the first seq is in the key.
    span: u64,
    /// The earliest `at_ms`; entries hold theirs as the distance from it.
    base_ms: u64,
    /// (seq - previous seq, at_ms - base_ms, status, latency_us), in seq order.
    entries: Vec<(u64, u64, u16, u64)>,
}

/// Splits `delivered` (any order) into groups of at most [`DELIVERED_GROUP_SPAN`] seqs:
/// (first seq, value) pairs.
pub fn delivered_groups(
    delivered: &mut [Delivered],
) -> Result<Vec<(EventSeq, Vec<u8>)>, StoreError> {
    delivered.sort_unstable_by_key(|entry| entry.seq);
    let mut groups = Vec::new();
    let mut rest = &delivered[..];
    while let Some(first) = rest.first() {
        let len = rest.partition_point(|entry| entry.seq.0 - first.seq.0 <= DELIVERED_GROUP_SPAN);
        let (group, tail) = rest.split_at(len);
        let base_ms = group.iter().map(|entry| entry.at_ms).min().unwrap_or(0);
        let mut previous = first.seq.0;
        let entries = group
            .iter()
            .map(|entry| {
                let delta = entry.seq.0 - previous;
                previous = entry.seq.0;
                (delta, entry.at_ms - base_ms, entry.status, entry.latency_us)
            })
            .collect();
        let value = DeliveredGroup {
            span: previous - first.seq.0,
            base_ms,
            entries,
        };
        let mut bytes = vec![DELIVERED_GROUP_VERSION];
        bytes.extend_from_slice(&encode(&value)?);
        groups.push((first.seq, bytes));
        rest = tail;
    }
    Ok(groups)
}

fn delivered_group(bytes: &[u8]) -> Result<DeliveredGroup, StoreError> {
    match bytes.split_first() {
        Some((&DELIVERED_GROUP_VERSION, rest)) => decode(rest),
        _ => Err(StoreError::Corrupt(
            "delivered group has an unknown layout".into(),
        )),
    }
}

/// The last seq of the delivered group that starts at `first`.
pub fn delivered_group_last(first: EventSeq, bytes: &[u8]) -> Result<EventSeq, StoreError> {
    Ok(EventSeq(first.0 + delivered_group(bytes)?.span))
}

/// The entries of the delivered group that starts at `first`, in seq order.
pub fn delivered_entries(first: EventSeq, bytes: &[u8]) -> Result<Vec<Delivered>, StoreError> {
    let group = delivered_group(bytes)?;
    let mut seq = first.0;
    Ok(group
        .entries
        .into_iter()
        .map(|(delta, at_ms, status, latency_us)| {
            seq += delta;
            Delivered {
                seq: EventSeq(seq),
                at_ms: group.base_ms + at_ms,
                status,
                latency_us,
            }
        })
        .collect())
}

/// The entry for `seq` in the delivered group that starts at `first`, if it holds one.
pub fn find_delivered(
    first: EventSeq,
    bytes: &[u8],
    seq: EventSeq,
) -> Result<Option<Delivered>, StoreError> {
    if seq < first {
        return Ok(None);
    }
    let entries = delivered_entries(first, bytes)?;
    Ok(entries
        .binary_search_by_key(&seq, |entry| entry.seq)
        .ok()
        .map(|index| entries[index]))
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
    /// Schedule entries of fanout versions before the in-memory schedule: removed at open.
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

    /// Splits a `kind | subscriber | seq` key.
    pub fn parse_delivery(key: &[u8]) -> Option<(SubscriberId, EventSeq)> {
        let subscriber = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
        let seq = u64::from_be_bytes(key.get(5..13)?.try_into().ok()?);
        Some((SubscriberId(subscriber), EventSeq(seq)))
    }

    /// The attempts of one delivery: the first 12 bytes of [`attempt`]'s keys.
    pub fn attempt_prefix(seq: EventSeq, subscriber: SubscriberId) -> [u8; 12] {
        let mut prefix = [0; 12];
        prefix[..8].copy_from_slice(&seq.0.to_be_bytes());
        prefix[8..].copy_from_slice(&subscriber.0.to_be_bytes());
        prefix
    }

    /// `subscriber | first seq` in the delivered tree.
    pub fn delivered(subscriber: SubscriberId, first: EventSeq) -> [u8; 12] {
        let mut key = [0; 12];
        key[..4].copy_from_slice(&subscriber.0.to_be_bytes());
        key[4..].copy_from_slice(&first.0.to_be_bytes());
        key
    }

    /// Splits a delivered-tree key.
    pub fn parse_delivered(key: &[u8]) -> Option<(SubscriberId, EventSeq)> {
        let subscriber = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
        let first = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
        Some((SubscriberId(subscriber), EventSeq(first)))
    }

    /// Splits an attempts-tree key into (seq, subscriber, attempt number).
    pub fn parse_attempt(key: &[u8]) -> Option<(EventSeq, SubscriberId, u32)> {
        let seq = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let subscriber = u32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
        let attempt = u32::from_be_bytes(key.get(12..16)?.try_into().ok()?);
        Some((EventSeq(seq), SubscriberId(subscriber), attempt))
    }

    /// `seq | subscriber | attempt` in the attempts tree.
    pub fn attempt(seq: EventSeq, subscriber: SubscriberId, attempt: u32) -> [u8; 16] {
        let mut key = [0; 16];
        key[..12].copy_from_slice(&attempt_prefix(seq, subscriber));
        key[12..].copy_from_slice(&attempt.to_be_bytes());
        key
    }
}
