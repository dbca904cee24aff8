//! The index of the WAL archive, made of immutable objects so that an object store can hold it:
//! no appends, no object ever rewritten in place.
//!
//! - Archiving a file writes one small **entry** object, `index/p/<WAL name>`, holding its line.
//!   Concurrent writers (PostgreSQL's `archive_command`, `receive-wal`, `put-wal`, `cron`) each
//!   write their own object: nothing is lost, nothing is torn.
//! - `cron` **compacts** entries into **chunks**, `index/c/<first>_<last>_<generation>`, each
//!   holding up to [`CHUNK_LINES`] sorted lines, then deletes the entries it merged. Listing the
//!   whole archive reads one listing and a handful of chunks (100,000 segments: one LIST and 25
//!   GETs), and finding one name reads its entry or the one chunk whose range holds it.
//! - Readers take the union of everything they find: chunks by generation, then entries. An
//!   interrupted compaction only leaves duplicates, which the union absorbs.
//! - The `xlog.db` of earlier versions (an appended file) is read as the oldest chunk until the
//!   first compaction migrates its lines into chunks and removes it.
//!
//! Compaction and removals must not run concurrently with each other: their callers hold the
//! server's xlog.db lock. Adding entries needs no lock.

use crate::{Error, Result};
use pgbak_storage::{CommitMode, StorageBackend};
use pgbak_wal::WalFileName;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// Where entry objects live.
pub const ENTRIES: &str = "index/p/";
/// Where chunk objects live.
pub const CHUNKS: &str = "index/c/";
/// The appended index file of earlier versions, read until the first compaction migrates it.
pub const LEGACY_INDEX: &str = "xlog.db";
/// Written by the first compaction, removal or rebuild: the index exists even when it is empty
/// (every file removed), so readers do not fall back to listing the archive.
pub const MARKER: &str = "index/ready";
/// Most lines in one chunk (about 400 KB).
pub const CHUNK_LINES: usize = 4096;
/// Largest index object read (a chunk is about 400 KB; a legacy xlog.db of a very long-lived
/// archive can be tens of MB).
const MAX_INDEX_OBJECT: u64 = 1 << 30;

/// One line of the index: what was archived under a name.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub name: String,
    /// Bytes as stored (after compression).
    pub stored_size: u64,
    /// Seconds since the epoch when it was archived.
    pub time: f64,
    pub compression: String,
    /// CRC-32C of the original bytes.
    pub crc32c: Option<u32>,
    /// Size of the original bytes.
    pub size: Option<u64>,
    /// How the file is encrypted (`gpg`), Barman's fifth column; `None`: in clear (or not
    /// recorded: reads recognise encryption by content).
    pub encryption: Option<String>,
    /// The key it is encrypted to (pgbak's `key=` column).
    pub key_id: Option<String>,
}

impl IndexEntry {
    /// The line as written: Barman's five columns (name, stored size, time, compression,
    /// encryption) and pgbak's checksum columns, ending with a newline.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{}\t{}\t{:.3}\t{}\t{}",
            self.name,
            self.stored_size,
            self.time,
            self.compression,
            self.encryption.as_deref().unwrap_or("None")
        );
        if let (Some(c), Some(n)) = (self.crc32c, self.size) {
            s.push_str(&format!("\tcrc32c={c:08x}\tsize={n}"));
        }
        if let Some(k) = self.key_id.as_deref().filter(|k| valid_key_id(k)) {
            s.push_str(&format!("\tkey={k}"));
        }
        s.push('\n');
        s
    }

    /// Parses one line (without its newline); `None` for anything that is not exactly a line
    /// pgbak (or Barman) writes: a WAL file name, sizes, a time, a compression, and optionally
    /// pgbak's checksum columns. Strict on purpose: a line glued to the remains of a torn one
    /// must not parse.
    pub fn parse(line: &str) -> Option<IndexEntry> {
        let mut cols = line.split('\t');
        let name = cols.next()?;
        WalFileName::parse(name).ok()?;
        let stored_size = cols.next()?.parse().ok()?;
        let time: f64 = cols.next()?.parse().ok()?;
        if !time.is_finite() {
            return None;
        }
        let compression = cols.next().unwrap_or("None");
        if compression.is_empty() || !compression.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let encryption = match cols.next() {
            None | Some("None") => None,
            Some(e) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Some(e.to_string())
            }
            Some(_) => return None,
        };
        let mut crc32c = None;
        let mut size = None;
        let mut key_id = None;
        for c in cols {
            if let Some(v) = c.strip_prefix("key=") {
                if key_id.is_some() || !valid_key_id(v) {
                    return None;
                }
                key_id = Some(v.to_string());
                continue;
            }
            if let Some(v) = c.strip_prefix("crc32c=") {
                if v.len() != 8 || crc32c.is_some() {
                    return None;
                }
                crc32c = Some(u32::from_str_radix(v, 16).ok()?);
            } else if let Some(v) = c.strip_prefix("size=") {
                if size.is_some() {
                    return None;
                }
                size = Some(v.parse().ok()?);
            } else {
                return None;
            }
        }
        Some(IndexEntry {
            name: name.to_string(),
            stored_size,
            time,
            compression: compression.to_string(),
            crc32c,
            size,
            encryption,
            key_id,
        })
    }
}

