//! The index of archived WAL (`wals/xlog.db`) as the catalogue of the archive: listings and
//! lookups read it instead of walking thousands of files, `get-wal` finds one line by searching the
//! file from its end, and `rebuild-xlogdb` recreates it from the folder.
//!
//! The index is append-only while archiving (one line per stored file, under the server's xlog.db
//! lock); a rebuild or a removal rewrites it through a temporary file renamed into place under the
//! same lock, so readers see either the old or the new file, never a mixture.

use crate::locks::{LockManager, LockName};
use crate::wal_archive::{IndexEntry, WalArchive, INDEX_FILE};
use crate::{Error, Result};
use pgbak_storage::local::{fsync_dir, DurableFile};
use pgbak_storage::CommitMode;
use pgbak_wal::WalFileName;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Bytes read per step when searching the index backwards.
const TAIL_CHUNK: u64 = 1 << 20;

/// The newest line for `name` in the index file at `path`, or `None` (no such line, or no index).
///
/// The file is read backwards in chunks and searched with `memmem`, so the cost is a few
/// milliseconds even for an index of a million lines, and recently archived names (what a running
/// recovery or a standby asks for) are found in the first chunk.
pub(crate) fn last_entry_for(path: &Path, name: &str) -> Result<Option<IndexEntry>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    // Each step keeps the unfinished first line of the chunk for the next step, so a line cut by
    // a chunk boundary is seen whole.
    let mut end = len;
    let mut carry: Vec<u8> = Vec::new();
    let needle = name.as_bytes();
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        let mut buf = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("seek", path, e))?;
        f.read_exact(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        buf.extend_from_slice(&carry);
        // Lines wholly inside `buf` start after its first newline, unless `buf` starts the file.
        let first_line_end = if start == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    carry = buf;
                    end = start;
                    continue;
                }
            }
        };
        let whole = &buf[first_line_end..];
        let mut hay_end = whole.len();
        while let Some(pos) = memchr::memmem::rfind(&whole[..hay_end], needle) {
            let at_line_start = pos == 0 || whole[pos - 1] == b'\n';
            let followed_by_tab = whole.get(pos + needle.len()) == Some(&b'\t');
            // A line without its newline is an append that did not finish: never used.
            let line_end = memchr::memchr(b'\n', &whole[pos..]).map(|i| pos + i);
            if let (true, true, Some(line_end)) = (at_line_start, followed_by_tab, line_end) {
                let parsed = std::str::from_utf8(&whole[pos..line_end])
                    .ok()
                    .and_then(IndexEntry::parse);
                if let Some(e) = parsed {
                    return Ok(Some(e));
                }
            }
            hay_end = pos;
        }
        carry = buf[..first_line_end].to_vec();
        end = start;
    }
    Ok(None)
}

/// The length of `f`'s first `len` bytes up to and including its last newline: what remains
/// when an unfinished last line is cut off.
pub(crate) fn whole_lines_len(f: &File, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut buf = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        match memchr::memrchr(b'\n', chunk) {
            Some(i) => return Ok(start + i as u64 + 1),
            None => end = start,
        }
    }
    Ok(0)
}

/// Every valid line of the index at `path`, in file order, or `None` without an index. Lines
/// that do not parse (damaged, not UTF-8) and an unfinished last line are left out with one
/// warning: a damaged line never makes its neighbours unreadable.
pub(crate) fn read_index(path: &Path) -> Result<Option<Vec<IndexEntry>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
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
    if bad > 0 {
        tracing::warn!(
            "{}: {bad} damaged or unfinished line(s) ignored (`pgbak rebuild-xlogdb` rewrites the index from the archived files)",
            path.display()
        );
    }
    Ok(Some(out))
}

/// What `rebuild-xlogdb` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Lines in the new index.
    pub entries: usize,
    /// Files read back and checksummed.
    pub checksummed: usize,
    /// Lines of the old index whose file no longer exists (dropped).
    pub dropped: Vec<String>,
    /// Files in the folder that are not WAL files (left alone, not indexed).
    pub unknown: Vec<String>,
    /// WAL files that cannot be read back (damaged compression): left alone, not indexed.
    pub unreadable: Vec<String>,
}

impl WalArchive {
    /// Every file of the index, by name (the newest line of each name), or `None` when there is
    /// no index file.
    pub fn indexed(&self) -> Result<Option<BTreeMap<String, IndexEntry>>> {
        Ok(read_index(&self.dir().join(INDEX_FILE))?
            .map(|v| v.into_iter().map(|e| (e.name.clone(), e)).collect()))
    }

