//! Safe extraction of tar streams below a destination directory, used to write plain-format
//! backups from BASE_BACKUP and to restore tar-format backups; and [`copy_tree`], its counterpart
//! for restoring plain-format backups.
//!
//! Every entry name is checked before anything is written: absolute names, `..` components, paths
//! that would pass through a symlink (such as `pg_tblspc/16384/x` once `pg_tblspc/16384` is a link)
//! and hard links whose target lies outside the destination are refused with
//! [`Error::HostileTar`]. The only symlinks created are the ones PostgreSQL itself makes,
//! `pg_tblspc/<oid>` (which legitimately point to absolute tablespace locations); any other link
//! in a backup is left out with a warning, so nothing written later into the tree (recovery
//! settings, signal files) can land outside it. Modes come from the archive without write access
//! for the group and without any access for others (at most 0750/0640, PostgreSQL's group
//! access).

use crate::durable::{SyncMethod, SyncTracker};
use crate::tar::{EntryKind, TarEntry, TarStreamParser, TarVisitor};
use crate::{Error, Result};
use pgbak_compress::pipeline::{PipelineStats, ReadPipelineBuilder};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of the write buffer of each extracted file; PostgreSQL relation files are written in
/// chunks at least this large, so it only matters for small files.
const WRITE_BUFFER: usize = 256 * 1024;

/// Size of the read buffer of [`extract_tar`].
const READ_BUFFER: usize = 1 << 20;

/// How an extraction treats links and existing files, and how it makes its result durable.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// New targets for the `pg_tblspc/<oid>` symlinks, by tablespace oid (recovery relocation, or
    /// the tablespace folders of a plain backup). Other links keep the target stored in the archive.
    pub tablespace_remap: HashMap<u32, PathBuf>,
    /// Replace files and links that already exist in the destination (by unlinking them first,
    /// never by writing through them). Directories are always reused. When false an existing
    /// file is [`Error::AlreadyExists`].
    pub replace_existing: bool,
    /// How the tree is made durable by `finish`.
    pub sync: SyncMethod,
    /// Counts the bytes of file data written (or compared, in a delta restore) as they go.
    pub progress: Option<crate::Meter>,
}

/// What an extraction or a tree copy created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Regular files written.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Directories created or reused for a directory entry.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hard_links: u64,
    /// Symbolic links left out: a restored tree holds only the links PostgreSQL makes.
    pub skipped_links: u64,
}

/// The most a restored file or folder may allow: nothing for others, no writing for the group.
pub const MODE_MASK: u32 = 0o750;

/// A file being written.
#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    out: BufWriter<File>,
    mode: u32,
    mtime: i64,
    written: u64,
}

/// A [`TarVisitor`] that writes the archive's entries below a destination directory.
///
/// Feed it from a [`TarStreamParser`] and call [`TarExtractor::finish`] at the end; dropping it
/// earlier leaves what was written so far, not durable.
#[derive(Debug)]
pub struct TarExtractor {
    root: PathBuf,
    pub(crate) opts: ExtractOptions,
    /// Relative paths already known to be real directories (not symlinks) below `root`.
    known_dirs: HashSet<PathBuf>,
    current: Option<OpenFile>,
    /// Directories whose mode would stop us writing into them; applied at the end.
    deferred_modes: Vec<(PathBuf, u32)>,
    pub(crate) sync: SyncTracker,
    stats: ExtractStats,
}

impl TarExtractor {
    /// An extractor writing below `dest`, which is created (mode 0700, as PostgreSQL wants its
    /// data directory) if it does not exist.
    pub fn new(dest: &Path, opts: ExtractOptions) -> Result<Self> {
        let mut sync = SyncTracker::new(opts.sync, dest);
        prepare_root(dest, &mut sync)?;
        Ok(TarExtractor {
            root: dest.to_path_buf(),
            opts,
            known_dirs: HashSet::new(),
            current: None,
            deferred_modes: Vec::new(),
            sync,
            stats: ExtractStats::default(),
        })
    }

    /// The destination directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What was extracted so far.
    pub fn stats(&self) -> ExtractStats {
        self.stats
    }

