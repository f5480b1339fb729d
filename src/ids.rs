//! Newtype identifiers, so one kind of id cannot be passed where another is expected.

use std::fmt;

/// A subscriber's stable numeric id, assigned by the store the first time a name is seen and
/// kept for ever, so renaming nothing in `routes.yaml` never re-routes queued deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub u32);

/// The position of an accepted event in the store's log; strictly increasing in accept order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventSeq(pub u64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The Standard Webhooks `webhook-id` of one delivery: one event to one subscriber.
///
/// It is derived from the event's log position and the subscriber id, so it is the same on
/// every retry and after a restart, and subscribers can deduplicate on it.
pub fn webhook_id(seq: EventSeq, subscriber: SubscriberId) -> String {
    // Written digit by digit: made for every attempt, and `format!` costs several times more.
    let mut id = String::with_capacity(4 + 16 + 1 + 8);
    id.push_str("msg_");
    push_hex(&mut id, seq.0);
    id.push('_');
    push_hex(&mut id, u64::from(subscriber.0));
    id
}

/// Appends `value` in lowercase hex without leading zeros (as `{:x}` does).
fn push_hex(out: &mut String, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for index in (0..digits).rev() {
        out.push(char::from(DIGITS[((value >> (index * 4)) & 0xf) as usize]));
    }
}

/// The delivery a `webhook-id` names, if it is one of ours.
pub fn parse_webhook_id(id: &str) -> Option<(EventSeq, SubscriberId)> {
    let (seq, subscriber) = id.strip_prefix("msg_")?.split_once('_')?;
    Some((
        EventSeq(u64::from_str_radix(seq, 16).ok()?),
        SubscriberId(u32::from_str_radix(subscriber, 16).ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_id_parses_back() {
        let id = webhook_id(EventSeq(0xabc), SubscriberId(7));
        assert_eq!(
            parse_webhook_id(&id),
            Some((EventSeq(0xabc), SubscriberId(7)))
        );
        assert_eq!(parse_webhook_id("msg_zz_1"), None);
        assert_eq!(parse_webhook_id("evt_1_1"), None);
    }

    #[test]
    fn webhook_id_is_hex_as_format_writes_it() {
        for (seq, subscriber) in [(0, 0), (1, 15), (16, 16), (0xabc, 7), (u64::MAX, u32::MAX)] {
            assert_eq!(
                webhook_id(EventSeq(seq), SubscriberId(subscriber)),
                format!("msg_{seq:x}_{subscriber:x}")
            );
        }
    }

    #[test]
    fn webhook_id_is_stable_and_distinct() {
        assert_eq!(webhook_id(EventSeq(255), SubscriberId(3)), "msg_ff_3");
        assert_ne!(
            webhook_id(EventSeq(1), SubscriberId(12)),
            webhook_id(EventSeq(0x11), SubscriberId(2))
        );
    }
}
