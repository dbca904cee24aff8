//! Restores an incremental backup by combining its chain natively, streaming, as
//! `pg_combinebackup` would but without its binary and without unpacking any backup first.
//!
//! For each archive (`base.tar` into the destination, `<oid>.tar` into each tablespace's
//! location), independently and `jobs` archives at a time:
//!
//! 1. The newest backup's stream is extracted as a full backup is, except its
//!    `INCREMENTAL.<name>` entries: `<name>` is created, the blocks the entry carries are written at
//!    their place, the file is given its final length (sparse, so zeros until written), and the
//!    blocks below `truncation_block_length` it does not carry are noted as still needed.
//! 2. Then each ancestor's stream of the same archive, newest to oldest, as long as blocks are
//!    still needed: an `INCREMENTAL.<name>` entry gives the needed blocks it carries; a full
//!    `<name>` gives every needed block it holds and settles the file (blocks it does not hold
//!    stay zero, as `pg_combinebackup` leaves them). A still-needed file that an ancestor holds in
//!    neither form is a broken chain, and an error naming it.
//!
//! Memory holds one bit per needed block of the files still being combined (at most 16 kB per
//! 1 GB segment) and one read buffer per stream; the ancestors' streams are read once each, in
//! order, and skipped past what is not needed.

use super::header::{HeaderReader, IncrementalHeader, BLCKSZ, INCREMENTAL_PREFIX};
use crate::catalogue::BackupInfo;
use crate::{Error, Result};
use pgbak_compress::Encryptor;
use pgbak_copy::{EntryKind, ExtractOptions, TarEntry, TarExtractor, TarStreamParser, TarVisitor};
use pgbak_storage::StorageBackend;
use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 1 << 20;

/// One archive of the chain to combine: its name stem and where it goes.
#[derive(Clone, Debug)]
pub struct ArchiveTarget {
    /// `base.tar` or `<oid>.tar`.
    pub stem: String,
    /// The data directory or the tablespace location.
    pub root: PathBuf,
    /// How the newest backup's entries are extracted.
    pub extract: ExtractOptions,
}

/// What a combine wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CombineStats {
    /// Files rebuilt from incremental entries.
    pub combined_files: u64,
    /// Blocks written from the newest backup's incremental entries.
    pub newest_blocks: u64,
    /// Blocks written from the ancestors.
    pub ancestor_blocks: u64,
    /// Regular files the restore wrote, combined ones included.
    pub files_written: u64,
    /// Bytes of those files (a combined file counted at its full length).
    pub bytes_written: u64,
}

impl CombineStats {
    fn add(&mut self, o: CombineStats) {
        self.combined_files += o.combined_files;
        self.newest_blocks += o.newest_blocks;
        self.ancestor_blocks += o.ancestor_blocks;
        self.files_written += o.files_written;
        self.bytes_written += o.bytes_written;
    }
}

/// Restores `chain` (newest first, ending with a full backup; the newest in tar format) archive
/// by archive, up to `jobs` archives at a time. `plain_dirs[i]` is the folder of `chain[i]` when
/// that backup is a plain tree (whose files are then read in place).
pub fn combine_chain(
    store: &dyn StorageBackend,
    encryptor: Option<&Arc<dyn Encryptor>>,
    chain: &[BackupInfo],
    plain_dirs: &[Option<PathBuf>],
    targets: &[ArchiveTarget],
    jobs: usize,
) -> Result<CombineStats> {
    if chain.last().is_none_or(|b| b.is_incremental()) {
        return Err(Error::Usage(
            "a chain of incremental backups must end with a full backup".into(),
        ));
    }
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Result<CombineStats>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, targets.len().max(1)) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(target) = targets.get(i) else { break };
                let r = combine_archive(store, encryptor, chain, plain_dirs, target);
                let failed = r.is_err();
                results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                if failed {
                    // Stop handing out work: the restore has failed.
                    *next.lock().unwrap_or_else(|p| p.into_inner()) = targets.len();
                }
            });
        }
    });
    let mut stats = CombineStats::default();
    for r in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        stats.add(r?);
    }
    Ok(stats)
}