    /// Applies deferred directory modes and makes the tree durable.
    pub fn finish(mut self) -> Result<ExtractStats> {
        if let Some(open) = self.current.take() {
            let eof = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ended inside this file",
            );
            return Err(Error::io("extract", open.path, eof));
        }
        apply_deferred_modes(&mut self.deferred_modes)?;
        self.sync.finish()?;
        Ok(self.stats)
    }

    /// Checks `entry`'s name, makes sure its parent directories exist and are real directories,
    /// and returns its relative and absolute paths.
    pub(crate) fn prepare(&mut self, entry: &TarEntry) -> Result<(PathBuf, PathBuf)> {
        let comps = safe_components(&entry.path).map_err(|reason| hostile(entry, reason))?;
        let (last, parents) = match comps.split_last() {
            Some(split) => split,
            None => return Ok((PathBuf::new(), self.root.clone())),
        };
        let mut rel = PathBuf::new();
        for c in parents {
            rel.push(c);
            self.ensure_dir(&rel, entry)?;
        }
        let parent_abs = self.root.join(&rel);
        self.sync.dir_touched(&parent_abs);
        rel.push(last);
        let abs = self.root.join(&rel);
        Ok((rel, abs))
    }

    /// Makes sure `rel` is a real directory, creating it (mode 0700) when the archive did not
    /// list it before its contents.
    fn ensure_dir(&mut self, rel: &Path, entry: &TarEntry) -> Result<()> {
        if self.known_dirs.contains(rel) {
            return Ok(());
        }
        let abs = self.root.join(rel);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(hostile(entry, "its path goes through a symlink"))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(hostile(
                    entry,
                    "its path goes through something that is not a directory",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&abs)
                    .map_err(|e| Error::io("create directory", &abs, e))?;
                if let Some(parent) = abs.parent() {
                    self.sync.dir_touched(parent);
                }
                self.sync.dir_touched(&abs);
            }
            Err(e) => return Err(Error::io("stat", &abs, e)),
        }
        self.known_dirs.insert(rel.to_path_buf());
        Ok(())
    }

    /// Makes room for a new file or link at `abs`: nothing there, or (when allowed) a file or link
    /// that is unlinked first.
    fn clear_existing(&self, abs: &Path) -> Result<()> {
        match fs::symlink_metadata(abs) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("stat", abs, e)),
            Ok(m) if !m.is_dir() && self.opts.replace_existing => {
                fs::remove_file(abs).map_err(|e| Error::io("remove", abs, e))
            }
            Ok(_) => Err(Error::AlreadyExists {
                path: abs.to_path_buf(),
            }),
        }
    }

    fn start_file(&mut self, entry: &TarEntry) -> Result<()> {
        let (rel, abs) = self.prepare(entry)?;
        if rel.as_os_str().is_empty() {
            return Err(hostile(entry, "a file entry names the destination itself"));
        }
        self.clear_existing(&abs)?;
        // O_EXCL (create_new) never follows a symlink, even one planted after our checks.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&abs)
            .map_err(|e| Error::io("create", &abs, e))?;
        self.current = Some(OpenFile {
            path: abs,
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            mode: entry.mode & MODE_MASK,
            mtime: entry.mtime,
            written: 0,
        });
        Ok(())
    }

    fn end_file(&mut self, open: OpenFile) -> Result<()> {
        let OpenFile {
            path,
            out,
            mode,
            mtime,
            written,
        } = open;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", &path, e.into_error()))?;
        finish_file(&file, &path, mode, mtime)?;
        self.sync.file_written(&file, &path);
        self.stats.files += 1;
        self.stats.bytes += written;
        Ok(())
    }

    pub(crate) fn directory(&mut self, entry: &TarEntry) -> Result<()> {
        let (rel, abs) = self.prepare(entry)?;
        if rel.as_os_str().is_empty() {
            // "./": the destination itself, whose mode the caller chose.
            return Ok(());
        }
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(hostile(entry, "a directory entry over a symlink"))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Error::AlreadyExists { path: abs }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&abs)
                    .map_err(|e| Error::io("create directory", &abs, e))?;
            }
            Err(e) => return Err(Error::io("stat", &abs, e)),
        }
        self.sync.dir_touched(&abs);
        self.known_dirs.insert(rel);
        set_dir_mode(&abs, entry.mode & MODE_MASK, &mut self.deferred_modes)?;
        self.stats.dirs += 1;
        Ok(())
    }

    pub(crate) fn symlink(&mut self, entry: &TarEntry) -> Result<()> {
        let (rel, abs) = self.prepare(entry)?;
        if rel.as_os_str().is_empty() {
            return Err(hostile(entry, "a link entry names the destination itself"));
        }
        let Some(oid) = tablespace_oid(&rel) else {
            skip_link(&rel, entry.link_target.as_deref());
            self.stats.skipped_links += 1;
            return Ok(());
        };
        let target = match self.opts.tablespace_remap.get(&oid) {
            Some(new_target) => new_target.clone(),
            None => entry
                .link_target
                .clone()
                .ok_or_else(|| hostile(entry, "symlink without a target"))?,
        };
        self.clear_existing(&abs)?;
        std::os::unix::fs::symlink(&target, &abs)
            .map_err(|e| Error::io("create symlink", &abs, e))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    pub(crate) fn hard_link(&mut self, entry: &TarEntry) -> Result<()> {
        let target = entry
            .link_target
            .as_deref()
            .ok_or_else(|| hostile(entry, "hard link without a target"))?;
        let target_comps = safe_components(target)
            .map_err(|_| hostile(entry, "its hard link target is outside the destination"))?;
        if target_comps.is_empty() {
            return Err(hostile(
                entry,
                "its hard link target is outside the destination",
            ));
        }
        // The target must be a regular file reached through real directories only.
        let mut target_rel = PathBuf::new();
        for (i, c) in target_comps.iter().enumerate() {
            target_rel.push(c);
            let abs = self.root.join(&target_rel);
            let is_last = i + 1 == target_comps.len();
            let m = match fs::symlink_metadata(&abs) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(hostile(
                        entry,
                        "its hard link target does not exist in the destination",
                    ))
                }
                Err(e) => return Err(Error::io("stat", &abs, e)),
            };
            let ok = if is_last {
                m.file_type().is_file()
            } else {
                m.file_type().is_dir()
            };
            if !ok {
                return Err(hostile(
                    entry,
                    "its hard link target is not a regular file inside the destination",
                ));
            }
        }
        let (rel, abs) = self.prepare(entry)?;
        if rel.as_os_str().is_empty() {
            return Err(hostile(entry, "a link entry names the destination itself"));
        }
        self.clear_existing(&abs)?;
        let target_abs = self.root.join(&target_rel);
        fs::hard_link(&target_abs, &abs).map_err(|e| Error::io("create hard link", &abs, e))?;
        self.stats.hard_links += 1;
        Ok(())
    }
}

