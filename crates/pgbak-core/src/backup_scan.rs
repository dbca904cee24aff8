//! Reads every file of a stored backup exactly once, whatever its format: a plain tree (`data/`
//! plus one `<oid>/` folder per tablespace) or tar streams (`data/base.tar[.ext]`,
//! `data/<oid>.tar[.ext]`, decompressed on the fly). Each file comes out with the path a
//! PostgreSQL manifest gives it (tablespace files under `pg_tblspc/<oid>/`), its size, its
//! modification time and, when asked, its checksum.
//!
//! Verification and manifest generation are both built on this, so both read a backup the same
//! way. Files are spread over `jobs` threads (plain: per file; tar: per stream).

use crate::manifest::{ChecksumAlgorithm, MANIFEST_FILE};
use crate::{Error, Result};
use pgbak_compress::pipeline::ReadPipeline;
use pgbak_compress::Encryptor;
use pgbak_copy::{EntryKind, TarEntry, TarStreamParser, TarVisitor};
use pgbak_storage::{LocalStorage, StorageBackend};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// Bytes read per call: large reads keep system calls rare.
const CHUNK: usize = 1 << 20;

/// One regular file of the backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFile {
    /// Path relative to the data directory, as a manifest writes it.
    pub path: Vec<u8>,
    /// Size in bytes (bytes read when the file was checksummed, else its stored size).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The checksum, when the plan asked for one.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
    /// Where it was read from, relative to the backup folder (`data`, `16384`,
    /// `data/base.tar.zst`).
    pub source: String,
}

/// What the scan produced, one event at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEvent {
    /// A file was read (or only listed).
    File(ScannedFile),
    /// Something could not be read. `path` names the file being read when it failed, if any.
    Unreadable {
        /// The file being read, if the failure was inside one.
        path: Option<Vec<u8>>,
        /// The tree or stream being read.
        source: String,
        /// What went wrong.
        error: String,
    },
}

/// Totals of a scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Files reported.
    pub files: u64,
    /// Bytes of file contents read and checksummed.
    pub bytes_checksummed: u64,
    /// Bytes read from disk (compressed size for tar streams).
    pub bytes_read: u64,
}

/// Decides, per path, whether a file is read: `Some(algorithm)` reads and checksums it (`None`
/// algorithm: reads without a checksum), `None` only lists it (plain trees) or skips its data
/// (tar streams).
pub type ChecksumPlan<'a> = dyn Fn(&[u8]) -> Option<ChecksumAlgorithm> + Sync + 'a;

/// How a backup's files are stored.
#[derive(Clone)]
pub enum BackupLayout {
    /// Trees: `(folder, prefix)` pairs, e.g. `(<backup>/data, "")`, `(<backup>/16384,
    /// "pg_tblspc/16384/")`.
    Plain(Vec<(PathBuf, String)>),
    /// Tar streams in a store: `(key, prefix)` pairs.
    Tar {
        /// The store holding the streams.
        storage: Arc<dyn StorageBackend>,
        /// `(stream, prefix)`, e.g. `(<backup>/data/base.tar.zst, "")`.
        streams: Vec<(StoredArchive, String)>,
        /// Decrypts encrypted streams (recognised by their content).
        encryptor: Option<Arc<dyn Encryptor>>,
    },
}

impl BackupLayout {
    /// Finds the layout of the backup in `backup_dir` with format `plain` or `tar`.
    pub fn discover(backup_dir: &Path, format: &str) -> Result<BackupLayout> {
        let data = backup_dir.join("data");
        match format {
            "plain" => {
                let mut roots = vec![(data.clone(), String::new())];
                for (oid, path) in numbered_entries(backup_dir, |n| n.parse::<u32>().ok())? {
                    if path.is_dir() {
                        roots.push((path, format!("pg_tblspc/{oid}/")));
                    }
                }
                if !data.is_dir() {
                    return Err(Error::Corrupt {
                        what: format!("backup {}", backup_dir.display()),
                        detail: "its data folder is missing".into(),
                    });
                }
                Ok(BackupLayout::Plain(roots))
            }
            "tar" => Self::tar(
                Arc::new(LocalStorage::new(backup_dir)),
                "",
                None,
                backup_dir.display(),
            ),
            other => Err(Error::Corrupt {
                what: format!("backup {}", backup_dir.display()),
                detail: format!("unknown backup format '{other}'"),
            }),
        }
    }
}

