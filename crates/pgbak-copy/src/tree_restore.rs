//! Restoring a plain backup tree with several workers, and optionally onto an older copy of it
//! (delta restore, see [`crate::delta`]).
//!
//! Folders and links are made first, in one pass (they are few and cheap); then the regular
//! files, largest first, are shared out between the workers, each copying whole files. The same
//! rules as [`crate::copy_tree`] hold: only `pg_tblspc/<oid>` links are made, files are created
//! fresh (`O_EXCL|O_NOFOLLOW`), modes are masked, and the tree is durable on return.

use crate::delta::{self, DeltaFile, Outcome, RestoreStats};
use crate::durable::SyncTracker;
use crate::extract::{
    apply_deferred_modes, copy_regular_file, set_dir_mode, tablespace_oid, ExtractOptions,
    ExtractStats, TreeCopier, MODE_MASK,
};
use crate::{Error, Result};
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How [`restore_tree`] writes.
#[derive(Debug, Clone, Default)]
pub struct TreeRestoreOptions {
    /// Links, replacing and durability as for [`crate::copy_tree_with`].
    pub extract: ExtractOptions,
    /// Files copied at once (at least one).
    pub jobs: usize,
    /// Compare with what `dest` already holds, write only what differs and remove what the
    /// source does not have.
    pub delta: bool,
}

/// Size of the buffer each worker compares with.
const COMPARE_BUFFER: usize = 1 << 20;

/// Copies the plain tree `src` to `dest` (created if missing) with `opts.jobs` workers.
pub fn restore_tree(src: &Path, dest: &Path, opts: &TreeRestoreOptions) -> Result<RestoreStats> {
    let mut xopts = opts.extract.clone();
    xopts.replace_existing |= opts.delta;
    let (src_meta, sync) = crate::extract::prepare_tree_copy(src, dest, xopts.sync)?;
    let mut copier = TreeCopier {
        opts: &xopts,
        sync,
        stats: ExtractStats::default(),
        deferred_modes: Vec::new(),
    };
    set_dir_mode(
        dest,
        src_meta.permissions().mode() & MODE_MASK,
        &mut copier.deferred_modes,
    )?;
    let mut stats = RestoreStats::default();
    let mut seen = HashSet::new();
    let mut files: Vec<(PathBuf, fs::Metadata)> = Vec::new();

    // Folders and links, and the list of files.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src_dir = src.join(&rel);
        let entries =
            fs::read_dir(&src_dir).map_err(|e| Error::io("read directory", &src_dir, e))?;
        for item in entries {
            let item = item.map_err(|e| Error::io("read directory", &src_dir, e))?;
            let rel_child = rel.join(item.file_name());
            let from = item.path();
            let to = dest.join(&rel_child);
            let meta = fs::symlink_metadata(&from).map_err(|e| Error::io("stat", &from, e))?;
            let ft = meta.file_type();
            if ft.is_file() {
                delta::note(&mut seen, &rel_child);
                files.push((rel_child, meta));
                continue;
            }
            if opts.delta {
                if ft.is_dir() {
                    delta::clear_non_dir(&to)?;
                } else if ft.is_symlink() && tablespace_oid(&rel_child).is_some() {
                    stats.removed += delta::clear_dir(&to)?;
                }
            }
            let skipped = copier.stats.skipped_links;
            if copier.copy_entry(&from, &to, &rel_child)? {
                stack.push(rel_child.clone());
            }
            if copier.stats.skipped_links == skipped {
                delta::note(&mut seen, &rel_child);
            }
        }
        copier.sync.dir_touched(&dest.join(&rel));
    }

    // The files, largest first so that no worker is left with a big one at the end.
    files.sort_by_key(|(_, m)| std::cmp::Reverse(m.len()));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let written = Mutex::new(Vec::new());
    let workers = opts.jobs.clamp(1, files.len().max(1));
    let results: Vec<Result<RestoreStats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<RestoreStats> {
                    let mut mine = RestoreStats::default();
                    let mut tracker = SyncTracker::new(xopts.sync, dest);
                    let mut buf = vec![0u8; COMPARE_BUFFER];
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((rel, meta)) = files.get(i) else {
                            break;
                        };
                        let r = restore_file(
                            &src.join(rel),
                            &dest.join(rel),
                            meta,
                            opts.delta,
                            xopts.replace_existing,
                            &mut tracker,
                            &mut buf,
                        );
                        let r = match r {
                            Ok(Outcome::Written(n) | Outcome::Unchanged(n)) => {
                                crate::meter::tick(&xopts.progress, n as usize, &dest.join(rel))
                                    .and(r)
                            }
                            e => e,
                        };
                        match r {
                            Ok(Outcome::Written(n)) => {
                                mine.files_written += 1;
                                mine.bytes_written += n;
                                written
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(dest.join(rel));
                            }
                            Ok(Outcome::Unchanged(n)) => {
                                mine.files_unchanged += 1;
                                mine.bytes_unchanged += n;
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::io(
                        "copy",
                        dest,
                        io::Error::other("a copy worker panicked"),
                    ))
                })
            })
            .collect()
    });
    for r in results {
        stats.add(&r?);
    }
    for path in written.into_inner().unwrap_or_else(|p| p.into_inner()) {
        copier.sync.file_closed(&path);
    }
    if opts.delta {
        stats.removed += delta::remove_extras(dest, &seen)?;
    }
    apply_deferred_modes(&mut copier.deferred_modes)?;
    copier.sync.finish()?;
    Ok(stats)
}

/// Restores one regular file: copied whole, or (delta) compared with the destination's first.
fn restore_file(
    from: &Path,
    to: &Path,
    meta: &fs::Metadata,
    delta: bool,
    replace: bool,
    sync: &mut SyncTracker,
    buf: &mut [u8],
) -> Result<Outcome> {
    if !delta {
        if replace {
            match fs::symlink_metadata(to) {
                Ok(m) if !m.is_dir() => {
                    fs::remove_file(to).map_err(|e| Error::io("remove", to, e))?
                }
                _ => {}
            }
        }
        let (file, n) = copy_regular_file(from, to, meta)?;
        sync.file_written(&file, to);
        return Ok(Outcome::Written(n));
    }
    let mtime = meta.modified().map_err(|e| Error::io("stat", from, e))?;
    let mut input =
        pgbak_storage::staging::open_regular(from).map_err(|e| Error::io("open", from, e))?;
    let mut out = DeltaFile::start(to, meta.len(), meta.permissions().mode(), mtime)?;
    loop {
        let n = match input.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", from, e)),
        };
        out.write(&buf[..n])?;
    }
    out.finish(sync)
}