impl TarVisitor for TarExtractor {
    fn entry_start(&mut self, entry: &TarEntry) -> Result<()> {
        if let Some(open) = self.current.take() {
            // The parser always ends an entry before starting the next; close it anyway.
            self.end_file(open)?;
        }
        match entry.kind {
            EntryKind::File => self.start_file(entry),
            EntryKind::Directory => self.directory(entry),
            EntryKind::Symlink => self.symlink(entry),
            EntryKind::HardLink => self.hard_link(entry),
            EntryKind::Other(typeflag) => Err(Error::UnsupportedEntry {
                entry: entry.path.to_string_lossy().into_owned(),
                typeflag: char::from(typeflag),
            }),
        }
    }

    fn entry_data(&mut self, data: &[u8]) -> Result<()> {
        // Data of directories and links (never sent by PostgreSQL) is ignored.
        if let Some(open) = self.current.as_mut() {
            open.out
                .write_all(data)
                .map_err(|e| Error::io("write", &open.path, e))?;
            open.written += data.len() as u64;
            crate::meter::tick(&self.opts.progress, data.len(), &open.path)?;
        }
        Ok(())
    }

    fn entry_end(&mut self) -> Result<()> {
        match self.current.take() {
            Some(open) => self.end_file(open),
            None => Ok(()),
        }
    }

    fn archive_end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Creates `dest` (mode 0700) and its parents durably if missing; it must be a directory.
pub(crate) fn prepare_root(dest: &Path, sync: &mut SyncTracker) -> Result<()> {
    match fs::metadata(dest) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::AlreadyExists {
            path: dest.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                pgbak_storage::staging::create_dir_all_private(parent)
                    .map_err(|e| Error::io("create directory", parent, e))?;
                sync.dir_touched(parent);
            }
            match fs::DirBuilder::new().mode(0o700).create(dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                Err(e) => return Err(Error::io("create directory", dest, e)),
            }
            // The umask may have removed bits; PostgreSQL insists on 0700 (or 0750).
            fs::set_permissions(dest, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("chmod", dest, e))
        }
        Err(e) => Err(Error::io("stat", dest, e)),
    }
}

/// The normal components of a relative name; an error names why the name is refused.
fn safe_components(path: &Path) -> std::result::Result<Vec<&OsStr>, &'static str> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("its name contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("its name is absolute"),
        }
    }
    Ok(out)
}

/// The oid of `pg_tblspc/<oid>`, the only symlinks PostgreSQL puts in a base backup.
pub(crate) fn tablespace_oid(rel: &Path) -> Option<u32> {
    let mut comps = rel.components();
    match (comps.next(), comps.next(), comps.next()) {
        (Some(Component::Normal(a)), Some(Component::Normal(b)), None) if a == "pg_tblspc" => {
            b.to_str()?.parse().ok()
        }
        _ => None,
    }
}

/// Leaves out a link that PostgreSQL does not make, saying so.
pub(crate) fn skip_link(rel: &Path, target: Option<&Path>) {
    tracing::warn!(
        "left out the symbolic link {} -> {}: a restored tree holds only the links PostgreSQL makes (pg_tblspc/<oid>); restore what it pointed to by hand if it is needed",
        rel.display(),
        target.map(|t| t.display().to_string()).unwrap_or_default()
    );
}

pub(crate) fn hostile(entry: &TarEntry, reason: &'static str) -> Error {
    Error::HostileTar {
        entry: entry.path.to_string_lossy().into_owned(),
        reason,
    }
}

pub(crate) fn mtime_to_system(mtime: i64) -> SystemTime {
    if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime.unsigned_abs())
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(mtime.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// Sets the final mode (exactly, whatever the umask) and modification time of a written file.
pub(crate) fn finish_file(file: &File, path: &Path, mode: u32, mtime: i64) -> Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", path, e))?;
    file.set_modified(mtime_to_system(mtime))
        .map_err(|e| Error::io("set mtime", path, e))
}

/// Gives a directory its mode now, or at the end when the mode would stop the owner from
/// creating entries in it.
pub(crate) fn set_dir_mode(
    path: &Path,
    mode: u32,
    deferred: &mut Vec<(PathBuf, u32)>,
) -> Result<()> {
    if mode & 0o700 == 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", path, e))
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))
            .map_err(|e| Error::io("chmod", path, e))?;
        deferred.push((path.to_path_buf(), mode));
        Ok(())
    }
}

pub(crate) fn apply_deferred_modes(deferred: &mut Vec<(PathBuf, u32)>) -> Result<()> {
    // Deepest last-created first, so a parent loses its write bit after its children are done.
    while let Some((path, mode)) = deferred.pop() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &path, e))?;
    }
    Ok(())
}