/// A stored tar stream of a backup: its key, and the size and CRC-32C the backup recorded for it.
#[derive(Clone, Debug)]
pub struct StoredArchive {
    /// Its key in the backups' store.
    pub key: String,
    check: Option<(u32, u64)>,
}

impl StoredArchive {
    /// The stream `key`, with what `record` (its backup's) says of it when it is known.
    pub(crate) fn new(key: String, record: Option<&crate::catalogue::BackupInfo>) -> Self {
        StoredArchive {
            check: record.and_then(|r| r.stored_check(&key)),
            key,
        }
    }

    /// The read pipeline of this stream: decrypted with `encryptor` when encrypted, and checked
    /// against the recorded size and CRC-32C (archives are compressed without a frame checksum
    /// of their own).
    pub(crate) fn reader(
        &self,
        encryptor: Option<&Arc<dyn Encryptor>>,
    ) -> pgbak_compress::pipeline::ReadPipelineBuilder {
        let read = ReadPipeline::builder().encryptor(encryptor.cloned());
        match self.check {
            Some((crc, size)) => read.expect_stored(crc, size),
            None => read,
        }
    }
}

impl std::fmt::Debug for BackupLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupLayout::Plain(roots) => f.debug_tuple("Plain").field(roots).finish(),
            BackupLayout::Tar { streams, .. } => f.debug_tuple("Tar").field(streams).finish(),
        }
    }
}

impl BackupLayout {
    /// The tar streams of the backup whose folder is `folder` (`<backup_id>/`, or empty when
    /// `storage` is rooted at the backup itself) in `storage`, checked against what `record`
    /// says of them when it is known; `what` names it in errors.
    pub fn tar(
        storage: Arc<dyn StorageBackend>,
        folder: &str,
        record: Option<&crate::catalogue::BackupInfo>,
        what: impl std::fmt::Display,
    ) -> Result<BackupLayout> {
        let data = format!("{folder}data/");
        let mut streams = Vec::new();
        let mut found_base = false;
        for m in storage.list_dir(&data)?.objects {
            let name = &m.key[data.len()..];
            let Some(oid) = tar_stream_oid(name) else {
                continue;
            };
            let prefix = match oid {
                None => {
                    found_base = true;
                    String::new()
                }
                Some(oid) => format!("pg_tblspc/{oid}/"),
            };
            streams.push((StoredArchive::new(m.key, record), prefix));
        }
        if !found_base {
            return Err(Error::Corrupt {
                what: format!("backup {what}"),
                detail: "no data/base.tar stream".into(),
            });
        }
        Ok(BackupLayout::Tar {
            storage,
            streams,
            encryptor: None,
        })
    }

    /// Decrypts the tar streams with `encryptor` (no effect on a plain layout).
    pub fn with_encryptor(mut self, with: Option<Arc<dyn Encryptor>>) -> Self {
        if let BackupLayout::Tar { encryptor, .. } = &mut self {
            *encryptor = with;
        }
        self
    }

