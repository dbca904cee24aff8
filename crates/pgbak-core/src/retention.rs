//! Retention policies: which backups are still needed, and `pgbak cron`'s removal of the others.
//!
//! Barman's rules (`retention_policies.py`), which pgbak follows:
//! - Only DONE backups are ranked, newest first; others get no retention status.
//! - Kept backups (`pgbak keep`) are KEEP:FULL or KEEP:STANDALONE and never OBSOLETE; under
//!   REDUNDANCY they still use one of the n places.
//! - `REDUNDANCY n`: the newest max(n, `minimum_redundancy`) backups are VALID, older ones OBSOLETE.
//! - `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS` (a month is 31 days): the point of recoverability is
//!   now minus the window. Backups that ended after it are VALID, and so is the newest one that
//!   ended before it (recovery to the point itself starts from that one). Older ones are
//!   OBSOLETE, except that `minimum_redundancy` keeps enough of them as OBSOLETE* ("potentially
//!   obsolete", kept).
//! - `retention_policy_mode = auto` (the only mode) makes cron delete OBSOLETE backups, oldest
//!   first, with their WAL (`wal_retention_policy = main`, the only one), never going below
//!   `minimum_redundancy` DONE backups.
//!
//! "Now" comes from [`crate::clock::now`], which tests can move.

use crate::catalogue::{BackupInfo, BackupStatus};
use crate::config::ServerConfig;
use crate::delete::{self, DeleteReport};
use crate::keep::{keep_targets, KeepTarget};
use crate::locks::{LockError, LockName};
use crate::server::Server;
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The unit of a recovery window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowUnit {
    /// 24 hours.
    Days,
    /// 7 days.
    Weeks,
    /// 31 days, as in Barman.
    Months,
}

impl WindowUnit {
    fn days(self) -> i64 {
        match self {
            WindowUnit::Days => 1,
            WindowUnit::Weeks => 7,
            WindowUnit::Months => 31,
        }
    }

    fn name(self) -> &'static str {
        match self {
            WindowUnit::Days => "DAYS",
            WindowUnit::Weeks => "WEEKS",
            WindowUnit::Months => "MONTHS",
        }
    }
}

/// A parsed `retention_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// `REDUNDANCY n`: keep the newest n backups.
    Redundancy(u32),
    /// `RECOVERY WINDOW OF n UNIT`: keep what recovery to any point of the last n units needs.
    RecoveryWindow {
        /// How many units.
        count: u32,
        /// Days, weeks or months.
        unit: WindowUnit,
    },
}

impl RetentionPolicy {
    /// The policy of a server, `None` when it has none.
    pub fn of(config: &ServerConfig) -> Result<Option<RetentionPolicy>> {
        config
            .retention_policy
            .as_deref()
            .map(|p| {
                p.parse().map_err(|e: Error| {
                    Error::Usage(format!("server '{}': retention_policy: {e}", config.name))
                })
            })
            .transpose()
    }

    /// The length of a recovery window (`None` for REDUNDANCY).
    pub fn window(&self) -> Option<Duration> {
        match *self {
            RetentionPolicy::Redundancy(_) => None,
            RetentionPolicy::RecoveryWindow { count, unit } => {
                Some(Duration::days(i64::from(count) * unit.days()))
            }
        }
    }
}

impl FromStr for RetentionPolicy {
    type Err = Error;

