//! The data files of a local recovery: checking the destination (empty, or with `--delta-restore`
//! an older copy of the same cluster that is not running), and writing the backup's trees into
//! it with several workers: a plain backup's files copied by `jobs` workers, a tar backup's
//! streams (one per tablespace) decompressed and extracted side by side.

use crate::backup_scan::StoredArchive;
use crate::catalogue::BackupInfo;
use crate::recover::{extract_archive, find_archive, RecoverOptions};
use crate::server::Server;
use crate::{Error, Result};
use pgbak_copy::{ExtractOptions, RestoreStats, TreeRestoreOptions};
use pgbak_storage::staging;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What the data restore of a recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// Workers used (files of a plain backup, streams of a tar backup, WAL files).
    pub jobs: usize,
    /// Whether the destination's older copy was updated in place (`--delta-restore`).
    pub delta: bool,
    /// Data files written.
    pub files_written: u64,
    /// Bytes of the data files written.
    pub bytes_written: u64,
    /// Files the destination already held with the same size and bytes (delta only).
    pub files_unchanged: u64,
    /// Bytes of those files.
    pub bytes_unchanged: u64,
    /// Files, links and folders of the destination that the backup does not have, removed
    /// (delta only).
    pub removed: u64,
}

impl RestoreReport {
    fn add(&mut self, s: &RestoreStats) {
        self.files_written += s.files_written;
        self.bytes_written += s.bytes_written;
        self.files_unchanged += s.files_unchanged;
        self.bytes_unchanged += s.bytes_unchanged;
        self.removed += s.removed;
    }
}

/// Refuses a destination the restore must not write into, before anything is written: without
/// `--delta-restore` a non-empty destination or tablespace location (unless `--force`); with it,
/// a destination that is not an older copy of this backup's cluster, whose server is running, or
/// a non-empty tablespace location that is not one of its tablespaces.
pub(crate) fn check_destinations(
    backup: &BackupInfo,
    opts: &RecoverOptions,
    locations: &BTreeMap<u32, PathBuf>,
) -> Result<()> {
    if !opts.delta_on() || is_empty_or_missing(&opts.dest)? {
        crate::recover::ensure_empty_or_missing(&opts.dest, opts.force, "destination")?;
        for loc in locations.values() {
            crate::recover::ensure_empty_or_missing(loc, opts.force, "tablespace location")?;
        }
        return Ok(());
    }
    check_same_cluster(backup, &opts.dest)?;
    check_not_running(&opts.dest)?;
    // A non-empty tablespace location must be one the older copy already uses.
    let mut in_use = Vec::new();
    if let Ok(rd) = fs::read_dir(opts.dest.join("pg_tblspc")) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                if let Ok(t) = fs::read_link(e.path()) {
                    in_use.push(t);
                }
            }
        }
    }
    for loc in locations.values() {
        if !is_empty_or_missing(loc)? && !in_use.iter().any(|t| t == loc) {
            return Err(Error::Usage(format!(
                "tablespace location {} is not empty and is not a tablespace of the cluster in {}: --delta-restore refuses to overwrite it",
                loc.display(),
                opts.dest.display()
            )));
        }
    }
    Ok(())
}

fn is_empty_or_missing(path: &Path) -> Result<bool> {
    match fs::read_dir(path) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::Usage(format!(
            "destination {} is not a directory",
            path.display()
        ))),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The destination's `global/pg_control` names the backup's system identifier.
fn check_same_cluster(backup: &BackupInfo, dest: &Path) -> Result<()> {
    let control = dest.join("global/pg_control");
    let refuse = |why: String| {
        Error::Usage(format!(
            "--delta-restore refuses {}: {why}; restore into an empty directory instead",
            dest.display()
        ))
    };
    let want = backup.systemid.as_deref().ok_or_else(|| {
        refuse(format!(
            "backup {} records no system identifier to compare with",
            backup.backup_id
        ))
    })?;
    // Read without following a link: the identifier must come from the destination itself.
    let mut f = staging::open_regular(&control).map_err(|e| {
        refuse(format!(
            "it does not hold a copy of a cluster ({}: {e})",
            control.display()
        ))
    })?;
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut f, &mut first)
        .map_err(|_| refuse(format!("{} is too short", control.display())))?;
    let have = u64::from_ne_bytes(first).to_string();
    if have != want {
        return Err(refuse(format!(
            "it holds another cluster (system identifier {have}, backup {} is of {want})",
            backup.backup_id
        )));
    }
    Ok(())
}

/// No server runs on the destination: no `postmaster.pid`, or one whose process is gone.
fn check_not_running(dest: &Path) -> Result<()> {
    let pidfile = dest.join("postmaster.pid");
    let text = match staging::open_regular(&pidfile) {
        Ok(mut f) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s)
                .map_err(|e| Error::io("read", &pidfile, e))?;
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &pidfile, e)),
    };
    match text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) {
        Some(pid) if !staging::process_exists(pid) => Ok(()),
        Some(pid) => Err(Error::Usage(format!(
            "--delta-restore refuses {}: a server is running on it (postmaster.pid names process {pid}); stop it first",
            dest.display()
        ))),
        None => Err(Error::Usage(format!(
            "--delta-restore refuses {}: cannot tell whether a server runs on it ({} names no process); remove that file if none does",
            dest.display(),
            pidfile.display()
        ))),
    }
}