/// Extracts a whole tar stream below `dest` (created if missing) and makes it durable.
///
/// `reader` yields plain tar bytes; [`extract_stored_tar`] takes a stored (compressed, encrypted)
/// one. A truncated or corrupt stream, or a hostile entry, is an error; what was extracted before
/// it stays in `dest` for the caller to remove.
pub fn extract_tar<R: Read>(reader: R, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    let mut extractor = TarExtractor::new(dest, opts.clone())?;
    feed_tar(reader, "tar stream", &mut extractor)?;
    extractor.finish()
}

/// Extracts a tar stream as it is stored (`base.tar.zst`, an encrypted `base.tar.gz.gpg`, a plain
/// `base.tar`) below `dest`, like [`extract_tar`]: `read` says how to undo what was done to it
/// (the encryptor, the digests to compute, the figures to expect), and the compression is found
/// from the first bytes. `what` names the stream in errors.
///
/// Returns the extraction figures and those of the pipeline (the stored size, and the digests
/// `read` asked for).
pub fn extract_stored_tar<R: Read + Send>(
    source: R,
    what: &str,
    read: ReadPipelineBuilder,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<(ExtractStats, PipelineStats)> {
    let mut extractor = TarExtractor::new(dest, opts.clone())?;
    let piped = feed_stored_tar(source, what, read, &mut extractor)?;
    Ok((extractor.finish()?, piped))
}

/// Decoded buffers queued between the decoding thread and the extracting one.
const DECODED_QUEUED: usize = 2;

/// Reads the stored tar stream `source` through the pipeline `read` on a thread of its own
/// (decryption, decompression and the checks of the stored bytes) and feeds the plain bytes to
/// `visitor` on this one, so that decoding overlaps with writing files: memory holds a few
/// [`READ_BUFFER`]s. Returns the pipeline's figures, settled at the end of the stream.
pub(crate) fn feed_stored_tar<R: Read + Send, V: TarVisitor>(
    source: R,
    what: &str,
    read: ReadPipelineBuilder,
    visitor: &mut V,
) -> Result<PipelineStats> {
    let mut reader = read
        .open(source)
        .map_err(|e| Error::stream("read", what, e))?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(DECODED_QUEUED);
        let (spare_tx, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(DECODED_QUEUED + 1);
        let decoder = std::thread::Builder::new()
            .name("pgbak-decode".into())
            .spawn_scoped(scope, move || loop {
                // Whole buffers: a recycled one then needs no zeroing.
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.resize(READ_BUFFER, 0);
                match pgbak_compress::read_up_to(&mut reader, &mut buf) {
                    Ok(0) => return reader.stats(),
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return None;
                    }
                }
            })
            .map_err(|e| Error::io("start a decoding thread for", what, e))?;
        let mut parser = TarStreamParser::new();
        for decoded in rx {
            let buf = decoded.map_err(|e| Error::stream("read", what, e))?;
            parser.feed(&buf, visitor)?;
            let _ = spare_tx.try_send(buf);
        }
        parser.finish()?;
        // The decoder read to the end of the stream, where the pipeline settles its figures.
        decoder.join().ok().flatten().ok_or_else(|| {
            Error::stream(
                "read",
                what,
                io::Error::other("the stream was not read to its end"),
            )
        })
    })
}

/// Reads a whole tar stream into `visitor`.
pub(crate) fn feed_tar<R: Read, V: TarVisitor>(
    mut reader: R,
    what: &str,
    visitor: &mut V,
) -> Result<()> {
    let mut parser = TarStreamParser::new();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::stream("read", what, e)),
        };
        parser.feed(&buf[..n], visitor)?;
    }
    parser.finish()
}

/// Copies a plain backup tree from `src` to `dest` (created if missing): files with their mode
/// and modification time, directories with their mode, symlinks as links. Durable on return.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<ExtractStats> {
    copy_tree_with(src, dest, &ExtractOptions::default())
}

