//! `pgbak generate-manifest`: writes a PostgreSQL-format `backup_manifest` (CRC-32C checksums,
//! correct `Manifest-Checksum`) for a backup that has none, so that `verify-backup` and
//! PostgreSQL's `pg_verifybackup` can check it from then on.
//!
//! The manifest describes the files as they are now, not as the server sent them: generate it
//! right after a backup whose copy is trusted, not to bless a backup of unknown state.

use crate::backup_scan::{outside_manifest, scan_backup, BackupLayout, ScanEvent};
use crate::catalogue::BackupStatus;
use crate::locks::LockName;
use crate::manifest::{BackupManifest, ChecksumAlgorithm, ManifestFile, WalRange, MANIFEST_FILE};
use crate::server::Server;
use crate::verify::{find_backup, VerifyOptions};
use crate::{Error, Result};
use pgbak_storage::CommitMode;
use pgbak_wal::{Lsn, TimelineHistory};
use serde::Serialize;
use std::io::Write;

/// First `server_version_num` whose manifests are version 2 (with `System-Identifier`).
const MANIFEST_V2_VERSION: u32 = 170000;

/// What `generate-manifest` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct GeneratedManifest {
    /// The server.
    pub server: String,
    /// The backup the manifest describes.
    pub backup_id: String,
    /// The manifest file.
    /// Where it was written (a path or a URL).
    pub path: String,
    /// Files listed.
    pub files: usize,
    /// Bytes checksummed.
    pub bytes: u64,
}

/// Writes `data/backup_manifest` for backup `backup_id` of `server`, which must not have one.
pub fn generate_manifest(
    server: &Server,
    backup_id: &str,
    opts: &VerifyOptions,
) -> Result<GeneratedManifest> {
    let mut info = find_backup(server, backup_id)?;
    let _lock = server.locks().try_lock(&LockName::Backup {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
    })?;
    let refuse = |message: String| Error::Backup {
        server: server.name().to_string(),
        problem: crate::BackupProblem::Unusable,
        message,
    };
    if matches!(info.status, BackupStatus::Started | BackupStatus::Failed) {
        return Err(refuse(format!(
            "backup {} is {}; a manifest is only generated for a complete backup",
            info.backup_id,
            info.status.as_str()
        )));
    }
    let key = manifest_key(&info.backup_id);
    if server.stores().backups.stat(&key)?.is_some() {
        return Err(refuse(format!(
            "backup {} already has a manifest ({}/{key}); verify it with 'pgbak verify-backup'",
            info.backup_id,
            server.stores().backups.describe()
        )));
    }
    let generated = write_manifest(server, &mut info, opts)?;
    server.catalogue().write(&info)?;
    Ok(generated)
}

