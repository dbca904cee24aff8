//! `pgbak backup`: take a base backup into the catalogue.
//!
//! The metadata goes STARTED -> WAITING_FOR_WALS -> DONE (or FAILED). A backup is DONE only once
//! its files are durable and every WAL segment from its begin to its end LSN is in the archive.

use crate::catalogue::{
    new_backup_id, BackupFile, BackupInfo, BackupPhases, BackupStatus, TablespaceRecord,
};
use crate::check::{CheckOptions, ServerChecks};
use crate::config::{BackupFormat, CompressionLocation};
use crate::hooks::{HookEnv, HookEvent, Hooks};
use crate::locks::LockName;
use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_compress::{Codec, Compression, Level};
use pgbak_copy::{BackupDestination, CopyProgress, CopyStrategy, StreamingCopy};
use pgbak_wal::{
    segments_between, BaseBackupOptions, ConnParams, Lsn, SegmentName, ServerCompression,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of one backup run; the default takes a backup as the server's configuration says
/// and returns without waiting for its WAL.
///
/// ```
/// use pgbak_core::BackupOptions;
/// use std::time::Duration;
/// let opts = BackupOptions::default().wait(Some(Duration::from_secs(120)));
/// assert!(opts.wait);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Ask for an immediate checkpoint (overrides `immediate_checkpoint`).
    pub immediate_checkpoint: Option<bool>,
    /// Wait for the required WAL to be archived, up to `wait_timeout` (None = forever).
    pub wait: bool,
    pub wait_timeout: Option<Duration>,
    /// A label for BASE_BACKUP (default `pgbak backup <id>`).
    pub label: Option<String>,
    /// rsync methods: parallel copy workers (overrides `parallel_jobs`).
    pub jobs: Option<u32>,
    /// rsync methods: `off`, `copy` or `link` (overrides `reuse_backup`).
    pub reuse_backup: Option<String>,
    /// rsync methods: retries of a failed copy step (overrides `basebackup_retry_times`).
    pub retry_times: Option<u32>,
    /// rsync methods: seconds before each retry (overrides `basebackup_retry_sleep`).
    pub retry_sleep: Option<u64>,
    /// Take a block-level incremental backup relative to this backup (an id, `latest` or
    /// `latest-full`); PostgreSQL 17 and later, `postgres` method.
    pub incremental: Option<String>,
}

impl BackupOptions {
    /// Wait until the WAL the backup needs is archived (status DONE), at most `timeout`.
    pub fn wait(mut self, timeout: Option<Duration>) -> Self {
        self.wait = true;
        self.wait_timeout = timeout;
        self
    }

    /// A block-level incremental backup relative to `parent` (an id, `latest` or
    /// `latest-full`).
    pub fn incremental(mut self, parent: impl Into<String>) -> Self {
        self.incremental = Some(parent.into());
        self
    }
}

