//! The event log: every accepted event, once, in append-only segment files that the commit
//! threads write and `fdatasync` themselves. sled keeps everything else (dedupe, delivery state,
//! attempts), so an acknowledgement waits for one `fdatasync` of one file and for nothing of
//! sled's.
//!
//! Layout, under `log/`:
//! - `<first seq, 20 digits>.log`: records `[payload length u32][crc32 of the payload u32][payload]`
//!   (little-endian). Seqs are dense within a segment: its n-th record is `first + n`. There may
//!   be gaps between segments.
//! - `<first seq>.idx`, written when a segment is sealed (not synced): `[count u32][end u64]
//!   [record offset u32 ...][record key u64 ...][crc32 of what precedes u32]`. A missing or
//!   inconsistent index (or one of the earlier layout, without keys) is rebuilt by scanning the
//!   segment, so it never needs to be durable.
//!
//! Each record has a key, given with it to [`Log::append`] and recomputed by the log's
//! [`KeyOf`] function when a segment is scanned (the store keys records by their dedupe hash,
//! so it can rebuild its dedupe index at open from the index files alone).
//!
//! At open the last segment is scanned and a torn tail (a crash in the middle of a write, so
//! nothing of it was acknowledged) is cut off. Seqs below the log's `start` are purged: reads
//! no longer return them, and a segment wholly below it is deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::StoreError;

/// A segment is sealed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER_LEN: usize = 8;
/// Most records one read of a scan takes (and about the most bytes).
const SCAN_CHUNK_RECORDS: usize = 256;
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// The key of a record, from its payload.
pub type KeyOf = fn(&[u8]) -> Result<u64, StoreError>;

pub struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    state: RwLock<State>,
}

struct State {
    /// Oldest first; never empty, the last one is the one appended to.
    segments: Vec<Segment>,
    /// The first seq that is not purged.
    start: u64,
}

struct Segment {
    first: u64,
    /// Where each record starts.
    offsets: Vec<u32>,
    /// Each record's key: always for the segment appended to, for a sealed one only from open
    /// until [`Log::take_keys`].
    keys: Vec<u64>,
    /// Where the next record goes: the end of the last whole record.
    end: u64,
    file: Arc<File>,
}

impl Segment {
    /// The seq after the last one held.
    fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    fn record_end(&self, index: usize) -> u64 {
        self.offsets
            .get(index + 1)
            .map_or(self.end, |offset| u64::from(*offset))
    }
}

impl State {
    /// The segment holding `seq`, or else the first one after it.
    fn segment_from(&self, seq: u64) -> Option<usize> {
        let index = self
            .segments
            .partition_point(|segment| segment.next() <= seq);
        (index < self.segments.len()).then_some(index)
    }

    fn last(&self) -> &Segment {
        self.segments.last().expect("the log has a segment")
    }
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Io(error)
}

fn segment_path(dir: &Path, first: u64, extension: &str) -> PathBuf {
    dir.join(format!("{first:020}.{extension}"))
}

/// Appends one record's header and payload to `out`.
fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| StoreError::Corrupt("an event record over 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// A record header's payload length and checksum.
fn parse_header(header: &[u8; HEADER_LEN]) -> (usize, u32) {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    (len, crc)
}

/// The payload of the record that `bytes` (exactly one record) holds.
fn unframe(seq: u64, bytes: &[u8]) -> Result<&[u8], StoreError> {
    let corrupt = || StoreError::Corrupt(format!("event log record {seq} is damaged"));
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(corrupt());
    };
    let (len, crc) = parse_header(header);
    if payload.len() != len || crc32fast::hash(payload) != crc {
        return Err(corrupt());
    }
    Ok(payload)
}

/// What a scan of a segment or its index file found.
struct Scanned {
    offsets: Vec<u32>,
    keys: Vec<u64>,
    /// The end of the last whole, intact record.
    end: u64,
}

