//! `pgbak keep`: mark a backup to be kept whatever the retention policy says.
//!
//! The mark is a small file `keep` in the backup's folder holding its target: `full` keeps the
//! backup and every WAL file from its start on (point-in-time recovery to any later moment stays
//! possible); `standalone` keeps the backup and only the WAL from its begin to its end, enough to
//! make it consistent. Kept backups are never OBSOLETE and `pgbak delete` refuses them until the
//! mark is released. As in Barman, only DONE backups can be kept.

use crate::backup_lock::lock_backup;
use crate::catalogue::{BackupInfo, BackupStatus, Catalogue};
use crate::server::Server;
use crate::{Error, Result};
use pgbak_storage::local::{fsync_dir, DurableFile};
use pgbak_storage::CommitMode;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

/// Name of the keep mark inside a backup folder.
pub const KEEP_FILE: &str = "keep";

/// What a kept backup keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeepTarget {
    /// The backup and all WAL after it (recovery to any later point).
    Full,
    /// The backup and only the WAL that makes it consistent (recovery to its end only).
    Standalone,
}

impl KeepTarget {
    /// `full` or `standalone`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeepTarget::Full => "full",
            KeepTarget::Standalone => "standalone",
        }
    }
}

impl fmt::Display for KeepTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeepTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(KeepTarget::Full),
            "standalone" => Ok(KeepTarget::Standalone),
            other => Err(Error::Usage(format!(
                "invalid keep target '{other}' (expected full or standalone)"
            ))),
        }
    }
}

/// The keep target of backup `id`, or `None` when it is not kept. A mark that cannot be
/// understood counts as `full`, the safe reading (Barman does the same).
pub fn keep_target(cat: &Catalogue, id: &str) -> Result<Option<KeepTarget>> {
    let path = cat.backup_dir(id).join(KEEP_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.parse().unwrap_or_else(|_| {
            tracing::warn!(
                "{}: unknown keep target {:?}; keeping the backup in full",
                path.display(),
                text.trim()
            );
            KeepTarget::Full
        }))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// The keep targets of `backups`, for those that have one.
pub fn keep_targets(
    cat: &Catalogue,
    backups: &[BackupInfo],
) -> Result<BTreeMap<String, KeepTarget>> {
    let mut out = BTreeMap::new();
    for b in backups {
        if let Some(t) = keep_target(cat, &b.backup_id)? {
            out.insert(b.backup_id.clone(), t);
        }
    }
    Ok(out)
}

/// Finds a backup by id (any status) or by shortcut (`latest`/`last`, `oldest`/`first`: DONE
/// backups only).
pub fn find_backup(server: &Server, id: &str) -> Result<BackupInfo> {
    let cat = server.catalogue();
    if crate::catalogue::is_backup_id(id) {
        cat.read(id)
    } else {
        cat.resolve(id)
    }
}

/// Marks backup `id` to be kept with `target`. Refused unless the backup is DONE. Changing the
/// target of a kept backup is allowed.
pub fn keep(server: &Server, id: &str, target: KeepTarget) -> Result<BackupInfo> {
    let info = find_backup(server, id)?;
    let _lock = lock_backup(server, &info.backup_id)?;
    // Read again under the lock: a delete may have finished in between.
    let info = server.catalogue().read(&info.backup_id)?;
    if info.status != BackupStatus::Done {
        return Err(Error::Backup {
            server: server.name().to_string(),
            message: format!(
                "cannot keep backup {} because it is {}; only DONE backups can be kept",
                info.backup_id,
                info.status.as_str()
            ),
        });
    }
    let path = server
        .catalogue()
        .backup_dir(&info.backup_id)
        .join(KEEP_FILE);
    let mut f = DurableFile::create(&path).map_err(|e| Error::io("create", &path, e))?;
    f.write_all(format!("{target}\n").as_bytes())
        .map_err(|e| Error::io("write", &path, e))?;
    f.commit(CommitMode::Replace)
        .map_err(|e| Error::io("commit", &path, e))?;
    Ok(info)
}

/// Removes the keep mark of backup `id` (nothing to do when it has none); the backup is subject
/// to the retention policy again.
pub fn release_keep(server: &Server, id: &str) -> Result<BackupInfo> {
    let info = find_backup(server, id)?;
    let _lock = lock_backup(server, &info.backup_id)?;
    let dir = server.catalogue().backup_dir(&info.backup_id);
    let path = dir.join(KEEP_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => fsync_dir(&dir).map_err(|e| Error::io("fsync", &dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &path, e)),
    }
    Ok(info)
}

/// The backup and its keep target (`None`: not kept).
pub fn keep_status(server: &Server, id: &str) -> Result<(BackupInfo, Option<KeepTarget>)> {
    let info = find_backup(server, id)?;
    let target = keep_target(&server.catalogue(), &info.backup_id)?;
    Ok((info, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        assert_eq!("full".parse::<KeepTarget>().unwrap(), KeepTarget::Full);
        assert_eq!(
            " Standalone\n".parse::<KeepTarget>().unwrap(),
            KeepTarget::Standalone
        );
        assert!("forever".parse::<KeepTarget>().is_err());
        assert_eq!(KeepTarget::Standalone.to_string(), "standalone");
    }

    #[test]
    fn marks_are_read_back_and_unknown_ones_mean_full() {
        let d = tempfile::tempdir().unwrap();
        let cat = Catalogue::new("main", d.path());
        let id = "20240101T000000";
        std::fs::create_dir_all(cat.backup_dir(id)).unwrap();
        assert_eq!(keep_target(&cat, id).unwrap(), None);
        std::fs::write(cat.backup_dir(id).join(KEEP_FILE), "standalone\n").unwrap();
        assert_eq!(keep_target(&cat, id).unwrap(), Some(KeepTarget::Standalone));
        std::fs::write(cat.backup_dir(id).join(KEEP_FILE), "???").unwrap();
        assert_eq!(keep_target(&cat, id).unwrap(), Some(KeepTarget::Full));
    }
}
