//! Delta restore: restoring onto a directory that already holds an older copy of the same
//! cluster, writing only what differs.
//!
//! Each file of the backup is compared byte for byte with the file of the same name in the
//! destination while the backup's bytes go by (no checksum is trusted: the comparison reads both
//! sides). A file of the same size and the same bytes is left alone (its mode and modification
//! time are set); anything else is written afresh under a temporary name (`O_EXCL|O_NOFOLLOW`)
//! and renamed over the name, so a link there is replaced and never written through. When the
//! stream or tree is done, everything the backup does not have is removed; links are removed as
//! links, never followed.

use crate::durable::SyncTracker;
use crate::extract::{
    feed_stored_tar, hostile, mtime_to_system, ExtractOptions, TarExtractor, MODE_MASK,
};
use crate::tar::{EntryKind, TarEntry, TarVisitor};
use crate::{Error, Result};
use pgbak_compress::pipeline::{PipelineStats, ReadPipelineBuilder};
use pgbak_storage::staging;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a restore wrote, kept and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Regular files written (new, or different from the destination's).
    pub files_written: u64,
    /// Bytes of the files written.
    pub bytes_written: u64,
    /// Files already in the destination with the same size and bytes, left alone.
    pub files_unchanged: u64,
    /// Bytes of the files left alone.
    pub bytes_unchanged: u64,
    /// Files, links and folders of the destination that the backup does not have, removed
    /// (the contents of a removed folder counted one by one).
    pub removed: u64,
}

impl RestoreStats {
    /// Adds `other` to these figures.
    pub fn add(&mut self, other: &RestoreStats) {
        self.files_written += other.files_written;
        self.bytes_written += other.bytes_written;
        self.files_unchanged += other.files_unchanged;
        self.bytes_unchanged += other.bytes_unchanged;
        self.removed += other.removed;
    }
}

/// How a [`DeltaFile`] ended.
pub(crate) enum Outcome {
    /// The destination already held these bytes.
    Unchanged(u64),
    /// The file was written, this many bytes.
    Written(u64),
}

enum State {
    /// The destination's file, of the expected size, equal to the backup's so far.
    Comparing(File),
    /// A fresh temporary file that will be renamed over the name.
    Writing { tmp: PathBuf, out: BufWriter<File> },
}

/// One file of a backup being restored over whatever has its name.
pub(crate) struct DeltaFile {
    path: PathBuf,
    mode: u32,
    mtime: SystemTime,
    state: Option<State>,
    /// Bytes of the backup's file seen so far.
    seen: u64,
    buf: Vec<u8>,
}

const WRITE_BUFFER: usize = 256 * 1024;

impl DeltaFile {
    /// Starts restoring a file of `size` bytes at `path`: compared with the file there when it
    /// is a regular file of that size, written afresh otherwise.
    pub(crate) fn start(path: &Path, size: u64, mode: u32, mtime: SystemTime) -> Result<Self> {
        let mut f = DeltaFile {
            path: path.to_path_buf(),
            mode: mode & MODE_MASK,
            mtime,
            state: None,
            seen: 0,
            buf: Vec::new(),
        };
        let same_size = matches!(fs::symlink_metadata(path), Ok(m) if m.file_type().is_file() && m.len() == size);
        f.state = Some(match same_size {
            true => match staging::open_regular(path) {
                Ok(old) => State::Comparing(old),
                Err(_) => f.fresh()?,
            },
            false => f.fresh()?,
        });
        Ok(f)
    }

    fn fresh(&self) -> Result<State> {
        let tmp = staging::temp_name(&self.path);
        let out = staging::create_fresh(&tmp, staging::PRIVATE_FILE)
            .map_err(|e| Error::io("create", &tmp, e))?;
        Ok(State::Writing {
            tmp,
            out: BufWriter::with_capacity(WRITE_BUFFER, out),
        })
    }

    /// Leaves comparing: a fresh file that starts with the `seen` bytes that matched.
    fn diverge(&mut self) -> Result<()> {
        let Some(State::Comparing(mut old)) = self.state.take() else {
            return Ok(());
        };
        // The state holds the temporary file before anything can fail, so Drop removes it.
        self.state = Some(self.fresh()?);
        let Some(State::Writing { out, .. }) = self.state.as_mut() else {
            unreachable!("fresh() makes a writing state")
        };
        old.rewind().map_err(|e| Error::io("read", &self.path, e))?;
        let copied = io::copy(&mut (&mut old).take(self.seen), out)
            .map_err(|e| Error::io("copy", &self.path, e))?;
        if copied != self.seen {
            let short = io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while read");
            return Err(Error::io("read", &self.path, short));
        }
        Ok(())
    }