    /// Sorted names of indexed files accepted by `keep`, or `None` without an index.
    pub(crate) fn indexed_names(
        &self,
        keep: impl Fn(&WalFileName) -> bool,
    ) -> Result<Option<Vec<String>>> {
        Ok(self.indexed()?.map(|m| {
            m.into_keys()
                .filter(|n| WalFileName::parse(n).is_ok_and(|p| keep(&p)))
                .collect()
        }))
    }

    /// The index line of `name`, if it has one.
    pub fn index_entry_of(&self, name: &str) -> Result<Option<IndexEntry>> {
        last_entry_for(&self.dir().join(INDEX_FILE), name)
    }

    /// Adds a line for `name` unless the index already has one.
    pub(crate) fn ensure_indexed(
        &self,
        name: &str,
        key: &str,
        crc: u32,
        size: u64,
        locks: &dyn LockManager,
    ) -> Result<()> {
        if self.index_entry_of(name)?.is_some() {
            return Ok(());
        }
        let path = self.dir().join(key);
        let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let compression = self.stored_compression(name)?;
        self.append_index(
            &IndexEntry {
                name: name.to_string(),
                stored_size: meta.len(),
                time: mtime_secs(&meta),
                compression: compression.name().to_string(),
                crc32c: Some(crc),
                size: Some(size),
            },
            locks,
        )
    }

    /// Recreates the index from the files in the folder (`pgbak rebuild-xlogdb`). Every file is
    /// read back and checksummed. Non-WAL files and unreadable ones are reported, not indexed.
    pub fn rebuild_index(&self, locks: &dyn LockManager) -> Result<RebuildReport> {
        let _guard =
            locks.lock_blocking(&LockName::ServerXlogDb(self.server_name().to_string()))?;
        let old = self.indexed()?.unwrap_or_default();
        let mut report = RebuildReport::default();
        let mut new: BTreeMap<String, IndexEntry> = BTreeMap::new();
        let mut dirs = vec![self.dir().to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", &dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let fname = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let meta = entry.metadata().map_err(|e| Error::io("stat", &path, e))?;
                if fname.starts_with('.') || (dir == self.dir() && fname == INDEX_FILE) {
                    continue;
                }
                if meta.is_dir() {
                    if dir == self.dir() {
                        dirs.push(path);
                    } else {
                        report.unknown.push(path.display().to_string());
                    }
                    continue;
                }
                if WalFileName::parse(&fname).is_err() {
                    report.unknown.push(path.display().to_string());
                    continue;
                }
                // A file must be where the archive would look for it.
                let in_place = WalArchive::key_of(&fname)
                    .map(|k| self.dir().join(k) == path)
                    .unwrap_or(false);
                if !in_place {
                    report.unknown.push(path.display().to_string());
                    continue;
                }
                // Checksums come from the files themselves, never from the index being
                // replaced: a wrong line there must not survive the rebuild.
                let key = WalArchive::key_of(&fname)?;
                let (crc32c, size) = match self.checksum_stored(&key) {
                    Ok((c, s)) => (Some(c), Some(s)),
                    Err(e) => {
                        tracing::warn!("{fname}: not indexed: {e}");
                        report.unreadable.push(fname);
                        continue;
                    }
                };
                report.checksummed += 1;
                let compression = self.stored_compression(&fname)?.name().to_string();
                new.insert(
                    fname.clone(),
                    IndexEntry {
                        name: fname,
                        stored_size: meta.len(),
                        time: mtime_secs(&meta),
                        compression,
                        crc32c,
                        size,
                    },
                );
            }
        }
        report.dropped = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        report.unknown.sort();
        let mut entries: Vec<IndexEntry> = new.into_values().collect();
        // Archive order: history files sort after the segments that led to them, by time.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        report.entries = entries.len();
        self.write_index_locked(&entries)?;
        Ok(report)
    }

    /// Rewrites the index keeping only the lines `keep` accepts (for callers that remove files:
    /// remove the files first, then their lines, so an interruption leaves only lines too many,
    /// which a rebuild drops). Returns the number of lines removed.
    pub fn retain_index(
        &self,
        locks: &dyn LockManager,
        keep: impl Fn(&IndexEntry) -> bool,
    ) -> Result<usize> {
        let _guard =
            locks.lock_blocking(&LockName::ServerXlogDb(self.server_name().to_string()))?;
        let Some(all) = read_index(&self.dir().join(INDEX_FILE))? else {
            return Ok(0);
        };
        let before = all.len();
        let kept: Vec<IndexEntry> = all.into_iter().filter(|e| keep(e)).collect();
        let removed = before - kept.len();
        if removed > 0 {
            self.write_index_locked(&kept)?;
        }
        Ok(removed)
    }

    /// Replaces the index file (the caller holds the xlog.db lock).
    fn write_index_locked(&self, entries: &[IndexEntry]) -> Result<()> {
        let path = self.dir().join(INDEX_FILE);
        pgbak_storage::local::create_dir_all_durable(self.dir())
            .map_err(|e| Error::io("create", self.dir(), e))?;
        let mut f = DurableFile::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let mut text = String::with_capacity(entries.len() * 96);
        for e in entries {
            text.push_str(&e.to_line());
        }
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &path, e))?;
        f.commit(CommitMode::Replace)
            .map_err(|e| Error::io("commit", &path, e))?;
        fsync_dir(self.dir()).map_err(|e| Error::io("fsync", self.dir(), e))
    }
}

