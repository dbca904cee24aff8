//! [`RsyncCopy`]: a backup taken file by file with rsync, between PostgreSQL's concurrent backup
//! calls (`pg_backup_start` / `pg_backup_stop`, held by a [`BackupSession`] the caller provides),
//! as Barman's `backup_method = rsync` (over SSH) and `local-rsync` do.
//!
//! The copy has the layout of a plain `postgres` backup, so recovery and verification read both
//! alike: the data directory in `data_dir` with the `backup_label` and `tablespace_map` the
//! server returned, each tablespace in `<tablespaces_root>/<oid>`, and `pg_tblspc/<oid>` linking
//! there. `pg_backup_stop` is called whatever happens to the copy, so a failed backup never
//! leaves the server in backup mode.

use super::command::{ReuseMode, RsyncSettings};
use super::controller::{Controller, ControllerStats, RetryPolicy, Side, Task, Tick, TreeCopy};
use super::exclude::{self, TreePlan};
use super::filelist;
use super::host::Host;
use crate::durable::{SyncMethod, SyncTracker};
use crate::strategy::{
    BackupDestination, CopyOutcome, CopyPhases, CopyProgress, CopyStrategy, OutputFile,
};
use crate::{Error, Result};
use pgbak_wal::{BackupLabel, Lsn, TablespaceInfo};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server side of a concurrent backup: one SQL session held open from start to stop.
pub trait BackupSession: Send {
    /// Starts the backup (`pg_backup_start(label, fast)`) and says what to copy.
    fn start(&mut self, label: &str, fast_checkpoint: bool) -> Result<BackupStart>;
    /// Keeps the session busy enough that nothing between here and the server closes it.
    fn keepalive(&mut self) -> Result<()>;
    /// Stops the backup (`pg_backup_stop`) and returns the label and tablespace map.
    fn stop(&mut self) -> Result<BackupStop>;
}

/// A tablespace to copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceTablespace {
    /// `spcname`.
    pub name: String,
    /// Its oid (the name of its `pg_tblspc` link).
    pub oid: u32,
    /// Its directory on the database host.
    pub location: String,
}

/// What the server said when the backup started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupStart {
    /// The LSN `pg_backup_start` returned.
    pub start_lsn: Lsn,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// The system identifier, when the session could read it (else taken from the copied
    /// control file).
    pub systemid: Option<String>,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// `data_directory` on the database host.
    pub data_directory: String,
    /// User tablespaces.
    pub tablespaces: Vec<SourceTablespace>,
    /// Configuration files that live outside the data directory, to be copied into the
    /// backup's copy of it (Debian keeps them in `/etc/postgresql`).
    pub external_config_files: Vec<String>,
    /// The server's clock when the backup started (seconds since the epoch): the horizon a
    /// later backup reusing this one compares modification times with.
    pub server_time: i64,
}

/// What the server said when the backup stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupStop {
    /// The LSN `pg_backup_stop` returned: the backup is consistent once replayed to here.
    pub end_lsn: Lsn,
    /// Timeline of `end_lsn`, when the session knows it (else the start timeline).
    pub end_tli: Option<u32>,
    /// The `backup_label` text.
    pub backup_label: String,
    /// The `tablespace_map` text (empty without tablespaces).
    pub tablespace_map: Option<String>,
    /// The server's clock when the backup stopped (seconds since the epoch, rounded up), when
    /// the session could read it.
    pub server_time: Option<i64>,
}

/// An earlier backup whose unchanged files are reused (`reuse_backup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReuseFrom {
    /// Hard links or local copies.
    pub mode: ReuseMode,
    /// Its copy of the data directory.
    pub data_dir: PathBuf,
    /// The folder holding its tablespaces, by oid.
    pub tablespaces_root: PathBuf,
    /// Its [`BackupStart::server_time`]; files modified since are compared by content. `None`
    /// compares every file by content.
    pub horizon: Option<i64>,
    /// Its [`BackupStop::server_time`]: a file modified after it has a time that no copy in the
    /// earlier backup can have, so size and time tell it apart. `None`: no such shortcut.
    pub until: Option<i64>,
}