/// Combines one archive of the chain into `target.root`.
fn combine_archive(
    store: &dyn StorageBackend,
    encryptor: Option<&Arc<dyn Encryptor>>,
    chain: &[BackupInfo],
    plain_dirs: &[Option<PathBuf>],
    target: &ArchiveTarget,
) -> Result<CombineStats> {
    let newest = &chain[0];
    let archive = crate::recover::find_archive(store, newest, &target.stem)?;
    let mut stats = CombineStats::default();
    let mut pending: BTreeMap<PathBuf, NeededBlocks> = BTreeMap::new();
    let mut visitor = NewestVisitor {
        progress: target.extract.progress.clone(),
        extractor: TarExtractor::new(&target.root, target.extract.clone())?,
        root: target.root.clone(),
        pending: &mut pending,
        current: None,
        stats: &mut stats,
    };
    stream_tar(store, encryptor, &archive, &mut visitor)?;
    // Combined files were created empty by the extractor and are counted at their full length.
    let extracted = visitor.extractor.finish()?;
    stats.files_written += extracted.files;
    stats.bytes_written += extracted.bytes;
    for (i, ancestor) in chain.iter().enumerate().skip(1) {
        if pending.is_empty() {
            break;
        }
        let mut visitor = AncestorVisitor {
            progress: target.extract.progress.clone(),
            root: target.root.clone(),
            pending: &mut pending,
            seen: HashSet::new(),
            current: None,
            settled: Vec::new(),
            stats: &mut stats,
        };
        match plain_dirs.get(i).cloned().flatten() {
            Some(dir) => {
                let sub = match target.stem.strip_suffix(".tar") {
                    Some("base") | None => "data".to_string(),
                    Some(oid) => oid.to_string(),
                };
                read_plain(&dir.join(sub), &mut visitor)?;
            }
            None => {
                let archive = crate::recover::find_archive(store, ancestor, &target.stem)
                    .map_err(|_| broken_chain(visitor.pending, newest, ancestor, &target.stem))?;
                stream_tar(store, encryptor, &archive, &mut visitor)?;
            }
        }
        let AncestorVisitor { seen, settled, .. } = visitor;
        for path in settled {
            pending.remove(&path);
        }
        if let Some(missing) = pending.keys().find(|p| !seen.contains(*p)) {
            return Err(Error::Corrupt {
                what: format!("backup {} of server '{}'", ancestor.backup_id, ancestor.server_name),
                detail: format!(
                    "{} needs blocks of {} from it, but its {} holds that file in neither full nor incremental form",
                    newest.backup_id,
                    missing.display(),
                    target.stem
                ),
            });
        }
    }
    if let Some(p) = pending.keys().next() {
        return Err(Error::Corrupt {
            what: format!(
                "backup {} of server '{}'",
                newest.backup_id, newest.server_name
            ),
            detail: format!("no backup of its chain holds {} in full", p.display()),
        });
    }
    Ok(stats)
}

fn broken_chain(
    pending: &BTreeMap<PathBuf, NeededBlocks>,
    newest: &BackupInfo,
    ancestor: &BackupInfo,
    stem: &str,
) -> Error {
    let first = pending
        .keys()
        .next()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Error::Corrupt {
        what: format!(
            "backup {} of server '{}'",
            ancestor.backup_id, ancestor.server_name
        ),
        detail: format!(
            "{} needs blocks of {first} from its {stem}, which is missing",
            newest.backup_id
        ),
    }
}