    /// The next bytes of the backup's file.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(State::Comparing(old)) = self.state.as_mut() {
            self.buf.resize(data.len(), 0);
            let same = match old.read_exact(&mut self.buf) {
                Ok(()) => self.buf[..] == *data,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
                Err(e) => return Err(Error::io("read", &self.path, e)),
            };
            if same {
                self.seen += data.len() as u64;
                return Ok(());
            }
            self.diverge()?;
        }
        if let Some(State::Writing { out, .. }) = self.state.as_mut() {
            out.write_all(data)
                .map_err(|e| Error::io("write", &self.path, e))?;
        }
        self.seen += data.len() as u64;
        Ok(())
    }

    /// Ends the file: leaves the destination's copy in place or renames the new one over it.
    pub(crate) fn finish(mut self, sync: &mut SyncTracker) -> Result<Outcome> {
        if let Some(State::Comparing(old)) = &self.state {
            let len = old
                .metadata()
                .map_err(|e| Error::io("stat", &self.path, e))?
                .len();
            if len == self.seen {
                old.set_permissions(fs::Permissions::from_mode(self.mode))
                    .map_err(|e| Error::io("chmod", &self.path, e))?;
                old.set_modified(self.mtime)
                    .map_err(|e| Error::io("set mtime", &self.path, e))?;
                return Ok(Outcome::Unchanged(self.seen));
            }
            self.diverge()?;
        }
        let Some(State::Writing { tmp, out }) = self.state.take() else {
            unreachable!("a delta file is comparing or writing")
        };
        // From here the temporary file is ours to remove on failure.
        let result = (|| {
            let file = out
                .into_inner()
                .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
            file.set_permissions(fs::Permissions::from_mode(self.mode))
                .map_err(|e| Error::io("chmod", &tmp, e))?;
            file.set_modified(self.mtime)
                .map_err(|e| Error::io("set mtime", &tmp, e))?;
            sync.file_written(&file, &self.path);
            drop(file);
            replace_with(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| Outcome::Written(self.seen))
    }
}

impl Drop for DeltaFile {
    fn drop(&mut self) {
        if let Some(State::Writing { tmp, .. }) = &self.state {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Renames `tmp` over `path`; a folder in the way is removed first (without following links).
fn replace_with(tmp: &Path, path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))?;
        }
        _ => {}
    }
    fs::rename(tmp, path).map_err(|e| Error::io("rename", path, e))
}

/// Removes what stands at `path` unless it is a real folder.
pub(crate) fn clear_non_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes the real folder at `path`, if there is one (a link is left for the caller).
pub(crate) fn clear_dir(path: &Path) -> Result<u64> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let n = count_below(path);
            fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))?;
            Ok(n + 1)
        }
        _ => Ok(0),
    }
}

/// Entries below a real folder, never following links.
fn count_below(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}

/// Records `rel` and every folder above it as part of the backup.
pub(crate) fn note(seen: &mut HashSet<PathBuf>, rel: &Path) {
    let mut p = rel.to_path_buf();
    while !p.as_os_str().is_empty() && seen.insert(p.clone()) {
        if !p.pop() {
            break;
        }
    }
}

