//! The WAL archive of one server: `wals/<TLI+log>/<segment>` (history files at `wals/`), each
//! compressed with the server's `compression`, plus the `xlog.db` index with one line per archived
//! file (name, stored size, time, compression, encryption, CRC-32C and size of the original bytes).
//!
//! Durability: a file is acknowledged only after it is fsynced under its final name; a name is
//! never overwritten (link(2), not rename(2)); the same name with different content is an error and
//! the new copy is kept in `errors/`. On the way out every byte is checked against the CRC recorded
//! on the way in, so a damaged file is never handed to PostgreSQL as if it were good.

use crate::locks::{LockManager, LockName};
use crate::{Error, Result};
use pgbak_compress::{auto_decoder, Codec, Compression, Compressor};
use pgbak_storage::local::{create_dir_all_durable, DurableFile};
use pgbak_storage::{CommitMode, LocalStorage, StorageBackend};
use pgbak_wal::{validate_segment_size, SegmentName, WalFileName};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Name of the index file inside the WAL folder.
pub const INDEX_FILE: &str = "xlog.db";

const CHUNK: usize = 1 << 20;

/// Largest WAL file there is (PostgreSQL's largest segment size): what a stored file without a
/// recorded size may decompress to at most.
const MAX_WAL_FILE: u64 = 1 << 30;

/// One line of the index.
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
}

impl IndexEntry {
    pub(crate) fn to_line(&self) -> String {
        let mut s = format!(
            "{}\t{}\t{:.3}\t{}\tNone",
            self.name, self.stored_size, self.time, self.compression
        );
        if let (Some(c), Some(n)) = (self.crc32c, self.size) {
            s.push_str(&format!("\tcrc32c={c:08x}\tsize={n}"));
        }
        s.push('\n');
        s
    }

    pub(crate) fn parse(line: &str) -> Option<IndexEntry> {
        let mut cols = line.split('\t');
        let name = cols.next()?.to_string();
        let stored_size = cols.next()?.parse().ok()?;
        let time = cols.next()?.parse().ok()?;
        let compression = cols.next().unwrap_or("None").to_string();
        let _encryption = cols.next();
        let mut crc32c = None;
        let mut size = None;
        for c in cols {
            if let Some(v) = c.strip_prefix("crc32c=") {
                crc32c = u32::from_str_radix(v, 16).ok();
            } else if let Some(v) = c.strip_prefix("size=") {
                size = v.parse().ok();
            }
        }
        Some(IndexEntry {
            name,
            stored_size,
            time,
            compression,
            crc32c,
            size,
        })
    }
}

/// What archiving a file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Stored now.
    Stored {
        name: String,
        size: u64,
        stored_size: u64,
    },
    /// The archive already had identical content under this name.
    AlreadyArchived { name: String },
}

/// The WAL archive of one server.
pub struct WalArchive {
    server: String,
    wals_dir: PathBuf,
    errors_dir: PathBuf,
    storage: LocalStorage,
    codec: Codec,
}

/// Facts read from the long page header at the start of a WAL segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub magic: u16,
    pub pageaddr: u64,
    pub sysid: u64,
    pub seg_size: u64,
}

