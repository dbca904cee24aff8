//! Which archived WAL files may go when a backup is deleted, and their removal.
//!
//! The rule is Barman's (`BackupManager.delete_backup`, `should_remove_wals`,
//! `remove_wal_before_backup`), with "backup" meaning one whose copy is complete
//! (WAITING_FOR_WALS or DONE):
//! - WAL is removed only when the deleted backup has no older backup, or every older one is kept
//!   `standalone`: an older backup without a keep, or kept `full`, needs all WAL after it.
//! - What goes is the WAL that sorts before the begin of the next backup (or, with no next backup,
//!   before the begin of the deleted one, since a backup may be starting right now), except:
//!   history files; every file of a timeline on which another backup lies (other than the one the
//!   limit comes from); and the begin..end range of each older `standalone` backup.
//!
//! Names compare as text, as in Barman: the timeline comes first in a WAL name, so everything on
//! a later timeline than the limit is kept.
//!
//! Removal is files first, then their index lines (one rewrite of `xlog.db` under its lock), so an
//! interruption leaves at most index lines of files already gone; running the same removal again
//! (the delete resumes from its marker) drops them.

use crate::backups::{BackupInfo, BackupStatus, KeepTarget};
use crate::wal::{IndexEntry, WalArchive};
use crate::{Error, Result};
use pgbak_wal::WalFileName;
use std::collections::{BTreeMap, BTreeSet};

/// The WAL a delete may remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRemovalRule {
    /// Files whose name sorts before this WAL name may go.
    pub remove_before: String,
    /// Timelines of which nothing goes.
    pub protected_timelines: BTreeSet<u32>,
    /// Inclusive `(begin_wal, end_wal)` ranges of which nothing goes.
    pub protected_ranges: Vec<(String, String)>,
}

impl WalRemovalRule {
    /// Whether the archived file `name` may be removed.
    pub fn removable(&self, name: &str) -> bool {
        let Ok(parsed) = WalFileName::parse(name) else {
            return false;
        };
        if parsed.is_history() || self.protected_timelines.contains(&parsed.tli()) {
            return false;
        }
        // `.backup` and `.partial` files belong to the segment their first 24 characters name.
        let segment = &name[..name.len().min(24)];
        if self
            .protected_ranges
            .iter()
            .any(|(b, e)| segment >= b.as_str() && segment <= e.as_str())
        {
            return false;
        }
        name < self.remove_before.as_str()
    }
}

fn copied(b: &BackupInfo) -> bool {
    matches!(b.status, BackupStatus::WaitingForWals | BackupStatus::Done)
}

/// The WAL that deleting `deleted` frees, given the backups that stay (`remaining`, without
/// `deleted`) and their keep marks; `None` when no WAL may go.
pub fn removal_rule(
    deleted: &BackupInfo,
    remaining: &[BackupInfo],
    keeps: &BTreeMap<String, KeepTarget>,
) -> Option<WalRemovalRule> {
    let others: Vec<&BackupInfo> = remaining
        .iter()
        .filter(|b| b.backup_id != deleted.backup_id)
        .collect();
    let mut protected_ranges = Vec::new();
    let mut older: Vec<&&BackupInfo> = others
        .iter()
        .filter(|b| copied(b) && b.backup_id < deleted.backup_id)
        .collect();
    older.sort_by(|a, b| b.backup_id.cmp(&a.backup_id));
    for b in older {
        match (keeps.get(&b.backup_id), &b.begin_wal, &b.end_wal) {
            (Some(KeepTarget::Standalone), Some(begin), Some(end)) => {
                protected_ranges.push((begin.clone(), end.clone()));
            }
            // An older backup that needs the WAL after it (or whose range is unknown).
            _ => return None,
        }
    }
    let next = others
        .iter()
        .filter(|b| copied(b) && b.backup_id > deleted.backup_id)
        .min_by(|a, b| a.backup_id.cmp(&b.backup_id))
        .copied();
    let limit = next.unwrap_or(deleted);
    // Without a begin the limit is unknown: remove nothing rather than everything.
    let remove_before = limit.begin_wal.clone()?;
    let protected_timelines = others
        .iter()
        .filter(|b| b.status != BackupStatus::Failed)
        .filter_map(|b| b.timeline)
        .filter(|t| Some(*t) != limit.timeline)
        .collect();
    Some(WalRemovalRule {
        remove_before,
        protected_timelines,
        protected_ranges,
    })
}

/// One archived file that may be removed.
#[derive(Clone, Debug, PartialEq)]
pub struct RemovableWal {
    /// The WAL file name.
    pub name: String,
    /// Its key in the archive's store.
    pub key: String,
    /// Where the file is (or was), for hooks and messages.
    pub location: String,
    /// Its stored size, when the file exists.
    pub stored_size: Option<u64>,
    /// Its index line, if it has one.
    pub entry: Option<IndexEntry>,
}

/// Files removed one by one before the rest go in batches (the first alone, so that an
/// interruption right after it is tested at a precise point).
const REMOVE_BATCH: usize = 1000;

