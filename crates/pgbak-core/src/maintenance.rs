//! Periodic and operational work: `cron`, `switch-wal` and `status`.
//!
//! What needs `pgbak cron`: files dropped into `incoming/` are archived, backups WAITING_FOR_WALS
//! become DONE once their WAL is archived, backups whose process died are marked FAILED, and the
//! retention policy is applied (interrupted deletes finished, OBSOLETE backups deleted with the
//! WAL only they needed; see [`crate::retention`]).
//! Nothing else depends on it: `archive-wal` writes straight into the archive.

use crate::backup::complete_if_wal_archived;
use crate::catalogue::BackupStatus;
use crate::config::Config;
use crate::locks::LockName;
use crate::server::Server;
use crate::wal_archive::WalArchive;
use crate::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// What one server's cron run did.
#[derive(Clone, Debug, Default)]
pub struct CronReport {
    pub server: String,
    pub archived: Vec<String>,
    pub completed_backups: Vec<String>,
    pub failed_backups: Vec<String>,
    pub errors: Vec<String>,
    /// Another cron was working on this server; it was left alone.
    pub skipped: bool,
    /// Backups deleted by the retention policy, or whose interrupted delete was finished.
    pub deleted_backups: Vec<String>,
    /// WAL files removed with them.
    pub removed_wal: usize,
    /// Why retention left something for a later run, one line each.
    pub retention_notes: Vec<String>,
    /// A WAL receiver started (streaming_archiver on, none running) or stopped (off).
    pub receive_wal: Option<crate::receive_wal::CronAction>,
    /// Temporary files of processes that died (a killed `archive-wal`, say), removed.
    pub removed_temp_files: Vec<String>,
    /// Why the server was skipped: its configuration section cannot be used.
    pub disabled: Option<String>,
    /// Unfinished multipart uploads of dead processes, aborted in object stores.
    pub aborted_uploads: u64,
}

/// How long a temporary file of a process that is gone must have been left alone before cron
/// removes it.
const TEMP_FILE_MIN_AGE: Duration = Duration::from_secs(300);