/// Runs a backup of `server`. Returns the final metadata (DONE or WAITING_FOR_WALS); a failure
/// leaves the backup FAILED with the reason recorded, and returns the error.
pub fn backup(
    server: &Server,
    opts: &BackupOptions,
    progress: &mut dyn CopyProgress,
) -> Result<BackupInfo> {
    let cfg = &server.config;
    let called = Instant::now();
    if !cfg.active {
        return Err(Error::Usage(format!("server '{}' is not active", cfg.name)));
    }
    let _lock = server
        .locks()
        .try_lock(&LockName::ServerBackup(cfg.name.clone()))?;
    server.fail_interrupted_backups()?;
    // Barman's backup starts with a full `check`: a critical failure stops it before anything is
    // written, while the non-critical ones (age, redundancy, failed backups...) never block it.
    pre_backup_checks(server)?;

    // Fail fast, before anything is written, when the server cannot be reached or cannot archive.
    let conn = server.connect()?;
    let archive_mode = conn.setting("archive_mode")?;
    // A standby's segments end only when its primary's do: with archive_mode = always, a server
    // that waits for the last one to be archived would wait for the primary's next switch.
    // pgbak waits itself, switching WAL on the primary (`EndSegmentCloser`).
    let in_recovery = conn.is_in_recovery()?;
    if archive_mode == "off" && !cfg.streaming_archiver {
        return Err(Error::kind_of(ErrorKind::Refused, format!(
            "server '{}': archive_mode is off and streaming_archiver is off, so the WAL this backup needs would never reach the archive",
            cfg.name
        )));
    }
    let tablespace_names = conn.tablespaces()?;
    let pgdata = conn.setting("data_directory").ok();
    let params = ConnParams::resolve(&cfg.streaming_conninfo)?;
    // rsync / local-rsync: SSH and rsync are checked here too, before anything is written.
    let mut rsync = crate::rsync_backup::prepare(server, opts)?;

    let cat = server.catalogue();
    let mut id = new_backup_id(crate::clock::now());
    while cat.exists(&id)? {
        std::thread::sleep(Duration::from_millis(200));
        id = new_backup_id(crate::clock::now());
    }
    // With `backup_compression_location = server` PostgreSQL compresses and pgbak stores the
    // archives as they arrive (tar) or decompresses them on arrival (plain).
    let server_compression = server_compression(cfg);
    if server_compression.is_some() && rsync.is_none() {
        let version = conn.server_version_num()?;
        if version < pgbak_wal::protocol::NEW_BASE_BACKUP_SYNTAX_VERSION_NUM {
            return Err(Error::Usage(format!(
                "server '{}': backup_compression_location = server needs PostgreSQL 15 or later (the server is {version}); use backup_compression_location = client",
                cfg.name
            )));
        }
    }
    let (format, compression) = match cfg.backup_compression_format {
        BackupFormat::Plain
            if cfg.backup_compression != Compression::None && server_compression.is_none() =>
        {
            return Err(Error::Usage(format!(
                "server '{}': backup_compression_format = plain cannot be combined with backup_compression = {}",
                cfg.name,
                cfg.backup_compression.name()
            )))
        }
        // A plain tree needs a filesystem: on an object store the same uncompressed bytes are
        // kept as tar streams.
        // An incremental backup is kept as tar streams (uncompressed here), which its restore
        // reads as they stream by.
        BackupFormat::Plain
            if server.local_backup_dir(&id).is_some() && opts.incremental.is_none() =>
        {
            ("plain", Compression::None)
        }
        BackupFormat::Plain => ("tar", Compression::None),
        BackupFormat::Tar => ("tar", cfg.backup_compression),
    };
    if rsync.is_some() && server.local_backup_dir(&id).is_none() {
        return Err(Error::Usage(format!(
            "server '{}': the rsync methods copy files and need basebackups_directory on a local filesystem",
            cfg.name
        )));
    }
    if let Some(e) = server.encryptor() {
        if rsync.is_some() || format == "plain" {
            return Err(Error::Usage(format!(
                "server '{}': encryption = {} applies to tar backups only (backup_method = postgres \
                 with backup_compression_format = tar); a plain or rsync backup would be stored in clear",
                cfg.name,
                e.name()
            )));
        }
    }
    // PostgreSQL 17 and later: whether the server summarises its WAL, which an incremental
    // backup relative to this one will need.
    let summarize_wal = match conn.server_version_num()? {
        v if v >= pgbak_wal::protocol::INCREMENTAL_BACKUP_VERSION_NUM => {
            Some(conn.setting("summarize_wal")? == "on")
        }
        _ => None,
    };
    let parent = match &opts.incremental {
        Some(p) => Some(crate::incremental::chain::prepare_parent(
            server,
            &conn,
            p,
            rsync.is_some(),
            format,
        )?),
        None => None,
    };
    let mode = rsync.as_ref().map_or("postgres", |r| r.mode());
    let mut info = BackupInfo::new(
        &cfg.name,
        &id,
        mode,
        format,
        compression.name(),
        crate::clock::now(),
    );
    info.pgdata = pgdata;
    info.summarize_wal = summarize_wal;
    info.parent_backup_id = parent.as_ref().map(|p| p.info.backup_id.clone());
    if let Some(e) = server.encryptor() {
        info.encryption = Some(e.name().to_string());
        info.encryption_key_id = e.key_id();
    }
    cat.write(&info)?;

    let hooks = Hooks::new(server, HookEvent::Backup);
    let result = (|| -> Result<()> {
        // An ABORT_STOP from pre_backup_retry_script stops here: the backup ends FAILED.
        hooks.run_pre(&HookEnv::for_backup(server, &info))?;
        let dest = if let (Some(dir), "plain") = (server.local_backup_dir(&id), format) {
            BackupDestination::Plain {
                data_dir: dir.join("data"),
                tablespaces_root: dir,
            }
        } else {
            let level = cfg
                .backup_compression_level
                .map(Level::Value)
                .or(Some(Level::Low));
            let codec = if server_compression.is_some() {
                // The stored objects are exactly the server's: named and read like client ones.
                Codec::new(Compression::None, None)
            } else {
                // Each stored archive's CRC-32C is recorded and checked by every read of it,
                // so frames go without a content checksum of their own (issue 13).
                Codec::new(compression, level).map(|c| {
                    c.with_workers(cfg.backup_compression_workers.unwrap_or(0))
                        .without_content_checksum()
                })
            }
            .map_err(|e| Error::Usage(format!("server '{}': {e}", cfg.name)))?;
            BackupDestination::Tar {
                storage: server.stores().backups.clone(),
                prefix: format!("{id}/data"),
                compressor: Arc::new(codec),
                encryptor: server.encryptor().cloned(),
            }
        };
        let strategy = StreamingCopy {
            conninfo: params.clone(),
            options: BaseBackupOptions {
                label: opts
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("pgbak backup {id}")),
                progress: true,
                fast_checkpoint: opts
                    .immediate_checkpoint
                    .unwrap_or(cfg.immediate_checkpoint),
                manifest: true,
                manifest_checksums: None,
                // A plain tree keeps pg_tblspc links (as pg_basebackup -Fp does); tar streams carry a map.
                tablespace_map: format == "tar",
                max_rate_kbps: cfg.bandwidth_limit.map(|b| b as u32),
                verify_checksums: true,
                // Without archive_mode the WAL comes from receive-wal: the server has nothing to
                // wait for (and would only warn that archiving is off). A standby: see above.
                wait_for_wal_archive: archive_mode != "off" && !in_recovery,
                server_compression: server_compression.clone(),
                incremental: parent.is_some(),
            },
            parent_manifest: parent.as_ref().map(|p| p.manifest.clone()),
        };
        let started = Instant::now();
        let checks = started - called;
        let copied = match rsync.as_mut() {
            Some(r) => {
                let dir = server.local_backup_dir(&id).ok_or_else(|| {
                    Error::Usage("the rsync methods need a local backups folder".into())
                })?;
                r.copy(&info, &dir, &strategy.options.label, progress)
            }
            None => strategy.copy(&dest, progress).map_err(Error::from),
        };
        let outcome = match copied {
            Ok(o) => o,
            Err(_) if progress.cancelled() => {
                return Err(Error::Cancelled(format!(
                    "backup {id} of server '{}' was stopped by its caller",
                    cfg.name
                )))
            }
            Err(e) => return Err(e),
        };
        info.copy_seconds = Some(started.elapsed().as_secs_f64());
        let p = outcome.phases;
        info.phases = Some(BackupPhases {
            checks: checks.as_secs_f64(),
            start: p.start.as_secs_f64(),
            copy: p.copy.as_secs_f64(),
            stop: p.stop.as_secs_f64(),
            durable: p.durable.as_secs_f64(),
            ..BackupPhases::default()
        });
        info.end_time = Some(crate::clock::now());
        let seg_size = outcome.wal_segment_size;
        info.begin_lsn = Some(outcome.start_lsn.to_string());
        info.end_lsn = Some(outcome.end_lsn.to_string());
        info.timeline = Some(outcome.start_tli);
        info.end_timeline = Some(outcome.end_tli);
        info.begin_wal = Some(
            SegmentName::from_lsn(outcome.start_tli, outcome.start_lsn, seg_size)
                .file_name(seg_size),
        );
        info.end_wal = Some(
            last_segment(
                outcome.end_tli,
                outcome.start_lsn,
                outcome.end_lsn,
                seg_size,
            )
            .file_name(seg_size),
        );
        info.systemid = Some(outcome.systemid.clone());
        info.version = Some(outcome.server_version_num);
        // The first backup records which cluster this catalogue belongs to; a backup of another
        // cluster fails here instead of mixing two clusters' files.
        crate::identity::record_identity(
            server.stores().meta.as_ref(),
            &outcome.systemid,
            outcome.server_version_num,
        )?;
        info.wal_segment_size = Some(seg_size);
        info.backup_label = outcome.backup_label.clone();
        info.has_manifest = outcome.has_manifest;
        info.data_size = outcome.bytes_received;
        info.files = outcome
            .files
            .iter()
            .map(|f| BackupFile {
                name: f.name.clone(),
                size: f.size,
                crc32c: f.crc32c,
            })
            .collect();
        info.size = outcome.files.iter().map(|f| f.size).sum();
        info.tablespaces = outcome
            .tablespaces
            .iter()
            .filter_map(|t| {
                let oid = t.oid?;
                let location = t.location.clone().unwrap_or_default();
                let name = tablespace_names
                    .iter()
                    .find(|(_, o, _)| *o == oid)
                    .map(|(n, _, _)| n.clone())
                    .unwrap_or_else(|| oid.to_string());
                Some(TablespaceRecord {
                    name,
                    oid,
                    location,
                })
            })
            .collect();
        if let Some(r) = &rsync {
            r.record(&mut info);
            // Barman's autogenerate_manifest: the copy is trusted now, before anything can
            // change it; a backup asked to have a manifest is not complete without one.
            if cfg.autogenerate_manifest {
                let jobs = opts.jobs.unwrap_or(cfg.parallel_jobs).max(1) as usize;
                crate::generate_manifest::write_manifest(
                    server,
                    &mut info,
                    &crate::verify::VerifyOptions::jobs(jobs),
                )?;
            }
        }
        info.status = BackupStatus::WaitingForWals;
        cat.write(&info)?;
        Ok(())
    })();
    let copied = Instant::now();
    // The parent lists its children (Barman's children_backup_ids), so that retention and
    // delete see the chain from either end.
    if let (Ok(()), Some(p)) = (&result, &parent) {
        if let Err(e) = crate::incremental::chain::add_child(server, &p.info.backup_id, &id) {
            tracing::warn!(
                "backup {id}: cannot record it as a child of {}: {e}",
                p.info.backup_id
            );
        }
    }
    if let Err(e) = result {
        info.status = BackupStatus::Failed;
        info.error = Some(pgbak_wal::redact::redact(&e.to_string()).into_owned());
        info.end_time = Some(crate::clock::now());
        // Free the space at once (a backup that failed for lack of space must not leave the disk
        // full for the WAL archive), then record the failure. The failure itself is what the
        // caller must see; a failure to clean up or to record it is secondary.
        if let Err(clean) = cat.discard_data(&id) {
            tracing::warn!("backup {id}: cannot remove its partial data: {clean}");
        }
        let _ = cat.write(&info);
        hooks.run_post(&HookEnv::for_backup(server, &info));
        return Err(e);
    }

    create_restore_point(server, &info.backup_id);
    let mut closer = EndSegmentCloser::new(server);
    closer.tick(server);
    let switched = Instant::now();
    if let Some(p) = info.phases.as_mut() {
        p.wal_switch = (switched - copied).as_secs_f64();
    }
    let deadline = opts.wait_timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(p) = info.phases.as_mut() {
            p.wal_wait = switched.elapsed().as_secs_f64();
        }
        if complete_if_wal_archived(server, &mut info)? {
            break;
        }
        if !opts.wait || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        closer.tick(server);
    }
    if let Some(p) = &info.phases {
        let phases: Vec<String> = p
            .named()
            .iter()
            .map(|(name, s)| format!("{name} {s:.3} s"))
            .collect();
        tracing::info!(
            "backup {}: {} ({})",
            info.backup_id,
            phases.join(", "),
            info.status.as_str()
        );
    }
    hooks.run_post(&HookEnv::for_backup(server, &info));
    Ok(info)
}

