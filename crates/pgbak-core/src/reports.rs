//! The reports pgbak's commands print, as `Serialize` types: the JSON output of the CLI, the C
//! ABI and the Python package is these, and has no other home.

use crate::catalogue::{is_backup_id, BackupInfo};
use crate::config::Config;
use crate::delete::DeleteReport;
use crate::keep::{keep_target, KeepTarget};
use crate::maintenance::{CronReport, SwitchReport};
use crate::recover::RecoverySummary;
use crate::retention::RetentionStatus;
use crate::server::Server;
use crate::{Error, Result};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One backup as `show-backup` and `list-backups` show it: the catalogue's record, what the
/// retention policy says of it, whether `keep` keeps it, and its place in an incremental chain.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BackupDetails {
    /// The catalogue's record.
    pub info: BackupInfo,
    /// The retention policy's label; `None` when the policy cannot be applied.
    pub retention_status: Option<RetentionStatus>,
    /// What `keep` keeps it as; `None` when it is not kept.
    pub keep_target: Option<KeepTarget>,
}

impl Serialize for BackupDetails {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut v = match serde_json::to_value(&self.info) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => return Err(serde::ser::Error::custom(e)),
        };
        v.insert(
            "retention_status".into(),
            self.retention_status
                .map_or(Value::Null, |r| Value::String(r.as_str().into())),
        );
        v.insert(
            "keep_target".into(),
            self.keep_target
                .map_or(Value::Null, |k| Value::String(k.as_str().into())),
        );
        // Barman's `backup_type` (`full`, `incremental` or `rsync`); the chain fields always.
        v.insert("backup_type".into(), self.info.backup_type().into());
        v.insert(
            "parent_backup_id".into(),
            self.info
                .parent_backup_id
                .clone()
                .map_or(Value::Null, Value::String),
        );
        v.insert(
            "children_backup_ids".into(),
            self.info.children_backup_ids.clone().into(),
        );
        Value::Object(v).serialize(s)
    }
}

/// Every backup of the server (oldest first) with its keep and its retention label, the
/// catalogue read once. A policy that cannot be applied (a bad `retention_policy`) must not hide
/// the backups: their label is then unknown.
fn catalogue_details(server: &Server) -> Result<Vec<BackupDetails>> {
    let backups = server.backups()?;
    let mut keeps = crate::keep::keep_targets(&server.catalogue(), &backups)?;
    let mut labels = match crate::retention::retention_status_of(server, &backups, &keeps) {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!("server '{}': retention status unknown: {e}", server.name());
            BTreeMap::new()
        }
    };
    Ok(backups
        .into_iter()
        .map(|info| BackupDetails {
            retention_status: labels.remove(&info.backup_id),
            keep_target: keeps.remove(&info.backup_id),
            info,
        })
        .collect())
}

/// One backup (an id, or `latest`, `oldest`, ...), with its retention and keep status.
pub fn backup_details(server: &Server, backup_id: &str) -> Result<BackupDetails> {
    let cat = server.catalogue();
    let id = if is_backup_id(backup_id) {
        backup_id.to_string()
    } else {
        cat.resolve(backup_id)?.backup_id
    };
    match catalogue_details(server)?
        .into_iter()
        .find(|d| d.info.backup_id == id)
    {
        Some(d) => Ok(d),
        // Not listed (its record alone may still be read): shown with what is known.
        None => Ok(BackupDetails {
            info: cat.read(&id)?,
            retention_status: None,
            keep_target: keep_target(&cat, &id)?,
        }),
    }
}

/// Every backup of the server, newest first.
pub fn list_backups(server: &Server) -> Result<Vec<BackupDetails>> {
    let mut all = catalogue_details(server)?;
    all.reverse();
    Ok(all)
}

impl Serialize for RecoverySummary {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let settings: BTreeMap<&str, &str> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("backup_id", &self.backup.backup_id)?;
        m.serialize_entry("destination", &self.dest)?;
        m.serialize_entry("wal_files_copied", &self.wal_files_copied)?;
        m.serialize_entry("restore_command", &self.restore_command)?;
        m.serialize_entry("settings", &settings)?;
        m.serialize_entry("restore", &self.restore)?;
        m.end()
    }
}

impl Serialize for CronReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(13))?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("skipped", &self.skipped)?;
        m.serialize_entry("disabled", &self.disabled)?;
        m.serialize_entry("archived", &self.archived)?;
        m.serialize_entry("completed_backups", &self.completed_backups)?;
        m.serialize_entry("failed_backups", &self.failed_backups)?;
        m.serialize_entry("errors", &self.errors)?;
        m.serialize_entry("deleted_backups", &self.deleted_backups)?;
        m.serialize_entry("removed_wal", &self.removed_wal)?;
        m.serialize_entry("retention_notes", &self.retention_notes)?;
        m.serialize_entry(
            "receive_wal",
            &self.receive_wal.as_ref().map(|a| a.to_string()),
        )?;
        m.serialize_entry("removed_temp_files", &self.removed_temp_files)?;
        m.serialize_entry("aborted_uploads", &self.aborted_uploads)?;
        m.end()
    }
}