impl WalArchive {
    /// The archived files and index lines that `rule` lets go, oldest name first. Files without
    /// an index line and lines without a file (left by an interrupted removal) are both included.
    pub fn removable_wal(&self, rule: &WalRemovalRule) -> Result<Vec<RemovableWal>> {
        let mut found: BTreeMap<String, RemovableWal> = BTreeMap::new();
        for (name, key, size) in self.stored_keys()? {
            if rule.removable(&name) {
                found.insert(
                    name.clone(),
                    RemovableWal {
                        name,
                        location: self.location(&key),
                        key,
                        stored_size: Some(size),
                        entry: None,
                    },
                );
            }
        }
        for (name, entry) in self.indexed()?.unwrap_or_default() {
            if !rule.removable(&name) {
                continue;
            }
            let key = WalArchive::key_of(&name)?;
            found
                .entry(name.clone())
                .or_insert(RemovableWal {
                    name,
                    location: self.location(&key),
                    key,
                    stored_size: None,
                    entry: None,
                })
                .entry = Some(entry);
        }
        Ok(found.into_values().collect())
    }

    /// Removes `files` oldest first, calling `before` ahead of each (an error stops the removal
    /// there) and `after` behind it (with the error of that file, if any); then drops their
    /// index lines. Returns the names removed, or the error that stopped the removal after the
    /// index lines of those removed so far were dropped. The caller holds the server's xlog.db
    /// lock.
    pub fn remove_wal_files(
        &self,
        files: &[RemovableWal],
        mut before: impl FnMut(&RemovableWal) -> Result<()>,
        mut after: impl FnMut(&RemovableWal, Option<&Error>),
    ) -> Result<Vec<String>> {
        let mut removed: Vec<String> = Vec::new();
        let mut stopped: Option<Error> = None;
        let mut batch: Vec<&RemovableWal> = Vec::new();
        let mut first = true;
        let mut flush = |batch: &mut Vec<&RemovableWal>, removed: &mut Vec<String>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let keys: Vec<String> = batch.iter().map(|f| f.key.clone()).collect();
            let result = self.storage().delete_many(&keys).map_err(Error::from);
            for f in batch.iter() {
                after(f, result.as_ref().err());
            }
            result?;
            removed.extend(batch.iter().map(|f| f.name.clone()));
            batch.clear();
            Ok(())
        };
        for f in files {
            if let Err(e) = before(f) {
                stopped = Some(e);
                break;
            }
            batch.push(f);
            if first || batch.len() >= REMOVE_BATCH {
                if let Err(e) = flush(&mut batch, &mut removed) {
                    stopped = Some(e);
                    break;
                }
                if first {
                    crate::fault_points::pause_point("delete:mid-wal");
                    first = false;
                }
            }
        }
        // The files whose `before` passed go, whether or not the removal stopped after them.
        if let Err(e) = flush(&mut batch, &mut removed) {
            stopped.get_or_insert(e);
        }
        if !removed.is_empty() {
            let gone: std::collections::BTreeSet<&str> =
                removed.iter().map(String::as_str).collect();
            self.retain_index(|e| !gone.contains(e.name.as_str()))?;
        }
        match stopped {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEG: u64 = 16 << 20;

    fn wal(tli: u32, segno: u64) -> String {
        pgbak_wal::SegmentName { tli, segno }.file_name(SEG)
    }

    fn backup(id_day: u32, status: BackupStatus, tli: u32, begin: u64, end: u64) -> BackupInfo {
        let mut b = BackupInfo::new(
            "main",
            &format!("202401{id_day:02}T000000"),
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        b.status = status;
        b.timeline = Some(tli);
        b.begin_wal = Some(wal(tli, begin));
        b.end_wal = Some(wal(tli, end));
        b
    }

    #[test]
    fn deleting_the_oldest_frees_wal_before_the_next_backup() {
        let b1 = backup(1, BackupStatus::Done, 1, 2, 3);
        let b2 = backup(2, BackupStatus::Done, 1, 10, 11);
        let r = removal_rule(&b1, std::slice::from_ref(&b2), &BTreeMap::new()).unwrap();
        assert_eq!(r.remove_before, wal(1, 10));
        assert!(r.removable(&wal(1, 2)));
        assert!(r.removable(&wal(1, 9)));
        assert!(r.removable(&format!("{}.00000028.backup", wal(1, 2))));
        assert!(!r.removable(&wal(1, 10)));
        assert!(!r.removable(&format!("{}.00000028.backup", wal(1, 10))));
        assert!(!r.removable(&wal(2, 1)), "later timelines stay");
        assert!(!r.removable("00000002.history"));
        assert!(!r.removable("garbage"));
    }

    #[test]
    fn an_older_backup_blocks_removal_unless_standalone() {
        let b1 = backup(1, BackupStatus::Done, 1, 2, 3);
        let b2 = backup(2, BackupStatus::Done, 1, 10, 11);
        let b3 = backup(3, BackupStatus::Done, 1, 20, 21);
        let remaining = vec![b1.clone(), b3.clone()];
        assert!(removal_rule(&b2, &remaining, &BTreeMap::new()).is_none());
        let mut keeps = BTreeMap::new();
        keeps.insert(b1.backup_id.clone(), KeepTarget::Full);
        assert!(removal_rule(&b2, &remaining, &keeps).is_none());
        keeps.insert(b1.backup_id.clone(), KeepTarget::Standalone);
        let r = removal_rule(&b2, &remaining, &keeps).unwrap();
        assert_eq!(r.remove_before, wal(1, 20));
        assert!(!r.removable(&wal(1, 2)) && !r.removable(&wal(1, 3)));
        assert!(r.removable(&wal(1, 1)) && r.removable(&wal(1, 4)) && r.removable(&wal(1, 19)));
    }

    #[test]
    fn failed_older_backups_do_not_block_and_no_next_means_own_begin() {
        let b0 = backup(1, BackupStatus::Failed, 1, 1, 1);
        let b1 = backup(2, BackupStatus::Done, 1, 5, 6);
        let r = removal_rule(&b1, std::slice::from_ref(&b0), &BTreeMap::new()).unwrap();
        assert_eq!(r.remove_before, wal(1, 5));
        let mut unknown = b1.clone();
        unknown.begin_wal = None;
        assert!(removal_rule(&unknown, &[], &BTreeMap::new()).is_none());
    }

    #[test]
    fn timelines_of_other_backups_are_protected() {
        let b1 = backup(1, BackupStatus::Done, 1, 2, 3);
        let b2 = backup(2, BackupStatus::Done, 2, 10, 11);
        let b3 = backup(3, BackupStatus::WaitingForWals, 3, 20, 21);
        let r = removal_rule(&b1, &[b2, b3], &BTreeMap::new()).unwrap();
        assert_eq!(r.remove_before, wal(2, 10));
        assert_eq!(r.protected_timelines, BTreeSet::from([3]));
        assert!(
            r.removable(&wal(1, 30)),
            "timeline 1 after the fork has no backup"
        );
        assert!(r.removable(&wal(2, 9)));
        assert!(!r.removable(&wal(3, 1)));
    }

    fn arb_catalogue(
    ) -> impl Strategy<Value = (Vec<BackupInfo>, BTreeMap<String, KeepTarget>, usize)> {
        prop::collection::vec((0u8..4, 1u32..4, 0u64..40, 0u64..3, 0u8..3), 1..8).prop_flat_map(
            |spec| {
                let n = spec.len();
                let mut backups = Vec::new();
                let mut keeps = BTreeMap::new();
                let mut tli = 1;
                let mut pos = 1;
                for (i, (st, dt, gap, len, k)) in spec.into_iter().enumerate() {
                    tli = tli.max(dt.min(tli + 1));
                    pos += gap;
                    let status = match st {
                        0 => BackupStatus::Failed,
                        1 => BackupStatus::WaitingForWals,
                        _ => BackupStatus::Done,
                    };
                    let b = backup(i as u32 + 1, status, tli, pos, pos + len);
                    match k {
                        1 => {
                            keeps.insert(b.backup_id.clone(), KeepTarget::Full);
                        }
                        2 => {
                            keeps.insert(b.backup_id.clone(), KeepTarget::Standalone);
                        }
                        _ => {}
                    }
                    backups.push(b);
                }
                (Just(backups), Just(keeps), 0..n)
            },
        )
    }

    proptest! {
        /// Whatever is deleted, no WAL that a remaining backup needs to become consistent (its
        /// begin..end), nor any WAL after a remaining backup that is not kept standalone, is
        /// removable.
        #[test]
        fn remaining_backups_keep_their_wal((backups, keeps, victim) in arb_catalogue()) {
            let deleted = backups[victim].clone();
            let remaining: Vec<BackupInfo> =
                backups.iter().filter(|b| b.backup_id != deleted.backup_id).cloned().collect();
            let Some(rule) = removal_rule(&deleted, &remaining, &keeps) else {
                return Ok(());
            };
            for b in remaining.iter().filter(|b| copied(b)) {
                let tli = b.timeline.unwrap();
                let begin = SegNo::of(b.begin_wal.as_deref().unwrap());
                let end = SegNo::of(b.end_wal.as_deref().unwrap());
                for s in begin..=end {
                    prop_assert!(!rule.removable(&wal(tli, s)), "{} needs {}", b.backup_id, wal(tli, s));
                }
                if keeps.get(&b.backup_id) != Some(&KeepTarget::Standalone) {
                    for s in begin..begin + 50 {
                        prop_assert!(!rule.removable(&wal(tli, s)), "{} follows {}", b.backup_id, wal(tli, s));
                    }
                }
            }
        }
    }

    struct SegNo;
    impl SegNo {
        fn of(name: &str) -> u64 {
            pgbak_wal::SegmentName::parse(name, SEG).unwrap().segno
        }
    }
}