/// Reads a segment of `file_len` bytes from the start: the offset and key of every whole,
/// intact record and where they end.
fn scan_segment(file: &File, file_len: u64, key_of: KeyOf) -> Result<Scanned, StoreError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offsets = Vec::new();
    let mut keys = Vec::new();
    let mut end = 0u64;
    let mut header = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(io(error)),
        }
        let (len, crc) = parse_header(&header);
        if len == 0 {
            // Records are never empty, and an all-zero header would pass its checksum (the
            // CRC-32 of nothing is 0): this is a zero-filled tail, as a crash can leave when
            // the file's new size reached the disk before its data did.
            break;
        }
        if end + (HEADER_LEN + len) as u64 > file_len {
            // A torn length: never allocate what the file cannot hold.
            break;
        }
        payload.resize(len, 0);
        match reader.read_exact(&mut payload) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(io(error)),
        }
        if crc32fast::hash(&payload) != crc {
            break;
        }
        let Ok(offset) = u32::try_from(end) else {
            break;
        };
        keys.push(key_of(&payload).map_err(|error| {
            StoreError::Corrupt(format!("event log record at byte {end}: {error}"))
        })?);
        offsets.push(offset);
        end += (HEADER_LEN + len) as u64;
    }
    Ok(Scanned { offsets, keys, end })
}

