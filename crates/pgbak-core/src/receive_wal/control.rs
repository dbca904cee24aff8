//! The operations around `receive-wal`, with Barman's meaning: `--create-slot` and `--drop-slot`
//! for the configured slot, `--reset` (forget the streaming position: archive what is complete,
//! remove the `.partial` files and mark the slot's restart position, or the server's current one,
//! as where streaming resumes), `--stop` (SIGTERM to the process holding the receive-wal lock),
//! and `cron` starting a receiver in the background where one should run.

use super::archiver::{sweep_now, ArchiverStats};
use super::{check_config, check_system, read_slot, segment_start, streaming_params};
use crate::locks::{LockError, LockName};
use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_wal::{ReplicationClient, SegmentName, WalFileName};
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `f` on a runtime of its own (the workflows are synchronous).
fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?
        .block_on(f)
}

fn slot_name(server: &Server) -> Result<&str> {
    server.config.slot_name.as_deref().ok_or_else(|| {
        Error::Usage(format!(
            "server '{}' has no slot_name in its configuration",
            server.name()
        ))
    })
}

/// What `--create-slot` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotCreation {
    /// The slot was created, reserving WAL from the server's current position.
    Created,
    /// It already existed (accepted with `--if-not-exists`).
    AlreadyExists,
}

/// `receive-wal --create-slot`: creates the configured physical slot, reserving WAL at once.
pub fn create_slot(server: &Server, if_not_exists: bool) -> Result<SlotCreation> {
    let name = slot_name(server)?;
    let params = streaming_params(server)?;
    block_on(async {
        let mut client = ReplicationClient::connect(&params).await?;
        let outcome = match client.create_physical_slot(name, true).await {
            Ok(()) => SlotCreation::Created,
            Err(e) if e.sqlstate() == Some("42710") => {
                if !if_not_exists {
                    return Err(Error::kind_of(ErrorKind::Usage, format!(
                        "server '{}': replication slot '{name}' already exists (use --if-not-exists to accept an existing slot)",
                        server.name()
                    )));
                }
                match read_slot(server, &mut client, name).await? {
                    Some(info) if !info.is_physical() => {
                        return Err(Error::kind_of(
                            ErrorKind::Usage,
                            format!(
                                "server '{}': replication slot '{name}' exists but is a {} slot",
                                server.name(),
                                info.slot_type
                            ),
                        ))
                    }
                    _ => SlotCreation::AlreadyExists,
                }
            }
            Err(e) => return Err(e.into()),
        };
        let _ = client.close().await;
        Ok(outcome)
    })
}

/// `receive-wal --drop-slot`: drops the configured slot. The server then stops keeping WAL for
/// pgbak.
pub fn drop_slot(server: &Server) -> Result<()> {
    let name = slot_name(server)?;
    let params = streaming_params(server)?;
    block_on(async {
        let mut client = ReplicationClient::connect(&params).await?;
        match client.drop_slot(name, false).await {
            Ok(()) => {}
            Err(e) if e.sqlstate() == Some("42704") => {
                return Err(Error::kind_of(ErrorKind::NotFound, format!(
                    "server '{}': replication slot '{name}' does not exist",
                    server.name()
                )))
            }
            Err(e) if e.sqlstate() == Some("55006") => {
                return Err(Error::kind_of(ErrorKind::InUse, format!(
                    "server '{}': replication slot '{name}' is in use; stop receive-wal first (`pgbak receive-wal --stop {}`): {e}",
                    server.name(),
                    server.name()
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let _ = client.close().await;
        Ok(())
    })
}

/// What `--reset` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Complete files moved into the archive first.
    pub archived: ArchiverStats,
    /// `.partial` files removed.
    pub removed: Vec<String>,
    /// The empty `.partial` file that now marks where streaming resumes.
    pub marker: String,
    /// Why there: the slot's restart position or the server's current position.
    pub source: String,
}

/// `receive-wal --reset`: makes streaming resume from what the server still has. Complete files
/// in `streaming/` are archived first; every `.partial` is removed (WAL in them that the server no
/// longer has is lost: the archive gets a gap there); an empty `<segment>.partial` marks the slot's
/// restart position, or the server's current position when the slot keeps none. Refused while
/// `receive-wal` runs.
pub fn reset(server: &Server) -> Result<ResetReport> {
    check_config(server)?;
    let _lock = server
        .locks()
        .try_lock(&LockName::ServerReceiveWal(server.name().to_string()))?;
    let cfg = &server.config;
    let params = streaming_params(server)?;
    let (seg, source) = block_on(async {
        let mut client = ReplicationClient::connect(&params).await?;
        let system = client.identify_system().await?;
        let seg_size = client.wal_segment_size().await?;
        check_system(
            server,
            &system.systemid,
            client.server_version_num(),
            seg_size,
        )?;
        let slot = match &cfg.slot_name {
            Some(name) => read_slot(server, &mut client, name).await?,
            None => None,
        };
        let _ = client.close().await;
        Ok(
            match slot.and_then(|s| s.restart_lsn.map(|l| (l, s.restart_tli))) {
                Some((lsn, tli)) => (
                    SegmentName::from_lsn(
                        tli.unwrap_or(system.timeline),
                        segment_start(lsn, seg_size),
                        seg_size,
                    )
                    .file_name(seg_size),
                    "the replication slot's restart position".to_string(),
                ),
                None => (
                    SegmentName::from_lsn(system.timeline, system.xlogpos, seg_size)
                        .file_name(seg_size),
                    "the server's current WAL position".to_string(),
                ),
            },
        )
    })?;
    let dir = &cfg.streaming_wals_directory;
    pgbak_storage::staging::create_dir_all_private(dir).map_err(|e| Error::io("create", dir, e))?;
    let archived = sweep_now(server, &server.wal_archive()?, dir);
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(WalFileName::parse(&name), Ok(WalFileName::Partial { .. })) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io("remove", entry.path(), e))?;
            removed.push(name);
        }
    }
    removed.sort();
    let marker = format!("{seg}.partial");
    let path = dir.join(&marker);
    pgbak_storage::staging::create_fresh(&path, pgbak_storage::staging::PRIVATE_FILE)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("create", &path, e))?;
    pgbak_storage::staging::fsync_dir(dir).map_err(|e| Error::io("fsync", dir, e))?;
    tracing::info!(server = server.name(), marker, "streaming position reset");
    Ok(ResetReport {
        archived,
        removed,
        marker,
        source,
    })
}

