//! The lock of one backup (`.SERVER-BACKUPID.lock`): exclusive for what changes the backup
//! (delete, keep), shared for what only reads it (recover), so that any number of restores of one
//! backup may run together while a delete waits for none of them and refuses instead.

use crate::locks::{LockError, LockGuard, LockName};
use crate::server::Server;
use crate::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;

fn name(server: &Server, id: &str) -> LockName {
    LockName::Backup {
        server: server.name().to_string(),
        backup_id: id.to_string(),
    }
}

fn in_use(server: &Server, id: &str) -> Error {
    Error::Backup {
        server: server.name().to_string(),
        problem: crate::BackupProblem::InUse,
        message: format!(
            "backup {id} is in use by another pgbak process (being restored, kept or deleted); try again later"
        ),
    }
}

/// Takes the backup's lock exclusively, or fails at once if anyone holds it.
pub fn lock_backup(server: &Server, id: &str) -> Result<LockGuard> {
    match server.locks().try_lock(&name(server, id)) {
        Ok(g) => Ok(g),
        Err(LockError::Busy { .. }) => Err(in_use(server, id)),
        Err(e) => Err(e.into()),
    }
}

/// A shared hold on a backup's lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct SharedBackupLock {
    file: File,
}

impl Drop for SharedBackupLock {
    fn drop(&mut self) {
        // Nothing to undo if this fails: closing the descriptor releases the lock anyway.
        let _ = self.file.unlock();
    }
}

/// Takes the backup's lock in shared mode, or fails at once if a delete or keep holds it.
pub fn lock_backup_shared(server: &Server, id: &str) -> Result<SharedBackupLock> {
    let lock = name(server, id);
    let path = server.lock_path(&lock)?;
    if let Some(dir) = path.parent() {
        pgbak_storage::staging::create_dir_all_private(dir)
            .map_err(|e| Error::io("create", dir, e))?;
    }
    // As for every lock file: never follow a planted symlink, never truncate a holder's PID.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock_shared() {
        Ok(()) => Ok(SharedBackupLock { file }),
        Err(TryLockError::WouldBlock) => Err(in_use(server, id)),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn readers_share_and_writers_exclude() {
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost\n",
            d.path().display()
        );
        let cfg = Config::parse_str(&text, &d.path().join("pgbak.conf")).unwrap();
        let s = Server::new(&cfg, "main").unwrap();
        let id = "20240101T000000";
        let r1 = lock_backup_shared(&s, id).unwrap();
        let r2 = lock_backup_shared(&s, id).unwrap();
        assert!(lock_backup(&s, id).is_err(), "a reader keeps writers out");
        drop((r1, r2));
        let w = lock_backup(&s, id).unwrap();
        let err = lock_backup_shared(&s, id).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(w);
        lock_backup_shared(&s, id).unwrap();
    }
}
