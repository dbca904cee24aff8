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
use std::collections::BTreeMap;

pub use pgbak_repo::backups::KeepTarget;
#[cfg(test)]
use pgbak_repo::backups::KEEP_FILE;

/// The keep target of backup `id`, or `None` when it is not kept. A mark that cannot be
/// understood counts as `full`, the safe reading (Barman does the same).
pub fn keep_target(cat: &Catalogue, id: &str) -> Result<Option<KeepTarget>> {
    Ok(cat.keep_target(id)?)
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
        Ok(cat.read(id)?)
    } else {
        Ok(cat.resolve(id)?)
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
            problem: crate::BackupProblem::Unusable,
            message: format!(
                "cannot keep backup {} because it is {}; only DONE backups can be kept",
                info.backup_id,
                info.status.as_str()
            ),
        });
    }
    if info.is_incremental() {
        return Err(Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::Refused,
            message: format!(
                "cannot keep backup {}: it is incremental; keep its full backup {} instead",
                info.backup_id,
                info.parent_backup_id.as_deref().unwrap_or("-")
            ),
        });
    }
    server.catalogue().set_keep(&info.backup_id, target)?;
    Ok(info)
}

/// Removes the keep mark of backup `id` (nothing to do when it has none); the backup is subject
/// to the retention policy again.
pub fn release_keep(server: &Server, id: &str) -> Result<BackupInfo> {
    let info = find_backup(server, id)?;
    let _lock = lock_backup(server, &info.backup_id)?;
    server.catalogue().release_keep(&info.backup_id)?;
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
    use pgbak_storage::LocalStorage;
    use std::sync::Arc;

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
        let cat = Catalogue::new("main", Arc::new(LocalStorage::new(d.path())));
        let id = "20240101T000000";
        assert_eq!(keep_target(&cat, id).unwrap(), None);
        std::fs::create_dir_all(d.path().join(id)).unwrap();
        std::fs::write(d.path().join(id).join(KEEP_FILE), "standalone\n").unwrap();
        assert_eq!(keep_target(&cat, id).unwrap(), Some(KeepTarget::Standalone));
        std::fs::write(d.path().join(id).join(KEEP_FILE), "???").unwrap();
        assert_eq!(keep_target(&cat, id).unwrap(), Some(KeepTarget::Full));
    }
}