/// The name of the restore point created at the end of backup `backup_id`, usable as
/// `recover --target-name`.
pub fn restore_point_name(backup_id: &str) -> String {
    format!("pgbak_{backup_id}")
}

/// Runs the server checks and refuses the backup, naming them, when a critical one fails.
fn pre_backup_checks(server: &Server) -> Result<()> {
    let started = Instant::now();
    let checks = crate::check::check_loaded_server(server, &CheckOptions::default())?;
    tracing::debug!(
        server = server.name(),
        seconds = started.elapsed().as_secs_f64(),
        "pre-backup checks done"
    );
    if checks.ready_for_backup() {
        return Ok(());
    }
    Err(Error::kind_of(
        ErrorKind::Refused,
        refusal(server.name(), &checks),
    ))
}

/// The message of a backup refused by its checks: every failed critical check with its hint.
fn refusal(name: &str, checks: &ServerChecks) -> String {
    let failed: Vec<String> = checks
        .failed()
        .filter(|c| c.critical)
        .map(|c| match &c.hint {
            Some(h) => format!("{} ({h})", c.name),
            None => c.name.clone(),
        })
        .collect();
    format!(
        "cannot start the backup of server '{name}': critical checks failed: {}; run 'pgbak check {name}' for details",
        failed.join("; ")
    )
}

