//! `list-servers`, `list-backups`, `status` and `switch-wal`.

use crate::cli::{Cli, Format};
use crate::output::{human_size, print_json, print_kv};
use pgbak_core::config::Config;
use pgbak_core::Result;
use pgbak_core::Server;
use std::time::Duration;

pub fn list_servers(cli: &Cli, config: &Config) -> Result<u8> {
    match cli.format {
        Format::Json => print_json(&pgbak_core::reports::list_servers(config)),
        Format::Console => {
            for n in config.server_names() {
                // Barman's line: `name - description (flags)`.
                let (description, flag) = match (config.servers.get(&n), config.disabled.get(&n)) {
                    (Some(s), _) => (
                        s.description.clone(),
                        (!s.active).then(|| "(inactive)".to_string()),
                    ),
                    (None, Some(d)) => (
                        d.description.clone(),
                        Some(format!("(WARNING: disabled: {})", d.reason)),
                    ),
                    (None, None) => continue,
                };
                let words: Vec<String> = description.into_iter().chain(flag).collect();
                let line = format!("{n} - {}", words.join(" "));
                println!("{}", pgbak_wal::redact::redact(&line));
            }
        }
    }
    Ok(0)
}

pub fn list_backups(cli: &Cli, config: &Config, server: &str) -> Result<u8> {
    let server = Server::new(config, server)?;
    let backups = pgbak_core::reports::list_backups(&server)?;
    match cli.format {
        Format::Json => print_json(&backups),
        Format::Console => {
            for d in &backups {
                let b = &d.info;
                let mut r = match d.retention_status.map(|s| s.as_str()) {
                    None | Some("-") => String::new(),
                    Some(s) => format!(" - {s}"),
                };
                if let Some(parent) = &b.parent_backup_id {
                    r.push_str(&format!(" - incremental of {parent}"));
                }
                println!(
                    "{} {} - {} - Size: {} - {} - TLI {} - {}{r}",
                    b.server_name,
                    b.backup_id,
                    b.end_time
                        .unwrap_or(b.begin_time)
                        .format("%Y-%m-%d %H:%M:%S UTC"),
                    human_size(b.size),
                    if b.backup_format == "plain" {
                        "plain".to_string()
                    } else {
                        format!("tar/{}", b.compression)
                    },
                    b.timeline.map_or("-".to_string(), |t| t.to_string()),
                    b.status.as_str()
                );
            }
        }
    }
    Ok(0)
}

pub fn status(cli: &Cli, config: &Config, server: &str) -> Result<u8> {
    let server = Server::new(config, server)?;
    let rows = pgbak_core::server_status(&server)?;
    match cli.format {
        Format::Json => print_json(&serde_json::Value::Object(
            rows.into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        )),
        Format::Console => {
            println!("Server {}:", server.name());
            print_kv(&rows);
        }
    }
    Ok(0)
}

pub fn switch_wal(cli: &Cli, config: &Config, a: &crate::cli::SwitchWalArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let r = pgbak_core::switch_wal(
        &server,
        a.force,
        a.archive,
        Duration::from_secs(a.archive_timeout),
    )?;
    match cli.format {
        Format::Json => print_json(&r),
        Format::Console => {
            if !cli.quiet {
                println!(
                    "Switched WAL of server '{}' at {} (segment {})",
                    server.name(),
                    r.switch_lsn,
                    r.segment
                );
                if r.archived == Some(true) {
                    println!("Segment {} is archived", r.segment);
                }
            }
        }
    }
    Ok(0)
}