/// Checks that `src` is a folder and `dest` (created if missing) is not inside it, before a tree
/// copy: returns the source's metadata and the destination's durability tracker.
pub(crate) fn prepare_tree_copy(
    src: &Path,
    dest: &Path,
    sync: SyncMethod,
) -> Result<(fs::Metadata, SyncTracker)> {
    let src_meta = fs::metadata(src).map_err(|e| Error::io("stat", src, e))?;
    if !src_meta.is_dir() {
        return Err(Error::io(
            "copy",
            src,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut sync = SyncTracker::new(sync, dest);
    prepare_root(dest, &mut sync)?;
    // A destination inside the source would be copied into itself without end.
    let src_real = fs::canonicalize(src).map_err(|e| Error::io("resolve", src, e))?;
    let dest_real = fs::canonicalize(dest).map_err(|e| Error::io("resolve", dest, e))?;
    if dest_real.starts_with(&src_real) {
        let nested = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the destination is inside the source",
        );
        return Err(Error::io("copy", dest, nested));
    }
    Ok((src_meta, sync))
}

/// [`copy_tree`] with options: `tablespace_remap` relinks `pg_tblspc/<oid>` (relative to `src`),
/// `replace_existing` and `sync` work as for extraction.
pub fn copy_tree_with(src: &Path, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    let (src_meta, sync) = prepare_tree_copy(src, dest, opts.sync)?;
    let mut copier = TreeCopier {
        opts,
        sync,
        stats: ExtractStats::default(),
        deferred_modes: Vec::new(),
    };
    set_dir_mode(
        dest,
        src_meta.permissions().mode() & MODE_MASK,
        &mut copier.deferred_modes,
    )?;
    // Depth-first with an explicit stack: PGDATA nesting is shallow but the input is not trusted.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src_dir = src.join(&rel);
        let entries =
            fs::read_dir(&src_dir).map_err(|e| Error::io("read directory", &src_dir, e))?;
        for item in entries {
            let item = item.map_err(|e| Error::io("read directory", &src_dir, e))?;
            let rel_child = rel.join(item.file_name());
            if copier.copy_entry(&item.path(), &dest.join(&rel_child), &rel_child)? {
                stack.push(rel_child);
            }
        }
        copier.sync.dir_touched(&dest.join(&rel));
    }
    apply_deferred_modes(&mut copier.deferred_modes)?;
    copier.sync.finish()?;
    Ok(copier.stats)
}

/// Copies the regular file `from` (whose metadata is `meta`) to the new name `to`, with its mode
/// (masked) and modification time; returns the written file and its size.
pub(crate) fn copy_regular_file(
    from: &Path,
    to: &Path,
    meta: &fs::Metadata,
) -> Result<(File, u64)> {
    let mut input =
        pgbak_storage::staging::open_regular(from).map_err(|e| Error::io("open", from, e))?;
    // O_EXCL never follows a symlink, even one planted after the caller's checks.
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(to)
        .map_err(|e| Error::io("create", to, e))?;
    // File to File: std uses copy_file_range, so the data never passes through user space.
    let n = io::copy(&mut input, &mut output).map_err(|e| Error::io("copy", to, e))?;
    let mtime = meta.modified().map_err(|e| Error::io("stat", from, e))?;
    output
        .set_permissions(fs::Permissions::from_mode(
            meta.permissions().mode() & MODE_MASK,
        ))
        .map_err(|e| Error::io("chmod", to, e))?;
    output
        .set_modified(mtime)
        .map_err(|e| Error::io("set mtime", to, e))?;
    Ok((output, n))
}

pub(crate) struct TreeCopier<'a> {
    pub(crate) opts: &'a ExtractOptions,
    pub(crate) sync: SyncTracker,
    pub(crate) stats: ExtractStats,
    pub(crate) deferred_modes: Vec<(PathBuf, u32)>,
}

