//! The lock directory's state and `pgbak lock-directory-cleanup`.
//!
//! Locks are `flock(2)` locks, so the kernel releases them when their holder dies: a lock file
//! left by a process killed with `kill -9` is free, and only its recorded PID tells who had it.
//! A lock that is still held while its recorded PID is gone means another process inherited the
//! descriptor and keeps the lock: both are reported. Cleanup removes lock files nobody holds.

use crate::locks::{holder_pid, is_stale};
use crate::{Error, Result};
use serde::Serialize;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Lock files whose lock is waited for (not just tried): removing one could let a waiter lock the
/// removed file while a newcomer locks a new one, so they are never removed.
const WAITED_ON_SUFFIXES: &[&str] = &["-xlogdb.lock"];

/// One lock file and what is known of its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockFileState {
    /// The file.
    pub path: PathBuf,
    /// Its name (`.main-backup.lock`).
    pub name: String,
    /// Whether some process holds the lock now.
    pub held: bool,
    /// The PID recorded in the file (its current holder when held, else the last one that did
    /// not release it cleanly).
    pub holder_pid: Option<u32>,
    /// Whether that PID is a running process.
    pub pid_running: Option<bool>,
}

impl LockFileState {
    /// A lock left behind by a process that died (free now, PID recorded, process gone), or held
    /// through a descriptor its recorded process no longer has.
    pub fn dead_holder(&self) -> bool {
        self.pid_running == Some(false)
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match (self.held, self.holder_pid, self.pid_running) {
            (true, Some(pid), Some(true)) => format!("{}: held by process {pid}", self.name),
            (true, Some(pid), _) => format!(
                "{}: held, but its recorded holder (process {pid}) is not running: another process inherited the lock",
                self.name
            ),
            (true, None, _) => format!("{}: held", self.name),
            (false, Some(pid), Some(false)) => format!(
                "{}: free, left by process {pid}, which is no longer running",
                self.name
            ),
            (false, _, _) => format!("{}: free", self.name),
        }
    }
}

/// Whether `pid` is a running process.
fn pid_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn is_lock_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".lock") && name.len() > ".lock".len() + 1
}

/// Every lock file (`.*.lock`) in `dir`, sorted by name, with its state.
pub fn lock_files(dir: &Path) -> Result<Vec<LockFileState>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_lock_name(&name) || !is_file {
            continue;
        }
        let path = e.path();
        let held = !is_stale(&path);
        let holder = holder_pid(&path);
        out.push(LockFileState {
            name,
            held,
            holder_pid: holder,
            pid_running: holder.map(pid_running),
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What `lock-directory-cleanup` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CleanupReport {
    /// Lock files removed (nobody held them).
    pub removed: Vec<LockFileState>,
    /// Lock files in use, left alone.
    pub held: Vec<LockFileState>,
    /// Free lock files kept on purpose, with the reason.
    pub kept: Vec<(LockFileState, String)>,
}

/// Removes every lock file of `dir` that nobody holds. Each file is removed while this process
/// holds its lock, so a file in use is never removed; lock files that commands wait on, and files
/// this user may not remove, are kept with the reason. Only an unlistable directory is an error.
pub fn lock_directory_cleanup(dir: &Path) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    for state in lock_files(dir)? {
        if WAITED_ON_SUFFIXES.iter().any(|s| state.name.ends_with(s)) {
            report.kept.push((
                state,
                "commands wait for this lock; it is never removed".into(),
            ));
            continue;
        }
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&state.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                report.kept.push((state, format!("cannot open it: {e}")));
                continue;
            }
        };
        match file.try_lock() {
            Ok(()) => match std::fs::remove_file(&state.path) {
                Ok(()) => {
                    tracing::info!(lock = %state.path.display(), pid = ?state.holder_pid, "removed unused lock file");
                    report.removed.push(LockFileState {
                        held: false,
                        ..state
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report.kept.push((state, format!("cannot remove it: {e}"))),
            },
            Err(_) => report.held.push(LockFileState {
                held: true,
                ..state
            }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{FileLockManager, LockManager, LockName};

    #[test]
    fn held_locks_stay_free_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let locks = FileLockManager::new(dir.path());
        let held = locks
            .try_lock(&LockName::ServerBackup("main".into()))
            .unwrap();
        drop(
            locks
                .try_lock(&LockName::ServerCron("main".into()))
                .unwrap(),
        );
        drop(
            locks
                .try_lock(&LockName::ServerXlogDb("main".into()))
                .unwrap(),
        );
        // A lock left by a process that died: free, with a PID nobody has.
        std::fs::write(dir.path().join(".main-archive-wal.lock"), "2147483646\n").unwrap();
        std::fs::write(dir.path().join("not-a-lock"), "").unwrap();

        let states = lock_files(dir.path()).unwrap();
        let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                ".main-archive-wal.lock",
                ".main-backup.lock",
                ".main-cron.lock",
                ".main-xlogdb.lock"
            ]
        );
        assert!(states[0].dead_holder() && !states[0].held);
        assert!(
            states[0].describe().contains("no longer running"),
            "{}",
            states[0].describe()
        );
        assert!(states[1].held);
        assert_eq!(states[1].holder_pid, Some(std::process::id()));
        assert_eq!(states[1].pid_running, Some(true));

        let report = lock_directory_cleanup(dir.path()).unwrap();
        let removed: Vec<&str> = report.removed.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(removed, [".main-archive-wal.lock", ".main-cron.lock"]);
        assert_eq!(report.held.len(), 1);
        assert_eq!(report.kept.len(), 1);
        assert!(dir.path().join(".main-backup.lock").exists());
        assert!(!dir.path().join(".main-cron.lock").exists());
        assert!(dir.path().join("not-a-lock").exists());
        drop(held);
        assert!(lock_files(&dir.path().join("missing")).unwrap().is_empty());
    }
}