/// Reads the tar stream `archive` (any compression, decrypted when needed, checked against
/// what its backup recorded) into `visitor`.
fn stream_tar(
    store: &dyn StorageBackend,
    encryptor: Option<&Arc<dyn Encryptor>>,
    archive: &crate::backup_scan::StoredArchive,
    visitor: &mut dyn TarVisitor,
) -> Result<()> {
    let what = format!("{}/{}", store.describe(), archive.key);
    let source = io::BufReader::with_capacity(READ_CHUNK, store.get(&archive.key)?);
    let mut reader =
        archive
            .reader(encryptor)
            .open(source)
            .map_err(|e| pgbak_copy::Error::Stream {
                op: "read",
                what: what.clone(),
                source: io::Error::other(e.to_string()),
            })?;
    let mut parser = TarStreamParser::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(pgbak_copy::Error::Stream {
                    op: "read",
                    what,
                    source,
                }
                .into())
            }
        };
        parser.feed(&buf[..n], visitor)?;
    }
    parser.finish()?;
    Ok(())
}

/// Feeds `visitor` the files it still needs from a plain backup tree `root`, each in full or
/// incremental form, as if they came from a tar stream. Files are opened without following
/// links; a name that is absent in both forms is left for the caller to report.
fn read_plain(root: &Path, visitor: &mut AncestorVisitor<'_>) -> Result<()> {
    let wanted: Vec<PathBuf> = visitor.pending.keys().cloned().collect();
    let mut buf = vec![0u8; READ_CHUNK];
    for rel in wanted {
        let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let incremental = rel.with_file_name(format!("{INCREMENTAL_PREFIX}{name}"));
        for candidate in [&rel, &incremental] {
            let path = root.join(candidate);
            let mut file = match pgbak_storage::staging::open_regular(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open", &path, e)),
            };
            let size = file
                .metadata()
                .map_err(|e| Error::io("stat", &path, e))?
                .len();
            let entry = TarEntry {
                path: candidate.clone(),
                kind: EntryKind::File,
                link_target: None,
                mode: 0o600,
                uid: 0,
                gid: 0,
                size,
                mtime: 0,
            };
            visitor.entry_start(&entry)?;
            let mut left = size;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = match file.read(&mut buf[..want]) {
                    Ok(0) => {
                        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank");
                        return Err(Error::io("read", &path, eof));
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("read", &path, e)),
                };
                visitor.entry_data(&buf[..n])?;
                left -= n as u64;
            }
            visitor.entry_end()?;
            break;
        }
    }
    Ok(())
}

/// The blocks of a file under reconstruction that no backup read so far provided.
#[derive(Debug)]
struct NeededBlocks {
    /// The newest backup's `truncation_block_length`: older backups provide only blocks below it.
    limit: u32,
    /// One bit per block below `limit`: set once written.
    filled: Vec<u64>,
}

impl NeededBlocks {
    fn new(limit: u32) -> Self {
        NeededBlocks {
            limit,
            filled: vec![0; (limit as usize).div_ceil(64)],
        }
    }

    fn is_needed(&self, b: u32) -> bool {
        b < self.limit && self.filled[b as usize / 64] & (1 << (b % 64)) == 0
    }

    fn fill(&mut self, b: u32) {
        if b < self.limit {
            self.filled[b as usize / 64] |= 1 << (b % 64);
        }
    }

    fn complete(&self) -> bool {
        (0..self.limit).all(|b| !self.is_needed(b))
    }
}

/// The relative path of an entry, without `./` parts, and whether it is an incremental file
/// (then the path is that of the file it rebuilds).
fn entry_target(path: &Path) -> Option<(PathBuf, bool)> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let name = out.file_name()?.to_str().map(str::to_string);
    match name
        .as_deref()
        .and_then(|n| n.strip_prefix(INCREMENTAL_PREFIX))
    {
        Some(bare) if !bare.is_empty() => {
            out.set_file_name(bare);
            Some((out, true))
        }
        _ => Some((out, false)),
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> pgbak_copy::Error {
    pgbak_copy::Error::Io {
        op: "combine",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, why.to_string()),
    }
}

