//! The WAL archive of one server, in any store: `<TLI+log>/<segment>` (history files at the top),
//! each compressed with the server's `compression`, and its index (see [`super::index`]) with
//! one line per archived file (name, stored size, time, compression, encryption, CRC-32C and
//! size of the original bytes).
//!
//! Durability: a file is acknowledged only after it is complete under its final key; a key is
//! never overwritten (a conditional create); the same name with different content is an error
//! and the new copy is kept in the errors store. On the way out every byte is checked against
//! the CRC recorded on the way in, so a damaged file is never handed to PostgreSQL as if it were
//! good.

use super::index::{IndexEntry, WalIndex};
use crate::{Error, Result};
use pgbak_compress::pipeline::{Digests, ReadPipeline, WritePipeline};
use pgbak_compress::{read_up_to, Codec, Compression, Encryptor};
use pgbak_storage::{CommitMode, StorageBackend};
use pgbak_wal::{validate_segment_size, SegmentName, WalFileName};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

const CHUNK: usize = 1 << 20;

/// What archiving a file did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ArchiveOutcome {
    /// Stored now.
    Stored {
        name: String,
        size: u64,
        stored_size: u64,
        /// CRC-32C of the file's bytes (before compression), as the index records it.
        #[serde(skip)]
        crc32c: u32,
    },
    /// The archive already had identical content under this name.
    AlreadyArchived { name: String },
}

/// The WAL archive of one server.
pub struct WalArchive {
    server: String,
    storage: Arc<dyn StorageBackend>,
    errors: Arc<dyn StorageBackend>,
    codec: Codec,
    /// Encrypts what is archived (after compression) and decrypts what is read back.
    encryptor: Option<Arc<dyn Encryptor>>,
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
    let hdr = check_segment_header(name, first)?;
    if len != hdr.seg_size {
        return Err(format!(
            "is {len} bytes but its header says segments are {} bytes",
            hdr.seg_size
        ));
    }
    Ok(hdr)
}

/// Checks that `first` bytes of a file named `name` start that segment: a long header with a
/// valid segment size and the address the name gives.
pub fn check_segment_header(
    name: &str,
    first: &[u8],
) -> std::result::Result<SegmentHeader, String> {
    let hdr = parse_segment_header(first).ok_or("does not start with a WAL segment header")?;
    validate_segment_size(hdr.seg_size)
        .map_err(|e| format!("header names an invalid segment size: {e}"))?;
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

/// What reading a stored file back found ([`WalArchive::read_back`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReadBack {
    /// CRC-32C of the original bytes.
    pub crc32c: u32,
    /// Size of the original bytes.
    pub size: u64,
    /// How the original bytes are compressed (inside the encryption, when encrypted).
    pub compression: Compression,
    /// The encryption (`gpg`), when encrypted.
    pub encryption: Option<String>,
    /// The long key ID of the key it is encrypted to, as the message names it.
    pub key_id: Option<String>,
}

impl ReadBack {
    /// The index line of `name` stored as this, with the object's size and time from `meta`.
    pub(crate) fn entry(self, name: &str, meta: Option<&pgbak_storage::ObjectMeta>) -> IndexEntry {
        IndexEntry {
            name: name.to_string(),
            stored_size: meta.map_or(0, |m| m.size),
            time: meta
                .and_then(|m| m.modified.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            compression: self.compression.name().to_string(),
            crc32c: Some(self.crc32c),
            size: Some(self.size),
            encryption: self.encryption,
            key_id: self.key_id,
        }
    }
}

impl WalArchive {
    /// The archive of `server` in `storage`, writing new files with `codec`; clashing copies go
    /// to `errors`.
    pub fn new(
        server: &str,
        storage: Arc<dyn StorageBackend>,
        errors: Arc<dyn StorageBackend>,
        codec: Codec,
    ) -> Self {
        WalArchive {
            server: server.to_string(),
            storage,
            errors,
            codec,
            encryptor: None,
        }
    }

    /// Encrypts new files with `encryptor` (after compression), and decrypts with it what is
    /// read back. Encrypted files are recognised by their content, so an archive may hold both.
    pub fn with_encryptor(mut self, encryptor: Option<Arc<dyn Encryptor>>) -> Self {
        self.encryptor = encryptor;
        self
    }

    /// The store of the archive.
    pub fn storage(&self) -> &Arc<dyn StorageBackend> {
        &self.storage
    }

    /// Where `key` of the archive is, for messages.
    pub fn location(&self, key: &str) -> String {
        format!("{}/{key}", self.storage.describe())
    }

