//! The dedupe index: the events accepted within the dedupe window, by a 64-bit hash of their
//! `source` and `id`, in memory.
//!
//! It is rebuilt at open from the event log (whose sealed segments keep each record's hash in
//! their index file, so only the segment being appended to is read again), and from the few
//! events kept in sled. So it needs no writes of its own: an acknowledgement waits for the log
//! alone, and no dedupe entry can outlive its event.
//!
//! A hit is trusted only once the event it names is read back with the same `source` and `id`:
//! two events whose hashes collide (about n² / 2⁶⁵ for n events in the window) are then both
//! accepted, and the newer one takes the entry.
//!
//! Memory: about 20 to 40 bytes an entry (a hash table of two `u64`s that doubles as it grows).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

use crate::ids::EventSeq;

/// The dedupe key of an event: the first 8 bytes of SHA-256(`source` NUL `id`).
pub fn dedupe_key(source: &str, id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update([0]);
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The keys are SHA-256 bits already: the table uses them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else folds in byte by byte.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[derive(Default)]
pub struct DedupeIndex {
    entries: HashMap<u64, u64, BuildHasherDefault<KeyHasher>>,
}

impl DedupeIndex {
    /// The event last accepted with this key, if its entry is still held.
    pub fn get(&self, key: u64) -> Option<EventSeq> {
        self.entries.get(&key).copied().map(EventSeq)
    }

    pub fn insert(&mut self, key: u64, seq: EventSeq) {
        self.entries.insert(key, seq.0);
    }

    /// Removes the entry of `key` if it still names `seq` (a newer event may have taken it).
    pub fn remove(&mut self, key: u64, seq: EventSeq) {
        if self.entries.get(&key) == Some(&seq.0) {
            self.entries.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_separate_source_from_id() {
        // The key is kept in segment index files: it must not change between versions.
        assert_eq!(dedupe_key("/s", "1"), dedupe_key("/s", "1"));
        assert_ne!(dedupe_key("/s", "1"), dedupe_key("/s1", ""));
        assert_eq!(dedupe_key("", ""), 0x987a_b3ff_9c0b_346e);
    }

    #[test]
    fn removes_only_the_entry_of_the_event_named() {
        let mut index = DedupeIndex::default();
        let key = dedupe_key("/s", "1");
        index.insert(key, EventSeq(1));
        index.insert(key, EventSeq(5));
        index.remove(key, EventSeq(1));
        assert_eq!(index.get(key), Some(EventSeq(5)));
        index.remove(key, EventSeq(5));
        assert_eq!(index.get(key), None);
        assert_eq!(index.len(), 0);
    }
}
