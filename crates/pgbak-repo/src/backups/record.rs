//! The records of a backup: its metadata (`backup.json`), the life cycle it goes through, and
//! the keep targets. The format is documented in `docs/catalogue.md`; `format_version` changes
//! whenever a reader of the previous version could misread a new record.

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The metadata format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Life cycle of a backup. Only `Done` backups are used by recovery, `latest` and retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupStatus {
    /// Copy in progress (or interrupted, if no process holds the server's backup lock).
    Started,
    /// Files are safe; waiting for the WAL from begin to end to be archived.
    WaitingForWals,
    /// Usable for recovery.
    Done,
    /// Failed; kept for inspection, never used.
    Failed,
}

impl BackupStatus {
    /// The name shown to users (Barman's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Started => "STARTED",
            BackupStatus::WaitingForWals => "WAITING_FOR_WALS",
            BackupStatus::Done => "DONE",
            BackupStatus::Failed => "FAILED",
        }
    }
}

/// A tablespace as recorded in a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablespaceRecord {
    pub name: String,
    pub oid: u32,
    pub location: String,
}

/// A file written by the backup, relative to the backup folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub name: String,
    pub size: u64,
    /// CRC-32C of the stored bytes of an object (an archive or the manifest), checked by every
    /// read of it; absent for the trees of a plain backup and in backups of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
}

/// Everything pgbak knows about one backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub format_version: u32,
    pub backup_id: String,
    pub server_name: String,
    pub status: BackupStatus,
    /// How the copy was made (`postgres` = streaming BASE_BACKUP).
    pub mode: String,
    /// `plain` (a PGDATA tree under `data/`) or `tar` (tar streams under `data/`).
    pub backup_format: String,
    /// Compression of the tar streams (`none` for plain).
    pub compression: String,
    pub begin_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub begin_lsn: Option<String>,
    pub end_lsn: Option<String>,
    pub begin_wal: Option<String>,
    pub end_wal: Option<String>,
    pub timeline: Option<u32>,
    pub end_timeline: Option<u32>,
    pub systemid: Option<String>,
    /// `server_version_num` of the source server.
    pub version: Option<u32>,
    pub wal_segment_size: Option<u64>,
    pub pgdata: Option<String>,
    #[serde(default)]
    pub tablespaces: Vec<TablespaceRecord>,
    /// Bytes received from PostgreSQL (the size of the data to restore).
    pub data_size: u64,
    /// Bytes the backup occupies in the catalogue.
    pub size: u64,
    #[serde(default)]
    pub files: Vec<BackupFile>,
    pub backup_label: Option<String>,
    pub has_manifest: bool,
    /// Seconds spent copying.
    pub copy_seconds: Option<f64>,
    /// Seconds each phase of the backup took (absent in records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<BackupPhases>,
    pub error: Option<String>,
    /// rsync methods: bytes of files sent by the server (new or changed since the reused backup).
    #[serde(default)]
    pub copied_bytes: Option<u64>,
    /// rsync methods: bytes of files taken unchanged from `reuse_backup_id`.
    #[serde(default)]
    pub reused_bytes: Option<u64>,
    /// rsync methods: bytes on the wire from the server.
    #[serde(default)]
    pub network_bytes: Option<u64>,
    /// rsync methods: `link` or `copy` when an earlier backup's files were reused.
    #[serde(default)]
    pub reuse_mode: Option<String>,
    /// rsync methods: the backup whose unchanged files were reused.
    #[serde(default)]
    pub reuse_backup_id: Option<String>,
    /// rsync methods: the database server's clock when the backup started; a later backup
    /// compares file times with it to decide which files cannot have changed.
    #[serde(default)]
    pub server_begin_time: Option<DateTime<Utc>>,
    /// rsync methods: the database server's clock when the backup stopped. Files modified
    /// after it cannot look unchanged to a later backup; those modified between the two times
    /// are compared by content.
    #[serde(default)]
    pub server_end_time: Option<DateTime<Utc>>,
    /// How the tar streams are encrypted (`gpg`), as Barman's `encryption`; `None`: in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The key they are encrypted to (`encryption_key_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Block-level incremental backups (PostgreSQL 17 and later): the backup this one holds the
    /// changes since (Barman's `parent_backup_id`). `None`: a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_backup_id: Option<String>,
    /// The incremental backups taken relative to this one, oldest first (Barman's
    /// `children_backup_ids`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children_backup_ids: Vec<String>,
    /// Whether the server summarised its WAL (`summarize_wal`) when the backup was taken, which
    /// an incremental backup relative to this one needs. `None` before PostgreSQL 17.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarize_wal: Option<bool>,
}

impl BackupInfo {
    /// The CRC-32C and size recorded for the stored object `key` (`<id>/data/<name>`), when the
    /// backup recorded them (archives and the manifest of tar backups since issue 13).
    pub fn stored_check(&self, key: &str) -> Option<(u32, u64)> {
        let name = key.rsplit('/').next()?;
        let file = self.files.iter().find(|f| f.name == name)?;
        Some((file.crc32c?, file.size))
    }