/// Removes every entry below `root` whose relative path is not in `keep`; folders in `keep` are
/// searched, links never followed. Returns how many entries went.
pub(crate) fn remove_extras(root: &Path, keep: &HashSet<PathBuf>) -> Result<u64> {
    let mut removed = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
        for item in rd {
            let item = item.map_err(|e| Error::io("read directory", &dir, e))?;
            let child = rel.join(item.file_name());
            let path = item.path();
            // The entry's own type: a link is a link, whatever it points to.
            let ft = item.file_type().map_err(|e| Error::io("stat", &path, e))?;
            if keep.contains(&child) {
                if ft.is_dir() {
                    stack.push(child);
                }
                continue;
            }
            if ft.is_dir() {
                removed += clear_dir(&path)?;
            } else {
                fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// A [`TarVisitor`] that restores a tar stream onto an older copy of its tree: directories and
/// links as [`TarExtractor`] makes them, files compared and written only when they differ, and
/// at [`DeltaExtractor::finish`] everything the stream did not name removed.
pub struct DeltaExtractor {
    inner: TarExtractor,
    seen: HashSet<PathBuf>,
    current: Option<DeltaFile>,
    stats: RestoreStats,
    progress: Option<crate::Meter>,
}

impl DeltaExtractor {
    /// A delta extractor writing below `dest` (created if missing). Existing files and links are
    /// always replaced, whatever `opts.replace_existing` says.
    pub fn new(dest: &Path, mut opts: ExtractOptions) -> Result<Self> {
        opts.replace_existing = true;
        // Files are compared here, and counted here: the inner extractor makes the rest.
        let progress = opts.progress.take();
        Ok(DeltaExtractor {
            inner: TarExtractor::new(dest, opts)?,
            seen: HashSet::new(),
            current: None,
            stats: RestoreStats::default(),
            progress,
        })
    }

    /// Removes what the stream did not name, applies the deferred modes and makes the tree
    /// durable.
    pub fn finish(mut self) -> Result<RestoreStats> {
        if let Some(open) = self.current.take() {
            let eof = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ended inside this file",
            );
            return Err(Error::io("extract", open.path.clone(), eof));
        }
        self.stats.removed += remove_extras(self.inner.root(), &self.seen)?;
        self.inner.finish()?;
        Ok(self.stats)
    }
}

impl TarVisitor for DeltaExtractor {
    fn entry_start(&mut self, entry: &TarEntry) -> Result<()> {
        match entry.kind {
            EntryKind::File => {
                let (rel, abs) = self.inner.prepare(entry)?;
                if rel.as_os_str().is_empty() {
                    return Err(hostile(entry, "a file entry names the destination itself"));
                }
                note(&mut self.seen, &rel);
                self.current = Some(DeltaFile::start(
                    &abs,
                    entry.size,
                    entry.mode,
                    mtime_to_system(entry.mtime),
                )?);
                Ok(())
            }
            EntryKind::Directory => {
                let (rel, abs) = self.inner.prepare(entry)?;
                if !rel.as_os_str().is_empty() {
                    clear_non_dir(&abs)?;
                }
                self.inner.directory(entry)?;
                note(&mut self.seen, &rel);
                Ok(())
            }
            EntryKind::Symlink | EntryKind::HardLink => {
                let (rel, abs) = self.inner.prepare(entry)?;
                let before = self.inner.stats().skipped_links;
                let made_here = entry.kind == EntryKind::HardLink
                    || crate::extract::tablespace_oid(&rel).is_some();
                if made_here && !rel.as_os_str().is_empty() {
                    // A folder where the link goes: TarExtractor replaces only files and links.
                    self.stats.removed += clear_dir(&abs)?;
                }
                match entry.kind {
                    EntryKind::Symlink => self.inner.symlink(entry)?,
                    _ => self.inner.hard_link(entry)?,
                }
                if self.inner.stats().skipped_links == before {
                    note(&mut self.seen, &rel);
                }
                Ok(())
            }
            EntryKind::Other(_) => self.inner.entry_start(entry),
        }
    }

    fn entry_data(&mut self, data: &[u8]) -> Result<()> {
        match self.current.as_mut() {
            Some(f) => {
                crate::meter::tick(&self.progress, data.len(), self.inner.root())?;
                f.write(data)
            }
            None => self.inner.entry_data(data),
        }
    }

    fn entry_end(&mut self) -> Result<()> {
        let Some(f) = self.current.take() else {
            return self.inner.entry_end();
        };
        match f.finish(&mut self.inner.sync)? {
            Outcome::Unchanged(n) => {
                self.stats.files_unchanged += 1;
                self.stats.bytes_unchanged += n;
            }
            Outcome::Written(n) => {
                self.stats.files_written += 1;
                self.stats.bytes_written += n;
            }
        }
        Ok(())
    }

    fn archive_end(&mut self) -> Result<()> {
        self.inner.archive_end()
    }
}

/// [`crate::extract_stored_tar`] onto an older copy of the tree: the delta restore of one
/// stored tar stream below `dest`.
pub fn extract_stored_tar_delta<R: Read + Send>(
    source: R,
    what: &str,
    read: ReadPipelineBuilder,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<(RestoreStats, PipelineStats)> {
    let mut extractor = DeltaExtractor::new(dest, opts.clone())?;
    let piped = feed_stored_tar(source, what, read, &mut extractor)?;
    Ok((extractor.finish()?, piped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract_tar, feed_tar};
    use crate::tar::testutil::*;
    use crate::tree_restore::{restore_tree, TreeRestoreOptions};
    use crate::SyncMethod;
    use std::os::unix::fs::MetadataExt;

    fn opts() -> ExtractOptions {
        ExtractOptions {
            sync: SyncMethod::None,
            ..Default::default()
        }
    }

    fn delta(tar: &[u8], dest: &Path) -> Result<RestoreStats> {
        let mut x = DeltaExtractor::new(dest, opts())?;
        feed_tar(tar, "test", &mut x)?;
        x.finish()
    }

    fn tree_v1() -> Vec<u8> {
        let mut t = Vec::new();
        dir(&mut t, "base/");
        file(&mut t, "base/same", &[7u8; 20000]);
        file(&mut t, "base/changed", &[1u8; 20000]);
        file(&mut t, "base/grows", b"short");
        file(&mut t, "gone", b"old only");
        dir(&mut t, "pg_wal/");
        file(&mut t, "pg_wal/000000010000000000000001", &[9u8; 1000]);
        end(&mut t);
        t
    }

    fn tree_v2() -> Vec<u8> {
        let mut t = Vec::new();
        dir(&mut t, "base/");
        file(&mut t, "base/same", &[7u8; 20000]);
        let mut changed = vec![1u8; 20000];
        changed[15000] = 2;
        file(&mut t, "base/changed", &changed);
        file(&mut t, "base/grows", b"longer now");
        file(&mut t, "new", b"fresh");
        file(&mut t, "victim_link", b"a file now");
        dir(&mut t, "pg_wal/");
        end(&mut t);
        t
    }

    #[test]
    fn delta_writes_only_what_differs_and_removes_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("d");
        extract_tar(&tree_v1()[..], &dest, &opts()).unwrap();
        // Things of an older life of the copy: a stray folder, a link where the backup has a file.
        fs::create_dir_all(dest.join("log/sub")).unwrap();
        fs::write(dest.join("log/sub/x"), b"x").unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"original").unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("victim_link")).unwrap();
        let same_ino = fs::metadata(dest.join("base/same")).unwrap().ino();

        let s = delta(&tree_v2(), &dest).unwrap();
        assert_eq!(s.files_unchanged, 1);
        assert_eq!(s.bytes_unchanged, 20000);
        assert_eq!(s.files_written, 4);
        assert_eq!(s.bytes_written, 20000 + 10 + 5 + 10);
        // gone, the WAL segment, log/, log/sub/, log/sub/x
        assert_eq!(s.removed, 5);
        assert_eq!(
            fs::metadata(dest.join("base/same")).unwrap().ino(),
            same_ino
        );
        assert_eq!(fs::read(dest.join("base/changed")).unwrap()[15000], 2);
        assert_eq!(fs::read(dest.join("base/grows")).unwrap(), b"longer now");
        assert_eq!(
            fs::read(&outside).unwrap(),
            b"original",
            "never written through"
        );
        assert!(fs::symlink_metadata(dest.join("victim_link"))
            .unwrap()
            .is_file());
        assert!(!dest.join("gone").exists() && !dest.join("log").exists());
        assert_eq!(fs::read_dir(dest.join("pg_wal")).unwrap().count(), 0);
        // No temporary file is left, and a second pass finds nothing to do.
        let s = delta(&tree_v2(), &dest).unwrap();
        assert_eq!((s.files_written, s.removed, s.files_unchanged), (0, 0, 5));
    }

    #[test]
    fn a_truncated_stream_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("d");
        extract_tar(&tree_v1()[..], &dest, &opts()).unwrap();
        let t = tree_v2();
        assert!(delta(&t[..t.len() - 1024 - 512 - 512], &dest).is_err());
        let mut names = Vec::new();
        for e in fs::read_dir(dest.join("base")).unwrap() {
            names.push(e.unwrap().file_name().into_string().unwrap());
        }
        assert!(
            names.iter().all(|n| !n.starts_with(staging::TEMP_PREFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn parallel_tree_restore_copies_and_deltas() {
        let tmp = tempfile::tempdir().unwrap();
        let src1 = tmp.path().join("src1");
        let src2 = tmp.path().join("src2");
        extract_tar(&tree_v1()[..], &src1, &opts()).unwrap();
        extract_tar(&tree_v2()[..], &src2, &opts()).unwrap();
        fs::create_dir(src2.join("pg_tblspc")).unwrap();
        std::os::unix::fs::symlink("/somewhere", src2.join("pg_tblspc/16384")).unwrap();
        let dest = tmp.path().join("dest");
        let full = TreeRestoreOptions {
            extract: opts(),
            jobs: 4,
            delta: false,
        };
        let s = restore_tree(&src1, &dest, &full).unwrap();
        assert_eq!((s.files_written, s.bytes_written), (5, 41013));
        assert!(restore_tree(&src1, &dest, &full).is_err(), "not empty");
        // The folder the tablespace link goes to is in the way: removed, link made.
        fs::create_dir_all(dest.join("pg_tblspc/16384/PG_15")).unwrap();
        let d = TreeRestoreOptions {
            delta: true,
            ..full
        };
        let s = restore_tree(&src2, &dest, &d).unwrap();
        assert_eq!(s.files_unchanged, 1);
        assert_eq!(s.files_written, 4);
        assert_eq!(
            s.removed,
            2 + 2,
            "gone, a WAL segment, the folder and PG_15"
        );
        assert_eq!(
            fs::read_link(dest.join("pg_tblspc/16384")).unwrap(),
            Path::new("/somewhere")
        );
        let read = |d: &Path| {
            let mut v: Vec<_> = ["base/same", "base/changed", "base/grows", "new"]
                .iter()
                .map(|p| fs::read(d.join(p)).unwrap())
                .collect();
            v.push(vec![fs::read_dir(d).unwrap().count() as u8]);
            v
        };
        assert_eq!(read(&dest), read(&src2));
    }
}
