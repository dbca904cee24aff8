//! Named locks that serialise pgbak commands working on the same server, backup or catalogue
//! file, so that a second `backup`, `archive-wal` or `receive-wal` fails fast and says who is in
//! the way instead of racing the first one.
//!
//! Locks are `flock(2)` locks on small files in the lock directory, with the names Barman uses
//! (`.main-backup.lock`, ...). The operating system releases them when the holder exits, even on
//! `kill -9`, so a crash never leaves a lock behind; the file itself stays and only records the
//! PID of its last holder so that a busy error can name it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Something that hands out named, exclusive locks.
///
/// Implementations must release a lock when its [`LockGuard`] is dropped and when the holding
/// process dies.
pub trait LockManager: Send + Sync {
    /// Takes the lock `name` if it is free, or fails at once with [`LockError::Busy`].
    fn try_lock(&self, name: &LockName) -> Result<LockGuard, LockError>;

    /// Takes the lock `name`, waiting for as long as another holder keeps it.
    fn lock_blocking(&self, name: &LockName) -> Result<LockGuard, LockError>;
}

/// The locks pgbak knows, one per kind of work that must not run twice at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockName {
    /// The global cron lock (`.cron.lock`).
    Cron,
    /// Held while a base backup of the server runs (`.SERVER-backup.lock`).
    ServerBackup(String),
    /// Held while cron maintains the server (`.SERVER-cron.lock`).
    ServerCron(String),
    /// Held while WAL are moved from `incoming/` into the archive (`.SERVER-archive-wal.lock`).
    ServerArchiveWal(String),
    /// Held by the process streaming WAL from the server (`.SERVER-receive-wal.lock`).
    ServerReceiveWal(String),
    /// Held while the server's WAL catalogue file is changed (`.SERVER-xlogdb.lock`).
    ServerXlogDb(String),
    /// Held while one backup is deleted, checked or otherwise changed (`.SERVER-BACKUPID.lock`).
    Backup {
        /// The server the backup belongs to.
        server: String,
        /// The backup id, e.g. `20240102T030405`.
        backup_id: String,
    },
}

impl LockName {
    /// The lock file's name inside the lock directory, as Barman names it.
    pub fn file_name(&self) -> String {
        match self {
            LockName::Cron => ".cron.lock".to_string(),
            LockName::ServerBackup(server) => format!(".{server}-backup.lock"),
            LockName::ServerCron(server) => format!(".{server}-cron.lock"),
            LockName::ServerArchiveWal(server) => format!(".{server}-archive-wal.lock"),
            LockName::ServerReceiveWal(server) => format!(".{server}-receive-wal.lock"),
            LockName::ServerXlogDb(server) => format!(".{server}-xlogdb.lock"),
            LockName::Backup { server, backup_id } => format!(".{server}-{backup_id}.lock"),
        }
    }

    /// The parts of the name that come from outside (server names, backup ids).
    fn components(&self) -> Vec<&str> {
        match self {
            LockName::Cron => Vec::new(),
            LockName::ServerBackup(server)
            | LockName::ServerCron(server)
            | LockName::ServerArchiveWal(server)
            | LockName::ServerReceiveWal(server)
            | LockName::ServerXlogDb(server) => vec![server.as_str()],
            LockName::Backup { server, backup_id } => vec![server.as_str(), backup_id.as_str()],
        }
    }