/// Creates the restore point `pgbak_<id>` after the copy, as Barman creates `barman_<id>`, so
/// that recovery can stop exactly at the end of this backup. A standby cannot create one and is
/// skipped; a failure only loses that convenience, so it is a warning.
fn create_restore_point(server: &Server, backup_id: &str) {
    let name = restore_point_name(backup_id);
    let created = server.connect().and_then(|c| {
        if c.is_in_recovery()? {
            return Ok(false);
        }
        c.query_value(&format!("SELECT pg_create_restore_point('{name}')::text"))?;
        Ok(true)
    });
    match created {
        Ok(true) => {
            tracing::debug!(server = server.name(), restore_point = %name, "restore point created")
        }
        Ok(false) => tracing::debug!(server = server.name(), "standby: no restore point"),
        Err(e) => tracing::warn!(
            server = server.name(),
            "cannot create restore point {name}: {e}"
        ),
    }
}

/// What BASE_BACKUP asks the server to compress with, when `backup_compression_location =
/// server`: the configured method at `backup_compression_level` (1, the fastest, by default)
/// and, for zstd, `backup_compression_workers` threads.
fn server_compression(cfg: &crate::config::ServerConfig) -> Option<ServerCompression> {
    if cfg.backup_compression_location != CompressionLocation::Server
        || cfg.backup_compression == Compression::None
    {
        return None;
    }
    let mut detail = format!("level={}", cfg.backup_compression_level.unwrap_or(1));
    if cfg.backup_compression == Compression::Zstd {
        if let Some(workers) = cfg.backup_compression_workers.filter(|&w| w > 0) {
            detail.push_str(&format!(",workers={workers}"));
        }
    }
    Some(ServerCompression {
        method: cfg.backup_compression.name().to_string(),
        detail: Some(detail),
    })
}