/// Settings of an rsync backup.
#[derive(Clone, Debug)]
pub struct RsyncCopyOptions {
    /// Label for `pg_backup_start`.
    pub label: String,
    /// Ask for an immediate checkpoint.
    pub fast_checkpoint: bool,
    /// Parallel rsync runs (`parallel_jobs`).
    pub jobs: usize,
    /// Retries of a failed run.
    pub retry: RetryPolicy,
    /// Program, compression and bandwidth of every run. The bandwidth limit is the total of
    /// all workers: each run gets its share.
    pub rsync: RsyncSettings,
    /// Bandwidth limits of single tablespaces by name (kB/s, `tablespace_bandwidth_limit`).
    pub tablespace_bwlimit: HashMap<String, u64>,
    /// An earlier backup to take unchanged files from.
    pub reuse: Option<ReuseFrom>,
    /// How often the backup session is kept alive during the copy (`None`: never).
    pub keepalive_interval: Option<Duration>,
    /// Copy configuration files that live outside the data directory into the backup
    /// (false with `backup_options = external_configuration`).
    pub copy_external_config: bool,
}

impl Default for RsyncCopyOptions {
    fn default() -> Self {
        RsyncCopyOptions {
            label: "pgbak backup".into(),
            fast_checkpoint: false,
            jobs: 1,
            retry: RetryPolicy::default(),
            rsync: RsyncSettings::default(),
            tablespace_bwlimit: HashMap::new(),
            reuse: None,
            keepalive_interval: Some(Duration::from_secs(60)),
            copy_external_config: true,
        }
    }
}

/// What an rsync backup moved, beyond the [`CopyOutcome`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsyncCopyStats {
    /// Bytes of the files in the backup.
    pub total_bytes: u64,
    /// Bytes of the files sent by the source (new or changed).
    pub copied_bytes: u64,
    /// Bytes of the files taken unchanged from the reused backup.
    pub reused_bytes: u64,
    /// Bytes on the wire from the source (rsync's protocol included).
    pub network_bytes: u64,
    /// Regular files in the backup.
    pub files: u64,
    /// Regular files sent.
    pub files_copied: u64,
    /// Entries left out by the exclusion rules.
    pub excluded_entries: u64,
    /// rsync runs.
    pub runs: u64,
    /// Runs that needed a retry.
    pub retried_runs: u64,
    /// The server's clock at the start ([`BackupStart::server_time`]).
    pub server_time: i64,
    /// The server's clock at the stop ([`BackupStop::server_time`]).
    pub server_end_time: Option<i64>,
    /// Seconds spent copying files (between start and stop).
    pub copy_seconds: f64,
}

/// What the copy phase produced.
struct Copied {
    stats: ControllerStats,
    excluded: u64,
    /// Planned bytes of each tree: `data`, then each tablespace by oid.
    sizes: Vec<(String, u64)>,
}

/// Takes a backup with rsync from a source host (this one, or one over SSH).
pub struct RsyncCopy {
    source: Host,
    session: Mutex<Box<dyn BackupSession>>,
    /// How the copy is made.
    pub options: RsyncCopyOptions,
}

impl std::fmt::Debug for RsyncCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsyncCopy")
            .field("source", &self.source)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Runs `program --version` on `host`.