    /// The layout of a backup of `server`: its plain tree on local disk, or its tar streams in
    /// whatever store holds the backups, decrypted with the server's encryptor.
    pub fn of_backup(
        server: &crate::server::Server,
        info: &crate::catalogue::BackupInfo,
    ) -> Result<BackupLayout> {
        let id = &info.backup_id;
        match (info.backup_format.as_str(), server.local_backup_dir(id)) {
            ("plain", Some(dir)) => Self::discover(&dir, "plain"),
            ("plain", None) => Err(Error::Corrupt {
                what: format!("backup {id} of server '{}'", server.name()),
                detail: "a plain backup in an object store".into(),
            }),
            ("tar", _) => Self::tar(
                server.stores().backups.clone(),
                &format!("{id}/"),
                Some(info),
                format!("{id} of server '{}'", server.name()),
            )
            .map(|layout| layout.with_encryptor(server.encryptor().cloned())),
            (other, _) => Err(Error::Corrupt {
                what: format!("backup {id} of server '{}'", server.name()),
                detail: format!("unknown backup format '{other}'"),
            }),
        }
    }
}

/// `base.tar*` → `Some(None)`, `<oid>.tar*` → `Some(Some(oid))`, anything else → `None`.
fn tar_stream_oid(name: &str) -> Option<Option<u32>> {
    let (stem, rest) = name.split_once(".tar")?;
    if !(rest.is_empty() || rest.starts_with('.')) || name.starts_with('.') {
        return None;
    }
    if stem == "base" {
        Some(None)
    } else {
        stem.parse::<u32>().ok().map(Some)
    }
}

/// Entries of `dir` whose name `pick` accepts, sorted by name.
fn numbered_entries<T>(dir: &Path, pick: impl Fn(&str) -> Option<T>) -> Result<Vec<(T, PathBuf)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        if let Some(v) = e.file_name().to_str().and_then(&pick) {
            out.push((e.file_name(), v, e.path()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, v, p)| (v, p)).collect())
}

/// Reads the backup in `layout`, calling `on_event` (on the caller's thread) for every file.
///
/// Per-file failures are events; the result is an error only when a folder cannot be listed.
pub fn scan_backup(
    layout: &BackupLayout,
    jobs: usize,
    plan: &ChecksumPlan<'_>,
    on_event: &mut dyn FnMut(ScanEvent),
) -> Result<ScanStats> {
    let jobs = jobs.max(1);
    match layout {
        BackupLayout::Plain(roots) => {
            let mut files = Vec::new();
            for (i, (root, prefix)) in roots.iter().enumerate() {
                list_tree(root, prefix, i, &mut files)?;
            }
            // Big files first, so that one large file does not start last and run alone.
            files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.rel.cmp(&b.rel)));
            let sources: Vec<String> = roots
                .iter()
                .map(|(root, _)| {
                    root.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            Ok(run_workers(jobs, files.len(), on_event, |i, tx| {
                let f = &files[i];
                plain_file(f, &sources[f.root], plan, tx)
            }))
        }
        BackupLayout::Tar {
            storage,
            streams,
            encryptor,
        } => Ok(run_workers(jobs, streams.len(), on_event, |i, tx| {
            let (stream, prefix) = &streams[i];
            tar_stream(storage.as_ref(), encryptor, stream, prefix, plan, tx)
        })),
    }
}

/// A file found while listing a plain tree.
struct ListedFile {
    /// Index of its root.
    root: usize,
    abs: PathBuf,
    rel: Vec<u8>,
    size: u64,
    mtime: i64,
}

fn list_tree(
    root: &Path,
    prefix: &str,
    root_index: usize,
    out: &mut Vec<ListedFile>,
) -> Result<()> {
    let mut stack = vec![(root.to_path_buf(), prefix.as_bytes().to_vec())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let meta = e
                .path()
                .symlink_metadata()
                .map_err(|err| Error::io("stat", e.path(), err))?;
            let mut child = rel.clone();
            child.extend_from_slice(e.file_name().as_bytes());
            if meta.is_dir() {
                child.push(b'/');
                stack.push((e.path(), child));
            } else if meta.is_file() {
                out.push(ListedFile {
                    root: root_index,
                    abs: e.path(),
                    rel: child,
                    size: meta.len(),
                    mtime: meta.mtime(),
                });
            }
            // Symbolic links (pg_tblspc/<oid>) are not files of the backup: the tablespace folders
            // they point to are listed as roots of their own.
        }
    }
    Ok(())
}

