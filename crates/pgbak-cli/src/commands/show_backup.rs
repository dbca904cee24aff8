//! `pgbak show-backup SERVER BACKUP_ID`: everything the catalogue records of one backup, with
//! what the retention policy says of it (`retention_status`, as `list-backups` shows it) and
//! whether `pgbak keep` keeps it (`keep_target`).

use crate::cli::{Cli, Format};
use crate::output::{print_json, print_kv};
use pgbak_core::catalogue::is_backup_id;
use pgbak_core::keep::{keep_target, KeepTarget};
use pgbak_core::retention::{retention_status, RetentionStatus};
use pgbak_core::server::Server;
use pgbak_core::{Error, Result};
use serde_json::Value;

/// Runs `show-backup`.
pub fn run(cli: &Cli, server: &str, backup_id: &str) -> Result<u8> {
    let config = crate::load(cli)?;
    let server = Server::new(&config, server)?;
    let cat = server.catalogue();
    let id = if is_backup_id(backup_id) {
        backup_id.to_string()
    } else {
        cat.resolve(backup_id)?.backup_id
    };
    let info = server
        .backups()?
        .into_iter()
        .find(|b| b.backup_id == id)
        .map(Ok)
        .unwrap_or_else(|| cat.read(&id))?;
    // A policy that cannot be applied (a bad `retention_policy`) must not hide the backup: the
    // rest is shown and the retention status is unknown.
    let retention = match retention_status(&server) {
        Ok(all) => all.get(&id).copied(),
        Err(e) => {
            tracing::warn!("server '{}': retention status unknown: {e}", server.name());
            None
        }
    };
    let keep = keep_target(&cat, &id)?;
    let mut v = serde_json::to_value(&info).map_err(|e| Error::Other(e.to_string()))?;
    add_retention(&mut v, retention, keep);
    add_chain(&mut v, &info);
    match cli.format {
        Format::Json => print_json(&v),
        Format::Console => {
            println!("Backup {}:", info.backup_id);
            print_kv(&console_rows(&v));
        }
    }
    Ok(0)
}

/// Adds `retention_status` (Barman's label, null when unknown) and `keep_target` (`full`,
/// `standalone`, or null when not kept) to the backup's JSON object.
fn add_retention(v: &mut Value, retention: Option<RetentionStatus>, keep: Option<KeepTarget>) {
    if let Value::Object(m) = v {
        m.insert(
            "retention_status".into(),
            retention.map_or(Value::Null, |r| Value::String(r.as_str().into())),
        );
        m.insert(
            "keep_target".into(),
            keep.map_or(Value::Null, |k| Value::String(k.as_str().into())),
        );
    }
}

/// Adds Barman's `backup_type` (`full`, `incremental` or `rsync`) and always shows the chain
/// fields, `parent_backup_id` (null for a full backup) and `children_backup_ids`.
pub fn add_chain(v: &mut Value, info: &pgbak_core::catalogue::BackupInfo) {
    if let Value::Object(m) = v {
        m.insert("backup_type".into(), info.backup_type().into());
        m.insert(
            "parent_backup_id".into(),
            info.parent_backup_id
                .clone()
                .map_or(Value::Null, Value::String),
        );
        m.insert(
            "children_backup_ids".into(),
            Value::Array(
                info.children_backup_ids
                    .iter()
                    .map(|c| Value::String(c.clone()))
                    .collect(),
            ),
        );
    }
}

/// The (key, text) rows of a JSON object, `-` for null.
fn console_rows(v: &Value) -> Vec<(String, String)> {
    let Value::Object(m) = v else {
        return Vec::new();
    };
    m.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_and_keep_are_added() {
        let mut v = serde_json::json!({"backup_id": "20240101T000000", "status": "DONE"});
        add_retention(
            &mut v,
            Some(RetentionStatus::KeepStandalone),
            Some(KeepTarget::Standalone),
        );
        assert_eq!(v["retention_status"], "KEEP:STANDALONE");
        assert_eq!(v["keep_target"], "standalone");
        let rows = console_rows(&v);
        assert!(rows.contains(&("retention_status".into(), "KEEP:STANDALONE".into())));
        assert!(rows.contains(&("keep_target".into(), "standalone".into())));
        assert!(rows.contains(&("status".into(), "DONE".into())));
    }

    #[test]
    fn unknown_retention_and_no_keep_are_null_and_dash() {
        let mut v = serde_json::json!({"backup_id": "20240101T000000"});
        add_retention(&mut v, None, None);
        assert!(v["retention_status"].is_null());
        assert!(v["keep_target"].is_null());
        let rows = console_rows(&v);
        assert!(rows.contains(&("retention_status".into(), "-".into())));
        assert!(rows.contains(&("keep_target".into(), "-".into())));
        let mut v = serde_json::json!({"backup_id": "20240101T000000"});
        add_retention(&mut v, Some(RetentionStatus::Obsolete), None);
        assert_eq!(v["retention_status"], "OBSOLETE");
    }
}