fn program_works(host: &Host, program: &str) -> Result<String> {
    let out = host.output(program, &["--version"]).map_err(|e| {
        Error::Config(format!(
            "{program} cannot be run on {}: {e}",
            host.describe()
        ))
    })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Config(format!(
            "{program} is not available on {} ({}{}{})",
            host.describe(),
            out.status,
            if said.trim().is_empty() { "" } else { ": " },
            said.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Checks that rsync runs on this host and rsync and find on `source`; returns rsync's version
/// lines (here, there).
pub fn check_programs(source: &Host, rsync: &RsyncSettings) -> Result<(String, String)> {
    let program = rsync.program.display().to_string();
    let here = program_works(&Host::Local, &program)?;
    let remote = rsync.remote_program.as_deref().unwrap_or("rsync");
    let there = program_works(source, remote)?;
    program_works(source, "find")?;
    Ok((here, there))
}

impl RsyncCopy {
    /// A backup of the server behind `session`, whose files are on `source`.
    pub fn new(source: Host, session: Box<dyn BackupSession>, options: RsyncCopyOptions) -> Self {
        RsyncCopy {
            source,
            session: Mutex::new(session),
            options,
        }
    }

    /// Checks, before anything starts on the server, that the programs the copy needs run on
    /// both hosts.
    pub fn preflight(&self) -> Result<()> {
        check_programs(&self.source, &self.options.rsync).map(|_| ())
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn BackupSession>>> {
        self.session
            .lock()
            .map_err(|_| Error::Aborted("the backup session was poisoned by a panic".into()))
    }

    /// Takes the backup into `data_dir` and `<tablespaces_root>/<oid>`; returns the outcome and
    /// the numbers of the copy.
    pub fn run(
        &self,
        data_dir: &Path,
        tablespaces_root: &Path,
        progress: &mut dyn CopyProgress,
    ) -> Result<(CopyOutcome, RsyncCopyStats)> {
        crate::writer::ensure_empty_or_missing(data_dir)?;
        create_private_dir(data_dir)?;
        let connected = Instant::now();
        let start = self
            .session()?
            .start(&self.options.label, self.options.fast_checkpoint)?;
        let began = Instant::now();
        let copied = self.copy_files(&start, data_dir, tablespaces_root, progress);
        let copied_at = Instant::now();
        // Stop whatever happened: an abandoned backup must not stay open on the server.
        let stopped = self.session().and_then(|mut s| s.stop());
        match (copied, stopped) {
            (Ok(copied), Ok(stop)) => {
                let phases = CopyPhases {
                    start: began - connected,
                    copy: copied_at - began,
                    stop: copied_at.elapsed(),
                    durable: Duration::ZERO,
                };
                self.finish(start, stop, copied, phases, data_dir, tablespaces_root)
            }
            (Err(e), stopped) => {
                if let Err(stop_error) = stopped {
                    tracing::warn!("pg_backup_stop after a failed copy also failed: {stop_error}");
                }
                Err(e)
            }
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Lists, plans and copies every tree.
    fn copy_files(
        &self,
        start: &BackupStart,
        data_dir: &Path,
        tablespaces_root: &Path,
        progress: &mut dyn CopyProgress,
    ) -> Result<Copied> {
        let o = &self.options;
        let version = start.server_version_num;
        let data_root = start.data_directory.trim_end_matches('/').to_string();
        // Tablespaces inside the data directory are copied once, as tablespaces.
        let inside: Vec<PathBuf> = start
            .tablespaces
            .iter()
            .filter_map(|t| {
                Path::new(&t.location)
                    .strip_prefix(&data_root)
                    .ok()
                    .filter(|r| !r.as_os_str().is_empty())
                    .map(Path::to_path_buf)
            })
            .collect();
        let listed = Instant::now();
        let data_plan = exclude::plan_data_directory(
            filelist::list_tree(&self.source, &data_root)?,
            &inside,
            version,
        );
        let jobs = o.jobs.max(1);
        let share = |limit: Option<u64>| limit.map(|l| (l / jobs as u64).max(1));
        let mut controller = Controller {
            settings: o.rsync.clone(),
            jobs,
            retry: o.retry,
        };
        controller.settings.bwlimit_kbps = share(o.rsync.bwlimit_kbps);

        let reuse_of = |dir: PathBuf| {
            o.reuse
                .as_ref()
                .filter(|_| dir.is_dir())
                .map(|r| ((r.mode, dir), r.horizon.map(|h| (h, r.until))))
        };
        let data_reuse = o.reuse.as_ref().and_then(|r| reuse_of(r.data_dir.clone()));
        let mut trees: Vec<(TreeCopy, TreePlan)> = vec![(
            TreeCopy {
                what: "PGDATA".into(),
                source: Side {
                    host: self.source.clone(),
                    root: data_root.clone(),
                },
                dest: Side::local(data_dir),
                reuse: data_reuse.as_ref().map(|(r, _)| r.clone()),
                reuse_window: data_reuse.and_then(|(_, w)| w),
                bwlimit_kbps: None,
            },
            data_plan,
        )];
        for t in &start.tablespaces {
            let dest = tablespaces_root.join(t.oid.to_string());
            create_private_dir(&dest)?;
            let plan =
                exclude::plan_tablespace(filelist::list_tree(&self.source, &t.location)?, version);
            let reuse = o
                .reuse
                .as_ref()
                .and_then(|r| reuse_of(r.tablespaces_root.join(t.oid.to_string())));
            trees.push((
                TreeCopy {
                    what: format!("tablespace {} ({})", t.name, t.oid),
                    source: Side {
                        host: self.source.clone(),
                        root: t.location.clone(),
                    },
                    dest: Side::local(&dest),
                    reuse: reuse.as_ref().map(|(r, _)| r.clone()),
                    reuse_window: reuse.and_then(|(_, w)| w),
                    bwlimit_kbps: share(o.tablespace_bwlimit.get(&t.name).copied()),
                },
                plan,
            ));
        }
        let total: u64 = trees.iter().map(|(_, p)| p.bytes()).sum();
        progress.set_total(Some(total));
        tracing::info!(
            "listed {} trees on {} in {:.2}s: {} files and links, {} bytes to copy",
            trees.len(),
            self.source.describe(),
            listed.elapsed().as_secs_f64(),
            trees
                .iter()
                .map(|(_, p)| p.files.len() + p.last.len())
                .sum::<usize>(),
            total
        );

        let mut session = self.session()?;
        let mut keepalive = || session.keepalive();
        let mut stats = ControllerStats::default();
        let mut done = 0u64;
        let mut excluded = 0u64;
        let mut run = |tasks: Vec<Task>,
                       progress: &mut dyn CopyProgress,
                       done: &mut u64,
                       stats: &mut ControllerStats|
         -> Result<()> {
            let bytes: u64 = tasks.iter().map(|t| t.bytes).sum();
            let (runs, began) = (tasks.len(), Instant::now());
            let tick = o.keepalive_interval.map(|every| Tick {
                every,
                call: &mut keepalive,
            });
            let s = controller.run(tasks, progress, *done, tick)?;
            tracing::info!(
                "{runs} rsync runs, {bytes} bytes in {:.2}s ({} sent by the source)",
                began.elapsed().as_secs_f64(),
                s.rsync.bytes_received.max(s.rsync.bytes_sent)
            );
            *done += bytes;
            stats.rsync.add(&s.rsync);
            stats.runs += s.runs;
            stats.retried_runs += s.retried_runs;
            Ok(())
        };
        // Directories first, so every file lands in a folder with the right mode.
        let dirs: Vec<Task> = trees
            .iter()
            .filter_map(|(t, p)| t.dir_task(&p.dirs))
            .collect();
        run(dirs, progress, &mut done, &mut stats)?;
        let mut files: Vec<Task> = trees
            .iter()
            .flat_map(|(t, p)| t.file_tasks(&p.files, jobs))
            .collect();
        if o.copy_external_config {
            files.extend(external_config_tasks(
                &self.source,
                &start.external_config_files,
                data_dir,
            ));
        }
        run(files, progress, &mut done, &mut stats)?;
        let last: Vec<Task> = trees
            .iter()
            .filter_map(|(t, p)| t.last_task(&p.last))
            .collect();
        run(last, progress, &mut done, &mut stats)?;

        let mut sizes = Vec::new();
        for (i, (tree, plan)) in trees.iter().enumerate() {
            let dest = PathBuf::from(&tree.dest.root);
            for d in &plan.empty_dirs {
                create_private_dir(&dest.join(d))?;
            }
            excluded += plan.excluded as u64;
            for l in &plan.skipped_links {
                tracing::warn!(
                    "left out the symbolic link {} of {}: a backup holds only the links PostgreSQL makes (pg_tblspc/<oid>)",
                    l.display(),
                    tree.source.root
                );
            }
            let name = if i == 0 {
                "data".to_string()
            } else {
                start.tablespaces[i - 1].oid.to_string()
            };
            sizes.push((name, plan.bytes()));
        }
        // pg_tblspc/<oid> points at the backup's own copy, as in a plain `postgres` backup.
        if !start.tablespaces.is_empty() {
            let tblspc = data_dir.join("pg_tblspc");
            create_private_dir(&tblspc)?;
            for t in &start.tablespaces {
                let link = tblspc.join(t.oid.to_string());
                let target = tablespaces_root.join(t.oid.to_string());
                std::os::unix::fs::symlink(&target, &link)
                    .map_err(|e| Error::io("symlink", &link, e))?;
            }
        }
        Ok(Copied {
            stats,
            excluded,
            sizes,
        })
    }

    fn finish(
        &self,
        start: BackupStart,
        stop: BackupStop,
        copied: Copied,
        phases: CopyPhases,
        data_dir: &Path,
        tablespaces_root: &Path,
    ) -> Result<(CopyOutcome, RsyncCopyStats)> {
        let finishing = Instant::now();
        let label = BackupLabel::parse(&stop.backup_label).map_err(|e| {
            Error::Server(format!(
                "pg_backup_stop returned an unusable backup_label: {e}"
            ))
        })?;
        write_file(&data_dir.join("backup_label"), stop.backup_label.as_bytes())?;
        let map = stop.tablespace_map.clone().filter(|m| !m.trim().is_empty());
        if let Some(m) = &map {
            write_file(&data_dir.join("tablespace_map"), m.as_bytes())?;
        }
        SyncTracker::new(SyncMethod::Syncfs, data_dir).finish()?;
        if !start.tablespaces.is_empty() {
            SyncTracker::new(SyncMethod::Syncfs, tablespaces_root).finish()?;
        }
        let systemid = match start.systemid.clone().filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => systemid_from_control_file(&data_dir.join(exclude::PG_CONTROL))?,
        };
        let Copied {
            stats,
            excluded,
            sizes,
        } = copied;
        let rsync = stats.rsync;
        let total_bytes: u64 = sizes.iter().map(|(_, b)| b).sum();
        let outcome = CopyOutcome {
            start_lsn: label.start_lsn,
            start_tli: label.start_timeline,
            end_lsn: stop.end_lsn,
            end_tli: stop.end_tli.unwrap_or(label.start_timeline),
            tablespaces: start
                .tablespaces
                .iter()
                .map(|t| TablespaceInfo {
                    oid: Some(t.oid),
                    location: Some(t.location.clone()),
                    size_kb: None,
                })
                .collect(),
            backup_label: Some(stop.backup_label.clone()),
            tablespace_map: map,
            bytes_received: rsync.bytes_received,
            bytes_written: total_bytes,
            files: sizes
                .into_iter()
                .map(|(name, size)| OutputFile {
                    name,
                    size,
                    crc32c: None,
                })
                .collect(),
            has_manifest: false,
            server_version_num: start.server_version_num,
            systemid,
            wal_segment_size: start.wal_segment_size,
            phases: CopyPhases {
                durable: finishing.elapsed(),
                ..phases
            },
        };
        let stats = RsyncCopyStats {
            total_bytes,
            copied_bytes: rsync.transferred_size,
            reused_bytes: rsync.total_size.saturating_sub(rsync.transferred_size),
            network_bytes: rsync.bytes_received.max(rsync.bytes_sent),
            files: rsync.files,
            files_copied: rsync.files_transferred,
            excluded_entries: excluded,
            runs: stats.runs,
            retried_runs: stats.retried_runs,
            server_time: start.server_time,
            server_end_time: stop.server_time,
            copy_seconds: phases.copy.as_secs_f64(),
        };
        Ok((outcome, stats))
    }
}

impl CopyStrategy for RsyncCopy {
    fn name(&self) -> &'static str {
        "rsync"
    }

    /// Only plain destinations: rsync copies files, not tar streams.
    fn copy(
        &self,
        dest: &BackupDestination,
        progress: &mut dyn CopyProgress,
    ) -> Result<CopyOutcome> {
        match dest {
            BackupDestination::Plain {
                data_dir,
                tablespaces_root,
            } => self
                .run(data_dir, tablespaces_root, progress)
                .map(|(o, _)| o),
            BackupDestination::Tar { .. } => Err(Error::Config(
                "the rsync method writes plain backups only".into(),
            )),
        }
    }
}

/// One run per configuration file outside the data directory, into the top of the copy.
fn external_config_tasks(source: &Host, files: &[String], data_dir: &Path) -> Vec<Task> {
    files
        .iter()
        .filter_map(|f| {
            let p = Path::new(f);
            let (parent, name) = (p.parent()?, p.file_name()?);
            Some(Task {
                what: format!("configuration file {f}"),
                source: Side {
                    host: source.clone(),
                    root: parent.display().to_string(),
                },
                dest: Side::local(data_dir),
                names: vec![PathBuf::from(name)],
                bytes: 0,
                reuse: None,
                checksum: false,
                bwlimit_kbps: None,
            })
        })
        .collect()
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("chmod", path, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))
}

/// The system identifier: the first eight bytes of `pg_control`, in the server's byte order
/// (the backup host is assumed to share it, as rsync backups are restored on the same platform).
pub fn systemid_from_control_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::Server(format!("{} is too short to be pg_control", path.display()))
        })?;
    Ok(u64::from_ne_bytes(first).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;
    use std::sync::Arc;

    /// What the fake server saw.
    #[derive(Default)]
    struct Seen {
        starts: u32,
        keepalives: u32,
        stops: u32,
    }

    /// A server whose "data directory" is a folder of this host.
    struct FakeSession {
        start: BackupStart,
        seen: Arc<Mutex<Seen>>,
    }

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
        CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
        START TIME: 2024-01-01 10:00:00 UTC\nLABEL: test\nSTART TIMELINE: 1\n";

    impl BackupSession for FakeSession {
        fn start(&mut self, _label: &str, _fast: bool) -> Result<BackupStart> {
            self.seen.lock().unwrap().starts += 1;
            Ok(self.start.clone())
        }
        fn keepalive(&mut self) -> Result<()> {
            self.seen.lock().unwrap().keepalives += 1;
            Ok(())
        }
        fn stop(&mut self) -> Result<BackupStop> {
            self.seen.lock().unwrap().stops += 1;
            Ok(BackupStop {
                end_lsn: Lsn(0x2000100),
                end_tli: None,
                backup_label: LABEL.into(),
                tablespace_map: Some("16390 /somewhere\n".into()),
                server_time: Some(1_700_000_100),
            })
        }
    }

    fn fake_cluster(root: &Path) -> (PathBuf, PathBuf) {
        let pgdata = root.join("pgdata");
        let ts = root.join("ts");
        for d in [
            "base/5",
            "global",
            "pg_wal/archive_status",
            "pg_tblspc",
            "pg_notify",
        ] {
            std::fs::create_dir_all(pgdata.join(d)).unwrap();
        }
        std::fs::create_dir_all(ts.join("PG_15_202209061/5")).unwrap();
        for i in 0..50 {
            std::fs::write(
                pgdata.join(format!("base/5/{}", 16384 + i)),
                vec![i as u8; 8192 * (i + 1)],
            )
            .unwrap();
        }
        let mut control = 4242u64.to_ne_bytes().to_vec();
        control.resize(8192, 0);
        std::fs::write(pgdata.join("global/pg_control"), control).unwrap();
        std::fs::write(pgdata.join("postmaster.pid"), b"123").unwrap();
        std::fs::write(
            pgdata.join("pg_wal/000000010000000000000001"),
            vec![0u8; 1 << 20],
        )
        .unwrap();
        std::fs::write(pgdata.join("pg_notify/0000"), b"x").unwrap();
        std::fs::write(ts.join("PG_15_202209061/5/16400"), vec![7u8; 100_000]).unwrap();
        std::os::unix::fs::symlink(&ts, pgdata.join("pg_tblspc/16390")).unwrap();
        (pgdata, ts)
    }

    fn copy_for(root: &Path, seen: &Arc<Mutex<Seen>>, rsync: RsyncSettings) -> RsyncCopy {
        let (pgdata, ts) = fake_cluster(root);
        let start = BackupStart {
            start_lsn: Lsn(0x2000028),
            server_version_num: 150004,
            systemid: None,
            wal_segment_size: 16 << 20,
            data_directory: pgdata.display().to_string(),
            tablespaces: vec![SourceTablespace {
                name: "tbs".into(),
                oid: 16390,
                location: ts.display().to_string(),
            }],
            external_config_files: Vec::new(),
            server_time: 1_700_000_000,
        };
        let session = FakeSession {
            start,
            seen: seen.clone(),
        };
        RsyncCopy::new(
            Host::Local,
            Box::new(session),
            RsyncCopyOptions {
                jobs: 3,
                rsync,
                keepalive_interval: Some(Duration::from_millis(1)),
                ..Default::default()
            },
        )
    }

    #[test]
    fn copies_a_cluster_between_start_and_stop() {
        let d = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let copy = copy_for(d.path(), &seen, RsyncSettings::default());
        let backup = d.path().join("backup");
        let (outcome, stats) = copy
            .run(&backup.join("data"), &backup, &mut NoProgress)
            .unwrap();
        let data = backup.join("data");
        assert_eq!(
            std::fs::read(data.join("base/5/16433")).unwrap().len(),
            8192 * 50
        );
        assert!(!data.join("postmaster.pid").exists());
        assert!(data.join("pg_wal/archive_status").is_dir());
        assert_eq!(std::fs::read_dir(data.join("pg_wal")).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_dir(data.join("pg_notify")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_to_string(data.join("backup_label")).unwrap(),
            LABEL
        );
        assert_eq!(
            std::fs::read_link(data.join("pg_tblspc/16390")).unwrap(),
            backup.join("16390")
        );
        assert_eq!(
            std::fs::read(backup.join("16390/PG_15_202209061/5/16400"))
                .unwrap()
                .len(),
            100_000
        );
        assert_eq!(outcome.systemid, "4242", "read from the copied pg_control");
        assert_eq!(outcome.start_tli, 1);
        assert_eq!(outcome.end_tli, 1);
        let expected: u64 = (1..=50).map(|i| 8192 * i).sum::<u64>() + 8192 + 100_000;
        assert_eq!(stats.total_bytes, expected);
        assert_eq!(stats.copied_bytes, expected);
        let s = seen.lock().unwrap();
        assert_eq!((s.starts, s.stops), (1, 1));
        assert!(
            s.keepalives > 0,
            "the session was kept alive during the copy"
        );
    }

    #[test]
    fn a_failed_copy_still_stops_the_backup() {
        let d = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let broken = RsyncSettings {
            program: PathBuf::from("/nonexistent/rsync"),
            ..Default::default()
        };
        let copy = copy_for(d.path(), &seen, broken);
        let backup = d.path().join("backup");
        let e = copy
            .run(&backup.join("data"), &backup, &mut NoProgress)
            .unwrap_err();
        assert!(matches!(e, Error::Rsync { .. }), "{e}");
        let s = seen.lock().unwrap();
        assert_eq!(
            (s.starts, s.stops),
            (1, 1),
            "pg_backup_stop ran after the failure"
        );
    }

    #[test]
    fn systemid_is_read_from_pg_control() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pg_control");
        let mut bytes = 7310393123456789012u64.to_ne_bytes().to_vec();
        bytes.extend([0u8; 100]);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            systemid_from_control_file(&p).unwrap(),
            "7310393123456789012"
        );
        std::fs::write(&p, b"short").unwrap();
        assert!(systemid_from_control_file(&p).is_err());
    }

    #[test]
    fn external_configuration_lands_at_the_top() {
        let t = external_config_tasks(
            &Host::Local,
            &["/etc/postgresql/15/main/postgresql.conf".into(), "/".into()],
            Path::new("/backup/data"),
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].source.root, "/etc/postgresql/15/main");
        assert_eq!(t[0].names, vec![PathBuf::from("postgresql.conf")]);
    }
}