/// Runs `work(i)` for `i` in `0..count` on `jobs` threads; events go back to the caller's thread.
fn run_workers<F>(
    jobs: usize,
    count: usize,
    on_event: &mut dyn FnMut(ScanEvent),
    work: F,
) -> ScanStats
where
    F: Fn(usize, &mpsc::SyncSender<ScanEvent>) -> ScanStats + Sync,
{
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<ScanEvent>(1024);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..jobs.min(count.max(1)) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            handles.push(scope.spawn(move || {
                let mut stats = ScanStats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let s = work(i, &tx);
                    stats.files += s.files;
                    stats.bytes_checksummed += s.bytes_checksummed;
                    stats.bytes_read += s.bytes_read;
                }
                stats
            }));
        }
        drop(tx);
        for ev in rx {
            on_event(ev);
        }
        let mut total = ScanStats::default();
        for h in handles {
            // A worker that panicked reported nothing more; what it did report stands.
            if let Ok(s) = h.join() {
                total.files += s.files;
                total.bytes_checksummed += s.bytes_checksummed;
                total.bytes_read += s.bytes_read;
            }
        }
        total
    })
}

fn plain_file(
    f: &ListedFile,
    source: &str,
    plan: &ChecksumPlan<'_>,
    tx: &mpsc::SyncSender<ScanEvent>,
) -> ScanStats {
    let mut stats = ScanStats {
        files: 1,
        ..Default::default()
    };
    let event = match plan(&f.rel) {
        None => ScanEvent::File(ScannedFile {
            path: f.rel.clone(),
            size: f.size,
            mtime: f.mtime,
            checksum: None,
            source: source.to_string(),
        }),
        Some(algorithm) => match checksum_file(&f.abs, algorithm) {
            Ok((size, sum)) => {
                stats.bytes_checksummed = size;
                stats.bytes_read = size;
                ScanEvent::File(ScannedFile {
                    path: f.rel.clone(),
                    size,
                    mtime: f.mtime,
                    checksum: Some((algorithm, sum)),
                    source: source.to_string(),
                })
            }
            Err(e) => ScanEvent::Unreadable {
                path: Some(f.rel.clone()),
                source: source.to_string(),
                error: e.to_string(),
            },
        },
    };
    let _ = tx.send(event);
    stats
}

fn checksum_file(path: &Path, algorithm: ChecksumAlgorithm) -> std::io::Result<(u64, Vec<u8>)> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = algorithm.hasher();
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finish()))
}

fn tar_stream(
    storage: &dyn StorageBackend,
    encryptor: &Option<Arc<dyn Encryptor>>,
    stream: &StoredArchive,
    prefix: &str,
    plan: &ChecksumPlan<'_>,
    tx: &mpsc::SyncSender<ScanEvent>,
) -> ScanStats {
    let key = stream.key.as_str();
    let source = stream_source(key);
    let unreadable = |path: Option<Vec<u8>>, error: String| ScanEvent::Unreadable {
        path,
        source: source.clone(),
        error,
    };
    let mut bytes_read = 0u64;
    let mut visitor = HashingVisitor {
        prefix: prefix.as_bytes().to_vec(),
        source: source.clone(),
        plan,
        tx,
        current: None,
        stats: ScanStats::default(),
    };
    let result = (|| -> std::result::Result<(), String> {
        let file = storage.get(key).map_err(|e| format!("cannot open: {e}"))?;
        let mut reader = stream
            .reader(encryptor.as_ref())
            .open(file)
            .map_err(|e| e.to_string())?;
        let mut parser = TarStreamParser::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bytes_read = reader.stored_bytes();
                    return Err(format!("cannot decompress: {e}"));
                }
            };
            bytes_read = reader.stored_bytes();
            parser
                .feed(&buf[..n], &mut visitor)
                .map_err(|e| e.to_string())?;
        }
        parser.finish().map_err(|e| e.to_string())
    })();
    if let Err(error) = result {
        let inside = visitor.current.take().map(|c| c.path);
        let _ = tx.send(unreadable(inside, error));
    }
    let mut stats = visitor.stats;
    stats.bytes_read = bytes_read;
    stats
}