/// The PID of the `receive-wal` process of `server`, when one runs (holds the lock).
pub fn running_receiver(server: &Server) -> Result<Option<u32>> {
    let name = LockName::ServerReceiveWal(server.name().to_string());
    if !server.lock_path(&name)?.exists() {
        // No receiver ever ran here: don't create a lock file just to look.
        return Ok(None);
    }
    match server.locks().try_lock(&name) {
        Ok(_guard) => Ok(None),
        Err(LockError::Busy {
            holder_pid, path, ..
        }) => holder_pid.map(Some).ok_or_else(|| {
            Error::kind_of(
                ErrorKind::Busy,
                format!(
                    "server '{}': receive-wal is running but its PID cannot be read from {}",
                    server.name(),
                    path.display()
                ),
            )
        }),
        Err(e) => Err(e.into()),
    }
}

/// What `--stop` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// No receive-wal process runs for this server.
    NotRunning,
    /// The process was sent SIGTERM and released its lock.
    Stopped {
        /// Its PID.
        pid: u32,
    },
    /// The process was sent SIGTERM but still held its lock when the wait ended.
    StillRunning {
        /// Its PID.
        pid: u32,
    },
}

/// `receive-wal --stop`: sends SIGTERM to the process holding the server's receive-wal lock (its
/// PID is in the lock file, written while it holds the lock) and waits up to `wait` for it to
/// release the lock.
pub fn stop(server: &Server, wait: Duration) -> Result<StopOutcome> {
    let name = LockName::ServerReceiveWal(server.name().to_string());
    let (pid, path) = match server.locks().try_lock(&name) {
        Ok(_guard) => return Ok(StopOutcome::NotRunning),
        Err(LockError::Busy {
            holder_pid: Some(pid),
            path,
            ..
        }) => (pid, path),
        Err(LockError::Busy { path, .. }) => {
            return Err(Error::kind_of(
                ErrorKind::Busy,
                format!(
                    "server '{}': receive-wal is running but its PID cannot be read from {}",
                    server.name(),
                    path.display()
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // The lock file's content is only a claim: signal the process only if it really has the
    // lock file open (and is not this process).
    let raw = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1 && pid != std::process::id())
        .filter(|_| crate::locks::process_has_open(pid, &path))
        .ok_or_else(|| {
            Error::kind_of(ErrorKind::Refused, format!(
                "server '{}': the receive-wal lock {} names PID {pid}, which does not hold it; not signalling it",
                server.name(),
                path.display()
            ))
        })?;
    // SAFETY: kill(2) has no memory-safety preconditions; the PID was checked above to be a
    // process holding the receive-wal lock file open.
    if unsafe { libc::kill(raw, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::Other(format!(
                "cannot signal receive-wal (pid {pid}) of server '{}': {e}",
                server.name()
            )));
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        match server.locks().try_lock(&name) {
            Ok(_guard) => return Ok(StopOutcome::Stopped { pid }),
            Err(LockError::Busy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(LockError::Busy { .. }) => return Ok(StopOutcome::StillRunning { pid }),
            Err(e) => return Err(e.into()),
        }
    }
}

/// What cron did about a server's receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronAction {
    /// A receiver was started in the background.
    Started {
        /// Its PID.
        pid: u32,
    },
    /// A receiver was stopped because `streaming_archiver` is off.
    Stopped {
        /// Its PID.
        pid: u32,
    },
}

impl fmt::Display for CronAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronAction::Started { pid } => write!(f, "started receive-wal (pid {pid})"),
            CronAction::Stopped { pid } => {
                write!(
                    f,
                    "stopped receive-wal (pid {pid}): streaming_archiver is off"
                )
            }
        }
    }
}

/// Cron's part: with `streaming_archiver` on, starts `receive-wal` in the background (through the
/// server's [`ReceiverLauncher`]) unless one holds the lock already; with it off, stops a running
/// one.
pub fn cron_receive_wal(server: &Server) -> Result<Option<CronAction>> {
    let name = LockName::ServerReceiveWal(server.name().to_string());
    if !server.config.streaming_archiver {
        if running_receiver(server)?.is_none() {
            return Ok(None);
        }
        return Ok(match stop(server, Duration::from_secs(10))? {
            StopOutcome::Stopped { pid } | StopOutcome::StillRunning { pid } => {
                Some(CronAction::Stopped { pid })
            }
            StopOutcome::NotRunning => None,
        });
    }
    match server.locks().try_lock(&name) {
        Ok(guard) => drop(guard),
        Err(LockError::Busy { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let launcher = server.launcher().ok_or_else(|| {
        Error::Usage(format!(
            "server '{}': streaming_archiver is on but this program has no way to start receive-wal",
            server.name()
        ))
    })?;
    let pid = launcher.launch(server)?;
    Ok(Some(CronAction::Started { pid }))
}

/// How `cron` starts a WAL receiver in the background: the seam between the workflow and the
/// program it runs in (the CLI starts itself; a library caller names a `pgbak` program, or
/// provides its own).
pub trait ReceiverLauncher: Send + Sync {
    /// Starts `receive-wal` for `server` in the background; returns its process id.
    fn launch(&self, server: &Server) -> Result<u32>;
}

/// Starts `<program> -c CONFIG receive-wal SERVER` as a detached process, its output in the
/// server's log folder.
#[derive(Clone, Debug)]
pub struct ProcessLauncher {
    /// The `pgbak` program.
    pub program: std::path::PathBuf,
}

impl ReceiverLauncher for ProcessLauncher {
    fn launch(&self, server: &Server) -> Result<u32> {
        spawn_receive_wal(server, &self.program)
    }
}

/// How long a freshly started receiver is watched for an immediate failure.
const STARTUP_WATCH: Duration = Duration::from_millis(700);

/// Starts `exe -c CONFIG --log-level info receive-wal SERVER` as a detached background process:
/// its own session (no terminal signals reach it), stdin and stdout on `/dev/null`, stderr
/// appended to `<backup_directory>/receive-wal.log`. A receiver that exits at once is an error
/// quoting the end of that log.
pub fn spawn_receive_wal(server: &Server, exe: &Path) -> Result<u32> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let cfg = &server.config;
    pgbak_storage::staging::create_dir_all_private(&cfg.backup_directory)
        .map_err(|e| Error::io("create", &cfg.backup_directory, e))?;
    let log = cfg.backup_directory.join("receive-wal.log");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&log)
        .map_err(|e| Error::io("open", &log, e))?;
    let log_start = stderr.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(exe);
    if let Some(config) = server.config_files.first() {
        cmd.arg("-c").arg(config);
    }
    cmd.args(["--log-level", "info", "receive-wal", server.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::io("start", exe, e))?;
    let pid = child.id();
    let deadline = Instant::now() + STARTUP_WATCH;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = std::fs::read(&log).unwrap_or_default();
                let tail =
                    String::from_utf8_lossy(text.get(log_start as usize..).unwrap_or_default());
                return Err(Error::Other(format!(
                    "server '{}': receive-wal exited at once ({status}): {}",
                    server.name(),
                    tail.trim()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    // Reap it if this process outlives it; otherwise init does.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    tracing::info!(server = server.name(), pid, log = %log.display(), "started receive-wal");
    Ok(pid)
}