impl TreeCopier<'_> {
    /// Copies one entry; returns true for a directory whose contents are still to be copied.
    pub(crate) fn copy_entry(&mut self, from: &Path, to: &Path, rel: &Path) -> Result<bool> {
        let meta = fs::symlink_metadata(from).map_err(|e| Error::io("stat", from, e))?;
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & MODE_MASK;
        if ft.is_dir() {
            match fs::symlink_metadata(to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::AlreadyExists {
                        path: to.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                    .mode(0o700)
                    .create(to)
                    .map_err(|e| Error::io("create directory", to, e))?,
                Err(e) => return Err(Error::io("stat", to, e)),
            }
            set_dir_mode(to, mode, &mut self.deferred_modes)?;
            self.stats.dirs += 1;
            return Ok(true);
        }
        if ft.is_symlink() {
            let Some(oid) = tablespace_oid(rel) else {
                skip_link(rel, fs::read_link(from).ok().as_deref());
                self.stats.skipped_links += 1;
                return Ok(false);
            };
            self.clear_existing(to)?;
            let target = match self.opts.tablespace_remap.get(&oid) {
                Some(t) => t.clone(),
                None => fs::read_link(from).map_err(|e| Error::io("read link", from, e))?,
            };
            std::os::unix::fs::symlink(&target, to)
                .map_err(|e| Error::io("create symlink", to, e))?;
            self.stats.symlinks += 1;
        } else if ft.is_file() {
            self.clear_existing(to)?;
            let (output, n) = copy_regular_file(from, to, &meta)?;
            self.sync.file_written(&output, to);
            self.stats.files += 1;
            self.stats.bytes += n;
        } else {
            return Err(Error::io(
                "copy",
                from,
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "not a file, directory or symlink",
                ),
            ));
        }
        Ok(false)
    }

    fn clear_existing(&self, to: &Path) -> Result<()> {
        match fs::symlink_metadata(to) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("stat", to, e)),
            Ok(m) if !m.is_dir() && self.opts.replace_existing => {
                fs::remove_file(to).map_err(|e| Error::io("remove", to, e))
            }
            Ok(_) => Err(Error::AlreadyExists {
                path: to.to_path_buf(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::testutil::*;
    use std::os::unix::fs::MetadataExt;

    fn opts() -> ExtractOptions {
        ExtractOptions {
            sync: SyncMethod::None,
            ..Default::default()
        }
    }

    fn extract(bytes: &[u8], dest: &Path) -> Result<ExtractStats> {
        extract_tar(bytes, dest, &opts())
    }

    /// Every path below `dir`, relative, sorted, with a kind marker.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let ft = e.file_type().unwrap();
                if ft.is_symlink() {
                    out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
                } else if ft.is_dir() {
                    out.push(format!("{rel}/"));
                    stack.push(p);
                } else {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    fn pgdata_tar() -> Vec<u8> {
        let mut t = Vec::new();
        file(&mut t, "backup_label", b"START WAL LOCATION: 0/2000028\n");
        dir(&mut t, "base/");
        dir(&mut t, "base/1/");
        file(&mut t, "base/1/PG_VERSION", b"15\n");
        entry(&mut t, b"base/1/1259", b'0', 0o640, b"", &vec![3u8; 9000]);
        dir(&mut t, "pg_tblspc/");
        symlink(&mut t, "pg_tblspc/16384", "/srv/ts1");
        symlink(&mut t, "pg_tblspc/16385", "/srv/ts2");
        entry(&mut t, b"pg_wal/", b'5', 0o750, b"", b"");
        hardlink(&mut t, "base/1/1259_copy", "base/1/1259");
        // Links PostgreSQL does not make are left out; modes never allow others in.
        symlink(&mut t, "recovery.signal", "/some/file");
        symlink(&mut t, "base/1/conf", "../../../outside");
        entry(&mut t, b"world", b'0', 0o777, b"", b"w");
        entry(&mut t, b"open/", b'5', 0o777, b"", b"");
        end(&mut t);
        t
    }

    #[test]
    fn stored_tar_streams_are_found_decoded_and_checked() {
        use pgbak_compress::pipeline::{Digests, ReadPipeline, WritePipeline};
        use pgbak_compress::{Codec, Compression, Level};
        let tar = pgdata_tar();
        for c in [Compression::None, Compression::Zstd, Compression::Gzip] {
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let mut w = WritePipeline::builder(&codec)
                .measure_plain(Digests::CRC32C)
                .measure_stored(Digests::CRC32C)
                .build(Vec::new())
                .unwrap();
            w.write_all(&tar).unwrap();
            let (stored, written) = w.finish().unwrap();

            let tmp = tempfile::tempdir().unwrap();
            let dest = tmp.path().join("pgdata");
            let read = ReadPipeline::builder()
                .measure_stored(Digests::CRC32C)
                .expect(written.plain.crc32c.unwrap(), written.plain.bytes);
            let (stats, piped) =
                extract_stored_tar(&stored[..], "base.tar", read, &dest, &opts()).unwrap();
            assert_eq!(piped, written, "{c}");
            // The hard link adds no bytes.
            assert_eq!(stats.bytes, 30 + 3 + 9000 + 1, "{c}");
            assert_eq!(fs::read(dest.join("base/1/PG_VERSION")).unwrap(), b"15\n");

            // Damage names the stream and leaves the error of the pipeline inside.
            let mut bad = stored.clone();
            let at = bad.len() / 2;
            bad[at] ^= 1;
            let dest = tmp.path().join("again");
            let read =
                ReadPipeline::builder().expect(written.plain.crc32c.unwrap(), written.plain.bytes);
            let err = extract_stored_tar(&bad[..], "b1/base.tar", read, &dest, &opts())
                .expect_err(c.name());
            assert!(err.to_string().contains("b1/base.tar"), "{c}: {err}");
        }
    }

    #[test]
    fn extracts_a_pgdata_tree_with_modes_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("new/pgdata");
        let mut o = opts();
        o.tablespace_remap
            .insert(16384, PathBuf::from("/restore/ts1"));
        let stats = extract_tar(&pgdata_tar()[..], &dest, &o).unwrap();
        let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(
            stats,
            ExtractStats {
                files: 4,
                bytes: 30 + 3 + 9000 + 1,
                dirs: 5,
                symlinks: 2,
                hard_links: 1,
                skipped_links: 2,
            }
        );
        assert_eq!(
            listing(&dest),
            [
                "backup_label",
                "base/",
                "base/1/",
                "base/1/1259",
                "base/1/1259_copy",
                "base/1/PG_VERSION",
                "open/",
                "pg_tblspc/",
                "pg_tblspc/16384 -> /restore/ts1",
                "pg_tblspc/16385 -> /srv/ts2",
                "pg_wal/",
                "world",
            ]
        );
        assert_eq!(mode("world"), 0o750);
        assert_eq!(mode("open"), 0o750);
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("base"), 0o700);
        assert_eq!(mode("pg_wal"), 0o750);
        assert_eq!(mode("backup_label"), 0o600);
        assert_eq!(mode("base/1/1259"), 0o640);
        assert_eq!(fs::read(dest.join("base/1/1259")).unwrap(), vec![3u8; 9000]);
        let m = fs::metadata(dest.join("base/1/PG_VERSION")).unwrap();
        assert_eq!(m.mtime(), 1_700_000_000);
        assert_eq!(
            fs::metadata(dest.join("base/1/1259")).unwrap().ino(),
            fs::metadata(dest.join("base/1/1259_copy")).unwrap().ino()
        );
    }

    /// Runs a hostile archive against a fresh destination inside a sandbox and checks that it is
    /// refused and that nothing appeared outside the destination.
    fn assert_refused(tar: &[u8], expect: &str) {
        let sandbox = tempfile::tempdir().unwrap();
        let dest = sandbox.path().join("dest");
        let outside = sandbox.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), b"original").unwrap();
        let err = extract(tar, &dest).unwrap_err();
        assert!(matches!(err, Error::HostileTar { .. }), "{expect}: {err}");
        assert!(
            err.to_string().contains(expect),
            "{err} does not mention {expect}"
        );
        let mut names: Vec<_> = fs::read_dir(sandbox.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["dest", "outside"]);
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
        assert_eq!(listing(&outside), ["victim"]);
    }

    #[test]
    fn parent_dir_escape_is_refused() {
        let mut t = Vec::new();
        file(&mut t, "../outside/victim", b"pwned");
        end(&mut t);
        assert_refused(&t, "..");
        let mut t = Vec::new();
        file(&mut t, "a/../../escape", b"pwned");
        end(&mut t);
        assert_refused(&t, "..");
    }

    #[test]
    fn absolute_names_are_refused() {
        let sandbox = tempfile::tempdir().unwrap();
        let target = sandbox.path().join("outside/victim");
        let mut t = Vec::new();
        file(&mut t, target.to_str().unwrap(), b"pwned");
        end(&mut t);
        assert_refused(&t, "absolute");
        // The victim of this archive lives in its own sandbox: it must be untouched too.
        assert!(!target.exists());
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let sandbox = tempfile::tempdir().unwrap();
        let outside = sandbox.path().join("outside");
        fs::create_dir(&outside).unwrap();
        for (link_name, write_name) in [
            ("pg_tblspc/16384", "pg_tblspc/16384/PG_15/x"),
            ("l", "l/victim"),
            ("recovery.signal", "recovery.signal"),
        ] {
            let mut t = Vec::new();
            dir(&mut t, "pg_tblspc/");
            symlink(&mut t, link_name, outside.to_str().unwrap());
            file(&mut t, write_name, b"pwned");
            end(&mut t);
            let dest = sandbox
                .path()
                .join(format!("dest-{}", link_name.replace('/', "_")));
            let r = extract(&t, &dest);
            assert_eq!(
                fs::read_dir(&outside).unwrap().count(),
                0,
                "wrote through {link_name}"
            );
            let kept = fs::symlink_metadata(dest.join(link_name))
                .unwrap()
                .file_type()
                .is_symlink();
            if link_name.starts_with("pg_tblspc/") {
                // The link itself was created, as PostgreSQL's tablespace links must be, and
                // nothing is written through it.
                let err = r.unwrap_err();
                assert!(matches!(err, Error::HostileTar { .. }), "{err}");
                assert!(kept);
            } else {
                // Other links are left out: the name holds what the archive wrote after it.
                assert_eq!(r.unwrap().skipped_links, 1);
                assert!(!kept, "{link_name} must not be a link");
            }
        }
        // A directory entry over a symlink would chmod through it.
        let mut t = Vec::new();
        symlink(&mut t, "pg_tblspc/16384", "/");
        dir(&mut t, "pg_tblspc/16384/");
        end(&mut t);
        assert_refused(&t, "symlink");
        // Nor may a file replace a symlink (O_EXCL refuses) unless replacing is allowed.
        let mut t = Vec::new();
        symlink(&mut t, "pg_tblspc/16386", "../../outside/victim");
        file(&mut t, "pg_tblspc/16386", b"pwned");
        end(&mut t);
        let sb = tempfile::tempdir().unwrap();
        fs::create_dir(sb.path().join("outside")).unwrap();
        fs::write(sb.path().join("outside/victim"), b"original").unwrap();
        assert!(matches!(
            extract(&t, &sb.path().join("dest")),
            Err(Error::AlreadyExists { .. })
        ));
        let mut o = opts();
        o.replace_existing = true;
        extract_tar(&t[..], &sb.path().join("dest2"), &o).unwrap();
        assert_eq!(
            fs::read(sb.path().join("outside/victim")).unwrap(),
            b"original"
        );
        assert_eq!(
            fs::read(sb.path().join("dest2/pg_tblspc/16386")).unwrap(),
            b"pwned"
        );
    }

    #[test]
    fn escaping_hard_links_are_refused() {
        let mut t = Vec::new();
        hardlink(&mut t, "h", "../outside/victim");
        end(&mut t);
        assert_refused(&t, "hard link target");
        let mut t = Vec::new();
        hardlink(&mut t, "h", "/etc/passwd");
        end(&mut t);
        assert_refused(&t, "hard link target");
        // Through a symlink that points outside.
        let sandbox = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        symlink(&mut t, "pg_tblspc/7", sandbox.path().to_str().unwrap());
        hardlink(&mut t, "h", "pg_tblspc/7/victim");
        end(&mut t);
        assert_refused(&t, "hard link target");
        // To a symlink (which could later be followed).
        let mut t = Vec::new();
        symlink(&mut t, "pg_tblspc/7", "/etc/passwd");
        hardlink(&mut t, "h", "pg_tblspc/7");
        end(&mut t);
        assert_refused(&t, "hard link target");
    }

    #[test]
    fn implicit_parents_and_dot_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        dir(&mut t, "./");
        file(&mut t, "./a/b/c", b"x");
        end(&mut t);
        let stats = extract(&t, tmp.path()).unwrap();
        assert_eq!(stats.files, 1);
        assert_eq!(fs::read(tmp.path().join("a/b/c")).unwrap(), b"x");
        assert_eq!(
            fs::metadata(tmp.path().join("a")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn existing_files_are_not_overwritten_by_default() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), b"keep").unwrap();
        let mut t = Vec::new();
        file(&mut t, "f", b"new");
        end(&mut t);
        assert!(matches!(
            extract(&t, tmp.path()),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"keep");
    }

    #[test]
    fn read_only_directories_get_their_mode_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        entry(&mut t, b"ro/", b'5', 0o500, b"", b"");
        file(&mut t, "ro/f", b"x");
        end(&mut t);
        extract(&t, tmp.path()).unwrap();
        assert_eq!(
            fs::metadata(tmp.path().join("ro")).unwrap().mode() & 0o777,
            0o500
        );
        assert_eq!(fs::read(tmp.path().join("ro/f")).unwrap(), b"x");
        fs::set_permissions(tmp.path().join("ro"), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn devices_and_truncated_streams_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        entry(&mut t, b"dev", b'3', 0o600, b"", b"");
        end(&mut t);
        assert!(matches!(
            extract(&t, &tmp.path().join("a")),
            Err(Error::UnsupportedEntry { .. })
        ));
        let t = pgdata_tar();
        let err = extract(&t[..t.len() - 1024], &tmp.path().join("b")).unwrap_err();
        assert!(matches!(err, Error::TruncatedTar { .. }), "{err}");
    }

    #[test]
    fn every_sync_method_extracts_the_same_tree() {
        for sync in [SyncMethod::Fsync, SyncMethod::Syncfs, SyncMethod::None] {
            let tmp = tempfile::tempdir().unwrap();
            let o = ExtractOptions {
                sync,
                ..Default::default()
            };
            extract_tar(&pgdata_tar()[..], &tmp.path().join("d"), &o).unwrap();
            assert_eq!(listing(&tmp.path().join("d")).len(), 12, "{sync:?}");
        }
    }

    #[test]
    fn copy_tree_copies_files_links_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        extract(&pgdata_tar(), &src).unwrap();
        fs::set_permissions(src.join("pg_wal"), fs::Permissions::from_mode(0o750)).unwrap();
        let dest = tmp.path().join("dest");
        let mut o = opts();
        o.tablespace_remap
            .insert(16385, PathBuf::from("/elsewhere"));
        // A link planted in a plain backup (not one PostgreSQL makes) is left out.
        std::os::unix::fs::symlink("/etc/passwd", src.join("postgresql.auto.conf")).unwrap();
        let stats = copy_tree_with(&src, &dest, &o).unwrap();
        assert_eq!(stats.files, 5); // hard links become separate files
        assert_eq!(stats.symlinks, 2);
        assert_eq!(stats.dirs, 5);
        assert_eq!(stats.skipped_links, 1);
        fs::remove_file(src.join("postgresql.auto.conf")).unwrap();
        let mut want = listing(&src);
        for w in want.iter_mut() {
            if w.starts_with("pg_tblspc/16385") {
                *w = "pg_tblspc/16385 -> /elsewhere".into();
            }
        }
        assert_eq!(listing(&dest), want);
        assert_eq!(fs::read(dest.join("base/1/1259")).unwrap(), vec![3u8; 9000]);
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dest.join("pg_wal")), 0o750);
        assert_eq!(mode(&dest.join("base/1/1259")), 0o640);
        assert_eq!(
            fs::metadata(dest.join("base/1/1259")).unwrap().mtime(),
            fs::metadata(src.join("base/1/1259")).unwrap().mtime()
        );
        // A second copy onto the same tree collides unless replacing is allowed.
        assert!(matches!(
            copy_tree_with(&src, &dest, &opts()),
            Err(Error::AlreadyExists { .. })
        ));
        o.replace_existing = true;
        copy_tree_with(&src, &dest, &o).unwrap();
        copy_tree(&src, &tmp.path().join("durable")).unwrap();
        // Into itself: refused instead of recursing.
        assert!(matches!(
            copy_tree_with(&src, &src.join("base/inner"), &opts()),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            copy_tree_with(&src, &src, &opts()),
            Err(Error::Io { .. })
        ));
    }

    /// Times the two durable sync methods on thousands of small files. Run with
    /// `cargo test -p pgbak-copy --release -- --ignored sync_methods_timing --nocapture`.
    #[test]
    #[ignore = "timing measurement, not a check"]
    fn sync_methods_timing() {
        let mut t = Vec::new();
        for d in 0..50 {
            dir(&mut t, &format!("base/{d}/"));
        }
        for i in 0..5000 {
            file(
                &mut t,
                &format!("base/{}/{i}", i % 50),
                &vec![i as u8; 8192],
            );
        }
        end(&mut t);
        let base = std::env::var_os("PGBAK_SYNC_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        for round in 0..2 {
            for sync in [SyncMethod::Fsync, SyncMethod::Syncfs, SyncMethod::None] {
                let tmp = tempfile::tempdir_in(&base).unwrap();
                let o = ExtractOptions {
                    sync,
                    ..Default::default()
                };
                let start = std::time::Instant::now();
                extract_tar(&t[..], &tmp.path().join("d"), &o).unwrap();
                println!("round {round} {sync:?}: {:?}", start.elapsed());
            }
        }
    }
}