    /// Refuses names that would put the lock file outside the lock directory or make it
    /// unreadable to humans.
    fn validate(&self) -> Result<(), LockError> {
        for part in self.components() {
            let reason = if part.is_empty() {
                Some("it is empty")
            } else if part.contains('/') {
                Some("it contains '/'")
            } else if part.chars().any(char::is_control) {
                Some("it contains a control character")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(LockError::InvalidName {
                    lock: self.to_string(),
                    reason: format!("{part:?} cannot be part of a lock file name: {reason}"),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockName::Cron => write!(f, "global cron lock"),
            LockName::ServerBackup(server) => write!(f, "backup lock of server '{server}'"),
            LockName::ServerCron(server) => write!(f, "cron lock of server '{server}'"),
            LockName::ServerArchiveWal(server) => {
                write!(f, "archive-wal lock of server '{server}'")
            }
            LockName::ServerReceiveWal(server) => {
                write!(f, "receive-wal lock of server '{server}'")
            }
            LockName::ServerXlogDb(server) => {
                write!(f, "WAL catalogue lock of server '{server}'")
            }
            LockName::Backup { server, backup_id } => {
                write!(f, "lock of backup '{backup_id}' of server '{server}'")
            }
        }
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another handle in this process) holds the lock.
    #[error("another pgbak process{} holds the {lock} ({})", pid_part(.holder_pid), .path.display())]
    Busy {
        /// What the lock protects, e.g. "backup lock of server 'main'".
        lock: String,
        /// The lock file.
        path: PathBuf,
        /// The PID recorded by the holder, when it could be read.
        holder_pid: Option<u32>,
    },
    /// The lock directory or file could not be created, opened or locked.
    #[error("cannot take the {lock} ({}): {source}", .path.display())]
    Io {
        /// What the lock protects.
        lock: String,
        /// The lock file (or the lock directory when it could not be created).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server name or backup id cannot be used in a file name.
    #[error("invalid {lock}: {reason}")]
    InvalidName {
        /// What the lock protects.
        lock: String,
        /// Why the name was refused.
        reason: String,
    },
}

fn pid_part(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

/// A held lock; dropping it releases the lock.
///
/// The lock file is kept (deleting it would let a waiter lock an unlinked file while a newcomer
/// creates and locks a new one); only its PID is cleared.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    name: LockName,
    path: PathBuf,
}

impl LockGuard {
    /// The lock this guard holds.
    pub fn name(&self) -> &LockName {
        &self.name
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Clearing the PID first means a file that nobody holds never names a live process that
        // happens to reuse the PID. Failures here are harmless: the lock goes with the descriptor.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// A [`LockManager`] that keeps its lock files in one directory (pgbak's `lock_directory`).
#[derive(Clone, Debug)]
pub struct FileLockManager {
    dir: PathBuf,
}

impl FileLockManager {
    /// A manager for lock files in `dir`; the directory is created on first use if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLockManager { dir: dir.into() }
    }

    /// The lock directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the lock file of `name` lives.
    pub fn path_for(&self, name: &LockName) -> Result<PathBuf, LockError> {
        name.validate()?;
        Ok(self.dir.join(name.file_name()))
    }

    fn open(&self, name: &LockName) -> Result<(File, PathBuf), LockError> {
        let path = self.path_for(name)?;
        pgbak_storage::staging::create_dir_all_private(&self.dir).map_err(|source| {
            LockError::Io {
                lock: name.to_string(),
                path: self.dir.clone(),
                source,
            }
        })?;
        // No truncate here: the file may belong to a live holder whose PID we want to report.
        // O_NOFOLLOW keeps a planted symlink from making us write a PID into another file.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|source| LockError::Io {
                lock: name.to_string(),
                path: path.clone(),
                source,
            })?;
        Ok((file, path))
    }

    /// Records our PID in a lock we now hold and wraps it in a guard.
    fn acquired(name: &LockName, file: File, path: PathBuf) -> Result<LockGuard, LockError> {
        let guard = LockGuard {
            file,
            name: name.clone(),
            path,
        };
        write_pid(&guard.file).map_err(|source| LockError::Io {
            lock: name.to_string(),
            path: guard.path.clone(),
            source,
        })?;
        Ok(guard)
    }
}

fn write_pid(mut file: &File) -> io::Result<()> {
    file.set_len(0)?;
    // The descriptor was just opened, so its offset is still 0 and the PID lands at the start.
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
}

impl LockManager for FileLockManager {
    fn try_lock(&self, name: &LockName) -> Result<LockGuard, LockError> {
        let (file, path) = self.open(name)?;
        match file.try_lock() {
            Ok(()) => Self::acquired(name, file, path),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                lock: name.to_string(),
                holder_pid: holder_pid(&path),
                path,
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                lock: name.to_string(),
                path,
                source,
            }),
        }
    }

    fn lock_blocking(&self, name: &LockName) -> Result<LockGuard, LockError> {
        let (file, path) = self.open(name)?;
        match file.lock() {
            Ok(()) => Self::acquired(name, file, path),
            Err(source) => Err(LockError::Io {
                lock: name.to_string(),
                path,
                source,
            }),
        }
    }
}

/// The PID recorded in a lock file, if the file exists and holds one.
///
/// The number is only meaningful while somebody holds the lock (see [`is_stale`]); a holder
/// clears it on release, but one killed with `kill -9` leaves it behind.
pub fn holder_pid(path: &Path) -> Option<u32> {
    let file = File::open(path).ok()?;
    // A PID is a handful of digits: never read more than a small prefix of a foreign file.
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    // 0 and 1 are never a holder (and 0 would mean "my own process group" to kill(2)).
    text.trim()
        .parse()
        .ok()
        .filter(|pid: &u32| *pid > 1 && i32::try_from(*pid).is_ok())
}

/// Whether process `pid` has the file at `path` open: proof that a PID read from a lock file
/// names the process holding that lock, not whatever else the file was made to say.
pub fn process_has_open(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::metadata(fd.path())
            .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
    })
}

