//! The parent of a new incremental backup, checked before anything is written, and the chain of
//! backups a restore of an incremental one reads.

use crate::catalogue::{BackupInfo, BackupStatus};
use crate::pg::PgConnection;
use crate::server::Server;
use crate::{Error, Result};
use pgbak_wal::protocol::INCREMENTAL_BACKUP_VERSION_NUM;
use pgbak_wal::Lsn;
use std::sync::Arc;

/// The parent of an incremental backup about to be taken, with the manifest sent to the server.
#[derive(Clone, Debug)]
pub struct IncrementalParent {
    pub info: BackupInfo,
    pub manifest: Arc<Vec<u8>>,
}

/// Resolves `parent` (a backup id, `latest` or `latest-full`) and checks, as Barman does, that an
/// incremental backup can be taken relative to it: PostgreSQL 17 or later, the `postgres`
/// method with tar streams, `summarize_wal` on now and when the parent was taken, the same major
/// version, and no gap in the WAL summaries since the parent began.
pub fn prepare_parent(
    server: &Server,
    conn: &PgConnection,
    parent: &str,
    rsync: bool,
    format: &str,
) -> Result<IncrementalParent> {
    let name = server.name();
    let refuse = |why: String| {
        Error::Usage(format!(
            "server '{name}': cannot take an incremental backup: {why}"
        ))
    };
    let version = conn.server_version_num()?;
    if version < INCREMENTAL_BACKUP_VERSION_NUM {
        return Err(refuse(format!(
            "incremental backups need PostgreSQL 17 or later (the server is {version})"
        )));
    }
    if rsync {
        return Err(refuse(
            "incremental backups need backup_method = postgres".into(),
        ));
    }
    if format != "tar" {
        return Err(refuse(
            "incremental backups are stored as tar streams; set backup_compression_format = tar"
                .into(),
        ));
    }
    if conn.setting("summarize_wal")? != "on" {
        return Err(refuse(
            "summarize_wal is off on the server; turn it on, then take a full backup".into(),
        ));
    }
    let info = resolve_parent(server, parent)?;
    let id = &info.backup_id;
    if info.summarize_wal != Some(true) {
        return Err(refuse(format!(
            "summarize_wal was not on when backup {id} was taken; take a full backup first"
        )));
    }
    if !info.has_manifest || info.backup_type() == "rsync" {
        return Err(refuse(format!(
            "backup {id} has no backup manifest from the server to be the parent of an incremental backup"
        )));
    }
    if info.backup_format == "plain" && server.local_backup_dir(id).is_none() {
        return Err(refuse(format!("backup {id} is a plain tree out of reach")));
    }
    if info.version.map(|v| v / 10000) != Some(version / 10000) {
        return Err(refuse(format!(
            "backup {id} was taken from PostgreSQL {} and the server is now {}",
            info.version
                .map_or("?".to_string(), |v| (v / 10000).to_string()),
            version / 10000
        )));
    }
    check_summaries(conn, &info).map_err(refuse)?;
    let store = server.stores().backups.as_ref();
    let key = format!("{id}/data/{}", crate::manifest::MANIFEST_FILE);
    let mut manifest = Vec::new();
    std::io::Read::read_to_end(&mut store.get(&key)?, &mut manifest)
        .map_err(|e| Error::io("read", key.clone(), e))?;
    Ok(IncrementalParent {
        info,
        manifest: Arc::new(manifest),
    })
}

/// The DONE backup named by `parent`: an id, `latest` (the newest, full or incremental) or
/// `latest-full` (the newest full one).
pub fn resolve_parent(server: &Server, parent: &str) -> Result<BackupInfo> {
    let cat = server.catalogue();
    let refuse = |why: String| Error::Usage(format!("server '{}': {why}", server.name()));
    match parent {
        "latest" | "latest-full" => {
            let (all, _) = cat.list()?;
            all.into_iter()
                .rfind(|b| {
                    b.status == BackupStatus::Done
                        && (parent == "latest" || !b.is_incremental())
                        && b.backup_type() != "rsync"
                })
                .ok_or_else(|| {
                    refuse(format!(
                        "no DONE backup to be the parent ({parent}) of an incremental backup"
                    ))
                })
        }
        id => {
            if !crate::catalogue::is_backup_id(id) || !cat.exists(id)? {
                return Err(refuse(format!(
                    "the parent backup {id} does not exist (it may have been deleted)"
                )));
            }
            let info = cat.read(id)?;
            if info.status != BackupStatus::Done {
                return Err(refuse(format!(
                    "the parent backup {id} is {} and cannot be the parent of an incremental backup",
                    info.status.as_str()
                )));
            }
            Ok(info)
        }
    }
}