/// A key id that fits in an index column: printable, no tab, no newline.
fn valid_key_id(k: &str) -> bool {
    !k.is_empty() && k.len() <= 256 && !k.chars().any(|c| c.is_control())
}

/// Every valid line of `bytes`, in order. Lines that do not parse (damaged, not UTF-8) and an
/// unfinished last line are left out and counted: a damaged line never makes its neighbours
/// unreadable.
pub fn parse_lines(bytes: &[u8]) -> (Vec<IndexEntry>, usize) {
    let mut out = Vec::with_capacity(bytes.len() / 80);
    let mut bad = 0usize;
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        match std::str::from_utf8(line).ok().and_then(IndexEntry::parse) {
            // The last line without its newline is an append that did not finish.
            Some(e) if !last => out.push(e),
            _ => bad += 1,
        }
    }
    (out, bad)
}

/// A chunk object, as named by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Chunk {
    key: String,
    first: String,
    last: String,
    generation: String,
}

impl Chunk {
    fn parse_key(key: &str) -> Option<Chunk> {
        let rest = key.strip_prefix(CHUNKS)?;
        let mut parts = rest.splitn(3, '_');
        let (first, last, generation) = (parts.next()?, parts.next()?, parts.next()?);
        WalFileName::parse(first).ok()?;
        WalFileName::parse(last).ok()?;
        if first > last || generation.is_empty() {
            return None;
        }
        Some(Chunk {
            key: key.to_string(),
            first: first.to_string(),
            last: last.to_string(),
            generation: generation.to_string(),
        })
    }

    fn holds(&self, name: &str) -> bool {
        self.first.as_str() <= name && name <= self.last.as_str()
    }

    fn overlaps(&self, other: &Chunk) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// What the index objects are, from one listing.
#[derive(Debug, Default)]
struct Layout {
    entries: Vec<String>,
    chunks: Vec<Chunk>,
    legacy: bool,
    marker: bool,
}

impl Layout {
    /// No index at all: no entry, no chunk, no legacy file, no marker.
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.chunks.is_empty() && !self.legacy && !self.marker
    }
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Entry objects merged into chunks (and removed).
    pub merged: usize,
    /// Chunks written.
    pub written: usize,
    /// Old chunks removed.
    pub removed: usize,
    /// Whether the legacy `xlog.db` was migrated.
    pub migrated_legacy: bool,
}

/// The index of one WAL archive, over the archive's store.
pub struct WalIndex<'a> {
    storage: &'a dyn StorageBackend,
    chunk_lines: usize,
}

impl<'a> WalIndex<'a> {
    /// The index kept in `storage` (the WAL archive's store).
    pub fn new(storage: &'a dyn StorageBackend) -> Self {
        WalIndex {
            storage,
            chunk_lines: CHUNK_LINES,
        }
    }

    /// The same with chunks of at most `n` lines (tests use small chunks).
    #[cfg(test)]
    fn with_chunk_lines(storage: &'a dyn StorageBackend, n: usize) -> Self {
        WalIndex {
            storage,
            chunk_lines: n,
        }
    }