/// True when `path` is an existing lock file that nobody holds, i.e. one a cleanup may remove.
///
/// The check takes the lock for an instant, so a `try_lock` racing with it may see the lock busy.
/// Removing the file is only safe while holding its lock, and even then a process that opened it
/// just before the removal may lock the removed file: do it only when no pgbak command runs.
pub fn is_stale(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    fn manager() -> (tempfile::TempDir, FileLockManager) {
        let dir = tempfile::tempdir().unwrap();
        let manager = FileLockManager::new(dir.path().join("locks"));
        (dir, manager)
    }

    #[test]
    fn file_names_follow_barman() {
        let s = || "main".to_string();
        assert_eq!(LockName::Cron.file_name(), ".cron.lock");
        assert_eq!(LockName::ServerBackup(s()).file_name(), ".main-backup.lock");
        assert_eq!(LockName::ServerCron(s()).file_name(), ".main-cron.lock");
        assert_eq!(
            LockName::ServerArchiveWal(s()).file_name(),
            ".main-archive-wal.lock"
        );
        assert_eq!(
            LockName::ServerReceiveWal(s()).file_name(),
            ".main-receive-wal.lock"
        );
        assert_eq!(LockName::ServerXlogDb(s()).file_name(), ".main-xlogdb.lock");
        let backup = LockName::Backup {
            server: s(),
            backup_id: "20240102T030405".into(),
        };
        assert_eq!(backup.file_name(), ".main-20240102T030405.lock");
    }

    #[test]
    fn display_describes_the_lock() {
        assert_eq!(
            LockName::ServerBackup("main".into()).to_string(),
            "backup lock of server 'main'"
        );
        assert_eq!(LockName::Cron.to_string(), "global cron lock");
        let backup = LockName::Backup {
            server: "main".into(),
            backup_id: "20240102T030405".into(),
        };
        assert_eq!(
            backup.to_string(),
            "lock of backup '20240102T030405' of server 'main'"
        );
    }

    #[test]
    fn second_try_lock_is_busy_and_names_our_pid() {
        let (_tmp, first) = manager();
        let second = FileLockManager::new(first.dir());
        let name = LockName::ServerBackup("main".into());
        let guard = first.try_lock(&name).unwrap();
        let err = second.try_lock(&name).unwrap_err();
        match &err {
            LockError::Busy {
                lock,
                path,
                holder_pid,
            } => {
                assert_eq!(lock, "backup lock of server 'main'");
                assert_eq!(path, guard.path());
                assert_eq!(*holder_pid, Some(std::process::id()));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        let message = err.to_string();
        assert_eq!(
            message,
            format!(
                "another pgbak process (pid {}) holds the backup lock of server 'main' ({})",
                std::process::id(),
                guard.path().display()
            )
        );
        // The same manager conflicts with itself too: flock is per open file description.
        assert!(matches!(first.try_lock(&name), Err(LockError::Busy { .. })));
    }

    #[test]
    fn busy_message_without_pid() {
        let err = LockError::Busy {
            lock: "global cron lock".into(),
            path: PathBuf::from("/x/.cron.lock"),
            holder_pid: None,
        };
        assert_eq!(
            err.to_string(),
            "another pgbak process holds the global cron lock (/x/.cron.lock)"
        );
    }

    #[test]
    fn drop_releases_and_clears_pid() {
        let (_tmp, manager) = manager();
        let name = LockName::ServerArchiveWal("main".into());
        let guard = manager.try_lock(&name).unwrap();
        let path = guard.path().to_path_buf();
        assert_eq!(holder_pid(&path), Some(std::process::id()));
        assert!(!is_stale(&path));
        drop(guard);
        assert_eq!(holder_pid(&path), None);
        assert!(is_stale(&path));
        let again = manager.try_lock(&name).unwrap();
        assert_eq!(again.name(), &name);
    }

    #[test]
    fn lock_blocking_waits_for_release() {
        let (_tmp, manager) = manager();
        let name = LockName::ServerXlogDb("main".into());
        let guard = manager.try_lock(&name).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let manager = manager.clone();
            let name = name.clone();
            thread::spawn(move || {
                let got = manager.lock_blocking(&name).map(|g| g.path().to_path_buf());
                tx.send(()).unwrap();
                got
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "lock_blocking returned while the lock was held"
        );
        drop(guard);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("lock_blocking did not return after release");
        let path = waiter.join().unwrap().unwrap();
        assert_eq!(path, manager.path_for(&name).unwrap());
    }

    #[test]
    fn different_names_do_not_conflict() {
        let (_tmp, manager) = manager();
        let names = [
            LockName::Cron,
            LockName::ServerBackup("main".into()),
            LockName::ServerBackup("other".into()),
            LockName::ServerCron("main".into()),
            LockName::ServerArchiveWal("main".into()),
            LockName::ServerReceiveWal("main".into()),
            LockName::ServerXlogDb("main".into()),
            LockName::Backup {
                server: "main".into(),
                backup_id: "20240102T030405".into(),
            },
        ];
        let guards: Vec<LockGuard> = names.iter().map(|n| manager.try_lock(n).unwrap()).collect();
        assert_eq!(guards.len(), names.len());
    }

    #[test]
    fn lock_dir_is_created_and_file_is_private() {
        let (tmp, _) = manager();
        let dir = tmp.path().join("a/b/c");
        let manager = FileLockManager::new(&dir);
        let guard = manager.try_lock(&LockName::Cron).unwrap();
        assert!(dir.is_dir());
        assert_eq!(guard.path(), dir.join(".cron.lock"));
        let mode = fs::metadata(guard.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn names_that_escape_the_directory_are_refused() {
        let (_tmp, manager) = manager();
        for bad in ["../x", "", "a/b", "a\nb"] {
            let err = manager
                .try_lock(&LockName::ServerBackup(bad.into()))
                .unwrap_err();
            assert!(
                matches!(err, LockError::InvalidName { .. }),
                "{bad:?}: {err:?}"
            );
        }
        let err = manager
            .try_lock(&LockName::Backup {
                server: "main".into(),
                backup_id: "../../etc/passwd".into(),
            })
            .unwrap_err();
        assert!(matches!(err, LockError::InvalidName { .. }));
    }

    #[test]
    fn symlinked_lock_file_is_refused() {
        let (tmp, manager) = manager();
        fs::create_dir_all(manager.dir()).unwrap();
        let target = tmp.path().join("victim");
        fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, manager.dir().join(".cron.lock")).unwrap();
        let err = manager.try_lock(&LockName::Cron).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn helpers_on_missing_or_foreign_files() {
        let (tmp, _) = manager();
        let missing = tmp.path().join("nope.lock");
        assert_eq!(holder_pid(&missing), None);
        assert!(!is_stale(&missing));
        let junk = tmp.path().join("junk.lock");
        fs::write(&junk, "not a pid").unwrap();
        assert_eq!(holder_pid(&junk), None);
        assert!(is_stale(&junk));
        let leftover = tmp.path().join("leftover.lock");
        fs::write(&leftover, "4242\n").unwrap();
        assert_eq!(holder_pid(&leftover), Some(4242));
    }

    const CHILD_DIR_ENV: &str = "PGBAK_LOCK_TEST_CHILD_DIR";

    /// Run by `lock_of_another_process_is_busy_and_freed_by_its_death` in a child process:
    /// takes the lock, says so, and keeps it until killed.
    #[test]
    #[ignore = "helper run in a child process"]
    fn child_holds_lock() {
        let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
            return;
        };
        let manager = FileLockManager::new(PathBuf::from(dir));
        let _guard = manager
            .try_lock(&LockName::ServerBackup("main".into()))
            .unwrap();
        println!("LOCKED");
        io::stdout().flush().unwrap();
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
    }

    #[test]
    fn lock_of_another_process_is_busy_and_freed_by_its_death() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let (_tmp, manager) = manager();
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "locks::tests::child_holds_lock",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, manager.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let locked = io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("LOCKED"));
        assert!(locked, "the child process never took the lock");

        let name = LockName::ServerBackup("main".into());
        match manager.try_lock(&name) {
            Err(LockError::Busy { holder_pid, .. }) => assert_eq!(holder_pid, Some(child.id())),
            other => panic!("expected Busy, got {other:?}"),
        }
        // SIGKILL: the child runs no destructor, the kernel alone must release the lock.
        child.kill().unwrap();
        child.wait().unwrap();
        let guard = manager.try_lock(&name).unwrap();
        assert_eq!(holder_pid(guard.path()), Some(std::process::id()));
    }

    #[test]
    fn io_error_when_lock_dir_cannot_be_created() {
        let (tmp, _) = manager();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "").unwrap();
        let manager = FileLockManager::new(file.join("locks"));
        let err = manager.try_lock(&LockName::Cron).unwrap_err();
        match err {
            LockError::Io { path, .. } => assert_eq!(path, file.join("locks")),
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
