//! `pgbak delete` and the deletes done by retention, made safe against interruption.
//!
//! A delete goes through these steps; whatever prefix of them a crash leaves done, every backup
//! the catalogue still lists restores, and the next `pgbak cron` (or `pgbak delete` of the same
//! backup) finishes the work from the marker:
//! 1. `pre_delete_*` hooks (an ABORT_STOP here changes nothing);
//! 2. write the marker `base/<id>/delete_this`, holding the backup's metadata: from now on the
//!    catalogue neither lists nor uses the backup;
//! 3. remove `backup.json`;
//! 4. remove the data (everything in the folder but the marker);
//! 5. remove the WAL that no remaining backup needs ([`crate::wal_cleanup`]), files first, then
//!    their `xlog.db` lines, with the `*_wal_delete_*` hooks around each file;
//! 6. remove the marker and the folder;
//! 7. `post_delete_*` hooks.
//!
//! A delete holds the server's backup lock (so it never runs beside a backup or another delete,
//! and two deletes cannot both pass the `minimum_redundancy` check) and the backup's own lock (so
//! it never runs while the backup is being restored).

use crate::backup_lock::lock_backup;
use crate::catalogue::{BackupInfo, BackupStatus};
use crate::fault_points::pause_point;
use crate::hooks::{HookEnv, HookEvent, Hooks};
use crate::keep::{find_backup, keep_target, keep_targets};
use crate::locks::{LockError, LockName};
use crate::server::Server;
use crate::wal_cleanup::removal_rule;
use crate::{Error, Result};

/// What one delete did.
#[derive(Clone, Debug)]
pub struct DeleteReport {
    /// The deleted backup as it was.
    pub backup: BackupInfo,
    /// WAL files removed with it, oldest first.
    pub wal_removed: Vec<String>,
    /// Whether this finished a delete that an earlier process had begun.
    pub resumed: bool,
}

/// Deletes backup `id` (an id, or `latest`/`oldest`...) of `server` and the WAL only it needed.
///
/// Refused for a kept backup, for a DONE backup when no more than `minimum_redundancy` DONE
/// backups exist, while a backup or another delete of the server runs, and while the backup is
/// in use (being restored). A backup whose delete was interrupted is finished.
pub fn delete_backup(server: &Server, id: &str) -> Result<DeleteReport> {
    delete_backup_with(server, id, None)
}

/// [`delete_backup`], counting the WAL files removed on `progress` (their number as total).
pub fn delete_backup_with(
    server: &Server,
    id: &str,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<DeleteReport> {
    let _server_lock = lock_server(server)?;
    let cat = server.catalogue();
    if cat.is_being_deleted(id)? {
        let _lock = lock_backup(server, id)?;
        let info = cat.read_delete_marker(id)?;
        return finish_delete(server, &info, true, progress);
    }
    let info = find_backup(server, id)?;
    let _lock = lock_backup(server, &info.backup_id)?;
    // Read again under the lock: another process may have changed it in between.
    let info = cat.read(&info.backup_id)?;
    if let Some(why) = refusal(server, &info)? {
        return Err(Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::Refused,
            message: why,
        });
    }
    start_delete(server, &info, progress)
}