impl Serialize for SwitchReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("switch_lsn", &self.switch_lsn)?;
        m.serialize_entry("segment", &self.segment)?;
        m.serialize_entry("archived", &self.archived)?;
        m.end()
    }
}

impl Serialize for DeleteReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("server", &self.backup.server_name)?;
        m.serialize_entry("backup_id", &self.backup.backup_id)?;
        m.serialize_entry("resumed", &self.resumed)?;
        m.serialize_entry("wal_removed", &self.wal_removed)?;
        m.end()
    }
}

impl Serialize for crate::retention::RetentionReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("resumed", &self.resumed)?;
        m.serialize_entry("deleted", &self.deleted)?;
        m.serialize_entry("notes", &self.notes)?;
        m.serialize_entry("errors", &self.errors)?;
        m.end()
    }
}

/// What `rebuild-xlogdb` did to a server's WAL index.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct IndexRebuild {
    pub server: String,
    #[serde(flatten)]
    pub report: pgbak_repo::wal::RebuildReport,
}

/// Recreates the WAL index of `server` from the files of its archive, each read back and
/// checksummed, under the index's lock (waiting for an archiver holding it).
pub fn rebuild_xlogdb(server: &Server) -> Result<IndexRebuild> {
    rebuild_xlogdb_with(server, None)
}

/// [`rebuild_xlogdb`], counting the files read back on `progress` (their number as total).
pub fn rebuild_xlogdb_with(
    server: &Server,
    progress: Option<&pgbak_copy::Meter>,
) -> Result<IndexRebuild> {
    let _index = server
        .locks()
        .lock_blocking(&crate::locks::LockName::ServerXlogDb(
            server.name().to_string(),
        ))?;
    Ok(IndexRebuild {
        server: server.name().to_string(),
        report: server
            .wal_archive()?
            .rebuild_index_with(&mut |done, total| {
                if let Some(m) = progress {
                    m.set_total(total as u64);
                    if done > 0 {
                        m.add(1);
                    }
                }
            })?,
    })
}

/// Whether `keep` keeps a backup, as `keep --status` shows it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct KeepStatus {
    pub server: String,
    pub backup_id: String,
    /// `full`, `standalone`, or `nokeep`.
    pub keep: &'static str,
}

impl KeepStatus {
    /// Backup `backup_id` of `server`, kept as `target` (or not kept).
    pub fn new(server: &Server, backup_id: &str, target: Option<KeepTarget>) -> Self {
        KeepStatus {
            server: server.name().to_string(),
            backup_id: backup_id.to_string(),
            keep: target.map_or("nokeep", KeepTarget::as_str),
        }
    }
}

/// The keep status of one backup (an id, `latest`, ...).
pub fn keep_status(server: &Server, backup_id: &str) -> Result<KeepStatus> {
    let (info, target) = crate::keep::keep_status(server, backup_id)?;
    Ok(KeepStatus::new(server, &info.backup_id, target))
}

impl Serialize for crate::receive_wal::ReceiveWalReport {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let a = &self.archive;
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("start", &self.start)?;
        m.serialize_entry("bytes_received", &self.bytes_received)?;
        m.serialize_entry("flushed", &self.flushed)?;
        m.serialize_entry("timeline", &self.timeline)?;
        m.serialize_entry("reconnects", &self.reconnects)?;
        m.serialize_entry("archived", &a.stored)?;
        m.serialize_entry("already_archived", &a.already_archived)?;
        m.serialize_entry("conflicts", &a.conflicts)?;
        m.serialize_entry("errors", &a.errors)?;
        m.end()
    }
}

/// What `receive-wal --reset` did to a server's streaming folder.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamingReset {
    pub server: String,
    pub reset: crate::receive_wal::ResetReport,
}

impl Serialize for StreamingReset {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let r = &self.reset;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("removed", &r.removed)?;
        m.serialize_entry("marker", &r.marker)?;
        m.serialize_entry("source", &r.source)?;
        m.serialize_entry("archived", &r.archived.stored)?;
        m.serialize_entry("already_archived", &r.archived.already_archived)?;
        m.serialize_entry("errors", &r.archived.errors)?;
        m.end()
    }
}

/// What `receive-wal --create-slot` or `--drop-slot` did.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct SlotChange {
    pub server: String,
    pub slot: String,
    /// `--create-slot`: whether it was created now (false: it existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// `--drop-slot`: always true once dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<bool>,
}

impl SlotChange {
    /// `--create-slot`: `created` false when the slot existed.
    pub fn create(server: &str, slot: &str, created: bool) -> Self {
        SlotChange {
            server: server.into(),
            slot: slot.into(),
            created: Some(created),
            dropped: None,
        }
    }

