//! The catalogue of one server's backups: `base/<backup_id>/backup.json` metadata files, written
//! atomically, and the rules for which backups may be used (only `DONE` ones).
//!
//! The metadata format is documented in `docs/catalogue.md`; `format_version` changes whenever a
//! reader of the previous version could misread a new file.

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use pgbak_storage::local::DurableFile;
use pgbak_storage::CommitMode;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metadata format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the metadata file inside a backup folder.
pub const INFO_FILE: &str = "backup.json";

/// Name of the marker a delete writes into a backup folder before removing anything (it holds
/// the backup's metadata, so an interrupted delete can be finished). A backup whose folder has
/// it is never listed or used.
pub const DELETE_MARKER: &str = "delete_this";

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
}

impl BackupInfo {
    /// A new backup record in state `STARTED`.
    pub fn new(server: &str, backup_id: &str, mode: &str, format: &str, compression: &str) -> Self {
        BackupInfo {
            format_version: FORMAT_VERSION,
            backup_id: backup_id.to_string(),
            server_name: server.to_string(),
            status: BackupStatus::Started,
            mode: mode.to_string(),
            backup_format: format.to_string(),
            compression: compression.to_string(),
            begin_time: crate::clock::now(),
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
            error: None,
            copied_bytes: None,
            reused_bytes: None,
            network_bytes: None,
            reuse_mode: None,
            reuse_backup_id: None,
            server_begin_time: None,
            server_end_time: None,
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

/// The backups folder of one server.
#[derive(Clone, Debug)]
pub struct Catalogue {
    server: String,
    base_dir: PathBuf,
}

impl Catalogue {
    /// The catalogue of `server` whose backups live in `base_dir`.
    pub fn new(server: &str, base_dir: impl Into<PathBuf>) -> Self {
        Catalogue {
            server: server.to_string(),
            base_dir: base_dir.into(),
        }
    }

    /// Folder of one backup.
    pub fn backup_dir(&self, id: &str) -> PathBuf {
        self.base_dir.join(id)
    }

    /// Writes the metadata atomically and durably.
    pub fn write(&self, info: &BackupInfo) -> Result<()> {
        let path = self.backup_dir(&info.backup_id).join(INFO_FILE);
        let mut text = serde_json::to_vec_pretty(info)
            .map_err(|e| Error::Other(format!("cannot encode backup metadata: {e}")))?;
        text.push(b'\n');
        let mut f = DurableFile::create(&path).map_err(|e| Error::io("create", &path, e))?;
        f.write_all(&text)
            .map_err(|e| Error::io("write", &path, e))?;
        f.commit(CommitMode::Replace)
            .map_err(|e| Error::io("commit", &path, e))
    }

    /// Reads one backup's metadata.
    pub fn read(&self, id: &str) -> Result<BackupInfo> {
        if !is_backup_id(id) {
            return Err(Error::Backup {
                server: self.server.clone(),
                message: format!("'{id}' is not a backup id (expected YYYYMMDDTHHMMSS)"),
            });
        }
        if self.backup_dir(id).join(DELETE_MARKER).exists() {
            return Err(Error::Backup {
                server: self.server.clone(),
                message: format!("backup {id} is being deleted"),
            });
        }
        let path = self.backup_dir(id).join(INFO_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Backup {
                    server: self.server.clone(),
                    message: format!("backup {id} does not exist"),
                })
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        parse_info(&text, &path, id)
    }

    /// Every backup, oldest first. Folders without readable metadata are reported as errors in
    /// the second list rather than silently skipped.
    pub fn list(&self) -> Result<(Vec<BackupInfo>, Vec<String>)> {
        let mut ids = Vec::new();
        match std::fs::read_dir(&self.base_dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(|e| Error::io("list", &self.base_dir, e))?;
                    if let Some(name) = e.file_name().to_str() {
                        if is_backup_id(name) {
                            ids.push(name.to_string());
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("list", &self.base_dir, e)),
        }
        ids.sort();
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for id in ids {
            match self.read(&id) {
                Ok(i) => out.push(i),
                Err(e) => problems.push(format!("{id}: {e}")),
            }
        }
        Ok((out, problems))
    }

    /// Resolves `latest`/`last`, `oldest`/`first` or an id to a `DONE` backup.
    pub fn resolve(&self, id: &str) -> Result<BackupInfo> {
        let (all, _) = self.list()?;
        let done = || all.iter().filter(|b| b.status == BackupStatus::Done);
        let found = match id {
            "latest" | "last" => done().next_back().cloned(),
            "oldest" | "first" => done().next().cloned(),
            _ => {
                let info = self.read(id)?;
                if info.status != BackupStatus::Done {
                    return Err(Error::Backup {
                        server: self.server.clone(),
                        message: format!(
                            "backup {id} is {} and cannot be used",
                            info.status.as_str()
                        ),
                    });
                }
                Some(info)
            }
        };
        found.ok_or_else(|| Error::Backup {
            server: self.server.clone(),
            message: "no usable (DONE) backup available".into(),
        })
    }
}

/// Parses the metadata file `path` of the backup folder named `id`.
pub(crate) fn parse_info(text: &[u8], path: &Path, id: &str) -> Result<BackupInfo> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(text).map_err(|e| Error::Corrupt {
        what: format!("backup metadata {}", path.display()),
        detail: e.to_string(),
    })?;
    if v.format_version > FORMAT_VERSION {
        return Err(Error::Corrupt {
            what: format!("backup metadata {}", path.display()),
            detail: format!("format version {} was written by a newer pgbak (this one reads up to {FORMAT_VERSION})", v.format_version),
        });
    }
    let info: BackupInfo = serde_json::from_slice(text).map_err(|e| Error::Corrupt {
        what: format!("backup metadata {}", path.display()),
        detail: e.to_string(),
    })?;
    // The folder name is the backup's identity. Ids become paths (delete removes
    // `base/<backup_id>`), so a record that names another backup, or a path, is refused.
    if info.backup_id != id {
        return Err(Error::Corrupt {
            what: format!("backup metadata {}", path.display()),
            detail: format!(
                "it describes backup {:?}, not {id} (the folder it is in)",
                info.backup_id
            ),
        });
    }
    Ok(info)
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
    fn write_read_list_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::new("main", dir.path().join("base"));
        let mut a = BackupInfo::new("main", "20240101T000000", "postgres", "plain", "none");
        a.status = BackupStatus::Done;
        let mut b = BackupInfo::new("main", "20240102T000000", "postgres", "tar", "zstd");
        b.status = BackupStatus::Failed;
        let mut c = BackupInfo::new("main", "20240103T000000", "postgres", "tar", "zstd");
        c.status = BackupStatus::Done;
        for i in [&a, &b, &c] {
            cat.write(i).unwrap();
        }
        assert_eq!(cat.read("20240102T000000").unwrap(), b);
        let (all, problems) = cat.list().unwrap();
        assert_eq!(all.len(), 3);
        assert!(problems.is_empty());
        assert_eq!(cat.resolve("latest").unwrap().backup_id, "20240103T000000");
        assert_eq!(cat.resolve("first").unwrap().backup_id, "20240101T000000");
        assert!(
            cat.resolve("20240102T000000").is_err(),
            "a FAILED backup must not be usable"
        );
        assert!(cat.resolve("20991231T000000").is_err());
        assert!(cat.resolve("nonsense").is_err());
    }

    #[test]
    fn a_record_naming_another_backup_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::new("main", dir.path().join("base"));
        let mut info = BackupInfo::new("main", "20240101T000000", "postgres", "plain", "none");
        info.status = BackupStatus::Done;
        cat.write(&info).unwrap();
        for planted in ["../../../tmp/x", "20240102T000000", ""] {
            let mut other = info.clone();
            other.backup_id = planted.to_string();
            std::fs::write(
                cat.backup_dir("20240101T000000").join(INFO_FILE),
                serde_json::to_vec(&other).unwrap(),
            )
            .unwrap();
            let err = cat.read("20240101T000000").unwrap_err();
            assert!(
                matches!(&err, Error::Corrupt { detail, .. } if detail.contains("not 20240101T000000")),
                "{planted}: {err}"
            );
            let (listed, problems) = cat.list().unwrap();
            assert!(listed.is_empty(), "{planted}");
            assert_eq!(problems.len(), 1, "{planted}");
        }
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalogue::new("main", dir.path());
        std::fs::create_dir_all(dir.path().join("20240101T000000")).unwrap();
        std::fs::write(
            dir.path().join("20240101T000000").join(INFO_FILE),
            br#"{"format_version": 99}"#,
        )
        .unwrap();
        let err = cat.read("20240101T000000").unwrap_err().to_string();
        assert!(err.contains("newer pgbak"), "{err}");
        std::fs::write(
            dir.path().join("20240101T000000").join(INFO_FILE),
            b"garbage",
        )
        .unwrap();
        assert!(matches!(
            cat.read("20240101T000000"),
            Err(Error::Corrupt { .. })
        ));
    }
}