/// Opens a file this restore created, for writing in place; never through a link.
fn open_for_blocks(path: &Path) -> pgbak_copy::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| pgbak_copy::Error::Io {
            op: "open",
            path: path.to_path_buf(),
            source: e,
        })
}

fn write_at(file: &File, path: &Path, data: &[u8], offset: u64) -> pgbak_copy::Result<()> {
    file.write_all_at(data, offset)
        .map_err(|e| pgbak_copy::Error::Io {
            op: "write",
            path: path.to_path_buf(),
            source: e,
        })
}

fn sync(file: &File, path: &Path) -> pgbak_copy::Result<()> {
    file.sync_all().map_err(|e| pgbak_copy::Error::Io {
        op: "fsync",
        path: path.to_path_buf(),
        source: e,
    })
}

/// An incremental entry being read: its header, then its block images in order.
struct IncrementalEntry {
    rel: PathBuf,
    abs: PathBuf,
    file: File,
    size: u64,
    header: HeaderReader,
    parsed: Option<IncrementalHeader>,
    /// Bytes of the entry read so far.
    read: u64,
    /// Bytes of the header (known once parsed).
    header_len: u64,
}

impl IncrementalEntry {
    fn new(rel: PathBuf, abs: PathBuf, file: File, size: u64) -> Self {
        IncrementalEntry {
            rel,
            abs,
            file,
            size,
            header: HeaderReader::new(),
            parsed: None,
            read: 0,
            header_len: 0,
        }
    }

    /// Feeds entry bytes; calls `block(b, offset_in_block, bytes)` for the image bytes.
    fn feed(
        &mut self,
        mut data: &[u8],
        mut block: impl FnMut(&File, &Path, u32, u64, &[u8]) -> pgbak_copy::Result<()>,
    ) -> pgbak_copy::Result<()> {
        if self.parsed.is_none() {
            let (used, h) = self
                .header
                .feed(data)
                .map_err(|e| invalid(&self.abs, format!("incremental file: {e}")))?;
            self.read += used as u64;
            data = &data[used..];
            if let Some(h) = h {
                if h.expected_size() != self.size {
                    return Err(invalid(
                        &self.abs,
                        format!(
                            "incremental file of {} bytes but its header announces {}",
                            self.size,
                            h.expected_size()
                        ),
                    ));
                }
                self.header_len = h.header_len();
                self.parsed = Some(h);
            }
        }
        let Some(h) = &self.parsed else {
            return Ok(());
        };
        while !data.is_empty() {
            let pos = self.read - self.header_len;
            let idx = (pos / BLCKSZ) as usize;
            let within = pos % BLCKSZ;
            let take = ((BLCKSZ - within) as usize).min(data.len());
            let b = *h
                .blocks
                .get(idx)
                .ok_or_else(|| invalid(&self.abs, "more data than its header announces"))?;
            block(&self.file, &self.abs, b, within, &data[..take])?;
            self.read += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    fn finish(self) -> pgbak_copy::Result<(IncrementalHeader, PathBuf, PathBuf, File)> {
        match self.parsed {
            Some(h) if self.read == self.size => Ok((h, self.rel, self.abs, self.file)),
            _ => Err(invalid(&self.abs, "the incremental file ends early")),
        }
    }
}

/// Extracts the newest backup of the chain, rebuilding its incremental entries' blocks.
struct NewestVisitor<'a> {
    progress: Option<pgbak_copy::Meter>,
    extractor: TarExtractor,
    root: PathBuf,
    pending: &'a mut BTreeMap<PathBuf, NeededBlocks>,
    current: Option<IncrementalEntry>,
    stats: &'a mut CombineStats,
}

impl TarVisitor for NewestVisitor<'_> {
    fn entry_start(&mut self, entry: &TarEntry) -> pgbak_copy::Result<()> {
        let target = match entry.kind {
            EntryKind::File => entry_target(&entry.path),
            _ => None,
        };
        let Some((rel, true)) = target else {
            return self.extractor.entry_start(entry);
        };
        // The extractor checks the name and creates the (empty) file, as for any file.
        let empty = TarEntry {
            path: rel.clone(),
            size: 0,
            ..entry.clone()
        };
        self.extractor.entry_start(&empty)?;
        self.extractor.entry_end()?;
        let abs = self.root.join(&rel);
        let file = open_for_blocks(&abs)?;
        self.current = Some(IncrementalEntry::new(rel, abs, file, entry.size));
        Ok(())
    }

    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        match self.current.as_mut() {
            None => self.extractor.entry_data(data),
            Some(cur) => {
                let stats = &mut *self.stats;
                let progress = &self.progress;
                cur.feed(data, |file, path, b, within, bytes| {
                    if within == 0 {
                        stats.newest_blocks += 1;
                    }
                    pgbak_copy::count_progress(progress, bytes.len(), path)?;
                    write_at(file, path, bytes, b as u64 * BLCKSZ + within)
                })
            }
        }
    }

    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        let Some(cur) = self.current.take() else {
            return self.extractor.entry_end();
        };
        let (h, rel, abs, file) = cur.finish()?;
        let len = h.reconstructed_blocks() as u64 * BLCKSZ;
        self.stats.bytes_written += len;
        file.set_len(len).map_err(|e| pgbak_copy::Error::Io {
            op: "truncate",
            path: abs.clone(),
            source: e,
        })?;
        let mut needed = NeededBlocks::new(h.truncation_block_length);
        for b in &h.blocks {
            needed.fill(*b);
        }
        self.stats.combined_files += 1;
        if needed.complete() {
            sync(&file, &abs)?;
        } else {
            self.pending.insert(rel, needed);
        }
        Ok(())
    }

    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        self.extractor.archive_end()
    }
}