    /// The name of the server this archive belongs to.
    pub fn server_name(&self) -> &str {
        &self.server
    }

    /// The index of the archive.
    pub fn index(&self) -> WalIndex<'_> {
        WalIndex::new(self.storage.as_ref())
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
    pub fn archive_file(&self, src: &Path) -> Result<ArchiveOutcome> {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Usage(format!("{} has no file name", src.display())))?
            .to_string();
        self.archive_file_as(src, &name)
    }

    /// Archives the file at `src` under the WAL name `name` (for files received under a
    /// temporary name, such as those `put-wal` reads from its input).
    pub fn archive_file_as(&self, src: &Path, name: &str) -> Result<ArchiveOutcome> {
        let name = name.to_string();
        let parsed = WalFileName::parse(&name)?;
        let key = Self::key_of(&name)?;
        let mut file = File::open(src).map_err(|e| Error::io("open", src, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", src, e))?
            .len();
        let mut buf = vec![0u8; CHUNK];
        let mut n = read_up_to(&mut file, &mut buf).map_err(|e| Error::io("read", src, e))?;
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
        let mut w = WritePipeline::builder(&self.codec)
            .encryptor(self.encryptor.clone())
            .measure_plain(Digests::CRC32C)
            .build(self.storage.put_with_mode(&key, CommitMode::CreateNew)?)
            .map_err(|e| Error::io("compress", src, e))?;
        while n > 0 {
            w.write_all(&buf[..n])
                .map_err(|e| Error::io("write", self.location(&key), e))?;
            n = read_up_to(&mut file, &mut buf).map_err(|e| Error::io("read", src, e))?;
        }
        let (writer, stats) = w
            .finish()
            .map_err(|e| Error::io("write", self.location(&key), e))?;
        let (crc, size) = (stats.plain.crc32c.unwrap_or(0), stats.plain.bytes);
        if size != len {
            return Err(Error::corrupt(
                format!("WAL file {}", src.display()),
                "it changed size while it was being archived",
            ));
        }
        crate::fault_points::pause_point("archive-wal:before-commit");
        match writer.commit(CommitMode::CreateNew) {
            Ok(()) => {}
            Err(pgbak_storage::Error::AlreadyExists(_)) => {
                return self.resolve_duplicate(&name, &key, src, crc, size)
            }
            Err(e) => return Err(e.into()),
        }
        let stored_size = stats.stored.bytes;
        self.index().add(&IndexEntry {
            name: name.clone(),
            stored_size,
            time: now_secs(),
            compression: self.codec.compression().name().to_string(),
            crc32c: Some(crc),
            size: Some(size),
            encryption: self.encryptor.as_ref().map(|e| e.name().to_string()),
            key_id: self.encryptor.as_ref().and_then(|e| e.key_id()),
        })?;
        Ok(ArchiveOutcome::Stored {
            name,
            size,
            stored_size,
            crc32c: crc,
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
    ) -> Result<ArchiveOutcome> {
        let stored = self.read_back(key)?;
        if stored.crc32c == crc && stored.size == size {
            self.ensure_indexed(name, key, stored)?;
            return Ok(ArchiveOutcome::AlreadyArchived {
                name: name.to_string(),
            });
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = format!("{name}.{stamp}.duplicate");
        let mut out = self.errors.put_with_mode(&kept, CommitMode::CreateNew)?;
        let mut f = File::open(src).map_err(|e| Error::io("open", src, e))?;
        io::copy(&mut f, &mut out)
            .map_err(|e| Error::io("copy", format!("{}/{kept}", self.errors.describe()), e))?;
        out.commit(CommitMode::CreateNew)?;
        Err(Error::WalConflict {
            name: name.to_string(),
            kept: format!("{}/{kept}", self.errors.describe()),
        })
    }

    /// Adds the index line of `name` (stored under `key`, read back as `stored`) unless the
    /// index has one: a retried archive heals an index line lost to a crash between the file's
    /// commit and its line.
    fn ensure_indexed(&self, name: &str, key: &str, stored: ReadBack) -> Result<()> {
        if self.index().lookup(name)?.is_some() {
            return Ok(());
        }
        let meta = self.storage.stat(key)?;
        self.index().add(&stored.entry(name, meta.as_ref()))
    }

    /// Reads a stored object back whole: the checksum and size of its original bytes, and how
    /// they are stored (compression inside any encryption, the key they are encrypted to).
    pub(crate) fn read_back(&self, key: &str) -> Result<ReadBack> {
        let mut source = self.storage.get(key)?;
        let mut head = [0u8; 64];
        let n = read_up_to(&mut source, &mut head)
            .map_err(|e| Error::io("read", self.location(key), e))?;
        let mut r = ReadPipeline::builder()
            .encryptor(self.encryptor.clone())
            .measure_plain(Digests::CRC32C)
            .open(io::Cursor::new(&head[..n]).chain(source))
            .map_err(|e| Error::io("read", self.location(key), e))?;
        io::copy(&mut r, &mut io::sink())
            .map_err(|e| Error::io("decompress", self.location(key), e))?;
        let plain = r.stats().map(|s| s.plain).unwrap_or_default();
        let encrypted = r.encrypted();
        Ok(ReadBack {
            crc32c: plain.crc32c.unwrap_or(0),
            size: plain.bytes,
            compression: r.compression(),
            encryption: encrypted.then(|| {
                self.encryptor
                    .as_ref()
                    .map_or("gpg", |e| e.name())
                    .to_string()
            }),
            key_id: encrypted
                .then(|| pgbak_compress::pipeline::recipient_key_id(&head[..n]))
                .flatten(),
        })
    }

    /// Every index line, by name.
    pub fn index_entries(&self) -> Result<Vec<IndexEntry>> {
        Ok(self.indexed()?.unwrap_or_default().into_values().collect())
    }

    /// Every file of the index by name, or `None` when there is no index.
    pub fn indexed(&self) -> Result<Option<BTreeMap<String, IndexEntry>>> {
        self.index().all()
    }

    /// Whether the archive has an index at all (archives written before there was one may not).
    pub fn has_index(&self) -> Result<bool> {
        self.index().exists()
    }

    /// Sorted names of indexed files accepted by `keep`, or `None` without an index.
    pub fn indexed_names(
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
        self.index().lookup(name)
    }

    /// Writes the original bytes of `name` to `dest` (through a temporary file renamed into place),
    /// checking them against the index. A missing file is [`Error::WalNotFound`].
    pub fn fetch(&self, name: &str, dest: &Path) -> Result<u64> {
        // A fresh name, created exclusively: a link planted in the destination folder is never
        // written through, and rename(2) replaces a link at `dest` rather than its target.
        let tmp = pgbak_storage::staging::temp_name(dest);
        let result = (|| -> Result<u64> {
            let file = pgbak_storage::staging::create_fresh(&tmp, 0o600)
                .map_err(|e| Error::io("create", &tmp, e))?;
            let mut out = io::BufWriter::with_capacity(CHUNK, file);
            let size = self.fetch_to(name, &mut out, &tmp.display().to_string())?;
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

    /// [`WalArchive::fetch`] of every name in `names` into the folder `dir` (under its own name),
    /// `jobs` files at a time; the first failure stops the others from starting and is returned.
    /// Returns the bytes written.
    pub fn fetch_all(&self, names: &[String], dir: &Path, jobs: usize) -> Result<u64> {
        use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let bytes = AtomicU64::new(0);
        let first_error = std::sync::Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, names.len().max(1)) {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(i) else { return };
                        match self.fetch(name, &dir.join(name)) {
                            Ok(n) => {
                                bytes.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(bytes.into_inner()),
        }
    }

    /// Writes the original bytes of `name` to `out` (named `out_label` in errors) and checks them
    /// against the index. The check can only fail after the bytes were written: callers that hand
    /// the result on must treat it as void on error (as [`WalArchive::fetch`] does by writing
    /// to a temporary file). A missing file is [`Error::WalNotFound`].
    pub fn fetch_to(&self, name: &str, out: &mut dyn Write, out_label: &str) -> Result<u64> {
        let expected = self.index_entry_of(name)?;
        self.fetch_recorded_to(name, expected.as_ref(), out, out_label)
    }

    /// [`WalArchive::fetch_to`] with the index line of `name` already read (`None`: it has none).
    pub(crate) fn fetch_recorded_to(
        &self,
        name: &str,
        expected: Option<&IndexEntry>,
        out: &mut dyn Write,
        out_label: &str,
    ) -> Result<u64> {
        let key = Self::key_of(name)?;
        let src_path = self.location(&key);
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
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("archived WAL file {src_path}"),
            detail,
        };
        // With a recorded checksum the reader itself refuses other bytes (and stops as soon as
        // the recorded size is passed); without one the segment header is checked.
        let recorded = match expected {
            Some(IndexEntry {
                crc32c: Some(c),
                size: Some(s),
                ..
            }) => Some((*c, *s)),
            _ => None,
        };
        let mut builder = ReadPipeline::builder().encryptor(self.encryptor.clone());
        if let Some((c, s)) = recorded {
            builder = builder.expect(c, s);
        }
        let mut dec = builder.open(r).map_err(|e| corrupt(e.to_string()))?;
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        let mut first = Vec::new();
        loop {
            let n = read_up_to(&mut dec, &mut buf).map_err(|e| {
                corrupt(if recorded.is_some() && e.kind() == io::ErrorKind::InvalidData {
                    format!("content does not match the checksum recorded when it was archived: {e}")
                } else {
                    e.to_string()
                })
            })?;
            if n == 0 {
                break;
            }
            if first.is_empty() {
                first.extend_from_slice(&buf[..n.min(64)]);
            }
            size += n as u64;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write", out_label, e))?;
        }
        if recorded.is_none() && matches!(WalFileName::parse(name)?, WalFileName::Segment { .. }) {
            check_segment(name, &first, size).map_err(corrupt)?;
        }
        Ok(size)
    }

    /// The compression format of a stored file, detected from its first bytes.
    pub fn stored_compression(&self, name: &str) -> Result<Compression> {
        let key = Self::key_of(name)?;
        let mut r = self.storage.get(&key)?;
        let mut probe = [0u8; pgbak_compress::MAGIC_PROBE_LEN];
        let n = read_up_to(&mut r, &mut probe)
            .map_err(|e| Error::io("read", self.location(&key), e))?;
        Ok(pgbak_compress::detect(&probe[..n]))
    }

    /// Names of all archived segments (not history or backup files), sorted. Read from the
    /// index when there is one, so a large archive is not walked file by file.
    pub fn segment_names(&self) -> Result<Vec<String>> {
        if let Some(names) = self.indexed_names(|n| matches!(n, WalFileName::Segment { .. }))? {
            return Ok(names);
        }
        let mut out: Vec<String> = self
            .stored_files()?
            .into_iter()
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
            .stored_files()?
            .into_iter()
            .filter(|n| matches!(WalFileName::parse(n), Ok(WalFileName::History { .. })))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The names of every WAL file stored where the archive looks for it (its key is
    /// [`WalArchive::key_of`] its name), by listing the store: what the index is rebuilt from.
    pub fn stored_files(&self) -> Result<Vec<String>> {
        Ok(self
            .stored_keys()?
            .into_iter()
            .map(|(name, _, _)| name)
            .collect())
    }

    /// `(name, key, stored size)` of every WAL file stored where the archive looks for it.
    pub(crate) fn stored_keys(&self) -> Result<Vec<(String, String, u64)>> {
        let top = self.storage.list_dir("")?;
        let mut out = Vec::new();
        for m in top.objects {
            if WalFileName::parse(&m.key).is_ok_and(|n| n.is_history()) {
                out.push((m.key.clone(), m.key, m.size));
            }
        }
        for dir in top.prefixes {
            let Some(dir) = dir.strip_suffix('/') else {
                continue;
            };
            if dir.len() != 16 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for m in self.storage.list_dir(&format!("{dir}/"))?.objects {
                let name = &m.key[dir.len() + 1..];
                if name.starts_with(dir)
                    && WalFileName::parse(name).is_ok()
                    && Self::key_of(name).is_ok_and(|k| k == m.key)
                {
                    out.push((name.to_string(), m.key.clone(), m.size));
                }
            }
        }
        Ok(out)
    }

    /// The system identifier written in the header of archived segment `name`.
    pub fn segment_system_id(&self, name: &str) -> Result<u64> {
        let mut head = Head(Vec::new(), 64);
        let label = self.location(&Self::key_of(name)?);
        self.fetch_to(name, &mut head, &label)?;
        parse_segment_header(&head.0)
            .map(|h| h.sysid)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("archived WAL file {label}"),
                    "does not start with a WAL segment header",
                )
            })
    }
}

/// A `Write` that keeps the first bytes written and discards the rest.
struct Head(Vec<u8>, usize);

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.1.saturating_sub(self.0.len());
        self.0.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// For tests: a fake but well-formed 1 MiB segment (a valid wal_segment_size) whose long header matches
/// its name.
#[doc(hidden)]
pub fn fake_segment(name: &str, fill: u8) -> Vec<u8> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use super::fake_segment as segment;

    /// An archive on local disk in a temporary folder (`wals/`, `errors/`).
    pub(crate) fn local_archive(c: Compression) -> (tempfile::TempDir, WalArchive) {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            Arc::new(pgbak_storage::LocalStorage::new(d.path().join("wals"))),
            Arc::new(pgbak_storage::LocalStorage::new(d.path().join("errors"))),
            Codec::new(c, None).unwrap(),
        );
        (d, a)
    }

    const NAME: &str = "000000010000000000000003";

    #[test]
    fn archive_fetch_round_trip_every_codec() {
        for c in Compression::ALL {
            let (d, a) = local_archive(c);
            let src = d.path().join(NAME);
            let data = segment(NAME, 0x5a);
            std::fs::write(&src, &data).unwrap();
            assert!(matches!(
                a.archive_file(&src).unwrap(),
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
        let (d, a) = local_archive(Compression::Zstd);
        let src = d.path().join(NAME);
        std::fs::write(&src, segment(NAME, 1)).unwrap();
        a.archive_file(&src).unwrap();
        assert_eq!(
            a.archive_file(&src).unwrap(),
            ArchiveOutcome::AlreadyArchived { name: NAME.into() }
        );
        std::fs::write(&src, segment(NAME, 2)).unwrap();
        let err = a.archive_file(&src).unwrap_err();
        let Error::WalConflict { kept, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(std::fs::read(&kept).unwrap(), segment(NAME, 2));
        assert!(kept.starts_with(&d.path().join("errors").display().to_string()));
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
        let (d, a) = local_archive(Compression::None);
        let bad_name = d.path().join("not-a-wal");
        std::fs::write(&bad_name, b"x").unwrap();
        assert!(a.archive_file(&bad_name).is_err());
        let short = d.path().join(NAME);
        std::fs::write(&short, &segment(NAME, 1)[..4096]).unwrap();
        assert!(matches!(a.archive_file(&short), Err(Error::Corrupt { .. })));
        let other = segment("000000010000000000000004", 1);
        std::fs::write(&short, other).unwrap();
        assert!(
            matches!(a.archive_file(&short), Err(Error::Corrupt { .. })),
            "header of another segment"
        );
        assert!(a.segment_names().unwrap().is_empty());
    }

    #[test]
    fn corruption_is_detected_on_fetch() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (d, a) = local_archive(c);
            let src = d.path().join(NAME);
            std::fs::write(&src, segment(NAME, 3)).unwrap();
            a.archive_file(&src).unwrap();
            let stored = d
                .path()
                .join("wals")
                .join(WalArchive::key_of(NAME).unwrap());
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
    fn missing_is_not_found() {
        let (d, a) = local_archive(Compression::None);
        assert!(matches!(
            a.fetch(NAME, &d.path().join("o")),
            Err(Error::WalNotFound { .. })
        ));
    }

    #[test]
    fn the_system_id_is_read_from_an_archived_segment() {
        let (d, a) = local_archive(Compression::Xz);
        let n = "000000010000000000000003";
        std::fs::write(d.path().join(n), segment(n, 1)).unwrap();
        a.archive_file(&d.path().join(n)).unwrap();
        assert_eq!(a.segment_system_id(n).unwrap(), 7);
        let mut h = Head(Vec::new(), 4);
        h.write_all(b"abcdef").unwrap();
        h.write_all(b"gh").unwrap();
        assert_eq!(h.0, b"abcd");
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
            encryption: None,
            key_id: None,
        };
        assert_eq!(IndexEntry::parse(e.to_line().trim_end()).unwrap(), e);
        // Encrypted: Barman's fifth column says gpg, pgbak's key= column names the key.
        let sealed = IndexEntry {
            encryption: Some("gpg".into()),
            key_id: Some("backup@example.com".into()),
            ..e.clone()
        };
        let line = sealed.to_line();
        assert!(line.contains("\tzstd\tgpg\t"), "{line}");
        assert!(
            line.trim_end().ends_with("\tkey=backup@example.com"),
            "{line}"
        );
        assert_eq!(IndexEntry::parse(line.trim_end()).unwrap(), sealed);
        assert!(IndexEntry::parse(&format!("{}\tkey=", e.to_line().trim_end())).is_none());
        assert!(IndexEntry::parse(&e.to_line().trim_end().replace("\tNone", "\tg-p")).is_none());
        let legacy =
            IndexEntry::parse("000000010000000000000004\t16777216\t1715151515.25\tzstd\tNone")
                .unwrap();
        assert_eq!(legacy.crc32c, None);
    }
}