    fn layout(&self) -> Result<Layout> {
        let mut l = Layout::default();
        for m in self.storage.list("index/")? {
            if let Some(name) = m.key.strip_prefix(ENTRIES) {
                if WalFileName::parse(name).is_ok() {
                    l.entries.push(m.key);
                }
            } else if let Some(c) = Chunk::parse_key(&m.key) {
                l.chunks.push(c);
            } else if m.key == MARKER {
                l.marker = true;
            }
        }
        l.chunks.sort_by(|a, b| a.generation.cmp(&b.generation));
        l.legacy = self.storage.stat(LEGACY_INDEX)?.is_some();
        Ok(l)
    }

    fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = match self.storage.get(key) {
            Ok(r) => r,
            Err(pgbak_storage::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut bytes = Vec::new();
        r.take(MAX_INDEX_OBJECT)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", key, e))?;
        Ok(Some(bytes))
    }

    /// The lines of one index object (missing: none), warning about damaged lines.
    fn lines_of(&self, key: &str) -> Result<Vec<IndexEntry>> {
        let Some(bytes) = self.read_object(key)? else {
            return Ok(Vec::new());
        };
        let (lines, bad) = parse_lines(&bytes);
        if bad > 0 {
            tracing::warn!(
                "WAL index {key}: {bad} damaged or unfinished line(s) ignored (`pgbak rebuild-xlogdb` rewrites the index from the archived files)"
            );
        }
        Ok(lines)
    }

    /// Adds the line of one archived file. Needs no lock: each file has its own entry object,
    /// and a second entry for the same name replaces the first (it describes the same bytes,
    /// since an archived file is never overwritten).
    pub fn add(&self, entry: &IndexEntry) -> Result<()> {
        WalFileName::parse(&entry.name)?;
        let key = format!("{ENTRIES}{}", entry.name);
        let mut w = self.storage.put(&key)?;
        w.write_all(entry.to_line().as_bytes())
            .map_err(|e| Error::io("write", &key, e))?;
        w.commit(CommitMode::Replace)?;
        Ok(())
    }

    /// The line of `name`, if the index has one.
    pub fn lookup(&self, name: &str) -> Result<Option<IndexEntry>> {
        WalFileName::parse(name)?;
        let entry_key = format!("{ENTRIES}{name}");
        if let Some(bytes) = self.read_object(&entry_key)? {
            if let Some(e) = parse_lines(&bytes).0.into_iter().find(|e| e.name == name) {
                return Ok(Some(e));
            }
        }
        let layout = self.layout()?;
        // The newest chunk holding the name wins; the legacy file is the oldest source.
        for c in layout.chunks.iter().rev().filter(|c| c.holds(name)) {
            if let Some(e) = self.lines_of(&c.key)?.into_iter().find(|e| e.name == name) {
                return Ok(Some(e));
            }
        }
        if layout.legacy {
            return Ok(self
                .lines_of(LEGACY_INDEX)?
                .into_iter()
                .rev()
                .find(|e| e.name == name));
        }
        Ok(None)
    }

    /// Whether there is an index at all (one listing; nothing is read).
    pub fn exists(&self) -> Result<bool> {
        Ok(!self.layout()?.is_empty())
    }

    /// Every file of the index by name (the newest line of each), or `None` when there is no
    /// index at all.
    pub fn all(&self) -> Result<Option<BTreeMap<String, IndexEntry>>> {
        let layout = self.layout()?;
        if layout.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.merged(&layout)?))
    }

    fn merged(&self, layout: &Layout) -> Result<BTreeMap<String, IndexEntry>> {
        let mut out = BTreeMap::new();
        if layout.legacy {
            for e in self.lines_of(LEGACY_INDEX)? {
                out.insert(e.name.clone(), e);
            }
        }
        for c in &layout.chunks {
            for e in self.lines_of(&c.key)? {
                out.insert(e.name.clone(), e);
            }
        }
        for key in &layout.entries {
            for e in self.lines_of(key)? {
                out.insert(e.name.clone(), e);
            }
        }
        Ok(out)
    }

    fn ensure_marker(&self, layout: &Layout) -> Result<()> {
        if !layout.marker {
            let mut w = self.storage.put(MARKER)?;
            w.write_all(b"pgbak WAL index\n")
                .map_err(|e| Error::io("write", MARKER, e))?;
            w.commit(CommitMode::Replace)?;
        }
        Ok(())
    }

    /// Writes `entries` (sorted by name) as chunks of a new generation; returns their keys.
    fn write_chunks(&self, entries: &[&IndexEntry]) -> Result<Vec<String>> {
        let generation = new_generation();
        let mut keys = Vec::new();
        for piece in entries.chunks(self.chunk_lines) {
            let (Some(first), Some(last)) = (piece.first(), piece.last()) else {
                continue;
            };
            let key = format!("{CHUNKS}{}_{}_{generation}", first.name, last.name);
            let mut text = String::with_capacity(piece.len() * 96);
            for e in piece {
                text.push_str(&e.to_line());
            }
            let mut w = self.storage.put_with_mode(&key, CommitMode::CreateNew)?;
            w.write_all(text.as_bytes())
                .map_err(|e| Error::io("write", &key, e))?;
            w.commit(CommitMode::CreateNew)?;
            keys.push(key);
        }
        Ok(keys)
    }

    /// Merges entry objects (and a legacy `xlog.db`) into chunks. Only the chunks whose range a
    /// merged name falls into, or that overlap another, are rewritten: archiving adds names past
    /// the last chunk, so a compaction usually rewrites the last chunk and writes new ones. The
    /// caller holds the xlog.db lock.
    pub fn compact(&self) -> Result<CompactReport> {
        let layout = self.layout()?;
        let mut report = CompactReport::default();
        if layout.entries.is_empty() && !layout.legacy && !has_overlaps(&layout.chunks) {
            return Ok(report);
        }
        self.ensure_marker(&layout)?;
        let mut incoming: BTreeMap<String, IndexEntry> = BTreeMap::new();
        if layout.legacy {
            for e in self.lines_of(LEGACY_INDEX)? {
                incoming.insert(e.name.clone(), e);
            }
        }
        for key in &layout.entries {
            for e in self.lines_of(key)? {
                incoming.insert(e.name.clone(), e);
            }
        }
        let last_end = layout.chunks.iter().map(|c| c.last.as_str()).max();
        let touched = |c: &Chunk| {
            incoming.keys().any(|n| c.holds(n))
                || layout.chunks.iter().any(|o| o.key != c.key && o.overlaps(c))
                // Names past every chunk extend the last one (when it has room).
                || (Some(c.last.as_str()) == last_end
                    && incoming.keys().next_back().is_some_and(|n| n.as_str() > c.last.as_str()))
        };
        let rewrite: Vec<&Chunk> = layout.chunks.iter().filter(|c| touched(c)).collect();
        let mut merged: BTreeMap<String, IndexEntry> = BTreeMap::new();
        for c in &rewrite {
            for e in self.lines_of(&c.key)? {
                merged.insert(e.name.clone(), e);
            }
        }
        merged.extend(incoming);
        let sorted: Vec<&IndexEntry> = merged.values().collect();
        report.written = self.write_chunks(&sorted)?.len();
        // What the new chunks hold may go now; an interruption leaves duplicates only.
        let old: Vec<String> = rewrite.iter().map(|c| c.key.clone()).collect();
        report.removed = old.len();
        self.storage.delete_many(&old)?;
        report.merged = layout.entries.len();
        self.storage.delete_many(&layout.entries)?;
        if layout.legacy {
            self.storage.delete(LEGACY_INDEX)?;
            report.migrated_legacy = true;
        }
        Ok(report)
    }

    /// Removes the lines `keep` refuses (for callers that remove files: remove the files first,
    /// then their lines, so an interruption leaves only lines too many). Returns the number of
    /// names removed. The caller holds the xlog.db lock.
    pub fn retain(&self, keep: impl Fn(&IndexEntry) -> bool) -> Result<usize> {
        // Compact first: afterwards every line is in a chunk, and only chunks are rewritten.
        self.compact()?;
        let layout = self.layout()?;
        self.ensure_marker(&layout)?;
        let mut removed = 0usize;
        let mut rewrite = Vec::new();
        let mut kept_lines: Vec<IndexEntry> = Vec::new();
        for c in &layout.chunks {
            let lines = self.lines_of(&c.key)?;
            let before = lines.len();
            let kept: Vec<IndexEntry> = lines.into_iter().filter(|e| keep(e)).collect();
            if kept.len() != before {
                removed += before - kept.len();
                rewrite.push(c.key.clone());
                kept_lines.extend(kept);
            }
        }
        // Entries written since the compaction above are new files: only those refused go.
        let mut gone_entries = Vec::new();
        for key in &layout.entries {
            if self.lines_of(key)?.iter().any(|e| !keep(e)) {
                gone_entries.push(key.clone());
                removed += 1;
            }
        }
        if !rewrite.is_empty() {
            kept_lines.sort_by(|a, b| a.name.cmp(&b.name));
            let refs: Vec<&IndexEntry> = kept_lines.iter().collect();
            self.write_chunks(&refs)?;
            self.storage.delete_many(&rewrite)?;
        }
        self.storage.delete_many(&gone_entries)?;
        Ok(removed)
    }

    /// Replaces the whole index with `entries` (`rebuild-xlogdb`). The caller holds the xlog.db
    /// lock.
    pub fn replace_all(&self, entries: &[IndexEntry]) -> Result<()> {
        let layout = self.layout()?;
        self.ensure_marker(&layout)?;
        let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        sorted.dedup_by(|a, b| a.name == b.name);
        self.write_chunks(&sorted)?;
        let old: Vec<String> = layout.chunks.iter().map(|c| c.key.clone()).collect();
        self.storage.delete_many(&old)?;
        self.storage.delete_many(&layout.entries)?;
        if layout.legacy {
            self.storage.delete(LEGACY_INDEX)?;
        }
        Ok(())
    }
}