/// Takes the server's backup lock, or says why not.
fn lock_server(server: &Server) -> Result<crate::locks::LockGuard> {
    let busy = "a backup or another delete of this server is running; try again when it ends";
    match server
        .locks()
        .try_lock(&LockName::ServerBackup(server.name().to_string()))
    {
        Ok(g) => Ok(g),
        Err(LockError::Busy { .. }) => Err(Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::InUse,
            message: busy.into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Deletes an OBSOLETE backup for retention; the caller holds the server's backup lock.
/// `Ok(Err(why))` when it must be left for now (in use, kept, minimum redundancy).
pub(crate) fn delete_obsolete(
    server: &Server,
    id: &str,
) -> Result<std::result::Result<DeleteReport, String>> {
    let _lock = match lock_backup(server, id) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let info = server.catalogue().read(id)?;
    if let Some(why) = refusal(server, &info)? {
        return Ok(Err(why));
    }
    start_delete(server, &info, None).map(Ok)
}

/// Why `info` must not be deleted now, if it must not (Barman's rules).
fn refusal(server: &Server, info: &BackupInfo) -> Result<Option<String>> {
    let id = &info.backup_id;
    if keep_target(&server.catalogue(), id)?.is_some() {
        return Ok(Some(format!(
            "backup {id} is kept (pgbak keep); release it with `pgbak keep {} {id} --release` first",
            server.name()
        )));
    }
    // Only full backups count for minimum_redundancy (an incremental one is not a backup on its
    // own); deleting an incremental one never lowers their number.
    if info.status == BackupStatus::Done && !info.is_incremental() {
        let done = server
            .backups()?
            .iter()
            .filter(|b| b.status == BackupStatus::Done && !b.is_incremental())
            .count();
        let minimum = server.config.minimum_redundancy as usize;
        if done <= minimum {
            return Ok(Some(format!(
                "not deleting backup {id}: minimum_redundancy is {minimum} and only {done} DONE backup(s) exist"
            )));
        }
    }
    Ok(None)
}

/// Deletes the incremental backups taken relative to `info` (its descendants, newest first), then
/// `info` itself: an incremental backup cannot be restored without its parent (Barman deletes the
/// whole tree). A descendant that is kept or in use stops the delete before `info` goes.
fn start_delete(
    server: &Server,
    info: &BackupInfo,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<DeleteReport> {
    let all = server.backups()?;
    let mut descendants: Vec<&BackupInfo> = Vec::new();
    let mut frontier = vec![info.backup_id.clone()];
    while let Some(id) = frontier.pop() {
        for child in all
            .iter()
            .filter(|b| b.parent_backup_id.as_deref() == Some(id.as_str()))
        {
            if !descendants.iter().any(|d| d.backup_id == child.backup_id) {
                descendants.push(child);
                frontier.push(child.backup_id.clone());
            }
        }
    }
    descendants.sort_by(|a, b| b.backup_id.cmp(&a.backup_id));
    for child in descendants {
        let _lock = lock_backup(server, &child.backup_id)?;
        if keep_target(&server.catalogue(), &child.backup_id)?.is_some() {
            return Err(Error::Backup {
                server: server.name().to_string(),
                problem: crate::BackupProblem::Refused,
                message: format!(
                    "not deleting backup {}: its incremental descendant {} is kept",
                    info.backup_id, child.backup_id
                ),
            });
        }
        delete_one(server, child, progress)?;
    }
    let report = delete_one(server, info, progress)?;
    if let Some(parent) = &info.parent_backup_id {
        let cat = server.catalogue();
        if cat.exists(parent)? {
            let mut p = cat.read(parent)?;
            p.children_backup_ids.retain(|c| c != &info.backup_id);
            cat.write(&p)?;
        }
    }
    Ok(report)
}

/// Steps 1 and 2, then the rest.
fn delete_one(
    server: &Server,
    info: &BackupInfo,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<DeleteReport> {
    let hooks = Hooks::new(server, HookEvent::Delete);
    hooks.run_pre(&HookEnv::for_backup(server, info))?;
    server.catalogue().write_delete_marker(info)?;
    pause_point("delete:after-marker");
    finish_delete(server, info, false, progress)
}

/// Steps 3 to 7; each one can be repeated, so this also finishes an interrupted delete.
fn finish_delete(
    server: &Server,
    info: &BackupInfo,
    resumed: bool,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<DeleteReport> {
    let cat = server.catalogue();
    let id = &info.backup_id;
    cat.remove_metadata(id)?;
    pause_point("delete:after-metadata");

    cat.remove_data(id)?;
    pause_point("delete:after-data");

    let wal_removed = remove_unneeded_wal(server, info, progress)?;
    pause_point("delete:after-wal");

    cat.remove_folder(id)?;
    Hooks::new(server, HookEvent::Delete).run_post(&HookEnv::for_backup(server, info));
    Ok(DeleteReport {
        backup: info.clone(),
        wal_removed,
        resumed,
    })
}

/// Removes the WAL that deleting `info` leaves without a backup, with the WAL-delete hooks.
fn remove_unneeded_wal(
    server: &Server,
    info: &BackupInfo,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<Vec<String>> {
    let remaining = server.backups()?;
    let keeps = keep_targets(&server.catalogue(), &remaining)?;
    let Some(rule) = removal_rule(info, &remaining, &keeps) else {
        return Ok(Vec::new());
    };
    let archive = server.wal_archive()?;
    // Files go first, then their index lines, under the xlog.db lock.
    let _index = server
        .locks()
        .lock_blocking(&LockName::ServerXlogDb(server.name().to_string()))?;
    let files = archive.removable_wal(&rule)?;
    let count = || {
        if let Some(m) = progress {
            m.add(1);
        }
    };
    if let Some(m) = progress {
        m.set_total(files.len() as u64);
    }
    let hooks = Hooks::new(server, HookEvent::WalDelete);
    if !hooks.any_configured() {
        return Ok(archive.remove_wal_files(&files, |_| Ok(()), |_, _| count())?);
    }
    let env = |f: &crate::wal_cleanup::RemovableWal| {
        let (size, time, compression) = match &f.entry {
            Some(e) => (e.stored_size, e.time, e.compression.clone()),
            None => (f.stored_size.unwrap_or(0), 0.0, String::new()),
        };
        HookEnv::for_wal(&f.name, &f.location, size, time, &compression)
    };
    // A hook that stops the removal says why in its own terms.
    let mut stopped_by: Option<Error> = None;
    let result = archive.remove_wal_files(
        &files,
        |f| {
            hooks.run_pre(&env(f)).map_err(|e| {
                let message = e.to_string();
                stopped_by = Some(e);
                pgbak_repo::Error::Usage(message)
            })
        },
        |f, err| {
            count();
            let e = env(f);
            hooks.run_post(&match err {
                Some(err) => e.error(err),
                None => e,
            })
        },
    );
    match (result, stopped_by) {
        (Err(_), Some(e)) => Err(e),
        (r, _) => Ok(r?),
    }
}

/// Ids of backups whose delete was begun but not finished (their folder holds the marker).
#[cfg(test)]
fn interrupted_deletes(server: &Server) -> Result<Vec<String>> {
    Ok(server.catalogue().leftovers()?.marked)
}

/// Whether [`resume_interrupted_deletes`] has anything to do.
pub fn has_leftovers(server: &Server) -> Result<bool> {
    let l = server.catalogue().leftovers()?;
    Ok(!(l.marked.is_empty() && l.empty.is_empty()))
}

/// Finishes every interrupted delete of `server` and removes empty backup folders a delete left;
/// the caller holds the server's backup lock (so no backup is creating a folder meanwhile). One
/// result per interrupted delete: a busy backup or an unreadable marker fails that one only.
pub fn resume_interrupted_deletes(server: &Server) -> Result<Vec<Result<DeleteReport>>> {
    let cat = server.catalogue();
    let l = cat.leftovers()?;
    for id in &l.empty {
        // Not empty any more, or gone: either way nothing to clean.
        let _ = cat.remove_folder(id);
    }
    Ok(l.marked
        .into_iter()
        .map(|id| {
            let _lock = lock_backup(server, &id)?;
            let info = cat.read_delete_marker(&id)?;
            finish_delete(server, &info, true, None)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::wal_archive::{IndexEntry, WalArchive};
    use pgbak_wal::SegmentName;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    const SEG: u64 = 16 << 20;

    fn wal(segno: u64) -> String {
        SegmentName { tli: 1, segno }.file_name(SEG)
    }

    fn server(home: &Path, extra: &str) -> Server {
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost\n{extra}\n",
            home.display()
        );
        let cfg = Config::parse_str(&text, &home.join("pgbak.conf")).unwrap();
        Server::new(&cfg, "main").unwrap()
    }

    /// A DONE backup with a small data folder, needing WAL `begin..=end` of timeline 1.
    fn add_backup(s: &Server, day: u32, begin: u64, end: u64) -> BackupInfo {
        let id = format!("202401{day:02}T000000");
        let mut b = BackupInfo::new(
            "main",
            &id,
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        b.status = BackupStatus::Done;
        b.timeline = Some(1);
        b.begin_wal = Some(wal(begin));
        b.end_wal = Some(wal(end));
        let cat = s.catalogue();
        cat.write(&b).unwrap();
        let data = s.local_backup_dir(&id).unwrap().join("data");
        std::fs::create_dir_all(data.join("base")).unwrap();
        std::fs::write(data.join("base/1"), b"rows").unwrap();
        b
    }

    /// Archived files (small stand-ins: removal never reads them) with their index lines.
    fn add_wal(s: &Server, names: &[String]) {
        let a = s.wal_archive().unwrap();
        let mut entries = a.index_entries().unwrap();
        for n in names {
            let path = s
                .config
                .local_wals_directory()
                .unwrap()
                .join(WalArchive::key_of(n).unwrap());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, n.as_bytes()).unwrap();
            entries.push(IndexEntry {
                name: n.clone(),
                stored_size: n.len() as u64,
                time: 1.0,
                compression: "none".into(),
                crc32c: None,
                size: None,
                encryption: None,
                key_id: None,
            });
        }
        a.index().replace_all(&entries).unwrap();
    }

    /// The archive's files and index lines agree; returns the names.
    fn consistent_wal(s: &Server) -> BTreeSet<String> {
        let a = s.wal_archive().unwrap();
        let indexed: BTreeSet<String> = a.indexed().unwrap().unwrap().into_keys().collect();
        let files: BTreeSet<String> = a.stored_files().unwrap().into_iter().collect();
        assert_eq!(indexed, files, "index and files disagree");
        files
    }

    fn ids(s: &Server) -> Vec<String> {
        s.backups()
            .unwrap()
            .into_iter()
            .map(|b| b.backup_id)
            .collect()
    }

    fn catalogue_with_three(home: &Path, extra: &str) -> (Server, Vec<BackupInfo>) {
        let s = server(home, extra);
        let b = vec![
            add_backup(&s, 1, 2, 3),
            add_backup(&s, 2, 10, 11),
            add_backup(&s, 3, 20, 21),
        ];
        let mut names: Vec<String> = (1..=25).map(wal).collect();
        names.push("00000002.history".into());
        names.push(format!("{}.00000028.backup", wal(2)));
        add_wal(&s, &names);
        (s, b)
    }

    fn expected_after_oldest_delete() -> BTreeSet<String> {
        let mut v: BTreeSet<String> = (10..=25).map(wal).collect();
        v.insert("00000002.history".into());
        v
    }

    #[test]
    fn deleting_the_oldest_removes_its_data_and_the_wal_before_the_next() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "");
        let r = delete_backup(&s, "oldest").unwrap();
        assert_eq!(r.backup.backup_id, b[0].backup_id);
        assert!(!r.resumed);
        assert_eq!(r.wal_removed.len(), 10, "{:?}", r.wal_removed);
        assert!(!s.local_backup_dir(&b[0].backup_id).unwrap().exists());
        assert_eq!(
            ids(&s),
            vec![b[1].backup_id.clone(), b[2].backup_id.clone()]
        );
        assert_eq!(consistent_wal(&s), expected_after_oldest_delete());
        // The empty hash folder of removed files stays only if something is left in it.
        assert!(s
            .config
            .local_wals_directory()
            .unwrap()
            .join("0000000100000000")
            .is_dir());
    }

    #[test]
    fn deleting_a_middle_backup_keeps_all_wal() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "");
        let before = consistent_wal(&s);
        let r = delete_backup(&s, &b[1].backup_id).unwrap();
        assert!(r.wal_removed.is_empty());
        assert_eq!(consistent_wal(&s), before);
        assert_eq!(
            ids(&s),
            vec![b[0].backup_id.clone(), b[2].backup_id.clone()]
        );
    }

    #[test]
    fn kept_backups_and_minimum_redundancy_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "minimum_redundancy = 2");
        crate::keep::keep(&s, &b[0].backup_id, crate::keep::KeepTarget::Full).unwrap();
        let err = delete_backup(&s, &b[0].backup_id).unwrap_err().to_string();
        assert!(err.contains("kept"), "{err}");
        crate::keep::release_keep(&s, &b[0].backup_id).unwrap();
        delete_backup(&s, &b[0].backup_id).unwrap();
        let err = delete_backup(&s, &b[1].backup_id).unwrap_err().to_string();
        assert!(err.contains("minimum_redundancy"), "{err}");
        assert_eq!(ids(&s).len(), 2);
        // A FAILED backup does not count and can always go.
        let mut f = add_backup(&s, 4, 30, 30);
        f.status = BackupStatus::Failed;
        s.catalogue().write(&f).unwrap();
        delete_backup(&s, &f.backup_id).unwrap();
    }

    #[test]
    fn a_backup_in_use_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "");
        let reading = crate::backup_lock::lock_backup_shared(&s, &b[0].backup_id).unwrap();
        let err = delete_backup(&s, &b[0].backup_id).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(reading);
        delete_backup(&s, &b[0].backup_id).unwrap();
    }

    /// Every prefix of the steps leaves the other backups listed and intact, the deleted one
    /// unlisted, and a resume that ends in the same state as an uninterrupted delete.
    #[test]
    fn every_interrupted_prefix_is_finished_by_resume() {
        for step in 0..5 {
            let d = tempfile::tempdir().unwrap();
            let (s, b) = catalogue_with_three(d.path(), "");
            let victim = &b[0];
            let cat = s.catalogue();
            let dir = s.local_backup_dir(&victim.backup_id).unwrap();
            cat.write_delete_marker(victim).unwrap();
            if step >= 1 {
                std::fs::remove_file(dir.join(crate::catalogue::INFO_FILE)).unwrap();
            }
            if step >= 2 {
                std::fs::remove_dir_all(dir.join("data")).unwrap();
            }
            if step >= 3 {
                // Some WAL files gone, their index lines still there.
                for n in [wal(1), wal(2)] {
                    std::fs::remove_file(
                        s.config
                            .local_wals_directory()
                            .unwrap()
                            .join(WalArchive::key_of(&n).unwrap()),
                    )
                    .unwrap();
                }
            }
            if step >= 4 {
                // Everything gone but the marker.
                let a = s.wal_archive().unwrap();
                let rule = removal_rule(victim, &s.backups().unwrap(), &BTreeMap::new()).unwrap();
                let files = a.removable_wal(&rule).unwrap();
                a.remove_wal_files(&files, |_| Ok(()), |_, _| {}).unwrap();
            }
            assert_eq!(
                ids(&s),
                vec![b[1].backup_id.clone(), b[2].backup_id.clone()],
                "step {step}: the victim is never listed"
            );
            assert!(cat.resolve(&victim.backup_id).is_err());
            assert_eq!(
                interrupted_deletes(&s).unwrap(),
                vec![victim.backup_id.clone()]
            );
            let done = resume_interrupted_deletes(&s).unwrap();
            assert_eq!(done.len(), 1);
            let r = done.into_iter().next().unwrap().unwrap();
            assert!(r.resumed);
            assert!(!dir.exists(), "step {step}");
            assert_eq!(
                consistent_wal(&s),
                expected_after_oldest_delete(),
                "step {step}"
            );
            assert!(interrupted_deletes(&s).unwrap().is_empty());
        }
    }

    #[test]
    fn an_empty_folder_left_by_a_delete_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = catalogue_with_three(d.path(), "");
        let leftover = s.local_backup_dir("20231231T000000").unwrap();
        std::fs::create_dir_all(&leftover).unwrap();
        assert!(has_leftovers(&s).unwrap());
        assert!(resume_interrupted_deletes(&s).unwrap().is_empty());
        assert!(!leftover.exists());
        assert!(!has_leftovers(&s).unwrap());
        assert_eq!(ids(&s).len(), 3);
    }

    #[test]
    fn delete_of_a_half_deleted_backup_finishes_it() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "minimum_redundancy = 3");
        // Begun before minimum_redundancy was raised: finishing it is not a new delete.
        s.catalogue().write_delete_marker(&b[0]).unwrap();
        let r = delete_backup(&s, &b[0].backup_id).unwrap();
        assert!(r.resumed);
        assert_eq!(consistent_wal(&s), expected_after_oldest_delete());
    }

    #[test]
    fn a_marker_naming_another_folder_removes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (s, b) = catalogue_with_three(d.path(), "");
        let mut planted = b[0].clone();
        planted.backup_id = "..".into();
        std::fs::write(
            s.local_backup_dir(&b[0].backup_id)
                .unwrap()
                .join(crate::catalogue::DELETE_MARKER),
            serde_json::to_vec(&planted).unwrap(),
        )
        .unwrap();
        let err = delete_backup(&s, &b[0].backup_id).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        for other in &b[1..] {
            assert!(s
                .local_backup_dir(&other.backup_id)
                .unwrap()
                .join(crate::catalogue::INFO_FILE)
                .exists());
        }
        assert_eq!(consistent_wal(&s).len(), 27, "no WAL removed");
    }

    #[test]
    fn wal_delete_hooks_see_each_file_and_abort_stop_leaves_a_resumable_delete() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("wal-hooks");
        let stop_at = wal(5);
        let (s, b) = catalogue_with_three(
            d.path(),
            &format!(
                "post_wal_delete_script = echo $BARMAN_SEGMENT >> {}\npre_wal_delete_retry_script = test \"$BARMAN_SEGMENT\" != {stop_at} || exit 63",
                log.display()
            ),
        );
        let err = delete_backup(&s, &b[0].backup_id).unwrap_err();
        assert!(matches!(err, Error::HookAborted { .. }), "{err}");
        let seen = std::fs::read_to_string(&log).unwrap();
        assert_eq!(seen.lines().count(), 5, "{seen}");
        consistent_wal(&s);
        assert_eq!(
            interrupted_deletes(&s).unwrap(),
            vec![b[0].backup_id.clone()]
        );
        assert_eq!(ids(&s).len(), 2);
        // Once the hook lets it, the delete finishes.
        let s = server(
            d.path(),
            &format!(
                "post_wal_delete_script = echo $BARMAN_SEGMENT >> {}",
                log.display()
            ),
        );
        let r = delete_backup(&s, &b[0].backup_id).unwrap();
        assert!(r.resumed);
        assert_eq!(consistent_wal(&s), expected_after_oldest_delete());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 10);
    }

    /// Removal cost with a large archive (run with `--ignored` for the big figure).
    fn timed_removal(segments: u64) -> std::time::Duration {
        let d = tempfile::tempdir().unwrap();
        let s = server(d.path(), "");
        add_backup(&s, 1, 2, 3);
        let b2 = add_backup(&s, 2, segments - 10, segments - 9);
        let names: Vec<String> = (1..=segments).map(wal).collect();
        add_wal(&s, &names);
        // Settle the setup's writes first: a real archive was written long before its cleanup.
        let _ = std::process::Command::new("sync").status();
        let t = std::time::Instant::now();
        let r = delete_backup(&s, "oldest").unwrap();
        let took = t.elapsed();
        assert_eq!(r.wal_removed.len() as u64, segments - 11);
        let left = consistent_wal(&s);
        assert_eq!(left.len(), 11);
        assert_eq!(left.first(), b2.begin_wal.as_ref());
        eprintln!(
            "removed {} of {segments} WAL files in {:?}",
            r.wal_removed.len(),
            took
        );
        took
    }

    #[test]
    fn removing_many_wal_files_is_quick() {
        assert!(timed_removal(5_000) < std::time::Duration::from_secs(20));
    }

    #[test]
    #[ignore = "measurement: 100 000 WAL files"]
    fn removing_100k_wal_files() {
        timed_removal(100_000);
    }
}