/// What an ancestor's entry gives to a file under reconstruction.
enum AncestorEntry {
    /// A full copy: its blocks below `blocks` (its length in whole blocks).
    Full {
        rel: PathBuf,
        abs: PathBuf,
        file: File,
        offset: u64,
        blocks: u32,
    },
    Incremental(IncrementalEntry),
}

/// Reads an ancestor's stream for the blocks the files under reconstruction still need.
struct AncestorVisitor<'a> {
    progress: Option<pgbak_copy::Meter>,
    root: PathBuf,
    pending: &'a mut BTreeMap<PathBuf, NeededBlocks>,
    /// The files under reconstruction this ancestor holds (in either form).
    seen: HashSet<PathBuf>,
    current: Option<AncestorEntry>,
    /// Files a full copy settled.
    settled: Vec<PathBuf>,
    stats: &'a mut CombineStats,
}

impl TarVisitor for AncestorVisitor<'_> {
    fn entry_start(&mut self, entry: &TarEntry) -> pgbak_copy::Result<()> {
        self.current = None;
        if entry.kind != EntryKind::File {
            return Ok(());
        }
        let Some((rel, incremental)) = entry_target(&entry.path) else {
            return Ok(());
        };
        if !self.pending.contains_key(&rel) || self.settled.contains(&rel) {
            return Ok(());
        }
        if !self.seen.insert(rel.clone()) {
            return Err(invalid(&self.root.join(&rel), "held twice by one backup"));
        }
        let abs = self.root.join(&rel);
        let file = open_for_blocks(&abs)?;
        self.current = Some(if incremental {
            AncestorEntry::Incremental(IncrementalEntry::new(rel, abs, file, entry.size))
        } else {
            AncestorEntry::Full {
                rel,
                abs,
                file,
                offset: 0,
                blocks: u32::try_from(entry.size / BLCKSZ).unwrap_or(u32::MAX),
            }
        });
        Ok(())
    }

    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let stats = &mut *self.stats;
        let progress = &self.progress;
        match cur {
            AncestorEntry::Full {
                rel,
                abs,
                file,
                offset,
                blocks,
            } => {
                let needed = self
                    .pending
                    .get_mut(rel)
                    .ok_or_else(|| invalid(abs, "not under reconstruction"))?;
                let mut data = data;
                while !data.is_empty() {
                    let b = *offset / BLCKSZ;
                    let within = *offset % BLCKSZ;
                    let take = ((BLCKSZ - within) as usize).min(data.len());
                    if b < *blocks as u64 && needed.is_needed(b as u32) {
                        pgbak_copy::count_progress(progress, take, abs)?;
                        write_at(file, abs, &data[..take], *offset)?;
                        if within + take as u64 == BLCKSZ {
                            stats.ancestor_blocks += 1;
                        }
                    }
                    *offset += take as u64;
                    data = &data[take..];
                }
                Ok(())
            }
            AncestorEntry::Incremental(inc) => {
                let needed = self
                    .pending
                    .get(&inc.rel)
                    .ok_or_else(|| invalid(&inc.abs, "not under reconstruction"))?;
                inc.feed(data, |file, path, b, within, bytes| {
                    if !needed.is_needed(b) {
                        return Ok(());
                    }
                    if within == 0 {
                        stats.ancestor_blocks += 1;
                    }
                    pgbak_copy::count_progress(progress, bytes.len(), path)?;
                    write_at(file, path, bytes, b as u64 * BLCKSZ + within)
                })
            }
        }
    }

    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        match self.current.take() {
            None => Ok(()),
            Some(AncestorEntry::Full { rel, abs, file, .. }) => {
                // A full copy ends the search: what it does not hold stays zero.
                sync(&file, &abs)?;
                self.settled.push(rel);
                Ok(())
            }
            Some(AncestorEntry::Incremental(inc)) => {
                let (h, rel, abs, file) = inc.finish()?;
                if let Some(needed) = self.pending.get_mut(&rel) {
                    for b in &h.blocks {
                        needed.fill(*b);
                    }
                    if needed.complete() {
                        sync(&file, &abs)?;
                        self.settled.push(rel);
                    }
                }
                Ok(())
            }
        }
    }

    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        Ok(())
    }
}