fn has_overlaps(chunks: &[Chunk]) -> bool {
    chunks
        .iter()
        .enumerate()
        .any(|(i, a)| chunks[i + 1..].iter().any(|b| a.overlaps(b)))
}

/// A chunk generation: later ones sort after earlier ones, and two writers never pick the same.
fn new_generation() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!(
        "{micros:020}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgbak_storage::LocalStorage;

    fn name(i: u64) -> String {
        format!("00000001{:08X}{:08X}", i >> 8, i & 0xFF)
    }

    fn entry(i: u64) -> IndexEntry {
        IndexEntry {
            name: name(i),
            stored_size: 100 + i,
            time: 1.5,
            compression: "zstd".into(),
            crc32c: Some(i as u32),
            size: Some(16 << 20),
            encryption: None,
            key_id: None,
        }
    }

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("wals"));
        (d, s)
    }

    fn keys(s: &LocalStorage) -> Vec<String> {
        s.list("index/")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    #[test]
    fn entries_then_compaction_then_lookups() {
        let (_d, s) = store();
        let idx = WalIndex::with_chunk_lines(&s, 40);
        assert_eq!(idx.all().unwrap(), None);
        for i in 0..100 {
            idx.add(&entry(i)).unwrap();
        }
        assert_eq!(idx.lookup(&name(77)).unwrap(), Some(entry(77)));
        let r = idx.compact().unwrap();
        assert_eq!(r.merged, 100);
        assert_eq!(r.written, 3);
        assert_eq!(keys(&s).len(), 4, "only chunks and the marker are left");
        let all = idx.all().unwrap().unwrap();
        assert_eq!(all.len(), 100);
        assert_eq!(all[&name(99)], entry(99));
        for i in [0, 39, 40, 79, 99] {
            assert_eq!(idx.lookup(&name(i)).unwrap(), Some(entry(i)), "{i}");
        }
        assert_eq!(idx.lookup(&name(20_000)).unwrap(), None);
        // More archiving, another compaction: the full chunks stay as they are.
        for i in 100..110 {
            idx.add(&entry(i)).unwrap();
        }
        let r = idx.compact().unwrap();
        assert_eq!((r.merged, r.removed, r.written), (10, 1, 1));
        assert_eq!(idx.all().unwrap().unwrap().len(), 110);
        assert_eq!(idx.compact().unwrap(), CompactReport::default());
    }

    #[test]
    fn an_interrupted_compaction_leaves_only_duplicates() {
        let (_d, s) = store();
        let idx = WalIndex::with_chunk_lines(&s, 40);
        for i in 0..100 {
            idx.add(&entry(i)).unwrap();
        }
        idx.compact().unwrap();
        // A compaction that wrote its chunks and died before removing what they replace: the
        // old chunks and the entries are still there.
        let all: Vec<IndexEntry> = idx.all().unwrap().unwrap().into_values().collect();
        let refs: Vec<&IndexEntry> = all.iter().collect();
        idx.write_chunks(&refs).unwrap();
        idx.add(&entry(3)).unwrap();
        let union = idx.all().unwrap().unwrap();
        assert_eq!(union.len(), 100);
        idx.compact().unwrap();
        assert_eq!(idx.all().unwrap().unwrap(), union);
        let layout = idx.layout().unwrap();
        assert!(!has_overlaps(&layout.chunks), "{:?}", layout.chunks);
        assert!(layout.entries.is_empty());
    }

    #[test]
    fn removals_and_rebuilds() {
        let (_d, s) = store();
        let idx = WalIndex::with_chunk_lines(&s, 40);
        for i in 0..120 {
            idx.add(&entry(i)).unwrap();
        }
        idx.compact().unwrap();
        idx.add(&entry(120)).unwrap();
        let removed = idx
            .retain(|e| e.name.as_str() >= name(100).as_str())
            .unwrap();
        assert_eq!(removed, 100);
        let all = idx.all().unwrap().unwrap();
        assert_eq!(all.len(), 21);
        assert_eq!(all.keys().next().unwrap(), &name(100));
        idx.replace_all(&[entry(1), entry(2)]).unwrap();
        assert_eq!(
            idx.all()
                .unwrap()
                .unwrap()
                .into_values()
                .collect::<Vec<_>>(),
            vec![entry(1), entry(2)]
        );
    }

    #[test]
    fn a_legacy_xlog_db_is_read_then_migrated() {
        let (_d, s) = store();
        let mut legacy = String::new();
        for i in 0..100 {
            legacy.push_str(&entry(i).to_line());
        }
        // A torn last line, as a full disk left it.
        legacy.push_str(&entry(100).to_line()[..30]);
        let mut w = s.put(LEGACY_INDEX).unwrap();
        w.write_all(legacy.as_bytes()).unwrap();
        w.commit(CommitMode::Replace).unwrap();
        let idx = WalIndex::with_chunk_lines(&s, 40);
        assert_eq!(idx.lookup(&name(42)).unwrap(), Some(entry(42)));
        assert_eq!(idx.lookup(&name(100)).unwrap(), None);
        idx.add(&entry(100)).unwrap();
        assert_eq!(idx.all().unwrap().unwrap().len(), 101);
        let r = idx.compact().unwrap();
        assert!(r.migrated_legacy);
        assert!(s.stat(LEGACY_INDEX).unwrap().is_none());
        assert_eq!(idx.all().unwrap().unwrap().len(), 101);
    }

    #[test]
    fn damaged_lines_never_poison_their_neighbours() {
        let e1 = entry(1).to_line();
        let e2 = entry(2).to_line();
        let glued = format!("{}{}", &e1[..40], e2);
        let mut bytes = e1.clone().into_bytes();
        bytes.extend_from_slice(glued.as_bytes());
        bytes.extend_from_slice(b"0000000100000000000000\xff5\t1\t1.0\tzstd\tNone\n");
        bytes.extend_from_slice(entry(3).to_line().as_bytes());
        let (lines, bad) = parse_lines(&bytes);
        assert_eq!(lines, vec![entry(1), entry(3)]);
        assert_eq!(bad, 2);
        for bad in [
            "../../etc/passwd\t1\t1.0\tzstd\tNone",
            "000000010000000000000001\t1\t1.0\tzstd\tNone\tcrc32c=1234\tsize=1",
            "000000010000000000000001\t1\t1.0\tzstd\tNone\tcrc32c=12345678\tsize=16777216000000010000000000000002",
            "000000010000000000000001\t1\tNaN\tzstd\tNone",
            "000000010000000000000001\t1\t1.0\tzs td\tNone",
            "000000010000000000000001\t1\t1.0\tzstd\tNone\textra",
        ] {
            assert_eq!(IndexEntry::parse(bad), None, "{bad}");
        }
        assert!(
            IndexEntry::parse("000000010000000000000001\t16777216\t1700000000.0\tNone").is_some()
        );
    }
}