    /// `--drop-slot`.
    pub fn drop(server: &str, slot: &str) -> Self {
        SlotChange {
            server: server.into(),
            slot: slot.into(),
            created: None,
            dropped: Some(true),
        }
    }
}

impl StreamingReset {
    /// `receive-wal --reset` of `server`.
    pub fn of(server: &Server) -> Result<Self> {
        Ok(StreamingReset {
            server: server.name().to_string(),
            reset: crate::receive_wal::reset(server)?,
        })
    }
}

impl ReceiverStop {
    pub fn new(server: &str, result: String) -> Self {
        ReceiverStop {
            server: server.into(),
            result,
        }
    }
}

/// What `receive-wal --stop` found, in words.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ReceiverStop {
    pub server: String,
    pub result: String,
}

/// One server as `show-servers` shows it: its effective settings (secrets masked), or why its
/// section cannot be used.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ShownServer {
    Settings(BTreeMap<String, String>),
    Disabled {
        name: String,
        disabled: String,
        description: Option<String>,
    },
}

/// `show-servers NAME...` (or `all`): each server's effective configuration, by name.
pub fn show_servers(config: &Config, names: &[String]) -> Result<BTreeMap<String, ShownServer>> {
    let names = if names.iter().any(|n| n == "all") {
        config.server_names()
    } else {
        names.to_vec()
    };
    let mut all = BTreeMap::new();
    for name in names {
        let shown = match config.disabled.get(&name) {
            Some(d) => ShownServer::Disabled {
                name: name.clone(),
                disabled: d.reason.to_string(),
                description: d.description.clone(),
            },
            None => {
                ShownServer::Settings(crate::diagnose::show_server(&Server::new(config, &name)?))
            }
        };
        all.insert(name, shown);
    }
    Ok(all)
}

/// `diagnose`: the configuration without secrets, versions, catalogue and the state of every
/// lock file, as one JSON document.
pub fn diagnose(config: &Config, pgbak_version: &str, connect: bool) -> Value {
    let mut doc = crate::diagnose::diagnose(config, pgbak_version, connect);
    let locks = match crate::lock_cleanup::lock_files(&config.global.lock_directory) {
        Ok(states) => Value::Array(
            states
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name, "held": s.held, "holder_pid": s.holder_pid,
                        "pid_running": s.pid_running, "state": s.describe(),
                    })
                })
                .collect(),
        ),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("locks".into(), locks);
    }
    doc
}

/// One server of the configuration as `list-servers` shows it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ServerListing {
    pub description: Option<String>,
    pub active: bool,
    /// Disabled by its configuration: `reason` says why.
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Every server of the configuration, usable or not, by name.
pub fn list_servers(config: &Config) -> BTreeMap<String, ServerListing> {
    let mut all = BTreeMap::new();
    for (n, s) in &config.servers {
        all.insert(
            n.clone(),
            ServerListing {
                description: s.description.clone(),
                active: s.active,
                disabled: false,
                reason: None,
            },
        );
    }
    for (n, d) in &config.disabled {
        all.insert(
            n.clone(),
            ServerListing {
                description: d.description.clone(),
                active: d.active,
                disabled: true,
                reason: Some(d.reason.to_string()),
            },
        );
    }
    all
}

/// A report as pretty JSON text.
pub fn to_json<T: Serialize + ?Sized>(report: &T) -> Result<String> {
    serde_json::to_string_pretty(report).map_err(|e| Error::Other(format!("JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(
        retention_status: Option<RetentionStatus>,
        keep_target: Option<KeepTarget>,
        parent: Option<&str>,
    ) -> Value {
        let mut info = BackupInfo::new(
            "main",
            "20240101T000000",
            "postgres",
            "tar",
            "zstd",
            chrono::Utc::now(),
        );
        info.parent_backup_id = parent.map(str::to_string);
        serde_json::to_value(BackupDetails {
            info,
            retention_status,
            keep_target,
        })
        .unwrap()
    }

    #[test]
    fn backup_details_add_retention_keep_and_the_chain() {
        let v = details(
            Some(RetentionStatus::KeepStandalone),
            Some(KeepTarget::Standalone),
            None,
        );
        assert_eq!(v["backup_id"], "20240101T000000");
        assert_eq!(v["retention_status"], "KEEP:STANDALONE");
        assert_eq!(v["keep_target"], "standalone");
        assert_eq!(v["backup_type"], "full");
        assert!(v["parent_backup_id"].is_null());
        assert_eq!(v["children_backup_ids"], serde_json::json!([]));

        let v = details(None, None, Some("20231231T000000"));
        assert!(v["retention_status"].is_null());
        assert!(v["keep_target"].is_null());
        assert_eq!(v["backup_type"], "incremental");
        assert_eq!(v["parent_backup_id"], "20231231T000000");
        let v = details(Some(RetentionStatus::Obsolete), None, None);
        assert_eq!(v["retention_status"], "OBSOLETE");
    }
}