/// Closes the WAL segment that ends a backup, so that it is archived and the backup can become
/// DONE.
///
/// - A primary whose WAL is streamed: one switch, as Barman does (a receiver archives a segment
///   only once it is complete; `pg_backup_stop` already switches when archive_command is used).
/// - A standby with `primary_conninfo`: its segments end only when the primary's do, so WAL is
///   switched on the primary at once and every 10 seconds, 10 times, while the backup waits;
///   then, after `primary_checkpoint_timeout` seconds (0: never), a checkpoint and a switch are
///   forced there, for a primary so idle that a switch has nothing to close. As Barman.
/// - A standby without `primary_conninfo`: nothing (the backup waits for the primary's traffic).
///
/// A failure is a warning: it only delays DONE.
struct EndSegmentCloser {
    mode: CloseMode,
}

enum CloseMode {
    Nothing,
    SwitchOnce,
    OnPrimary(PrimarySchedule),
}

/// Switches on the primary while a backup of a standby waits, and the pause between them.
const PRIMARY_SWITCHES: u32 = 10;
const PRIMARY_SWITCH_EVERY: Duration = Duration::from_secs(10);

/// What to do on the primary, and when, while a backup of a standby waits for its last segment.
#[derive(Debug)]
struct PrimarySchedule {
    switches: u32,
    next: Instant,
    /// `primary_checkpoint_timeout`: 0 never forces a checkpoint.
    checkpoint_timeout: Duration,
    checkpoint_at: Option<Instant>,
    checkpoint_done: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum PrimaryAction {
    Switch,
    /// The last of the switches: a checkpoint will follow at the instant given (none if the
    /// timeout is 0).
    LastSwitch(Option<Instant>),
    CheckpointAndSwitch,
}

impl PrimarySchedule {
    fn new(start: Instant, checkpoint_timeout: Duration) -> PrimarySchedule {
        PrimarySchedule {
            switches: 0,
            next: start,
            checkpoint_timeout,
            checkpoint_at: None,
            checkpoint_done: false,
        }
    }

