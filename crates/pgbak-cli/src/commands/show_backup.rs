//! `pgbak show-backup SERVER BACKUP_ID`: everything the catalogue records of one backup, with
//! what the retention policy says of it (`retention_status`, as `list-backups` shows it) and
//! whether `pgbak keep` keeps it (`keep_target`).

use crate::cli::{Cli, Format};
use crate::output::{print_json, print_kv};
use pgbak_core::config::Config;
use pgbak_core::Server;
use pgbak_core::{Error, Result};
use serde_json::Value;

/// Runs `show-backup`.
pub fn run(cli: &Cli, config: &Config, server: &str, backup_id: &str) -> Result<u8> {
    let server = Server::new(config, server)?;
    let details = pgbak_core::reports::backup_details(&server, backup_id)?;
    let info = &details.info;
    let v = serde_json::to_value(&details).map_err(|e| Error::Other(e.to_string()))?;
    match cli.format {
        Format::Json => print_json(&v),
        Format::Console => {
            println!("Backup {}:", info.backup_id);
            print_kv(&console_rows(&v));
        }
    }
    Ok(0)
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
    fn console_rows_show_null_as_a_dash() {
        let v = serde_json::json!({"status": "DONE", "keep_target": null, "size": 3});
        let rows = console_rows(&v);
        assert!(rows.contains(&("status".into(), "DONE".into())));
        assert!(rows.contains(&("keep_target".into(), "-".into())));
        assert!(rows.contains(&("size".into(), "3".into())));
    }
}