    /// Reads `REDUNDANCY n` or `RECOVERY WINDOW OF n DAY[S]|WEEK[S]|MONTH[S]`, in any case, with
    /// n at least 1.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Usage(format!(
                "invalid retention policy '{s}' (expected 'REDUNDANCY n' or 'RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS')"
            ))
        };
        let words: Vec<String> = s.split_whitespace().map(str::to_ascii_uppercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let count = |n: &str| -> Result<u32> {
            match n.parse::<u32>() {
                Ok(0) | Err(_) => Err(bad()),
                Ok(n) => Ok(n),
            }
        };
        match words.as_slice() {
            ["REDUNDANCY", n] => Ok(RetentionPolicy::Redundancy(count(n)?)),
            ["RECOVERY", "WINDOW", "OF", n, unit] => {
                let unit = match *unit {
                    "DAY" | "DAYS" => WindowUnit::Days,
                    "WEEK" | "WEEKS" => WindowUnit::Weeks,
                    "MONTH" | "MONTHS" => WindowUnit::Months,
                    _ => return Err(bad()),
                };
                let count = count(n)?;
                // A century bounds any window an operator can mean, and keeps date arithmetic
                // in range.
                if i64::from(count) * unit.days() > 36_600 {
                    return Err(Error::Usage(format!(
                        "invalid retention policy '{s}': a recovery window of more than a century"
                    )));
                }
                Ok(RetentionPolicy::RecoveryWindow { count, unit })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPolicy::Redundancy(n) => write!(f, "REDUNDANCY {n}"),
            RetentionPolicy::RecoveryWindow { count, unit } => {
                write!(f, "RECOVERY WINDOW OF {count} {}", unit.name())
            }
        }
    }
}

/// What the policy says about one backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetentionStatus {
    /// Needed by the policy.
    Valid,
    /// Not needed: cron deletes it.
    Obsolete,
    /// Outside the policy but kept for `minimum_redundancy`.
    PotentiallyObsolete,
    /// Kept by `pgbak keep --target full`.
    KeepFull,
    /// Kept by `pgbak keep --target standalone`.
    KeepStandalone,
    /// Not ranked (not DONE, or no policy).
    None,
}

impl RetentionStatus {
    /// Barman's label: `VALID`, `OBSOLETE`, `OBSOLETE*`, `KEEP:FULL`, `KEEP:STANDALONE` or `-`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionStatus::Valid => "VALID",
            RetentionStatus::Obsolete => "OBSOLETE",
            RetentionStatus::PotentiallyObsolete => "OBSOLETE*",
            RetentionStatus::KeepFull => "KEEP:FULL",
            RetentionStatus::KeepStandalone => "KEEP:STANDALONE",
            RetentionStatus::None => "-",
        }
    }

    fn of_keep(k: KeepTarget) -> Self {
        match k {
            KeepTarget::Full => RetentionStatus::KeepFull,
            KeepTarget::Standalone => RetentionStatus::KeepStandalone,
        }
    }
}

impl fmt::Display for RetentionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retention status of every backup in `backups` (any order) under `policy` at `now`.
pub fn classify(
    policy: Option<&RetentionPolicy>,
    minimum_redundancy: u32,
    backups: &[BackupInfo],
    keeps: &BTreeMap<String, KeepTarget>,
    now: DateTime<Utc>,
) -> BTreeMap<String, RetentionStatus> {
    let mut out: BTreeMap<String, RetentionStatus> = backups
        .iter()
        .map(|b| (b.backup_id.clone(), RetentionStatus::None))
        .collect();
    // Only full backups are ranked; an incremental one takes its root's status (Barman's rule).
    let mut done: Vec<&BackupInfo> = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Done && !b.is_incremental())
        .collect();
    done.sort_by(|a, b| b.backup_id.cmp(&a.backup_id));
    let keep_of = |b: &BackupInfo| keeps.get(&b.backup_id).copied();
    match policy {
        None => {
            for b in done {
                if let Some(k) = keep_of(b) {
                    out.insert(b.backup_id.clone(), RetentionStatus::of_keep(k));
                }
            }
        }
        Some(RetentionPolicy::Redundancy(n)) => {
            let redundancy = (*n).max(minimum_redundancy) as usize;
            for (i, b) in done.into_iter().enumerate() {
                let s = match keep_of(b) {
                    Some(k) => RetentionStatus::of_keep(k),
                    None if i < redundancy => RetentionStatus::Valid,
                    None => RetentionStatus::Obsolete,
                };
                out.insert(b.backup_id.clone(), s);
            }
        }
        Some(p @ RetentionPolicy::RecoveryWindow { .. }) => {
            let point = now - p.window().unwrap_or_default();
            let mut found = false;
            let mut valid = 0u32;
            for b in done {
                let keep = keep_of(b).map(RetentionStatus::of_keep);
                let s = if !found {
                    valid += 1;
                    if b.end_time.unwrap_or(b.begin_time) < point {
                        found = true;
                    }
                    keep.unwrap_or(RetentionStatus::Valid)
                } else if let Some(k) = keep {
                    k
                } else if valid < minimum_redundancy {
                    valid += 1;
                    RetentionStatus::PotentiallyObsolete
                } else {
                    RetentionStatus::Obsolete
                };
                out.insert(b.backup_id.clone(), s);
            }
        }
    }
    for b in backups
        .iter()
        .filter(|b| b.is_incremental() && b.status == BackupStatus::Done)
    {
        if let Some(root) = chain_root(b, backups) {
            let s = out.get(&root).copied().unwrap_or(RetentionStatus::None);
            out.insert(b.backup_id.clone(), s);
        }
    }
    out
}