    /// What is due at `now`, if anything.
    fn due(&mut self, now: Instant) -> Option<PrimaryAction> {
        if self.switches < PRIMARY_SWITCHES {
            if now < self.next {
                return None;
            }
            self.switches += 1;
            self.next = now + PRIMARY_SWITCH_EVERY;
            if self.switches < PRIMARY_SWITCHES {
                return Some(PrimaryAction::Switch);
            }
            if !self.checkpoint_timeout.is_zero() {
                self.checkpoint_at = Some(now + self.checkpoint_timeout);
            }
            return Some(PrimaryAction::LastSwitch(self.checkpoint_at));
        }
        match self.checkpoint_at {
            Some(at) if now >= at && !self.checkpoint_done => {
                self.checkpoint_done = true;
                Some(PrimaryAction::CheckpointAndSwitch)
            }
            _ => None,
        }
    }
}

impl EndSegmentCloser {
    fn new(server: &Server) -> EndSegmentCloser {
        let cfg = &server.config;
        let standby = server.connect().and_then(|c| c.is_in_recovery());
        let mode = match standby {
            Ok(false) if cfg.streaming_archiver => CloseMode::SwitchOnce,
            Ok(true) if cfg.primary_conninfo.is_some() => {
                CloseMode::OnPrimary(PrimarySchedule::new(
                    Instant::now(),
                    Duration::from_secs(cfg.primary_checkpoint_timeout),
                ))
            }
            Ok(_) => CloseMode::Nothing,
            Err(e) => {
                tracing::warn!(
                    server = server.name(),
                    "cannot tell whether it is a standby: {e}"
                );
                CloseMode::Nothing
            }
        };
        EndSegmentCloser { mode }
    }

    fn tick(&mut self, server: &Server) {
        let result = match &mut self.mode {
            CloseMode::Nothing => return,
            CloseMode::SwitchOnce => {
                self.mode = CloseMode::Nothing;
                server.connect().and_then(|c| c.switch_wal().map(|_| ()))
            }
            CloseMode::OnPrimary(schedule) => match schedule.due(Instant::now()) {
                None => return,
                Some(PrimaryAction::Switch) => Self::switch_on_primary(server, false),
                Some(PrimaryAction::LastSwitch(checkpoint_at)) => {
                    if checkpoint_at.is_some() {
                        tracing::warn!(
                            server = server.name(),
                            "WAL switched {PRIMARY_SWITCHES} times on the primary and the backup's last segment is not archived yet: a checkpoint will be forced on the primary in {} seconds",
                            server.config.primary_checkpoint_timeout
                        );
                    }
                    Self::switch_on_primary(server, false)
                }
                Some(PrimaryAction::CheckpointAndSwitch) => Self::switch_on_primary(server, true),
            },
        };
        if let Err(e) = result {
            tracing::warn!(
                server = server.name(),
                "cannot switch WAL after the backup: {e}"
            );
        }
    }