/// Writes the backup's data files into the destination and the tablespace locations. A failure
/// part-way leaves the destination unstartable (no `backup_label`, no `global/pg_control`):
/// what was written may be a mix of old and new files, or checked only at the stream's end.
pub(crate) fn restore_data(
    server: &Server,
    backup: &BackupInfo,
    chain: &crate::incremental::RestoreChain,
    opts: &RecoverOptions,
    locations: &BTreeMap<u32, PathBuf>,
    jobs: usize,
) -> Result<RestoreReport> {
    let mut report = RestoreReport {
        jobs,
        delta: opts.delta_on(),
        ..Default::default()
    };
    if let Some(m) = &opts.progress {
        m.set_total(chain.needed_bytes());
    }
    let result = if chain.is_incremental() {
        // The chain combined into full files, its archives (data directory, tablespaces) side
        // by side.
        let xopts = base_extract_options(opts, locations);
        chain
            .restore(server, &opts.dest, locations, &xopts, jobs)
            .map(|s| {
                report.files_written = s.files_written;
                report.bytes_written = s.bytes_written;
            })
    } else if backup.backup_format == "plain" {
        restore_plain(server, backup, opts, locations, jobs, &mut report)
    } else {
        restore_tar(server, backup, opts, locations, jobs, &mut report)
    };
    if let Err(e) = result {
        for name in ["backup_label", "global/pg_control"] {
            let _ = fs::remove_file(opts.dest.join(name));
        }
        if opts.progress.as_ref().is_some_and(|m| m.is_cancelled()) {
            return Err(Error::Cancelled(format!(
                "the restore of backup {} into {} was stopped by its caller; the destination is incomplete",
                backup.backup_id,
                opts.dest.display()
            )));
        }
        return Err(e);
    }
    Ok(report)
}

/// How a restore writes a tree: replacing only with `--force`, counted on its progress meter.
fn extract_options(opts: &RecoverOptions) -> ExtractOptions {
    ExtractOptions {
        replace_existing: opts.force,
        progress: opts.progress.clone(),
        ..Default::default()
    }
}

/// [`extract_options`] for the data directory, whose `pg_tblspc` links point at `locations`.
fn base_extract_options(
    opts: &RecoverOptions,
    locations: &BTreeMap<u32, PathBuf>,
) -> ExtractOptions {
    ExtractOptions {
        tablespace_remap: locations.iter().map(|(k, v)| (*k, v.clone())).collect(),
        ..extract_options(opts)
    }
}

fn restore_plain(
    server: &Server,
    backup: &BackupInfo,
    opts: &RecoverOptions,
    locations: &BTreeMap<u32, PathBuf>,
    jobs: usize,
    report: &mut RestoreReport,
) -> Result<()> {
    let id = &backup.backup_id;
    let bdir = server.local_backup_dir(id).ok_or_else(|| Error::Corrupt {
        what: format!("backup {id} of server '{}'", server.name()),
        detail: "a plain backup in an object store".into(),
    })?;
    let topts = TreeRestoreOptions {
        extract: extract_options(opts),
        jobs,
        delta: opts.delta_on(),
    };
    let mut trees = vec![(bdir.join("data"), opts.dest.clone())];
    for (oid, loc) in locations {
        trees.push((bdir.join(oid.to_string()), loc.clone()));
    }
    for (src, dest) in trees {
        crate::recover::create_private_dir(&dest)?;
        report.add(&pgbak_copy::restore_tree(&src, &dest, &topts)?);
    }
    Ok(())
}

fn restore_tar(
    server: &Server,
    backup: &BackupInfo,
    opts: &RecoverOptions,
    locations: &BTreeMap<u32, PathBuf>,
    jobs: usize,
    report: &mut RestoreReport,
) -> Result<()> {
    let store = server.stores().backups.as_ref();
    // Every stream is found before anything is written.
    let mut streams = vec![(
        find_archive(store, backup, "base.tar")?,
        opts.dest.clone(),
        base_extract_options(opts, locations),
    )];
    for (oid, loc) in locations {
        streams.push((
            find_archive(store, backup, &format!("{oid}.tar"))?,
            loc.clone(),
            extract_options(opts),
        ));
    }
    for (_, dest, _) in &streams {
        crate::recover::create_private_dir(dest)?;
    }
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let total = Mutex::new(RestoreStats::default());
    let workers = jobs.clamp(1, streams.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((key, dest, xopts)) = streams.get(i) else {
                    return;
                };
                match extract_one(server, key, dest, xopts, opts.delta_on()) {
                    Ok(s) => total.lock().unwrap_or_else(|p| p.into_inner()).add(&s),
                    Err(e) => {
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    report.add(&total.into_inner().unwrap_or_else(|p| p.into_inner()));
    Ok(())
}

/// Restores one stored tar stream below `dest`: extracted afresh, or compared with an older copy.
fn extract_one(
    server: &Server,
    archive: &StoredArchive,
    dest: &Path,
    xopts: &ExtractOptions,
    delta: bool,
) -> Result<RestoreStats> {
    let store = server.stores().backups.as_ref();
    if !delta {
        let s = extract_archive(store, server.encryptor(), archive, dest, xopts)?;
        return Ok(RestoreStats {
            files_written: s.files,
            bytes_written: s.bytes,
            ..Default::default()
        });
    }
    let what = format!("{}/{}", store.describe(), archive.key);
    let source = std::io::BufReader::with_capacity(1 << 20, store.get(&archive.key)?);
    let read = archive.reader(server.encryptor());
    let (stats, _) = pgbak_copy::extract_stored_tar_delta(source, &what, read, dest, xopts)?;
    Ok(stats)
}