/// The full backup at the root of incremental backup `b`'s chain, when the chain is whole.
fn chain_root(b: &BackupInfo, backups: &[BackupInfo]) -> Option<String> {
    let mut cur = b;
    for _ in 0..backups.len() {
        match &cur.parent_backup_id {
            None => return Some(cur.backup_id.clone()),
            Some(p) => cur = backups.iter().find(|x| &x.backup_id == p)?,
        }
    }
    None
}

/// The retention status of `backups` (all of `server`'s) with their `keeps`, already read, now.
pub fn retention_status_of(
    server: &Server,
    backups: &[BackupInfo],
    keeps: &BTreeMap<String, KeepTarget>,
) -> Result<BTreeMap<String, RetentionStatus>> {
    let policy = RetentionPolicy::of(&server.config)?;
    Ok(classify(
        policy.as_ref(),
        server.config.minimum_redundancy,
        backups,
        keeps,
        crate::clock::now(),
    ))
}

/// What one retention run did.
#[derive(Clone, Debug, Default)]
pub struct RetentionReport {
    /// Deletes left half-done by an interrupted process, now finished.
    pub resumed: Vec<DeleteReport>,
    /// OBSOLETE backups deleted now.
    pub deleted: Vec<DeleteReport>,
    /// Why something was left for a later run (a busy lock, minimum redundancy), one line each.
    pub notes: Vec<String>,
    /// What needs an operator (a damaged catalogue record), one line each.
    pub errors: Vec<String>,
}

impl RetentionReport {
    /// Adds what this run did to a cron report.
    pub fn add_to(&self, report: &mut crate::maintenance::CronReport) {
        for d in self.resumed.iter().chain(&self.deleted) {
            report.deleted_backups.push(d.backup.backup_id.clone());
            report.removed_wal += d.wal_removed.len();
        }
        report.retention_notes.extend(self.notes.iter().cloned());
        report.errors.extend(self.errors.iter().cloned());
    }
}