    /// A new backup record in state `STARTED`, begun at `begin_time`.
    pub fn new(
        server: &str,
        backup_id: &str,
        mode: &str,
        format: &str,
        compression: &str,
        begin_time: DateTime<Utc>,
    ) -> Self {
        BackupInfo {
            format_version: FORMAT_VERSION,
            backup_id: backup_id.to_string(),
            server_name: server.to_string(),
            status: BackupStatus::Started,
            mode: mode.to_string(),
            backup_format: format.to_string(),
            compression: compression.to_string(),
            begin_time,
            end_time: None,
            begin_lsn: None,
            end_lsn: None,
            begin_wal: None,
            end_wal: None,
            timeline: None,
            end_timeline: None,
            systemid: None,
            version: None,
            wal_segment_size: None,
            pgdata: None,
            tablespaces: Vec::new(),
            data_size: 0,
            size: 0,
            files: Vec::new(),
            backup_label: None,
            has_manifest: false,
            copy_seconds: None,
            phases: None,
            error: None,
            copied_bytes: None,
            reused_bytes: None,
            network_bytes: None,
            reuse_mode: None,
            reuse_backup_id: None,
            server_begin_time: None,
            server_end_time: None,
            encryption: None,
            encryption_key_id: None,
            parent_backup_id: None,
            children_backup_ids: Vec::new(),
            summarize_wal: None,
        }
    }

    /// Whether this is a block-level incremental backup.
    pub fn is_incremental(&self) -> bool {
        self.parent_backup_id.is_some()
    }

    /// Barman's backup type: `rsync` for the rsync methods, else `incremental` or `full`.
    pub fn backup_type(&self) -> &'static str {
        if self.mode.starts_with("rsync") || self.mode == "local-rsync" {
            "rsync"
        } else if self.is_incremental() {
            "incremental"
        } else {
            "full"
        }
    }
}

/// Checks that `id` has the form `YYYYMMDDTHHMMSS`.
pub fn is_backup_id(id: &str) -> bool {
    id.len() == 15
        && id.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'T'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// A new backup id from the current UTC time.
pub fn new_backup_id(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%S").to_string()
}

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

/// A tablespace record fit to restore: a name without control characters, an oid PostgreSQL
/// could have given, and an absolute location without `..` or control characters.
pub(crate) fn check_tablespace(t: &TablespaceRecord) -> std::result::Result<(), String> {
    if t.oid == 0 || t.name.is_empty() || t.name.chars().any(char::is_control) {
        return Err(format!(
            "invalid tablespace record {:?} ({})",
            t.name, t.oid
        ));
    }
    let loc = Path::new(&t.location);
    let plain = loc.is_absolute()
        && loc
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
        && !t.location.chars().any(char::is_control);
    if !plain {
        return Err(format!(
            "tablespace {:?} has an unusable location {:?}",
            t.name, t.location
        ));
    }
    Ok(())
}

/// Parses a backup record (any file holding one), refusing formats newer than this build's.
pub(crate) fn parse_info(text: &[u8], what: &str) -> Result<BackupInfo> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version =
        serde_json::from_slice(text).map_err(|e| Error::corrupt(what, e.to_string()))?;
    if v.format_version > FORMAT_VERSION {
        return Err(Error::corrupt(
            what,
            format!(
                "format version {} was written by a newer pgbak (this one reads up to {FORMAT_VERSION})",
                v.format_version
            ),
        ));
    }
    serde_json::from_slice(text).map_err(|e| Error::corrupt(what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids() {
        assert!(is_backup_id("20240101T120000"));
        for bad in [
            "2024010T120000",
            "20240101X120000",
            "20240101T12000a",
            "../../etc",
            "",
        ] {
            assert!(!is_backup_id(bad), "{bad}");
        }
        let t = DateTime::parse_from_rfc3339("2024-02-03T04:05:06Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(new_backup_id(t), "20240203T040506");
    }

    #[test]
    fn keep_targets_parse() {
        assert_eq!("FULL".parse::<KeepTarget>().unwrap(), KeepTarget::Full);
        assert_eq!(
            " standalone\n".parse::<KeepTarget>().unwrap(),
            KeepTarget::Standalone
        );
        assert!("all".parse::<KeepTarget>().is_err());
    }

    #[test]
    fn newer_formats_and_garbage_are_refused() {
        let err = parse_info(br#"{"format_version": 99}"#, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("newer pgbak"), "{err}");
        assert!(matches!(
            parse_info(b"garbage", "x"),
            Err(Error::Corrupt { .. })
        ));
    }
}

/// Seconds each phase of a backup took, in the order they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupPhases {
    /// Locks, checks, settings read and the catalogue record written, before the copy starts.
    pub checks: f64,
    /// Connecting for the copy and the checkpoint that starts the backup.
    pub start: f64,
    /// Copying the data files.
    pub copy: f64,
    /// Ending the backup on the server (`pg_backup_stop`, the manifest).
    pub stop: f64,
    /// Making the copy durable once the server was done.
    pub durable: f64,
    /// Recording the backup's metadata, the restore point and the first WAL switch.
    pub wal_switch: f64,
    /// Waiting for the WAL the backup needs to reach the archive.
    pub wal_wait: f64,
}

impl BackupPhases {
    /// Every phase with its name, in order.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        [
            ("checks", self.checks),
            ("start", self.start),
            ("copy", self.copy),
            ("stop", self.stop),
            ("durable", self.durable),
            ("wal_switch", self.wal_switch),
            ("wal_wait", self.wal_wait),
        ]
    }
}