/// Parses the long page header that starts every WAL segment (little-endian on the platforms
/// PostgreSQL archives from here). `None` when the bytes are not a long header.
pub fn parse_segment_header(first: &[u8]) -> Option<SegmentHeader> {
    if first.len() < 40 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes([first[o], first[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(first[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(first[o..o + 8].try_into().expect("8 bytes"));
    let magic = u16_at(0);
    let info = u16_at(2);
    const XLP_LONG_HEADER: u16 = 0x0002;
    if magic & 0xFF00 != 0xD100 || info & XLP_LONG_HEADER == 0 {
        return None;
    }
    Some(SegmentHeader {
        magic,
        pageaddr: u64_at(8),
        sysid: u64_at(24),
        seg_size: u32_at(32) as u64,
    })
}

/// Checks that `first` bytes of a file named `name` with `len` bytes look like that segment.
pub fn check_segment(
    name: &str,
    first: &[u8],
    len: u64,
) -> std::result::Result<SegmentHeader, String> {
    let hdr = parse_segment_header(first).ok_or("does not start with a WAL segment header")?;
    validate_segment_size(hdr.seg_size)
        .map_err(|e| format!("header names an invalid segment size: {e}"))?;
    if len != hdr.seg_size {
        return Err(format!(
            "is {len} bytes but its header says segments are {} bytes",
            hdr.seg_size
        ));
    }
    let seg = SegmentName::parse(name, hdr.seg_size).map_err(|e| e.to_string())?;
    let expected = seg.start_lsn(hdr.seg_size).0;
    if hdr.pageaddr != expected {
        return Err(format!(
            "header address {:X}/{:X} does not match its name (expected {:X}/{:X})",
            hdr.pageaddr >> 32,
            hdr.pageaddr & 0xFFFF_FFFF,
            expected >> 32,
            expected & 0xFFFF_FFFF
        ));
    }
    Ok(hdr)
}

/// Reads as many bytes as are available up to `buf.len()`.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl WalArchive {
    /// The archive of `server` in `wals_dir`, writing new files with `compression` at `level`.
    pub fn new(
        server: &str,
        wals_dir: impl Into<PathBuf>,
        errors_dir: impl Into<PathBuf>,
        codec: Codec,
    ) -> Self {
        let wals_dir = wals_dir.into();
        WalArchive {
            server: server.to_string(),
            storage: LocalStorage::new(&wals_dir),
            wals_dir,
            errors_dir: errors_dir.into(),
            codec,
        }
    }

    /// The folder of the archive.
    pub fn dir(&self) -> &Path {
        &self.wals_dir
    }

    /// The name of the server this archive belongs to.
    pub fn server_name(&self) -> &str {
        &self.server
    }

    /// The folder where clashing copies are kept.
    pub fn errors_dir(&self) -> &Path {
        &self.errors_dir
    }

    /// The object key of a WAL file name: history files at the top, everything else in its
    /// `<timeline><log>` folder.
    pub fn key_of(name: &str) -> Result<String> {
        let parsed = WalFileName::parse(name)?;
        Ok(if parsed.is_history() {
            name.to_string()
        } else {
            format!("{}/{}", &name[..16], name)
        })
    }

    /// Whether `name` is in the archive.
    pub fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.storage.stat(&Self::key_of(name)?)?.is_some())
    }

    /// Archives the file at `src` (its file name is the WAL name).
    pub fn archive_file(&self, src: &Path, locks: &dyn LockManager) -> Result<ArchiveOutcome> {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Usage(format!("{} has no file name", src.display())))?
            .to_string();
        self.archive_file_as(src, &name, locks)
    }

    /// Archives the file at `src` under the WAL name `name` (for files received under a
    /// temporary name, such as those `put-wal` reads from its input).
    pub fn archive_file_as(
        &self,
        src: &Path,
        name: &str,
        locks: &dyn LockManager,
    ) -> Result<ArchiveOutcome> {
        let name = name.to_string();
        let parsed = WalFileName::parse(&name)?;
        let key = Self::key_of(&name)?;
        let mut file = File::open(src).map_err(|e| Error::io("open", src, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", src, e))?
            .len();
        let mut buf = vec![0u8; CHUNK];
        let mut n = read_full(&mut file, &mut buf).map_err(|e| Error::io("read", src, e))?;
        if matches!(parsed, WalFileName::Segment { .. }) {
            check_segment(&name, &buf[..n], len).map_err(|d| Error::Corrupt {
                what: format!("WAL file {}", src.display()),
                detail: d,
            })?;
        } else if parsed.is_history() {
            let text = std::str::from_utf8(&buf[..n]).map_err(|_| Error::Corrupt {
                what: format!("history file {}", src.display()),
                detail: "not text".into(),
            })?;
            if let WalFileName::History { tli } = parsed {
                pgbak_wal::TimelineHistory::parse(tli, text)?;
            }
        }
        let mut writer = self.storage.put(&key)?;
        let mut crc = 0u32;
        let mut size = 0u64;
        {
            let mut enc = self
                .codec
                .encoder(Box::new(&mut writer))
                .map_err(|e| Error::io("compress", src, e))?;
            loop {
                if n == 0 {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                size += n as u64;
                enc.write_all(&buf[..n])
                    .map_err(|e| Error::io("write", self.wals_dir.join(&key), e))?;
                n = read_full(&mut file, &mut buf).map_err(|e| Error::io("read", src, e))?;
            }
            enc.finish()
                .map_err(|e| Error::io("write", self.wals_dir.join(&key), e))?;
        }
        if size != len {
            return Err(Error::Other(format!(
                "{} changed size while it was being archived",
                src.display()
            )));
        }
        match writer.commit(CommitMode::CreateNew) {
            Ok(()) => {}
            Err(pgbak_storage::Error::AlreadyExists(_)) => {
                return self.resolve_duplicate(&name, &key, src, crc, size, locks)
            }
            Err(e) => return Err(e.into()),
        }
        let stored_size = self.storage.stat(&key)?.map(|m| m.size).unwrap_or(0);
        self.append_index(
            &IndexEntry {
                name: name.clone(),
                stored_size,
                time: now_secs(),
                compression: self.codec.compression().name().to_string(),
                crc32c: Some(crc),
                size: Some(size),
            },
            locks,
        )?;
        Ok(ArchiveOutcome::Stored {
            name,
            size,
            stored_size,
        })
    }

    /// The name exists: identical content is success, anything else is kept in `errors/`.
    /// Identical content whose index line is missing (a crash between the file's commit and the
    /// index append) gets its line now, so a retried archive heals the index.
    fn resolve_duplicate(
        &self,
        name: &str,
        key: &str,
        src: &Path,
        crc: u32,
        size: u64,
        locks: &dyn LockManager,
    ) -> Result<ArchiveOutcome> {
        let (old_crc, old_size) = self.checksum_stored(key)?;
        if old_crc == crc && old_size == size {
            self.ensure_indexed(name, key, crc, size, locks)?;
            return Ok(ArchiveOutcome::AlreadyArchived {
                name: name.to_string(),
            });
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = self.errors_dir.join(format!("{name}.{stamp}.duplicate"));
        create_dir_all_durable(&self.errors_dir)
            .map_err(|e| Error::io("create", &self.errors_dir, e))?;
        let mut out = DurableFile::create(&kept).map_err(|e| Error::io("create", &kept, e))?;
        let mut f = File::open(src).map_err(|e| Error::io("open", src, e))?;
        io::copy(&mut f, &mut out).map_err(|e| Error::io("copy", &kept, e))?;
        out.commit(CommitMode::CreateNew)
            .map_err(|e| Error::io("commit", &kept, e))?;
        Err(Error::WalConflict {
            name: name.to_string(),
            kept,
        })
    }

    /// CRC-32C and size of the original bytes of a stored object.
    pub(crate) fn checksum_stored(&self, key: &str) -> Result<(u32, u64)> {
        let r = self.storage.get(key)?;
        let (_, mut dec) =
            auto_decoder(r).map_err(|e| Error::io("read", self.wals_dir.join(key), e))?;
        let mut buf = vec![0u8; CHUNK];
        let (mut crc, mut size) = (0u32, 0u64);
        loop {
            let n = dec
                .read(&mut buf)
                .map_err(|e| Error::io("decompress", self.wals_dir.join(key), e))?;
            if n == 0 {
                break;
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            size += n as u64;
        }
        Ok((crc, size))
    }

    pub(crate) fn append_index(&self, entry: &IndexEntry, locks: &dyn LockManager) -> Result<()> {
        let _guard = locks.lock_blocking(&LockName::ServerXlogDb(self.server.clone()))?;
        let path = self.wals_dir.join(INDEX_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        f.write_all(entry.to_line().as_bytes())
            .map_err(|e| Error::io("write", &path, e))?;
        f.sync_data().map_err(|e| Error::io("fsync", &path, e))
    }

    /// Every index line, in the order they were written.
    pub fn index(&self) -> Result<Vec<IndexEntry>> {
        let path = self.wals_dir.join(INDEX_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.lines().filter_map(IndexEntry::parse).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    fn index_entry(&self, name: &str) -> Result<Option<IndexEntry>> {
        crate::wal_index::last_entry_for(&self.wals_dir.join(INDEX_FILE), name)
    }

    /// Writes the original bytes of `name` to `dest` (through a temporary file renamed into place),
    /// checking them against the index. A missing file is [`Error::WalNotFound`].
    pub fn fetch(&self, name: &str, dest: &Path) -> Result<u64> {
        let tmp = dest.with_file_name(format!(
            ".{}.pgbak.tmp",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal")
        ));
        let result = (|| -> Result<u64> {
            let mut out = io::BufWriter::with_capacity(
                CHUNK,
                File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?,
            );
            let size = self.fetch_to(name, &mut out, &tmp)?;
            out.flush().map_err(|e| Error::io("write", &tmp, e))?;
            Ok(size)
        })();
        match result {
            Ok(size) => {
                std::fs::rename(&tmp, dest).map_err(|e| Error::io("rename", dest, e))?;
                Ok(size)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Writes the original bytes of `name` to `out` (named `out_label` in errors) and checks them
    /// against the index. The check can only fail after the bytes were written: callers that hand
    /// the result on must treat it as void on error (as [`WalArchive::fetch`] does by writing
    /// to a temporary file). A missing file is [`Error::WalNotFound`].
    pub fn fetch_to(&self, name: &str, out: &mut dyn Write, out_label: &Path) -> Result<u64> {
        let key = Self::key_of(name)?;
        let src_path = self.wals_dir.join(&key);
        let r = match self.storage.get(&key) {
            Ok(r) => r,
            Err(pgbak_storage::Error::NotFound(_)) => {
                return Err(Error::WalNotFound {
                    server: self.server.clone(),
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let expected = self.index_entry(name)?;
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("archived WAL file {}", src_path.display()),
            detail,
        };
        let (_, mut dec) = auto_decoder(r).map_err(|e| corrupt(e.to_string()))?;
        // A damaged or planted file that decompresses to more than the original ever held is
        // refused before it fills the destination's disk.
        let limit = expected
            .as_ref()
            .and_then(|e| e.size)
            .unwrap_or(MAX_WAL_FILE);
        let mut buf = vec![0u8; CHUNK];
        let (mut crc, mut size) = (0u32, 0u64);
        let mut first = Vec::new();
        loop {
            let n = read_full(&mut dec, &mut buf).map_err(|e| corrupt(e.to_string()))?;
            if n == 0 {
                break;
            }
            if first.is_empty() {
                first.extend_from_slice(&buf[..n.min(64)]);
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            size += n as u64;
            if size > limit {
                return Err(corrupt(format!(
                    "decompresses to more than the {limit} bytes it held when it was archived"
                )));
            }
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write", out_label, e))?;
        }
        match &expected {
            Some(IndexEntry {
                crc32c: Some(c),
                size: Some(s),
                ..
            }) => {
                if *c != crc || *s != size {
                    return Err(corrupt(format!(
                        "content does not match the checksum recorded when it was archived (crc32c {crc:08x} vs {c:08x}, {size} vs {s} bytes)"
                    )));
                }
            }
            _ => {
                if matches!(WalFileName::parse(name)?, WalFileName::Segment { .. }) {
                    check_segment(name, &first, size).map_err(corrupt)?;
                }
            }
        }
        Ok(size)
    }

    /// The compression format of a stored file, detected from its first bytes.
    pub fn stored_compression(&self, name: &str) -> Result<Compression> {
        let key = Self::key_of(name)?;
        let mut r = self.storage.get(&key)?;
        let mut probe = [0u8; pgbak_compress::MAGIC_PROBE_LEN];
        let n = read_full(&mut r, &mut probe)
            .map_err(|e| Error::io("read", self.wals_dir.join(&key), e))?;
        Ok(pgbak_compress::detect(&probe[..n]))
    }

    /// Names of all archived segments (not history or backup files), sorted. Read from the
    /// index when there is one, so a large archive is not walked file by file.
    pub fn segment_names(&self) -> Result<Vec<String>> {
        if let Some(names) = self.indexed_names(|n| matches!(n, WalFileName::Segment { .. }))? {
            return Ok(names);
        }
        let mut out: Vec<String> = self
            .storage
            .list("")?
            .into_iter()
            .filter_map(|m| m.key.rsplit('/').next().map(str::to_string))
            .filter(|n| matches!(WalFileName::parse(n), Ok(WalFileName::Segment { .. })))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Names of all archived history files (from the index when there is one).
    pub fn history_names(&self) -> Result<Vec<String>> {
        if let Some(names) = self.indexed_names(|n| n.is_history())? {
            return Ok(names);
        }
        let mut out: Vec<String> = self
            .storage
            .list("")?
            .into_iter()
            .map(|m| m.key)
            .filter(|n| {
                !n.contains('/') && matches!(WalFileName::parse(n), Ok(WalFileName::History { .. }))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::locks::FileLockManager;

    /// A fake but well-formed 1 MiB segment (a valid wal_segment_size) whose long header matches
    /// its name.
    pub(crate) fn segment(name: &str, fill: u8) -> Vec<u8> {
        let seg_size: u64 = 1 << 20;
        let seg = SegmentName::parse(name, seg_size).unwrap();
        let mut v = vec![fill; seg_size as usize];
        v[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        v[2..4].copy_from_slice(&0x0002u16.to_le_bytes());
        v[4..8].copy_from_slice(&seg.tli.to_le_bytes());
        v[8..16].copy_from_slice(&seg.start_lsn(seg_size).0.to_le_bytes());
        v[24..32].copy_from_slice(&7u64.to_le_bytes());
        v[32..36].copy_from_slice(&(seg_size as u32).to_le_bytes());
        v
    }

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

    const NAME: &str = "000000010000000000000003";

    #[test]
    fn archive_fetch_round_trip_every_codec() {
        for c in Compression::ALL {
            let (d, a, l) = setup(c);
            let src = d.path().join(NAME);
            let data = segment(NAME, 0x5a);
            std::fs::write(&src, &data).unwrap();
            assert!(matches!(
                a.archive_file(&src, &l).unwrap(),
                ArchiveOutcome::Stored { .. }
            ));
            assert_eq!(a.stored_compression(NAME).unwrap(), c);
            let out = d.path().join("RECOVERYXLOG");
            a.fetch(NAME, &out).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), data, "{c:?}");
            assert_eq!(a.segment_names().unwrap(), vec![NAME.to_string()]);
        }
    }

    #[test]
    fn same_content_twice_is_success_different_is_kept() {
        let (d, a, l) = setup(Compression::Zstd);
        let src = d.path().join(NAME);
        std::fs::write(&src, segment(NAME, 1)).unwrap();
        a.archive_file(&src, &l).unwrap();
        assert_eq!(
            a.archive_file(&src, &l).unwrap(),
            ArchiveOutcome::AlreadyArchived { name: NAME.into() }
        );
        std::fs::write(&src, segment(NAME, 2)).unwrap();
        let err = a.archive_file(&src, &l).unwrap_err();
        let Error::WalConflict { kept, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(std::fs::read(&kept).unwrap(), segment(NAME, 2));
        let out = d.path().join("x");
        a.fetch(NAME, &out).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            segment(NAME, 1),
            "the first copy stays"
        );
    }

    #[test]
    fn bad_input_is_refused_and_writes_nothing() {
        let (d, a, l) = setup(Compression::None);
        let bad_name = d.path().join("not-a-wal");
        std::fs::write(&bad_name, b"x").unwrap();
        assert!(a.archive_file(&bad_name, &l).is_err());
        let short = d.path().join(NAME);
        std::fs::write(&short, &segment(NAME, 1)[..4096]).unwrap();
        assert!(matches!(
            a.archive_file(&short, &l),
            Err(Error::Corrupt { .. })
        ));
        let other = segment("000000010000000000000004", 1);
        std::fs::write(&short, other).unwrap();
        assert!(
            matches!(a.archive_file(&short, &l), Err(Error::Corrupt { .. })),
            "header of another segment"
        );
        assert!(a.segment_names().unwrap().is_empty());
    }

    #[test]
    fn corruption_is_detected_on_fetch() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (d, a, l) = setup(c);
            let src = d.path().join(NAME);
            std::fs::write(&src, segment(NAME, 3)).unwrap();
            a.archive_file(&src, &l).unwrap();
            let stored = a.dir().join(WalArchive::key_of(NAME).unwrap());
            let mut bytes = std::fs::read(&stored).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(&stored, bytes).unwrap();
            let out = d.path().join("out");
            assert!(
                matches!(a.fetch(NAME, &out), Err(Error::Corrupt { .. })),
                "{c:?}"
            );
            assert!(!out.exists(), "nothing handed over");
        }
    }

    #[test]
    fn a_file_that_decompresses_beyond_its_size_is_stopped_early() {
        let (d, a, l) = setup(Compression::Gzip);
        let src = d.path().join(NAME);
        std::fs::write(&src, segment(NAME, 3)).unwrap();
        a.archive_file(&src, &l).unwrap();
        // 64 MiB of zeros in about 64 KiB of gzip, where a 1 MiB segment was stored.
        let mut bomb = Vec::new();
        let mut enc = Codec::new(Compression::Gzip, None)
            .unwrap()
            .encoder(Box::new(&mut bomb))
            .unwrap();
        for _ in 0..64 {
            enc.write_all(&[0u8; 1 << 20]).unwrap();
        }
        enc.finish().unwrap();
        let stored = a.dir().join(WalArchive::key_of(NAME).unwrap());
        std::fs::write(&stored, bomb).unwrap();
        let mut out = Vec::new();
        let err = a.fetch_to(NAME, &mut out, Path::new("out")).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        assert!(out.len() <= 2 * CHUNK, "{} bytes written", out.len());
    }

    #[test]
    fn missing_is_not_found() {
        let (d, a, _l) = setup(Compression::None);
        assert!(matches!(
            a.fetch(NAME, &d.path().join("o")),
            Err(Error::WalNotFound { .. })
        ));
    }

    #[test]
    fn index_lines_round_trip() {
        let e = IndexEntry {
            name: NAME.into(),
            stored_size: 10,
            time: 1.5,
            compression: "zstd".into(),
            crc32c: Some(0xdeadbeef),
            size: Some(16),
        };
        assert_eq!(IndexEntry::parse(e.to_line().trim_end()).unwrap(), e);
        let legacy =
            IndexEntry::parse("000000010000000000000004\t16777216\t1715151515.25\tzstd\tNone")
                .unwrap();
        assert_eq!(legacy.crc32c, None);
    }
}