/// Writes `data/backup_manifest` for `info` (whose files are complete and whose WAL range is
/// recorded) and sets `has_manifest`; the caller holds what keeps the backup from changing and
/// records `info`. `backup` calls it for `autogenerate_manifest` before the backup is complete.
pub(crate) fn write_manifest(
    server: &Server,
    info: &mut crate::catalogue::BackupInfo,
    opts: &VerifyOptions,
) -> Result<GeneratedManifest> {
    let refuse = |message: String| Error::Backup {
        server: server.name().to_string(),
        problem: crate::BackupProblem::Unusable,
        message,
    };
    let key = manifest_key(&info.backup_id);
    let path = format!("{}/{key}", server.stores().backups.describe());
    let history = match info.end_timeline {
        Some(end) if Some(end) != info.timeline => server.wal_archive()?.read_history(end)?,
        _ => None,
    };
    let wal_ranges = wal_ranges(info, history.as_ref())
        .map_err(|m| refuse(format!("backup {}: {m}", info.backup_id)))?;
    let version = info.version.unwrap_or(0);
    let system_identifier = if version >= MANIFEST_V2_VERSION {
        let id = info
            .systemid
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                refuse(format!(
                    "backup {} records no valid system identifier, which a PostgreSQL {} manifest needs",
                    info.backup_id,
                    version / 10000
                ))
            })?;
        Some(id)
    } else {
        None
    };

    let layout = BackupLayout::of_backup(server, info)?;
    let plan = |p: &[u8]| (!outside_manifest(p)).then_some(ChecksumAlgorithm::Crc32c);
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    let stats = scan_backup(&layout, opts.jobs, &plan, &mut |ev| match ev {
        ScanEvent::File(f) => {
            if let Some((algorithm, checksum)) = f.checksum {
                files.push(ManifestFile {
                    path: f.path,
                    size: f.size,
                    last_modified: gmt(f.mtime),
                    algorithm,
                    checksum,
                });
            }
        }
        ScanEvent::Unreadable {
            path,
            source,
            error,
        } => unreadable.push(match path {
            Some(p) => format!("{} ({source}): {error}", String::from_utf8_lossy(&p)),
            None => format!("{source}: {error}"),
        }),
    })?;
    if !unreadable.is_empty() {
        return Err(Error::Corrupt {
            what: format!("backup {} of server '{}'", info.backup_id, server.name()),
            detail: format!(
                "no manifest written, {} part(s) could not be read: {}",
                unreadable.len(),
                unreadable.join("; ")
            ),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = BackupManifest {
        version: if system_identifier.is_some() { 2 } else { 1 },
        system_identifier,
        files,
        wal_ranges,
        manifest_checksum: String::new(),
    };
    let text = manifest.render();
    let mut out = server
        .stores()
        .backups
        .put_with_mode(&key, CommitMode::CreateNew)?;
    out.write_all(&text)
        .map_err(|e| Error::io("write", &path, e))?;
    out.commit(CommitMode::CreateNew)?;
    info.has_manifest = true;
    tracing::info!(server = server.name(), backup = %info.backup_id, files = manifest.files.len(), "backup manifest generated");
    Ok(GeneratedManifest {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
        path,
        files: manifest.files.len(),
        bytes: stats.bytes_checksummed,
    })
}

/// The key of a backup's manifest.
fn manifest_key(id: &str) -> String {
    format!("{id}/data/{MANIFEST_FILE}")
}

/// The WAL ranges of a backup, as PostgreSQL lists them: one per timeline from the end timeline
/// back to the start one, following the end timeline's history (`history`, needed only when the
/// backup ended on another timeline than it began).
fn wal_ranges(
    info: &crate::catalogue::BackupInfo,
    history: Option<&TimelineHistory>,
) -> std::result::Result<Vec<WalRange>, String> {
    let (Some(begin), Some(end), Some(start_tli)) = (&info.begin_lsn, &info.end_lsn, info.timeline)
    else {
        return Err("its metadata has no WAL range (begin/end LSN and timeline)".into());
    };
    let parse = |s: &str| {
        s.parse::<Lsn>()
            .map_err(|_| format!("invalid LSN '{s}' in its metadata"))
    };
    let (start_lsn, end_lsn) = (parse(begin)?, parse(end)?);
    let end_tli = info.end_timeline.unwrap_or(start_tli);
    if end_tli == start_tli {
        return Ok(vec![WalRange {
            timeline: start_tli,
            start_lsn,
            end_lsn,
        }]);
    }
    let Some(history) = history.filter(|h| h.tli == end_tli) else {
        return Err(format!(
            "its WAL crosses from timeline {start_tli} to {end_tli}, and the history file of timeline {end_tli} is not in the archive"
        ));
    };
    // Timelines newest first, each with where it began and (for ancestors) where it ended.
    let mut timelines = vec![(
        end_tli,
        history
            .entries
            .last()
            .map(|e| e.switchpoint)
            .unwrap_or(Lsn(0)),
        None,
    )];
    for (i, e) in history.entries.iter().enumerate().rev() {
        let began = if i > 0 {
            history.entries[i - 1].switchpoint
        } else {
            Lsn(0)
        };
        timelines.push((e.parent_tli, began, Some(e.switchpoint)));
    }
    let mut ranges = Vec::new();
    let mut range_end = end_lsn;
    for (tli, began, ended) in timelines {
        if ended.is_some_and(|e| e < start_lsn) {
            continue;
        }
        let range_start = if tli == start_tli { start_lsn } else { began };
        ranges.push(WalRange {
            timeline: tli,
            start_lsn: range_start,
            end_lsn: range_end,
        });
        if tli == start_tli {
            return Ok(ranges);
        }
        range_end = began;
    }
    Err(format!(
        "timeline {start_tli} is not in the history of timeline {end_tli}"
    ))
}

/// `Last-Modified` as PostgreSQL writes it.
fn gmt(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::BackupInfo;

    #[test]
    fn ranges_and_times() {
        let mut info = BackupInfo::new(
            "main",
            "20240101T000000",
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        assert!(wal_ranges(&info, None).is_err());
        info.begin_lsn = Some("0/2000028".into());
        info.end_lsn = Some("0/2000100".into());
        info.timeline = Some(1);
        info.end_timeline = Some(1);
        let lsn = |s: &str| s.parse::<Lsn>().unwrap();
        assert_eq!(
            wal_ranges(&info, None).unwrap(),
            vec![WalRange {
                timeline: 1,
                start_lsn: lsn("0/2000028"),
                end_lsn: lsn("0/2000100")
            }]
        );
        assert_eq!(gmt(0), "1970-01-01 00:00:00 GMT");
        assert_eq!(gmt(1_714_557_600), "2024-05-01 10:00:00 GMT");
    }

    #[test]
    fn ranges_follow_the_history_like_postgresql() {
        let mut info = BackupInfo::new(
            "main",
            "20240101T000000",
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        info.begin_lsn = Some("0/3000028".into());
        info.end_lsn = Some("0/5000100".into());
        info.timeline = Some(2);
        info.end_timeline = Some(3);
        assert!(wal_ranges(&info, None)
            .unwrap_err()
            .contains("history file of timeline 3"));
        // Timeline 1 ended before the backup began, so it is skipped.
        let h = TimelineHistory::parse(3, "1\t0/2000000\tx\n2\t0/4000000\ty\n").unwrap();
        let lsn = |s: &str| s.parse::<Lsn>().unwrap();
        assert_eq!(
            wal_ranges(&info, Some(&h)).unwrap(),
            vec![
                WalRange {
                    timeline: 3,
                    start_lsn: lsn("0/4000000"),
                    end_lsn: lsn("0/5000100")
                },
                WalRange {
                    timeline: 2,
                    start_lsn: lsn("0/3000028"),
                    end_lsn: lsn("0/4000000")
                },
            ]
        );
        info.timeline = Some(7);
        assert!(wal_ranges(&info, Some(&h))
            .unwrap_err()
            .contains("not in the history"));
    }
}