fn mtime_secs(meta: &std::fs::Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::FileLockManager;
    use crate::wal_archive::tests::segment;
    use pgbak_compress::{Codec, Compression};

    fn setup(c: Compression) -> (tempfile::TempDir, WalArchive, FileLockManager) {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            d.path().join("wals"),
            d.path().join("errors"),
            Codec::new(c, None).unwrap(),
        );
        let l = FileLockManager::new(d.path().join("locks"));
        (d, a, l)
    }

    fn name(i: u64) -> String {
        format!("00000001{:08X}{:08X}", i >> 8, i & 0xFF)
    }

    #[test]
    fn tail_search_finds_the_newest_line_across_chunk_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(INDEX_FILE);
        let mut text = String::new();
        // Enough lines to span several chunks, with one name written twice.
        for i in 0..40_000u64 {
            let e = IndexEntry {
                name: name(i),
                stored_size: i,
                time: 1.0,
                compression: "zstd".into(),
                crc32c: Some(i as u32),
                size: Some(16),
            };
            text.push_str(&e.to_line());
        }
        text.push_str("000000010000000000000005\t99\t2.000\tnone\tNone\n");
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() as u64 > 2 * TAIL_CHUNK);
        for i in [0u64, 1, 4095, 12_345, 39_999] {
            let e = last_entry_for(&path, &name(i)).unwrap().unwrap();
            assert_eq!(e.stored_size, i, "{}", name(i));
        }
        let newest = last_entry_for(&path, "000000010000000000000005")
            .unwrap()
            .unwrap();
        assert_eq!(newest.stored_size, 99, "the last line of a name wins");
        assert!(last_entry_for(&path, "000000020000000000000005")
            .unwrap()
            .is_none());
        // A prefix of a name is not that name.
        assert!(last_entry_for(&path, "00000001000000000000")
            .unwrap()
            .is_none());
        assert!(last_entry_for(&d.path().join("missing"), "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_line_of_a_small_index_is_found() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(INDEX_FILE);
        let mut text = String::new();
        for i in 0..50u64 {
            text.push_str(&format!("{}\t{i}\t1.0\tgzip\tNone\n", name(i)));
        }
        std::fs::write(&path, &text).unwrap();
        for i in 0..50u64 {
            assert_eq!(
                last_entry_for(&path, &name(i))
                    .unwrap()
                    .unwrap()
                    .stored_size,
                i
            );
        }
    }

    #[test]
    fn rebuild_recreates_a_lost_index_and_listings_use_it() {
        let (d, a, l) = setup(Compression::Zstd);
        for i in 1..=3u64 {
            let n = name(i);
            let src = d.path().join(&n);
            std::fs::write(&src, segment(&n, i as u8)).unwrap();
            a.archive_file(&src, &l).unwrap();
        }
        let h = d.path().join("00000002.history");
        std::fs::write(&h, "1\t0/3000000\tno recovery target specified\n").unwrap();
        a.archive_file(&h, &l).unwrap();
        let before = a.indexed().unwrap().unwrap();
        std::fs::write(a.dir().join("stray.txt"), b"x").unwrap();

        std::fs::remove_file(a.dir().join(INDEX_FILE)).unwrap();
        let r = a.rebuild_index(&l).unwrap();
        assert_eq!(r.entries, 4);
        assert_eq!(r.checksummed, 4, "no old index: every file is read");
        assert_eq!(r.unknown.len(), 1);
        let after = a.indexed().unwrap().unwrap();
        for (n, e) in &before {
            let b = &after[n];
            assert_eq!(
                (b.crc32c, b.size, b.stored_size),
                (e.crc32c, e.size, e.stored_size)
            );
            assert_eq!(b.compression, e.compression);
        }
        assert_eq!(a.segment_names().unwrap(), vec![name(1), name(2), name(3)]);
        assert_eq!(a.history_names().unwrap(), vec!["00000002.history"]);

        // A second rebuild reads the files again (a wrong checksum in the old index does not
        // survive it); a removed file drops out.
        std::fs::remove_file(a.dir().join(WalArchive::key_of(&name(2)).unwrap())).unwrap();
        let text = std::fs::read_to_string(a.dir().join(INDEX_FILE)).unwrap();
        let good = format!("{:08x}", after[&name(3)].crc32c.unwrap());
        std::fs::write(
            a.dir().join(INDEX_FILE),
            text.replace(&format!("crc32c={good}"), "crc32c=0badc0de"),
        )
        .unwrap();
        assert!(a.fetch(&name(3), &d.path().join("refused")).is_err());
        let r = a.rebuild_index(&l).unwrap();
        assert_eq!(r.checksummed, 3);
        assert_eq!(r.dropped, vec![name(2)]);
        assert_eq!(
            a.indexed().unwrap().unwrap()[&name(3)].crc32c,
            after[&name(3)].crc32c
        );
        assert_eq!(a.segment_names().unwrap(), vec![name(1), name(3)]);
        let out = d.path().join("out");
        a.fetch(&name(3), &out).unwrap();
    }

    fn entry(i: u64) -> IndexEntry {
        IndexEntry {
            name: name(i),
            stored_size: 100 + i,
            time: 1.5,
            compression: "zstd".into(),
            crc32c: Some(0x1234_5678),
            size: Some(16 << 20),
        }
    }

    #[test]
    fn an_unfinished_last_line_is_cut_off_before_the_next_append() {
        let (_d, a, l) = setup(Compression::Zstd);
        std::fs::create_dir_all(a.dir()).unwrap();
        let path = a.dir().join(INDEX_FILE);
        // What a disk that filled up in the middle of an append leaves: half a line.
        let torn = entry(2).to_line();
        std::fs::write(&path, format!("{}{}", entry(1).to_line(), &torn[..30])).unwrap();
        // Readers ignore the unfinished line and keep its neighbour.
        assert_eq!(a.index().unwrap(), vec![entry(1)]);
        assert_eq!(last_entry_for(&path, &name(2)).unwrap(), None);
        a.append_index(&entry(2), &l).unwrap();
        a.append_index(&entry(3), &l).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(
                "{}{}{}",
                entry(1).to_line(),
                entry(2).to_line(),
                entry(3).to_line()
            )
        );
        assert_eq!(a.index().unwrap(), vec![entry(1), entry(2), entry(3)]);
        assert_eq!(last_entry_for(&path, &name(2)).unwrap(), Some(entry(2)));
    }

    #[test]
    fn damaged_lines_never_poison_their_neighbours() {
        let (_d, a, _l) = setup(Compression::Zstd);
        std::fs::create_dir_all(a.dir()).unwrap();
        let path = a.dir().join(INDEX_FILE);
        let e1 = entry(1).to_line();
        let e2 = entry(2).to_line();
        // A line glued onto the remains of a torn one, a line with a byte that is not UTF-8,
        // and well-formed lines around them.
        let glued = format!("{}{}", &e1[..40], e2);
        let mut bytes = e1.clone().into_bytes();
        bytes.extend_from_slice(glued.as_bytes());
        bytes.extend_from_slice(b"0000000100000000000000\xff5\t1\t1.0\tzstd\tNone\n");
        bytes.extend_from_slice(entry(3).to_line().as_bytes());
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(a.index().unwrap(), vec![entry(1), entry(3)]);
        let indexed = a.indexed().unwrap().unwrap();
        assert_eq!(indexed.len(), 2);
        assert_eq!(last_entry_for(&path, &name(2)).unwrap(), None);
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
        // Barman's own lines (four or five columns) still parse.
        assert!(
            IndexEntry::parse("000000010000000000000001\t16777216\t1700000000.0\tNone").is_some()
        );
        assert!(
            IndexEntry::parse("000000010000000000000001\t16777216\t1700000000.0\tgzip\tNone")
                .is_some()
        );
    }

    #[test]
    fn a_retried_archive_heals_a_missing_index_line() {
        let (d, a, l) = setup(Compression::Gzip);
        let n = name(7);
        let src = d.path().join(&n);
        std::fs::write(&src, segment(&n, 7)).unwrap();
        a.archive_file(&src, &l).unwrap();
        // Simulate a crash after the file's commit but before the index line.
        a.retain_index(&l, |e| e.name != n).unwrap();
        assert!(a.segment_names().unwrap().is_empty());
        a.archive_file(&src, &l).unwrap();
        assert_eq!(a.segment_names().unwrap(), vec![n.clone()]);
        assert_eq!(a.index().unwrap().len(), 1);
        // And only once.
        a.archive_file(&src, &l).unwrap();
        assert_eq!(a.index().unwrap().len(), 1);
    }
}