/// The `backup_label` of the combined directory: the newest backup's without its
/// `INCREMENTAL FROM` lines (PostgreSQL refuses to start from a label that has them, as they
/// mark a backup that still needs combining).
pub fn full_backup_label(label: &str) -> String {
    label
        .lines()
        .filter(|l| !l.starts_with("INCREMENTAL FROM "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_loses_its_incremental_lines() {
        let label = "START WAL LOCATION: 0/6000028 (file 000000010000000000000006)\n\
                     CHECKPOINT LOCATION: 0/6000080\n\
                     BACKUP METHOD: streamed\n\
                     INCREMENTAL FROM LSN: 0/4000028\n\
                     INCREMENTAL FROM TLI: 1\n\
                     START TIMELINE: 1\n";
        let out = full_backup_label(label);
        assert!(!out.contains("INCREMENTAL"));
        assert!(out.ends_with("START TIMELINE: 1\n"));
        assert_eq!(out.lines().count(), 4);
    }

    #[test]
    fn entry_targets() {
        assert_eq!(
            entry_target(Path::new("base/5/INCREMENTAL.16384.1")),
            Some((PathBuf::from("base/5/16384.1"), true))
        );
        assert_eq!(
            entry_target(Path::new("./base/5/16384")),
            Some((PathBuf::from("base/5/16384"), false))
        );
        assert_eq!(entry_target(Path::new("../x")), None);
        assert_eq!(
            entry_target(Path::new("INCREMENTAL.")),
            Some((PathBuf::from("INCREMENTAL."), false))
        );
    }

    #[test]
    fn needed_blocks() {
        let mut n = NeededBlocks::new(70);
        assert!(n.is_needed(0) && n.is_needed(69) && !n.is_needed(70));
        for b in 0..70 {
            if b != 65 {
                n.fill(b);
            }
        }
        assert!(!n.complete());
        n.fill(65);
        n.fill(1000);
        assert!(n.complete());
    }
}