    fn switch_on_primary(server: &Server, checkpoint: bool) -> Result<()> {
        let Some(primary) = server.connect_primary()? else {
            return Ok(());
        };
        if checkpoint {
            primary.checkpoint()?;
        }
        let (lsn, _) = primary.switch_wal()?;
        tracing::info!(server = server.name(), %lsn, checkpoint, "WAL switched on the primary");
        Ok(())
    }
}

/// The segment holding the last byte before `end` (PostgreSQL's XLByteToPrevSeg), or the begin
/// segment for an empty range.
fn last_segment(tli: u32, begin: Lsn, end: Lsn, seg_size: u64) -> SegmentName {
    segments_between(tli, begin, end, seg_size)
        .last()
        .map(|s| SegmentName {
            tli,
            segno: s.segno,
        })
        .unwrap_or_else(|| SegmentName::from_lsn(tli, begin, seg_size))
}

/// Turns a WAITING_FOR_WALS backup into DONE when all its WAL is archived. Returns whether it is DONE.
pub fn complete_if_wal_archived(server: &Server, info: &mut BackupInfo) -> Result<bool> {
    if info.status == BackupStatus::Done {
        return Ok(true);
    }
    if info.status != BackupStatus::WaitingForWals {
        return Ok(false);
    }
    let archive = server.wal_archive()?;
    for name in archive.backup_required_segments(info)? {
        if !archive.contains(&name)? {
            return Ok(false);
        }
    }
    info.status = BackupStatus::Done;
    server.catalogue().write(info)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_standby_backup_switches_on_the_primary_then_forces_a_checkpoint_after_the_timeout() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut s = PrimarySchedule::new(t0, Duration::from_secs(30));
        // At once, then every 10 seconds, 10 switches in all.
        assert_eq!(s.due(t0), Some(PrimaryAction::Switch));
        assert_eq!(s.due(secs(5)), None);
        for n in 1..9 {
            assert_eq!(s.due(secs(10 * n)), Some(PrimaryAction::Switch), "{n}");
            assert_eq!(s.due(secs(10 * n + 9)), None, "{n}");
        }
        assert_eq!(
            s.due(secs(90)),
            Some(PrimaryAction::LastSwitch(Some(secs(120))))
        );
        // Then nothing until the timeout, one checkpoint, and nothing more.
        assert_eq!(s.due(secs(100)), None);
        assert_eq!(s.due(secs(119)), None);
        assert_eq!(s.due(secs(120)), Some(PrimaryAction::CheckpointAndSwitch));
        assert_eq!(s.due(secs(121)), None);
        assert_eq!(s.due(secs(10_000)), None);

        // A timeout of 0 never forces a checkpoint.
        let mut s = PrimarySchedule::new(t0, Duration::ZERO);
        let actions: Vec<_> = (0..200).filter_map(|n| s.due(secs(n))).collect();
        assert_eq!(actions.len(), 10);
        assert_eq!(actions[9], PrimaryAction::LastSwitch(None));
    }

    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn detail_for(settings: &str) -> Option<ServerCompression> {
        let text =
            format!("[pgbak]\nhome = /var/lib/pgbak\n\n[main]\nconninfo = host=db1\n{settings}");
        let config = Config::parse_str(&text, Path::new("/etc/pgbak.conf")).unwrap();
        server_compression(config.server("main").unwrap())
    }

    #[test]
    fn refusal_names_only_the_critical_failures() {
        use crate::check::Check;
        let checks = ServerChecks {
            server: "main".into(),
            active: true,
            checks: vec![
                Check::new("PostgreSQL", false, Some("connection refused".into())),
                Check::new("backup maximum age", false, Some("too old".into())),
                Check::new("failed backups", false, None),
                Check::new("directories", true, None),
                Check::new("archive_mode", false, None),
            ],
        };
        assert!(!checks.ready_for_backup());
        assert_eq!(
            refusal("main", &checks),
            "cannot start the backup of server 'main': critical checks failed: PostgreSQL (connection refused); archive_mode; run 'pgbak check main' for details"
        );
        let harmless = ServerChecks {
            checks: checks.checks[1..4].to_vec(),
            ..checks
        };
        assert!(harmless.ready_for_backup());
        assert_eq!(
            restore_point_name("20260101T000000"),
            "pgbak_20260101T000000"
        );
    }

    #[test]
    fn server_compression_follows_the_configuration() {
        let zstd = detail_for(
            "backup_compression = zstd\nbackup_compression_location = server\nbackup_compression_workers = 2\n",
        )
        .unwrap();
        assert_eq!(zstd.method, "zstd");
        assert_eq!(zstd.detail.as_deref(), Some("level=1,workers=2"));
        // The level is passed as configured.
        let gzip = detail_for(
            "backup_compression = gzip\nbackup_compression_location = server\nbackup_compression_level = 6\n",
        )
        .unwrap();
        assert_eq!(gzip.method, "gzip");
        assert_eq!(gzip.detail.as_deref(), Some("level=6"));
        // Client compression, or none at all, asks nothing of the server.
        assert_eq!(detail_for("backup_compression = zstd\n"), None);
        assert_eq!(detail_for("backup_compression_location = server\n"), None);
    }
}