/// `data/base.tar.zst` for `<backup>/data/base.tar.zst`.
fn stream_source(key: &str) -> String {
    let mut parts = key.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(name), Some(parent)) => format!("{parent}/{name}"),
        (Some(name), None) => name.to_string(),
        _ => String::new(),
    }
}

/// The entry being read from a tar stream.
struct CurrentEntry {
    path: Vec<u8>,
    mtime: i64,
    size: u64,
    hasher: Option<(ChecksumAlgorithm, crate::manifest::FileChecksum)>,
}

struct HashingVisitor<'a, 'p> {
    prefix: Vec<u8>,
    source: String,
    plan: &'a ChecksumPlan<'p>,
    tx: &'a mpsc::SyncSender<ScanEvent>,
    current: Option<CurrentEntry>,
    stats: ScanStats,
}

impl TarVisitor for HashingVisitor<'_, '_> {
    fn entry_start(&mut self, entry: &TarEntry) -> pgbak_copy::Result<()> {
        self.current = None;
        if entry.kind != EntryKind::File {
            return Ok(());
        }
        let mut name = entry.path.as_os_str().as_bytes();
        while let Some(rest) = name.strip_prefix(b"./") {
            name = rest;
        }
        let mut path = self.prefix.clone();
        path.extend_from_slice(name);
        let hasher = (self.plan)(&path).map(|a| (a, a.hasher()));
        self.current = Some(CurrentEntry {
            path,
            mtime: entry.mtime,
            size: 0,
            hasher,
        });
        Ok(())
    }

    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        if let Some(c) = &mut self.current {
            c.size += data.len() as u64;
            if let Some((_, h)) = &mut c.hasher {
                h.update(data);
                self.stats.bytes_checksummed += data.len() as u64;
            }
        }
        Ok(())
    }

    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        if let Some(c) = self.current.take() {
            self.stats.files += 1;
            let _ = self.tx.send(ScanEvent::File(ScannedFile {
                path: c.path,
                size: c.size,
                mtime: c.mtime,
                checksum: c.hasher.map(|(a, h)| (a, h.finish())),
                source: self.source.clone(),
            }));
        }
        Ok(())
    }

    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        Ok(())
    }
}