/// Refuses when the server's WAL summaries on the parent's timeline leave a gap after the
/// parent's start: the server could not tell which blocks changed there.
fn check_summaries(conn: &PgConnection, parent: &BackupInfo) -> std::result::Result<(), String> {
    let (Some(tli), Some(begin)) = (parent.timeline, parent.begin_lsn.as_deref()) else {
        return Err(format!("backup {} has no start position", parent.backup_id));
    };
    let begin: Lsn = begin
        .parse()
        .map_err(|_| format!("backup {} has a bad start LSN {begin}", parent.backup_id))?;
    let rows = conn
        .query_text(&format!(
            "SELECT start_lsn::text, end_lsn::text FROM pg_available_wal_summaries() \
             WHERE tli = {tli} ORDER BY start_lsn"
        ))
        .map_err(|e| e.to_string())?;
    let mut ranges = Vec::new();
    for row in rows {
        let lsn = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .and_then(|t| t.parse::<Lsn>().ok())
        };
        if let (Some(s), Some(e)) = (lsn(0), lsn(1)) {
            ranges.push((s, e));
        }
    }
    summaries_gap(begin, &ranges).map_or(Ok(()), |(from, to)| {
        Err(format!(
            "the WAL summaries of timeline {tli} have a gap from {from} to {to}, after the start of backup {} ({begin}) \
             (was summarize_wal off meanwhile?); take a full backup",
            parent.backup_id
        ))
    })
}

/// The first stretch after `begin` that `ranges` (sorted by start) do not cover, up to the end of
/// the last one; `None` when they are contiguous (or all end before `begin`, the summarizer
/// being behind: the server then waits for it).
pub fn summaries_gap(begin: Lsn, ranges: &[(Lsn, Lsn)]) -> Option<(Lsn, Lsn)> {
    let mut covered = begin;
    for &(start, end) in ranges {
        if end <= covered {
            continue;
        }
        if start > covered {
            return Some((covered, start));
        }
        covered = end;
    }
    None
}

/// Records `child` in the `children_backup_ids` of backup `parent`.
pub fn add_child(server: &Server, parent: &str, child: &str) -> Result<()> {
    let cat = server.catalogue();
    let mut info = cat.read(parent)?;
    if !info.children_backup_ids.iter().any(|c| c == child) {
        info.children_backup_ids.push(child.to_string());
        cat.write(&info)?;
    }
    Ok(())
}

/// The chain of backup `newest` from itself back to its full root, newest first, each DONE.
/// A missing or unusable ancestor is an error that names it: nothing can be restored then.
pub fn restore_chain(server: &Server, newest: &BackupInfo) -> Result<Vec<BackupInfo>> {
    let cat = server.catalogue();
    let mut chain = vec![newest.clone()];
    while let Some(parent) = chain.last().and_then(|b| b.parent_backup_id.clone()) {
        let child = &chain[chain.len() - 1].backup_id;
        let broken = |why: String| Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::Unusable,
            message: format!(
                "cannot restore incremental backup {}: its parent {parent} (of {child}) {why}",
                newest.backup_id
            ),
        };
        if chain.iter().any(|b| b.backup_id == parent) || chain.len() > 10_000 {
            return Err(broken("makes the chain a loop".into()));
        }
        if !crate::catalogue::is_backup_id(&parent) || !cat.exists(&parent)? {
            return Err(broken("does not exist (was it deleted?)".into()));
        }
        let info = cat
            .read(&parent)
            .map_err(|e| broken(format!("cannot be read: {e}")))?;
        if info.status != BackupStatus::Done {
            return Err(broken(format!("is {}", info.status.as_str())));
        }
        if info.backup_format != "tar" && server.local_backup_dir(&parent).is_none() {
            return Err(broken("is a plain tree out of reach".into()));
        }
        chain.push(info);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(x: u64) -> Lsn {
        Lsn(x)
    }

    #[test]
    fn summaries_gap_after_the_parent() {
        let r = [(l(10), l(50)), (l(50), l(90)), (l(90), l(120))];
        assert_eq!(summaries_gap(l(60), &r), None);
        assert_eq!(summaries_gap(l(10), &r), None);
        // A hole after the parent's start.
        let hole = [(l(10), l(50)), (l(70), l(90))];
        assert_eq!(summaries_gap(l(20), &hole), Some((l(50), l(70))));
        // A hole before the parent's start does not matter.
        assert_eq!(summaries_gap(l(75), &hole), None);
        // Nothing summarised at the parent's start although later WAL is.
        assert_eq!(summaries_gap(l(5), &[(l(10), l(20))]), Some((l(5), l(10))));
        // The summarizer has not reached the parent yet: the server will wait for it.
        assert_eq!(summaries_gap(l(30), &[(l(10), l(20))]), None);
        assert_eq!(summaries_gap(l(30), &[]), None);
    }
}
