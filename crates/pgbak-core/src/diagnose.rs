//! `pgbak show-servers` and `pgbak diagnose`: the effective configuration of servers, and one JSON
//! document with everything a support request needs (configuration, versions, catalogue state),
//! with passwords and other secrets removed.

use crate::catalogue::BackupStatus;
use crate::config::{parse_interval, Config};
use crate::identity::read_identity;
use crate::server::Server;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The value of option `key` fit to show (pgbak's one redaction rule, from `pgbak-wal`).
pub use pgbak_wal::redact::redact_option;

fn redacted_map(raw: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    raw.iter()
        .map(|(k, v)| (k.clone(), redact_option(k, v)))
        .collect()
}

/// `show-servers`: every effective option of the server (defaults included), secrets removed,
/// plus what Barman adds: whether it is a passive node and how old its latest backup is against
/// `last_backup_maximum_age`.
pub fn show_server(server: &Server) -> BTreeMap<String, String> {
    let cfg = &server.config;
    let mut out = redacted_map(&cfg.raw);
    out.insert("name".into(), cfg.name.clone());
    out.insert("passive_node".into(), "false".into());
    let age = match (&cfg.last_backup_maximum_age, server.backups()) {
        (None, _) => "None".to_string(),
        (Some(text), Ok(backups)) => {
            let limit = parse_interval(text)
                .map(crate::check::human_duration)
                .unwrap_or_else(|_| text.clone());
            let newest = backups
                .iter()
                .filter(|b| b.status == BackupStatus::Done)
                .filter_map(|b| b.end_time)
                .max();
            match newest {
                None => format!("{limit} (WARNING! no available backups)"),
                Some(end) => {
                    let age = (chrono::Utc::now() - end).to_std().unwrap_or_default();
                    let within = parse_interval(text).map(|m| age <= m).unwrap_or(false);
                    let age = crate::check::human_duration(age);
                    if within {
                        format!("{limit} (latest backup: {age} )")
                    } else {
                        format!("{limit} (WARNING! latest backup is {age} old)")
                    }
                }
            }
        }
        (Some(text), Err(e)) => format!("{text} (cannot read the catalogue: {e})"),
    };
    out.insert("last_backup_maximum_age".into(), age);
    out
}

/// Rows `status` adds for the catalogue's identity, the retention settings and the server's
/// locks (a lock left by a process that died is named as such).
pub fn status_rows(server: &Server) -> Vec<(String, String)> {
    let cfg = &server.config;
    let mut rows = Vec::new();
    let identity = match read_identity(server.stores().meta.as_ref()) {
        Ok(Some(i)) => format!("{} (PostgreSQL {})", i.systemid, i.version),
        Ok(None) => "not recorded yet (the first backup records it)".into(),
        Err(e) => format!("unreadable: {e}"),
    };
    rows.push(("systemid".to_string(), identity));
    rows.push((
        "retention_policy".to_string(),
        cfg.retention_policy
            .clone()
            .unwrap_or_else(|| "not enforced".into()),
    ));
    rows.push((
        "minimum_redundancy".to_string(),
        cfg.minimum_redundancy.to_string(),
    ));
    let prefix = format!(".{}-", cfg.name);
    let lock_dir = server
        .lock_path(&crate::locks::LockName::ServerCron(cfg.name.clone()))
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
    let listed = match &lock_dir {
        Some(dir) => crate::lock_cleanup::lock_files(dir),
        None => Ok(Vec::new()),
    };
    let locks = match listed {
        Ok(states) => {
            let mine: Vec<String> = states
                .iter()
                .filter(|s| s.name.starts_with(&prefix) && (s.held || s.dead_holder()))
                .map(|s| s.describe())
                .collect();
            if mine.is_empty() {
                "none held".to_string()
            } else {
                mine.join("; ")
            }
        }
        Err(e) => format!("cannot list: {e}"),
    };
    rows.push(("locks".to_string(), locks));
    rows
}

/// `diagnose`: one JSON document with the global configuration, every server's configuration
/// and catalogue state, the PostgreSQL version of each reachable server (when `connect`), and
/// the versions of pgbak and the system. Never fails: what cannot be read is reported in place.
pub fn diagnose(config: &Config, pgbak_version: &str, connect: bool) -> Value {
    let global = json!({
        "config": redacted_map(&config.global.raw),
        "home": config.global.home,
        "lock_directory": config.global.lock_directory,
        "log_file": config.global.log_file,
        "log_level": config.global.log_level,
        "configuration_files_directory": config.global.configuration_files_directory,
    });
    let mut servers = Map::new();
    for name in config.servers.keys() {
        let value = match Server::new(config, name) {
            Ok(server) => server_state(&server, connect),
            Err(e) => json!({ "error": e.to_string() }),
        };
        servers.insert(name.clone(), value);
    }
    for (name, disabled) in &config.disabled {
        servers.insert(
            name.clone(),
            json!({
                "disabled": disabled.reason.to_string(),
                "description": disabled.description,
                "active": disabled.active,
            }),
        );
    }
    json!({
        "global": global,
        "config_files": config.source,
        "config_warnings": config.warnings,
        "servers": servers,
        "system_info": system_info(pgbak_version),
    })
}

fn server_state(server: &Server, connect: bool) -> Value {
    let cfg = &server.config;
    let mut state = Map::new();
    state.insert("config".into(), json!(redacted_map(&cfg.raw)));
    // Where the data rests, as each store describes itself (URLs without secrets; credentials
    // come from the environment and are never shown).
    let repositories: Map<String, Value> = server
        .stores()
        .named()
        .into_iter()
        .map(|(option, store)| {
            let kind = if store.local_root().is_some() {
                "local"
            } else {
                "object storage"
            };
            (
                option.to_string(),
                json!({ "repository": store.describe(), "kind": kind }),
            )
        })
        .collect();
    state.insert("repositories".into(), Value::Object(repositories));
    match server.backups() {
        Ok(backups) => {
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for b in &backups {
                *by_status.entry(b.status.as_str()).or_default() += 1;
            }
            let list: Vec<Value> = backups
                .iter()
                .map(|b| {
                    json!({
                        "backup_id": b.backup_id, "status": b.status.as_str(),
                        "begin_time": b.begin_time, "end_time": b.end_time,
                        "backup_format": b.backup_format, "compression": b.compression,
                        "size": b.size, "data_size": b.data_size,
                        "begin_wal": b.begin_wal, "end_wal": b.end_wal,
                        "systemid": b.systemid, "version": b.version,
                        "has_manifest": b.has_manifest, "error": b.error,
                    })
                })
                .collect();
            state.insert("backups_by_status".into(), json!(by_status));
            state.insert("backups".into(), Value::Array(list));
        }
        Err(e) => {
            state.insert("backups".into(), json!({ "error": e.to_string() }));
        }
    }
    if let Ok((_, problems)) = server.catalogue().list() {
        state.insert("catalogue_problems".into(), json!(problems));
    }
    let wal = match server.wal_archive().and_then(|a| Ok(a.segment_names()?)) {
        Ok(names) => json!({
            "segments": names.len(),
            "first": names.first(),
            "last": names.last(),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    state.insert("wal_archive".into(), wal);
    let count = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).count())
            .unwrap_or(0)
    };
    state.insert(
        "queues".into(),
        json!({
            "incoming": count(&cfg.incoming_wals_directory),
            "streaming": count(&cfg.streaming_wals_directory),
            "errors": count(&cfg.errors_directory),
        }),
    );
    state.insert(
        "identity".into(),
        match read_identity(server.stores().meta.as_ref()) {
            Ok(i) => json!(i),
            Err(e) => json!({ "error": e.to_string() }),
        },
    );
    if connect && cfg.active {
        let pg = match server.connect() {
            Ok(conn) => json!({
                "server_version": conn.setting("server_version").ok(),
                "in_recovery": conn.is_in_recovery().ok(),
                "data_directory": conn.setting("data_directory").ok(),
                "wal_level": conn.setting("wal_level").ok(),
                "archive_mode": conn.setting("archive_mode").ok(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        state.insert("postgresql".into(), pg);
    }
    Value::Object(state)
}

/// Versions of pgbak and of the system it runs on.
fn system_info(pgbak_version: &str) -> Value {
    json!({
        "pgbak_version": pgbak_version,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel": uname(),
        "user": std::env::var("USER").ok().or_else(|| std::env::var("LOGNAME").ok()),
        "uid": effective_uid(),
    })
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `sysname release version machine`, from /proc (Linux) when available.
fn uname() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(rel)) => Some(format!("{os} {rel}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn secrets_are_removed() {
        assert_eq!(
            redact_option(
                "conninfo",
                "host=pg1 user=pgbak password=hunter2 dbname=postgres"
            ),
            "host=pg1 user=pgbak password=******** dbname=postgres"
        );
        assert_eq!(
            redact_option("streaming_conninfo", "postgresql://u:hunter2@pg1/db"),
            "postgresql://u:********@pg1/db"
        );
        assert_eq!(
            redact_option("aws_sse_customer_key", "abc"),
            pgbak_wal::redact::MASK
        );
        assert_eq!(
            redact_option("encryption_passphrase_command", "cat k"),
            pgbak_wal::redact::MASK
        );
        assert_eq!(redact_option("compression", "zstd"), "zstd");
    }

    #[test]
    fn diagnose_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=127.0.0.1 password=hunter2\nlast_backup_maximum_age = 1 day\n",
            dir.path().display()
        );
        let config = Config::parse_str(&text, Path::new("/etc/pgbak.conf")).unwrap();
        let v = diagnose(&config, "0.1.0", false);
        let dump = v.to_string();
        assert!(!dump.contains("hunter2"), "{dump}");
        assert_eq!(v["servers"]["main"]["backups_by_status"], json!({}));
        assert_eq!(v["system_info"]["pgbak_version"], "0.1.0");
        let server = Server::new(&config, "main").unwrap();
        let shown = show_server(&server);
        assert_eq!(
            shown["last_backup_maximum_age"],
            "1 day (WARNING! no available backups)"
        );
        assert!(shown["conninfo"].contains("password=********"));
    }
}