/// Runs the periodic work of every active server; one failing server does not stop the others.
/// A server disabled by its configuration is skipped, with the reason in its report. `launcher`
/// starts the WAL receivers of servers with `streaming_archiver` on.
pub fn cron(
    config: &Config,
    launcher: Option<std::sync::Arc<dyn crate::receive_wal::ReceiverLauncher>>,
) -> Vec<CronReport> {
    let mut out = Vec::new();
    for (name, disabled) in &config.disabled {
        if disabled.active {
            out.push(CronReport {
                server: name.clone(),
                skipped: true,
                disabled: Some(disabled.reason.to_string()),
                ..Default::default()
            });
        }
    }
    for (name, cfg) in &config.servers {
        if !cfg.active {
            continue;
        }
        let mut report = CronReport {
            server: name.clone(),
            ..Default::default()
        };
        match Server::new(config, name) {
            Ok(server) => {
                let server = match &launcher {
                    Some(l) => server.with_launcher(l.clone()),
                    None => server,
                };
                if let Err(e) = cron_server(&server, &mut report) {
                    report.errors.push(e.to_string());
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        out.push(report);
    }
    out
}

fn cron_server(server: &Server, report: &mut CronReport) -> Result<()> {
    let _lock = match server
        .locks()
        .try_lock(&LockName::ServerCron(server.name().to_string()))
    {
        Ok(l) => l,
        Err(crate::locks::LockError::Busy { .. }) => {
            report.skipped = true;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    // The receiver first: archiving and retention below may take a while.
    match crate::receive_wal::cron_receive_wal(server) {
        Ok(action) => report.receive_wal = action,
        Err(e) => report.errors.push(format!("receive-wal: {e}")),
    }
    let archive = server.wal_archive()?;
    archive_incoming(server, &archive, report)?;
    if let Ok(_backup_lock) = server
        .locks()
        .try_lock(&LockName::ServerBackup(server.name().to_string()))
    {
        report.failed_backups = server.fail_interrupted_backups()?;
    }
    let (all, _) = server.catalogue().list()?;
    for mut b in all
        .into_iter()
        .filter(|b| b.status == BackupStatus::WaitingForWals)
    {
        if complete_if_wal_archived(server, &mut b)? {
            report.completed_backups.push(b.backup_id.clone());
        }
    }
    crate::retention::enforce_retention(server)?.add_to(report);
    // Entries of the WAL index written by archiving since the last run go into its chunks.
    {
        let _index = server
            .locks()
            .lock_blocking(&LockName::ServerXlogDb(server.name().to_string()))?;
        archive.compact_index()?;
    }
    report.removed_temp_files = sweep_temp_files(server);
    cleanup_uploads(server, report);
    Ok(())
}

/// How old an unfinished upload to the WAL store must be before cron aborts it: archiving a
/// segment takes seconds, retries included.
const WAL_UPLOAD_MAX_AGE: Duration = Duration::from_secs(3600);

/// Aborts the multipart uploads that processes which died left unfinished in object stores
/// (S3 keeps their parts, and bills them, until then): in the backup store every one, while
/// holding the backup lock (only a running backup writes objects large enough to need one);
/// in the WAL store those older than [`WAL_UPLOAD_MAX_AGE`].
fn cleanup_uploads(server: &Server, report: &mut CronReport) {
    let stores = server.stores();
    if stores.backups.local_root().is_none() {
        if let Ok(_backup_lock) = server
            .locks()
            .try_lock(&LockName::ServerBackup(server.name().to_string()))
        {
            match stores.backups.cleanup_incomplete_uploads(Duration::ZERO) {
                Ok(n) => report.aborted_uploads += n,
                Err(e) => report.errors.push(format!("backup store: {e}")),
            }
        }
    }
    if stores.wals.local_root().is_none() {
        match stores.wals.cleanup_incomplete_uploads(WAL_UPLOAD_MAX_AGE) {
            Ok(n) => report.aborted_uploads += n,
            Err(e) => report.errors.push(format!("WAL store: {e}")),
        }
    }
}

/// Removes the temporary files that processes which died (killed while archiving, receiving,
/// writing a backup or an acknowledgement of parallel archiving) left in the server's folders.
fn sweep_temp_files(server: &Server) -> Vec<String> {
    let cfg = &server.config;
    let mut dirs = vec![
        cfg.backup_directory.clone(),
        cfg.incoming_wals_directory.clone(),
        cfg.streaming_wals_directory.clone(),
        cfg.errors_directory.clone(),
        cfg.backup_directory.join(crate::archive_queue::QUEUE_DIR),
    ];
    // The stores on local disk, the folders of the archive (`wals/<timeline and log>/`) and of
    // each backup, where the metadata, the tar streams and a plain backup's manifest are
    // written. Object stores keep no temporary files (see `cleanup_uploads`).
    let stores = server.stores();
    let local: Vec<std::path::PathBuf> = [&stores.wals, &stores.backups]
        .iter()
        .filter_map(|s| s.local_root().map(|p| p.to_path_buf()))
        .collect();
    dirs.extend(local.iter().cloned());
    for parent in &local {
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                    dirs.push(e.path().join("data"));
                }
            }
        }
    }
    let mut removed = Vec::new();
    for d in dirs {
        match pgbak_storage::staging::sweep_dead_temp_files(&d, TEMP_FILE_MIN_AGE) {
            Ok(v) => removed.extend(v.into_iter().map(|p| p.display().to_string())),
            Err(e) => tracing::warn!("cannot sweep {}: {e}", d.display()),
        }
    }
    removed
}

/// Archives every file waiting in `incoming/`, oldest name first; each file is removed from
/// `incoming/` only once it is safe in the archive (or kept in `errors/` on a clash).
fn archive_incoming(server: &Server, archive: &WalArchive, report: &mut CronReport) -> Result<()> {
    let dir = &server.config.incoming_wals_directory;
    let mut names: Vec<_> = match std::fs::read_dir(dir) {
        // Regular files only: a link dropped into the folder is never followed.
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        match crate::hooks::archive_file(server, archive, &path) {
            Ok(_) => {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                report.archived.push(name);
            }
            Err(Error::WalConflict { .. }) => {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                report.errors.push(format!(
                    "{name}: clashes with the archived copy; kept in errors/"
                ));
            }
            Err(e @ Error::HookAborted { .. }) => {
                // As Barman: ABORT_STOP from pre_archive_retry_script stops the batch.
                report.errors.push(format!("{name}: {e}"));
                break;
            }
            Err(e) => report.errors.push(format!("{name}: {e}")),
        }
    }
    Ok(())
}

/// Result of `switch-wal`.
#[derive(Clone, Debug)]
pub struct SwitchReport {
    pub switch_lsn: String,
    pub segment: String,
    pub archived: Option<bool>,
}

/// `pg_switch_wal()`, after a CHECKPOINT when `force`; with `wait_archive`, waits (up to
/// `timeout`) until the closed segment is in the archive.
pub fn switch_wal(
    server: &Server,
    force: bool,
    wait_archive: bool,
    timeout: Duration,
) -> Result<SwitchReport> {
    // On a standby, on its primary (primary_conninfo): the standby's segment ends with it.
    let conn = server.connect_wal_switcher()?;
    if force {
        conn.checkpoint()?;
    }
    let (lsn, _) = conn.switch_wal()?;
    let segment = conn.walfile_name(lsn)?;
    let mut archived = None;
    if wait_archive {
        let archive = server.wal_archive()?;
        let start = Instant::now();
        loop {
            // Archived means indexed: archive-wal commits the segment, then adds its index line,
            // and a recovery plans from the index. A stored segment whose line is not there yet
            // is not waited out only when the archive has no index at all.
            let indexed = archive.index_entry_of(&segment)?.is_some();
            if indexed || (archive.contains(&segment)? && !archive.has_index()?) {
                archived = Some(true);
                break;
            }
            if start.elapsed() >= timeout {
                return Err(Error::kind_of(
                    ErrorKind::Timeout,
                    format!(
                        "WAL segment {segment} of server '{}' was not archived within {}s",
                        server.name(),
                        timeout.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(SwitchReport {
        switch_lsn: lsn.to_string(),
        segment,
        archived,
    })
}

/// `status`: one (label, value) pair per line, in display order (the server, its catalogue,
/// rsync and streaming state).
pub fn status(server: &Server) -> Result<Vec<(String, String)>> {
    let cfg = &server.config;
    let mut s: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| s.push((k.to_string(), v));
    put("description", cfg.description.clone().unwrap_or_default());
    put("active", cfg.active.to_string());
    put("backup_method", cfg.backup_method.to_string());
    put("wal_compression", cfg.compression.name().to_string());
    put(
        "backup_compression",
        cfg.backup_compression.name().to_string(),
    );
    match server.connect() {
        Ok(conn) => {
            put("postgresql", "OK".into());
            put(
                "server_version",
                conn.setting("server_version").unwrap_or_default(),
            );
            put(
                "data_directory",
                conn.setting("data_directory").unwrap_or_default(),
            );
            put(
                "archive_mode",
                conn.setting("archive_mode").unwrap_or_default(),
            );
            put(
                "archive_command",
                conn.setting("archive_command").unwrap_or_default(),
            );
            if let Ok(rows) = conn.query_text(
                "SELECT coalesce(last_archived_wal,''), coalesce(last_archived_time::text,''), failed_count::text, \
                 coalesce(last_failed_wal,''), coalesce(last_failed_time::text,'') FROM pg_stat_archiver",
            ) {
                if let Some(r) = rows.first() {
                    let g = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    put("last_archived_wal", format!("{} {}", g(0), g(1)).trim().to_string());
                    put("failed_archive_count", g(2));
                    put("last_failed_wal", format!("{} {}", g(3), g(4)).trim().to_string());
                }
            }
            if let Ok(lsn) = conn.current_wal_lsn() {
                put("current_lsn", lsn.to_string());
                put("current_wal", conn.walfile_name(lsn).unwrap_or_default());
            }
        }
        Err(e) => put("postgresql", format!("FAILED ({e})")),
    }
    let backups = server.backups()?;
    let done: Vec<_> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Done)
        .collect();
    put(
        "backups",
        format!("{} ({} DONE)", backups.len(), done.len()),
    );
    put(
        "first_backup",
        done.first()
            .map(|b| b.backup_id.clone())
            .unwrap_or_else(|| "-".into()),
    );
    put(
        "last_backup",
        done.last()
            .map(|b| b.backup_id.clone())
            .unwrap_or_else(|| "-".into()),
    );
    let archive = server.wal_archive()?;
    let segs = archive.segment_names()?;
    put("archived_wal_segments", segs.len().to_string());
    put(
        "last_archived_in_catalogue",
        segs.last().cloned().unwrap_or_else(|| "-".into()),
    );
    put(
        "backup_directory",
        cfg.backup_directory.display().to_string(),
    );
    // Where the backups and the WAL rest: below backup_directory by default, but an object
    // store when they are URLs (shown without secrets, with a custom endpoint).
    let stores = server.stores();
    put("basebackups_directory", stores.backups.describe());
    put("wals_directory", stores.wals.describe());
    s.extend(crate::diagnose::status_rows(server));
    s.extend(crate::rsync_check::status_rows(server));
    s.extend(crate::streaming_status::status_rows(server));
    Ok(s)
}