fn encode_index(segment: &Segment) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 12 * segment.offsets.len());
    out.extend_from_slice(&(segment.offsets.len() as u32).to_le_bytes());
    out.extend_from_slice(&segment.end.to_le_bytes());
    for offset in &segment.offsets {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for key in &segment.keys {
        out.extend_from_slice(&key.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A sealed segment's index, if it is there, intact, of this layout and fits a file of
/// `file_len` bytes.
fn decode_index(bytes: &[u8], file_len: u64) -> Option<Scanned> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) || body.len() < 12 {
        return None;
    }
    let count = u32::from_le_bytes(body[..4].try_into().ok()?) as usize;
    let end = u64::from_le_bytes(body[4..12].try_into().ok()?);
    if body.len() != 12 + 12 * count || end > file_len {
        return None;
    }
    let (offsets, keys) = body[12..].split_at(4 * count);
    Some(Scanned {
        offsets: offsets
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect(),
        keys: keys
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
            .collect(),
        end,
    })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Log {
    /// Opens the log in `dir`, creating it if needed. `floor` is the lowest seq the next append
    /// may take (what other parts of the store already know of); `start` is the first seq not
    /// purged, as recorded by [`Log::purge_before`]'s caller; `key_of` gives the key of a
    /// record read back by a scan.
    ///
    /// # Errors
    /// A file cannot be read, written or created, a record that passes its checksum has no key,
    /// or segments overlap.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        floor: u64,
        start: u64,
        key_of: KeyOf,
    ) -> Result<Log, StoreError> {
        fs::create_dir_all(dir).map_err(io)?;
        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(first) = name
                .strip_suffix(".log")
                .and_then(|stem| stem.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut segments: Vec<Segment> = Vec::with_capacity(firsts.len() + 1);
        for (index, first) in firsts.iter().copied().enumerate() {
            let path = segment_path(dir, first, "log");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io)?;
            let file_len = file.metadata().map_err(io)?.len();
            let sealed = index + 1 < firsts.len();
            let indexed = sealed
                .then(|| fs::read(segment_path(dir, first, "idx")).ok())
                .flatten()
                .and_then(|bytes| decode_index(&bytes, file_len));
            let indexed_again = indexed.is_none();
            let Scanned { offsets, keys, end } = match indexed {
                Some(found) => found,
                None => scan_segment(&file, file_len, key_of)?,
            };
            if end < file_len {
                // A torn write at the tail: nothing of it was acknowledged.
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = end,
                    cut_bytes = file_len - end,
                    "Cutting off a damaged event log tail."
                );
                file.set_len(end).map_err(io)?;
                file.sync_all().map_err(io)?;
            }
            let segment = Segment {
                first,
                offsets,
                keys,
                end,
                file: Arc::new(file),
            };
            if sealed && indexed_again {
                // Not synced, like any index: it is only a shortcut.
                fs::write(segment_path(dir, first, "idx"), encode_index(&segment)).map_err(io)?;
            }
            if let Some(previous) = segments.last() {
                if previous.next() > segment.first {
                    return Err(StoreError::Corrupt(format!(
                        "event log segments overlap: {} holds seqs up to {}, past {}",
                        segment_path(dir, previous.first, "log").display(),
                        previous.next() - 1,
                        path.display()
                    )));
                }
            }
            segments.push(segment);
        }
        let log = Log {
            dir: dir.to_owned(),
            segment_bytes,
            state: RwLock::new(State { segments, start: 0 }),
        };
        {
            let mut state = log.state.write().expect("log lock");
            let next = state.segments.last().map_or(1, Segment::next);
            if state.segments.is_empty() || floor > next {
                let segment = log.create_segment(floor.max(next))?;
                state.segments.push(segment);
            }
            state.start = start.max(state.segments[0].first);
        }
        log.delete_purged()?;
        Ok(log)
    }

    fn create_segment(&self, first: u64) -> Result<Segment, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(segment_path(&self.dir, first, "log"))
            .map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        Ok(Segment {
            first,
            offsets: Vec::new(),
            keys: Vec::new(),
            end: 0,
            file: Arc::new(file),
        })
    }

    /// The seq the next append must start at.
    pub fn next_seq(&self) -> u64 {
        self.state.read().expect("log lock").last().next()
    }

    /// The first seq that is not purged.
    pub fn start(&self) -> u64 {
        self.state.read().expect("log lock").start
    }

    /// Bytes of records held (the segment files' size).
    pub fn size(&self) -> u64 {
        let state = self.state.read().expect("log lock");
        state.segments.iter().map(|segment| segment.end).sum()
    }

    /// Appends records for seqs `first`, `first + 1`, ... (`first` must be [`Log::next_seq`])
    /// with their `keys` (what the log's [`KeyOf`] gives for each), sealing the segment and
    /// starting the next one when it is full. Not synced: see [`Log::sync`]. On an error
    /// nothing of it is readable, and the next append starts at `first` again.
    ///
    /// # Errors
    /// `first` is not the next seq, the keys do not match the records, or a write failed.
    pub fn append(&self, first: u64, records: &[Vec<u8>], keys: &[u64]) -> Result<(), StoreError> {
        let next = self.next_seq();
        if first != next || keys.len() != records.len() {
            return Err(StoreError::Corrupt(format!(
                "event log append of {} records with {} keys at seq {first}, expected {next}",
                records.len(),
                keys.len()
            )));
        }
        let mut keys = keys;
        let mut buffer = Vec::new();
        let mut offsets = Vec::new();
        let mut pending = records;
        while !pending.is_empty() {
            let (file, mut end, empty) = {
                let state = self.state.read().expect("log lock");
                let last = state.last();
                (Arc::clone(&last.file), last.end, last.offsets.is_empty())
            };
            if !empty && end + (HEADER_LEN + pending[0].len()) as u64 > self.segment_bytes {
                self.roll()?;
                continue;
            }
            buffer.clear();
            offsets.clear();
            let mut taken = 0;
            for record in pending {
                let framed = (HEADER_LEN + record.len()) as u64;
                if taken > 0 && end + framed > self.segment_bytes {
                    break;
                }
                offsets.push(
                    u32::try_from(end)
                        .map_err(|_| StoreError::Corrupt("event log segment over 4 GiB".into()))?,
                );
                frame(record, &mut buffer)?;
                end += framed;
                taken += 1;
            }
            let at = end - buffer.len() as u64;
            file.write_all_at(&buffer, at).map_err(io)?;
            let mut state = self.state.write().expect("log lock");
            let last = state.segments.last_mut().expect("the log has a segment");
            last.offsets.extend_from_slice(&offsets);
            last.keys.extend_from_slice(&keys[..taken]);
            last.end = end;
            pending = &pending[taken..];
            keys = &keys[taken..];
        }
        Ok(())
    }

    /// Seals the segment being appended to (synced, with its index) and starts the next one.
    fn roll(&self) -> Result<(), StoreError> {
        let (file, first, index, next) = {
            let state = self.state.read().expect("log lock");
            let last = state.last();
            (
                Arc::clone(&last.file),
                last.first,
                encode_index(last),
                last.next(),
            )
        };
        file.sync_data().map_err(io)?;
        fs::write(segment_path(&self.dir, first, "idx"), index).map_err(io)?;
        let segment = self.create_segment(next)?;
        let mut state = self.state.write().expect("log lock");
        // The sealed segment's keys are in its index now (and in whatever the caller built).
        state.segments.last_mut().expect("a segment").keys = Vec::new();
        state.segments.push(segment);
        Ok(())
    }

    /// Calls `visit` with the seq and key of every record from `from` on, and lets go of the
    /// sealed segments' keys: called once, after open.
    pub fn take_keys(&self, from: u64, mut visit: impl FnMut(u64, u64)) {
        let mut state = self.state.write().expect("log lock");
        let from = from.max(state.start);
        let count = state.segments.len();
        for (index, segment) in state.segments.iter_mut().enumerate() {
            let skip = usize::try_from(from.saturating_sub(segment.first)).unwrap_or(usize::MAX);
            for (seq, key) in (segment.first..).zip(&segment.keys).skip(skip) {
                visit(seq, *key);
            }
            if index + 1 < count {
                segment.keys = Vec::new();
            }
        }
    }

    /// Makes every appended record durable (`fdatasync` of the segment appended to; a sealed
    /// segment was synced when it was sealed).
    ///
    /// # Errors
    /// The sync failed.
    pub fn sync(&self) -> Result<(), StoreError> {
        let file = Arc::clone(&self.state.read().expect("log lock").last().file);
        file.sync_data().map_err(io)
    }

    /// The record of `seq`, unless it is purged or not there.
    ///
    /// # Errors
    /// The read failed or the record is damaged.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let (file, from, to) = {
            let state = self.state.read().expect("log lock");
            if seq < state.start {
                return Ok(None);
            }
            let Some(index) = state.segment_from(seq) else {
                return Ok(None);
            };
            let segment = &state.segments[index];
            if seq < segment.first {
                return Ok(None);
            }
            let at = (seq - segment.first) as usize;
            (
                Arc::clone(&segment.file),
                u64::from(segment.offsets[at]),
                segment.record_end(at),
            )
        };
        let mut bytes = vec![0u8; (to - from) as usize];
        file.read_exact_at(&mut bytes, from).map_err(io)?;
        let len = unframe(seq, &bytes)?.len();
        bytes.copy_within(HEADER_LEN.., 0);
        bytes.truncate(len);
        Ok(Some(bytes))
    }

    /// Calls `visit` with every record from `from` to `upto` (inclusive) in seq order, until it
    /// returns false. Reads in chunks, the first of about `hint` records.
    ///
    /// # Errors
    /// A read failed, a record is damaged, or `visit` failed.
    pub fn scan(
        &self,
        from: u64,
        upto: u64,
        hint: usize,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut seq = from;
        let mut chunk = hint.clamp(1, SCAN_CHUNK_RECORDS);
        let mut offsets = Vec::new();
        let mut buffer = Vec::new();
        while seq <= upto {
            let (file, base) = {
                let state = self.state.read().expect("log lock");
                seq = seq.max(state.start);
                let Some(index) = state.segment_from(seq) else {
                    return Ok(());
                };
                let segment = &state.segments[index];
                seq = seq.max(segment.first);
                if seq > upto {
                    return Ok(());
                }
                let at = (seq - segment.first) as usize;
                let last = (segment.next().min(upto.saturating_add(1)) - segment.first) as usize;
                let base = u64::from(segment.offsets[at]);
                offsets.clear();
                for index in at..last {
                    let end = segment.record_end(index);
                    if index > at && (index - at >= chunk || end - base > SCAN_CHUNK_BYTES) {
                        break;
                    }
                    offsets.push(end);
                }
                (Arc::clone(&segment.file), base)
            };
            let total = *offsets.last().expect("one record at least") - base;
            buffer.resize(total as usize, 0);
            file.read_exact_at(&mut buffer, base).map_err(io)?;
            let mut from_byte = 0usize;
            for end in &offsets {
                let to_byte = (end - base) as usize;
                if !visit(seq, unframe(seq, &buffer[from_byte..to_byte])?)? {
                    return Ok(());
                }
                from_byte = to_byte;
                seq += 1;
            }
            chunk = (chunk * 2).min(SCAN_CHUNK_RECORDS);
        }
        Ok(())
    }

    /// Purges every seq below `start`: reads no longer return them, and the segments wholly
    /// below it are deleted (never the one appended to). The caller makes `start` durable
    /// first. Returns the bytes freed.
    ///
    /// # Errors
    /// A segment file could not be deleted.
    pub fn purge_before(&self, start: u64) -> Result<u64, StoreError> {
        {
            let mut state = self.state.write().expect("log lock");
            state.start = state.start.max(start);
        }
        self.delete_purged()
    }

    fn delete_purged(&self) -> Result<u64, StoreError> {
        let doomed: Vec<Segment> = {
            let mut state = self.state.write().expect("log lock");
            let start = state.start;
            let keep_from = state
                .segments
                .iter()
                .position(|segment| segment.next() > start)
                .unwrap_or(state.segments.len())
                .min(state.segments.len() - 1);
            state.segments.drain(..keep_from).collect()
        };
        let mut freed = 0;
        for segment in &doomed {
            for extension in ["log", "idx"] {
                match fs::remove_file(segment_path(&self.dir, segment.first, extension)) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io(error)),
                }
            }
            freed += segment.end;
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> Vec<u8> {
        format!("event {seq} ")
            .repeat(1 + (seq % 7) as usize)
            .into_bytes()
    }

    /// The test records' key: their checksum.
    fn key(payload: &[u8]) -> Result<u64, StoreError> {
        Ok(u64::from(crc32fast::hash(payload)))
    }

    fn append(log: &Log, first: u64, records: &[Vec<u8>]) {
        let keys: Vec<u64> = records.iter().map(|record| key(record).unwrap()).collect();
        log.append(first, records, &keys).unwrap();
    }

    fn keys_from(log: &Log, from: u64) -> Vec<(u64, u64)> {
        let mut keys = Vec::new();
        log.take_keys(from, |seq, key| keys.push((seq, key)));
        keys
    }

    fn expected_keys(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
        seqs.map(|seq| (seq, key(&record(seq)).unwrap())).collect()
    }

    fn collect(log: &Log, from: u64, upto: u64, hint: usize) -> Vec<(u64, Vec<u8>)> {
        let mut found = Vec::new();
        log.scan(from, upto, hint, |seq, bytes| {
            found.push((seq, bytes.to_vec()));
            Ok(true)
        })
        .unwrap();
        found
    }

    #[test]
    fn appends_across_segments_and_reads_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = (1..=300).map(record).collect();
        {
            let log = Log::open(dir.path(), 1024, 1, 0, key).unwrap();
            assert_eq!(log.next_seq(), 1);
            append(&log, 1, &records[..100]);
            append(&log, 101, &records[100..]);
            assert!(log.append(7, &records[..1], &[0]).is_err(), "out of order");
            assert!(log.append(301, &records[..1], &[]).is_err(), "no key");
            log.sync().unwrap();
            assert!(fs::read_dir(dir.path()).unwrap().count() > 10, "rolled");
            // A sealed segment lets go of its keys; the one appended to keeps them.
            let kept = keys_from(&log, 1);
            assert!(kept[0].0 > 1);
            assert_eq!(kept, expected_keys(kept[0].0..=300));
        }
        // At open every key is there again, from the index files and the last segment's scan.
        let log = Log::open(dir.path(), 1024, 1, 0, key).unwrap();
        assert_eq!(keys_from(&log, 1), expected_keys(1..=300));
        drop(log);
        // Lose one index: that segment is scanned instead, and indexed again.
        fs::remove_file(segment_path(dir.path(), 1, "idx")).unwrap();
        let log = Log::open(dir.path(), 1024, 1, 0, key).unwrap();
        assert!(segment_path(dir.path(), 1, "idx").exists());
        assert_eq!(keys_from(&log, 150), expected_keys(150..=300));
        assert_eq!(log.next_seq(), 301);
        for seq in [1, 2, 150, 300] {
            assert_eq!(log.get(seq).unwrap(), Some(record(seq)));
        }
        assert_eq!(log.get(301).unwrap(), None);
        for hint in [1, 3, 1000] {
            let all = collect(&log, 1, 300, hint);
            assert_eq!(all.len(), 300);
            assert!(all.iter().all(|(seq, bytes)| *bytes == record(*seq)));
        }
        assert_eq!(collect(&log, 1, u64::MAX, 8).len(), 300, "open-ended");
        let some = collect(&log, 42, 57, 4);
        assert_eq!(some.first().unwrap().0, 42);
        assert_eq!(some.last().unwrap().0, 57);
        // A scan stops when told to.
        let mut seen = 0;
        log.scan(1, 300, 8, |_, _| {
            seen += 1;
            Ok(seen < 5)
        })
        .unwrap();
        assert_eq!(seen, 5);
    }

    /// An index file of the layout before keys (offsets only) is rebuilt with them.
    #[test]
    fn indexes_a_segment_of_the_earlier_layout_again() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = (1..=40).map(record).collect();
        {
            let log = Log::open(dir.path(), 256, 1, 0, key).unwrap();
            append(&log, 1, &records);
        }
        let path = segment_path(dir.path(), 1, "idx");
        let current = fs::read(&path).unwrap();
        let count = u32::from_le_bytes(current[..4].try_into().unwrap()) as usize;
        assert!(count > 1);
        let mut earlier = current[..12 + 4 * count].to_vec();
        let crc = crc32fast::hash(&earlier);
        earlier.extend_from_slice(&crc.to_le_bytes());
        fs::write(&path, earlier).unwrap();
        let log = Log::open(dir.path(), 256, 1, 0, key).unwrap();
        assert_eq!(fs::read(&path).unwrap(), current);
        assert_eq!(keys_from(&log, 1), expected_keys(1..=40));
        assert_eq!(collect(&log, 1, 40, 8).len(), 40);
    }

    #[test]
    fn cuts_off_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = Log::open(dir.path(), 1 << 20, 1, 0, key).unwrap();
            append(&log, 1, &[record(1), record(2), record(3)]);
        }
        let path = segment_path(dir.path(), 1, "log");
        let len = fs::metadata(&path).unwrap().len();
        // Half of the last record's payload is missing, as after a crash mid-write.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let log = Log::open(dir.path(), 1 << 20, 1, 0, key).unwrap();
        assert_eq!(log.next_seq(), 3);
        assert_eq!(log.get(2).unwrap(), Some(record(2)));
        assert_eq!(log.get(3).unwrap(), None);
        drop(log);
        // A torn header whose length is garbage (near 4 GiB) is cut off too, without reading it.
        let mut garbage = fs::read(&path).unwrap();
        garbage.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        garbage.extend_from_slice(&[7; 12]);
        fs::write(&path, garbage).unwrap();
        let log = Log::open(dir.path(), 1 << 20, 1, 0, key).unwrap();
        assert_eq!(log.next_seq(), 3);
        append(&log, 3, &[b"again".to_vec()]);
        assert_eq!(log.get(3).unwrap(), Some(b"again".to_vec()));
        // A flipped byte in a sealed record is an error on read, not wrong data.
        let bytes = fs::read(&path).unwrap();
        let mut damaged = bytes.clone();
        damaged[HEADER_LEN + 1] ^= 0xff;
        fs::write(&path, damaged).unwrap();
        assert!(matches!(log.get(1), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn cuts_off_a_zero_filled_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = Log::open(dir.path(), 1 << 20, 1, 0, key).unwrap();
            append(&log, 1, &[record(1), record(2)]);
        }
        // The file's new size reached the disk but its data did not: zeros, which would pass
        // as empty records with a valid checksum.
        let path = segment_path(dir.path(), 1, "log");
        let mut bytes = fs::read(&path).unwrap();
        let kept = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&path, bytes).unwrap();
        let log = Log::open(dir.path(), 1 << 20, 1, 0, key).unwrap();
        assert_eq!(log.next_seq(), 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), kept);
        append(&log, 3, &[record(3)]);
        assert_eq!(log.get(3).unwrap(), Some(record(3)));
    }

    #[test]
    fn purges_whole_segments_and_keeps_counting() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = (1..=100).map(record).collect();
        let log = Log::open(dir.path(), 512, 1, 0, key).unwrap();
        append(&log, 1, &records);
        let before = log.size();
        let freed = log.purge_before(60).unwrap();
        assert!(freed > 0 && log.size() == before - freed);
        assert_eq!(log.get(59).unwrap(), None);
        assert_eq!(log.get(60).unwrap(), Some(record(60)));
        assert_eq!(collect(&log, 1, 100, 10).first().unwrap().0, 60);
        // Everything purged: the segment appended to stays, and seqs go on from there.
        log.purge_before(101).unwrap();
        drop(log);
        let log = Log::open(dir.path(), 512, 1, 101, key).unwrap();
        assert_eq!(log.next_seq(), 101);
        assert_eq!(log.get(100).unwrap(), None);
        // A floor past the end starts a new segment there, leaving a gap.
        drop(log);
        let log = Log::open(dir.path(), 512, 500, 101, key).unwrap();
        assert_eq!(log.next_seq(), 500);
        append(&log, 500, &[record(500)]);
        assert_eq!(collect(&log, 1, 1000, 10), vec![(500, record(500))]);
    }
}
