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
//! Memory: about 20 to 40 bytes an entry (hash tables of two `u64`s that double as they grow).
//!
//! The index is [`SHARDS`] tables, chosen by bits of the key that the tables themselves do not
//! use. A hash table doubles all at once, copying every entry while the commit that made it grow
//! holds the index, and every acknowledgement of that commit waits: one table took about 5.5 ms
//! at a few hundred thousand entries on the benchmark's VM, and a 24-hour window at 1,000
//! events/s holds 86 million. Shards fill evenly, so each doubles at its own moment, by a
//! 256th of the whole.

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

/// Tables the index is split into (see the module's doc).
pub const SHARDS: usize = 256;

type Table = HashMap<u64, u64, BuildHasherDefault<KeyHasher>>;

pub struct DedupeIndex {
    shards: Box<[Table]>,
}

impl Default for DedupeIndex {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Table::default()).collect(),
        }
    }
}

impl DedupeIndex {
    /// The event last accepted with this key, if its entry is still held.
    pub fn get(&self, key: u64) -> Option<EventSeq> {
        self.shard(key).get(&key).copied().map(EventSeq)
    }

    pub fn insert(&mut self, key: u64, seq: EventSeq) {
        self.shard_mut(key).insert(key, seq.0);
    }

    /// Removes the entry of `key` if it still names `seq` (a newer event may have taken it).
    pub fn remove(&mut self, key: u64, seq: EventSeq) {
        let shard = self.shard_mut(key);
        if shard.get(&key) == Some(&seq.0) {
            shard.remove(&key);
        }
    }

    /// Entries held (read for a gauge: it adds up the shards).
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    /// The table of `key`: chosen by bits 32 to 39, which a table uses neither for its bucket
    /// (the low bits, below 2^32 buckets) nor for its control bytes (the top 7 bits), so the
    /// keys of one shard still spread over all of its buckets.
    fn shard_index(key: u64) -> usize {
        (key >> 32) as usize % SHARDS
    }

    fn shard(&self, key: u64) -> &Table {
        &self.shards[Self::shard_index(key)]
    }

    fn shard_mut(&mut self, key: u64) -> &mut Table {
        &mut self.shards[Self::shard_index(key)]
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

    #[test]
    fn shards_fill_evenly_so_no_table_holds_much_of_the_index() {
        let mut index = DedupeIndex::default();
        let count = 200_000u64;
        for seq in 0..count {
            index.insert(dedupe_key("/s", &seq.to_string()), EventSeq(seq));
        }
        // Inserting a key again replaces its entry and does not count it twice.
        index.insert(dedupe_key("/s", "7"), EventSeq(count));
        assert_eq!(index.len(), count as usize);
        assert_eq!(index.get(dedupe_key("/s", "7")), Some(EventSeq(count)));
        assert_eq!(index.get(dedupe_key("/s", "8")), Some(EventSeq(8)));
        // A doubling copies one table: about a 256th of the entries, never a large share.
        let fair = count as usize / SHARDS;
        let largest = index.shards.iter().map(HashMap::len).max().unwrap();
        let smallest = index.shards.iter().map(HashMap::len).min().unwrap();
        assert!(
            largest < fair * 3 / 2,
            "largest shard {largest}, fair {fair}"
        );
        assert!(
            smallest > fair / 2,
            "smallest shard {smallest}, fair {fair}"
        );
        let capacity = index.shards.iter().map(HashMap::capacity).max().unwrap();
        assert!(capacity < count as usize / 64, "largest table {capacity}");
        for seq in 0..count {
            index.remove(dedupe_key("/s", &seq.to_string()), EventSeq(seq));
        }
        // The entry that was taken by a newer event stays.
        assert_eq!(index.len(), 1);
    }
}