/// Applies the retention policy of `server` (what `pgbak cron` does each run): finishes deletes
/// that were interrupted, then deletes OBSOLETE backups oldest first with the WAL only they
/// needed. Skipped, with a note, while a backup or a delete of the server runs.
pub fn enforce_retention(server: &Server) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let policy = RetentionPolicy::of(&server.config)?;
    if policy.is_none() && !delete::has_leftovers(server)? {
        return Ok(report);
    }
    let _server_lock = match server
        .locks()
        .try_lock(&LockName::ServerBackup(server.name().to_string()))
    {
        Ok(g) => g,
        Err(LockError::Busy { .. }) => {
            report.notes.push(
                "a backup or a delete is running; retention waits for the next run".to_string(),
            );
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    };
    for outcome in delete::resume_interrupted_deletes(server)? {
        match outcome {
            Ok(r) => report.resumed.push(r),
            Err(e @ Error::Corrupt { .. }) => report.errors.push(e.to_string()),
            Err(e) => report.notes.push(e.to_string()),
        }
    }
    let Some(policy) = policy else {
        return Ok(report);
    };
    if let Some(mode) = server.config.raw.get("retention_policy_mode") {
        if !mode.trim().eq_ignore_ascii_case("auto") {
            return Err(Error::Usage(format!(
                "server '{}': retention_policy_mode '{mode}' is not supported (only 'auto')",
                server.name()
            )));
        }
    }
    let backups = server.backups()?;
    let keeps = keep_targets(&server.catalogue(), &backups)?;
    let status = classify(
        Some(&policy),
        server.config.minimum_redundancy,
        &backups,
        &keeps,
        crate::clock::now(),
    );
    for (id, s) in status {
        // An incremental backup goes with its root, deleted just before.
        if s != RetentionStatus::Obsolete || !server.catalogue().exists(&id)? {
            continue;
        }
        // The first failure stops the run: deleting newer backups past an older one that could
        // not go would gain nothing (its WAL stays) and the next run tries again.
        match delete::delete_obsolete(server, &id)? {
            Ok(r) => report.deleted.push(r),
            Err(why) => report.notes.push(why),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap()
    }

    fn backup(d: u32, status: BackupStatus) -> BackupInfo {
        let id = format!("202401{d:02}T000000");
        let mut b = BackupInfo::new(
            "main",
            &id,
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        b.status = status;
        b.begin_time = day(d);
        b.end_time = Some(day(d) + Duration::minutes(5));
        b
    }

    fn done(days: &[u32]) -> Vec<BackupInfo> {
        days.iter()
            .map(|&d| backup(d, BackupStatus::Done))
            .collect()
    }

    fn labels(m: &BTreeMap<String, RetentionStatus>) -> Vec<&'static str> {
        m.values().map(|s| s.as_str()).collect()
    }

    #[test]
    fn only_full_backups_are_ranked_and_incrementals_follow_their_root() {
        // Days 1 (full) <- 2 <- 3, 4 (full) <- 5.
        let mut all = done(&[1, 2, 3, 4, 5]);
        all[1].parent_backup_id = Some(all[0].backup_id.clone());
        all[2].parent_backup_id = Some(all[1].backup_id.clone());
        all[4].parent_backup_id = Some(all[3].backup_id.clone());
        let one = classify(
            Some(&RetentionPolicy::Redundancy(1)),
            0,
            &all,
            &BTreeMap::new(),
            day(10),
        );
        assert_eq!(
            labels(&one),
            ["OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "VALID"]
        );
        // Two full backups are two places; the incrementals take none.
        let two = classify(
            Some(&RetentionPolicy::Redundancy(2)),
            0,
            &all,
            &BTreeMap::new(),
            day(10),
        );
        assert_eq!(labels(&two), ["VALID"; 5]);
        // A kept root keeps its chain.
        let keeps = BTreeMap::from([(all[0].backup_id.clone(), KeepTarget::Full)]);
        let kept = classify(
            Some(&RetentionPolicy::Redundancy(1)),
            0,
            &all,
            &keeps,
            day(10),
        );
        assert_eq!(
            labels(&kept),
            ["KEEP:FULL", "KEEP:FULL", "KEEP:FULL", "VALID", "VALID"]
        );
    }

    #[test]
    fn policies_parse_like_the_configuration() {
        assert_eq!(
            "redundancy 3".parse::<RetentionPolicy>().unwrap(),
            RetentionPolicy::Redundancy(3)
        );
        let w: RetentionPolicy = "RECOVERY WINDOW OF 2 week".parse().unwrap();
        assert_eq!(w.to_string(), "RECOVERY WINDOW OF 2 WEEKS");
        assert_eq!(w.window(), Some(Duration::days(14)));
        let m: RetentionPolicy = "recovery window of 1 months".parse().unwrap();
        assert_eq!(m.window(), Some(Duration::days(31)));
        for bad in [
            "REDUNDANCY 0",
            "REDUNDANCY",
            "RECOVERY WINDOW OF 2 YEARS",
            "RECOVERY WINDOW OF 4294967295 MONTHS",
            "RECOVERY WINDOW OF 1201 MONTHS",
            "keep all",
        ] {
            assert!(bad.parse::<RetentionPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn redundancy_keeps_the_newest_n() {
        let b = done(&[1, 2, 3, 4, 5]);
        let s = classify(
            Some(&RetentionPolicy::Redundancy(2)),
            0,
            &b,
            &BTreeMap::new(),
            day(20),
        );
        assert_eq!(
            labels(&s),
            ["OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "VALID"]
        );
    }

    #[test]
    fn minimum_redundancy_raises_redundancy() {
        let b = done(&[1, 2, 3, 4, 5]);
        let s = classify(
            Some(&RetentionPolicy::Redundancy(1)),
            3,
            &b,
            &BTreeMap::new(),
            day(20),
        );
        assert_eq!(
            labels(&s),
            ["OBSOLETE", "OBSOLETE", "VALID", "VALID", "VALID"]
        );
    }

    #[test]
    fn kept_backups_are_never_obsolete_and_take_a_place() {
        let b = done(&[1, 2, 3, 4, 5]);
        let mut keeps = BTreeMap::new();
        keeps.insert("20240101T000000".to_string(), KeepTarget::Standalone);
        keeps.insert("20240105T000000".to_string(), KeepTarget::Full);
        let s = classify(
            Some(&RetentionPolicy::Redundancy(2)),
            0,
            &b,
            &keeps,
            day(20),
        );
        assert_eq!(
            labels(&s),
            [
                "KEEP:STANDALONE",
                "OBSOLETE",
                "OBSOLETE",
                "VALID",
                "KEEP:FULL"
            ]
        );
    }

    #[test]
    fn recovery_window_keeps_the_newest_backup_before_the_window() {
        let b = done(&[1, 2, 3, 4, 5]);
        let two_days = RetentionPolicy::RecoveryWindow {
            count: 2,
            unit: WindowUnit::Days,
        };
        // Point of recoverability: Jan 3 12:00. Jan 4 and 5 are inside; Jan 3 anchors it.
        let now = day(5) + Duration::hours(12);
        let s = classify(Some(&two_days), 0, &b, &BTreeMap::new(), now);
        assert_eq!(
            labels(&s),
            ["OBSOLETE", "OBSOLETE", "VALID", "VALID", "VALID"]
        );
        // minimum_redundancy 4 keeps one more as OBSOLETE*.
        let s = classify(Some(&two_days), 4, &b, &BTreeMap::new(), now);
        assert_eq!(
            labels(&s),
            ["OBSOLETE", "OBSOLETE*", "VALID", "VALID", "VALID"]
        );
        // Long after the last backup, the newest stays VALID.
        let s = classify(Some(&two_days), 0, &b, &BTreeMap::new(), day(30));
        assert_eq!(
            labels(&s),
            ["OBSOLETE", "OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID"]
        );
    }

    #[test]
    fn only_done_backups_are_ranked() {
        let mut b = done(&[1, 2, 3]);
        b.push(backup(4, BackupStatus::Failed));
        b.push(backup(5, BackupStatus::WaitingForWals));
        let s = classify(
            Some(&RetentionPolicy::Redundancy(1)),
            0,
            &b,
            &BTreeMap::new(),
            day(20),
        );
        assert_eq!(labels(&s), ["OBSOLETE", "OBSOLETE", "VALID", "-", "-"]);
        let s = classify(None, 0, &b, &BTreeMap::new(), day(20));
        assert!(s.values().all(|v| *v == RetentionStatus::None));
    }

    fn arb_catalogue() -> impl Strategy<Value = (Vec<BackupInfo>, BTreeMap<String, KeepTarget>)> {
        prop::collection::vec((0u8..4, 0u8..3), 0..12).prop_map(|spec| {
            let mut backups = Vec::new();
            let mut keeps = BTreeMap::new();
            for (i, (st, k)) in spec.into_iter().enumerate() {
                let status = match st {
                    0 => BackupStatus::Failed,
                    1 => BackupStatus::WaitingForWals,
                    _ => BackupStatus::Done,
                };
                let b = backup(i as u32 + 1, status);
                match k {
                    1 => {
                        keeps.insert(b.backup_id.clone(), KeepTarget::Full);
                    }
                    2 if i % 3 == 0 => {
                        keeps.insert(b.backup_id.clone(), KeepTarget::Standalone);
                    }
                    _ => {}
                }
                backups.push(b);
            }
            (backups, keeps)
        })
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        prop_oneof![
            (1u32..6).prop_map(RetentionPolicy::Redundancy),
            (1u32..10).prop_map(|count| RetentionPolicy::RecoveryWindow {
                count,
                unit: WindowUnit::Days
            }),
        ]
    }

    proptest! {
        #[test]
        fn retention_never_loses_what_it_must_keep(
            (backups, keeps) in arb_catalogue(),
            policy in arb_policy(),
            min in 0u32..5,
            now_day in 1u32..28,
        ) {
            let s = classify(Some(&policy), min, &backups, &keeps, day(now_day));
            let done: Vec<&BackupInfo> =
                backups.iter().filter(|b| b.status == BackupStatus::Done).collect();
            for b in &backups {
                let st = s[&b.backup_id];
                if b.status != BackupStatus::Done {
                    prop_assert_eq!(st, RetentionStatus::None);
                } else if keeps.contains_key(&b.backup_id) {
                    prop_assert!(matches!(st, RetentionStatus::KeepFull | RetentionStatus::KeepStandalone));
                }
            }
            // The newest DONE backup is never obsolete.
            if let Some(newest) = done.last() {
                prop_assert_ne!(s[&newest.backup_id], RetentionStatus::Obsolete);
            }
            // minimum_redundancy DONE backups always survive.
            let surviving = done.iter().filter(|b| s[&b.backup_id] != RetentionStatus::Obsolete).count();
            prop_assert!(surviving >= (min as usize).min(done.len()));
            // Obsolete backups are all older than every VALID one.
            let oldest_valid = done.iter().find(|b| s[&b.backup_id] == RetentionStatus::Valid);
            if let Some(v) = oldest_valid {
                for b in &done {
                    if s[&b.backup_id] == RetentionStatus::Obsolete {
                        prop_assert!(b.backup_id < v.backup_id);
                    }
                }
            }
            match policy {
                RetentionPolicy::Redundancy(n) => {
                    let keep_n = n.max(min) as usize;
                    for b in done.iter().rev().take(keep_n) {
                        prop_assert_ne!(s[&b.backup_id], RetentionStatus::Obsolete);
                    }
                }
                RetentionPolicy::RecoveryWindow { .. } => {
                    let point = day(now_day) - policy.window().unwrap();
                    // Everything that ended inside the window, and the newest one before it.
                    let anchor = done.iter().rev().find(|b| b.end_time.unwrap() < point);
                    for b in &done {
                        if b.end_time.unwrap() >= point || Some(&b.backup_id) == anchor.map(|a| &a.backup_id) {
                            prop_assert_ne!(s[&b.backup_id], RetentionStatus::Obsolete);
                        }
                    }
                }
            }
        }
    }
}