/// Paths PostgreSQL leaves out of its manifests: the manifest itself and the WAL folder.
pub fn outside_manifest(path: &[u8]) -> bool {
    path == MANIFEST_FILE.as_bytes() || path == b"pg_wal" || path.starts_with(b"pg_wal/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tar_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let octal = |field: &mut [u8], v: u64| {
                let s = format!("{:0w$o}\0", v, w = field.len() - 1);
                field.copy_from_slice(s.as_bytes());
            };
            octal(&mut h[100..108], 0o600);
            octal(&mut h[108..116], 0);
            octal(&mut h[116..124], 0);
            octal(&mut h[124..136], data.len() as u64);
            octal(&mut h[136..148], 1_700_000_000);
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            let s = format!("{sum:06o}\0 ");
            h[148..156].copy_from_slice(s.as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn collect(layout: &BackupLayout) -> (BTreeMap<Vec<u8>, ScannedFile>, Vec<ScanEvent>) {
        let mut files = BTreeMap::new();
        let mut bad = Vec::new();
        let plan = |p: &[u8]| (!outside_manifest(p)).then_some(ChecksumAlgorithm::Crc32c);
        scan_backup(layout, 2, &plan, &mut |ev| match ev {
            ScanEvent::File(f) => {
                files.insert(f.path.clone(), f);
            }
            other => bad.push(other),
        })
        .unwrap();
        (files, bad)
    }

    #[test]
    fn plain_and_tar_give_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(plain.join("data/base/1")).unwrap();
        std::fs::create_dir_all(plain.join("data/pg_tblspc")).unwrap();
        std::fs::create_dir_all(plain.join("16384/PG_15_1/5")).unwrap();
        std::fs::write(plain.join("data/base/1/1259"), b"heap").unwrap();
        std::fs::write(plain.join("data/PG_VERSION"), b"15\n").unwrap();
        std::fs::write(plain.join("data/backup_manifest"), b"{}").unwrap();
        std::fs::write(plain.join("16384/PG_15_1/5/100"), b"tablespace").unwrap();
        std::os::unix::fs::symlink("../../16384", plain.join("data/pg_tblspc/16384")).unwrap();

        let tar = dir.path().join("tar");
        std::fs::create_dir_all(tar.join("data")).unwrap();
        std::fs::write(
            tar.join("data/base.tar"),
            tar_bytes(&[("base/1/1259", b"heap"), ("./PG_VERSION", b"15\n")]),
        )
        .unwrap();
        let codec = pgbak_compress::Codec::new(pgbak_compress::Compression::Zstd, None).unwrap();
        let mut w = pgbak_compress::Compressor::encoder(
            &codec,
            Box::new(File::create(tar.join("data/16384.tar.zst")).unwrap()),
        )
        .unwrap();
        std::io::Write::write_all(&mut w, &tar_bytes(&[("PG_15_1/5/100", b"tablespace")])).unwrap();
        w.finish().unwrap();

        let p = BackupLayout::discover(&plain, "plain").unwrap();
        let t = BackupLayout::discover(&tar, "tar").unwrap();
        let (pf, pbad) = collect(&p);
        let (tf, tbad) = collect(&t);
        assert!(pbad.is_empty() && tbad.is_empty(), "{pbad:?} {tbad:?}");
        let names = |m: &BTreeMap<Vec<u8>, ScannedFile>| {
            m.keys()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&pf),
            [
                "PG_VERSION",
                "backup_manifest",
                "base/1/1259",
                "pg_tblspc/16384/PG_15_1/5/100"
            ]
        );
        assert_eq!(
            names(&tf),
            ["PG_VERSION", "base/1/1259", "pg_tblspc/16384/PG_15_1/5/100"]
        );
        for (k, f) in &tf {
            assert_eq!(pf[k].checksum, f.checksum, "{k:?}");
            assert_eq!(pf[k].size, f.size);
        }
        assert_eq!(pf[&b"backup_manifest"[..]].checksum, None, "not read");
        assert_eq!(
            tf[&b"pg_tblspc/16384/PG_15_1/5/100"[..]].source,
            "data/16384.tar.zst"
        );
    }

    #[test]
    fn a_damaged_stream_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let mut t = tar_bytes(&[("a", b"x"), ("b", &[7u8; 3000])]);
        t.truncate(1024 + 1000);
        std::fs::write(dir.path().join("data/base.tar"), t).unwrap();
        let layout = BackupLayout::discover(dir.path(), "tar").unwrap();
        let (files, bad) = collect(&layout);
        assert_eq!(files.len(), 1);
        match &bad[..] {
            [ScanEvent::Unreadable { path, source, .. }] => {
                assert_eq!(path.as_deref(), Some(&b"b"[..]));
                assert_eq!(source, "data/base.tar");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stream_names() {
        assert_eq!(tar_stream_oid("base.tar"), Some(None));
        assert_eq!(tar_stream_oid("base.tar.zst"), Some(None));
        assert_eq!(tar_stream_oid("16384.tar.gz"), Some(Some(16384)));
        assert_eq!(tar_stream_oid("backup_manifest"), None);
        assert_eq!(tar_stream_oid("base.tarx"), None);
        assert_eq!(tar_stream_oid(".base.tar.1.tmp"), None);
        assert!(BackupLayout::discover(Path::new("/nonexistent"), "tar").is_err());
        assert!(BackupLayout::discover(Path::new("/tmp"), "zip").is_err());
    }
}
