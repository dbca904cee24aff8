//! Checks of the `rsync` and `local-rsync` backup methods, for `pgbak check` and `pgbak status`:
//! the database host answers over SSH, rsync runs on both hosts, and the data directory the
//! server reports can be read there. (PostgreSQL's reachability and the backup privileges are
//! checked with the other PostgreSQL checks.)

use crate::check::Check;
use crate::config::BackupMethod;
use crate::rsync_backup::{rsync_program, source_host};
use crate::server::Server;
use pgbak_copy::rsync::{check_programs, Host, RsyncSettings};

/// The checks of an rsync method; empty for other methods.
pub fn rsync_checks(server: &Server) -> Vec<Check> {
    let cfg = &server.config;
    let mut out = Vec::new();
    if !matches!(
        cfg.backup_method,
        BackupMethod::Rsync | BackupMethod::LocalRsync
    ) {
        return out;
    }
    let host = match source_host(cfg) {
        Ok(h) => {
            if let Host::Remote(m) = &h {
                out.push(Check::new(
                    "ssh",
                    true,
                    Some(format!("PostgreSQL server at {}", m.destination())),
                ));
            }
            h
        }
        Err(e) => {
            out.push(Check::new("ssh", false, Some(e.to_string())));
            return out;
        }
    };
    let settings = RsyncSettings {
        program: rsync_program(cfg),
        ..Default::default()
    };
    match check_programs(&host, &settings) {
        Ok((here, there)) => out.push(Check::new(
            "rsync",
            true,
            Some(if host.is_remote() {
                format!("backup host: {here}; PostgreSQL host: {there}")
            } else {
                here
            }),
        )),
        Err(e) => out.push(Check::new("rsync", false, Some(e.to_string()))),
    }
    // Without SQL the data directory is unknown; the PostgreSQL checks report why.
    if let Ok(conn) = server.connect() {
        match conn.setting("data_directory") {
            Ok(dir) if dir.starts_with('/') => {
                let script = format!(
                    "test -r {d} && test -x {d} && test -r {d}/global/pg_control",
                    d = pgbak_copy::rsync::shell::quote(&dir)
                );
                let readable = host
                    .shell(&script)
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                out.push(Check::new(
                    "data directory access",
                    readable,
                    Some(if readable {
                        format!("{dir} on {}", host.describe())
                    } else {
                        format!(
                            "cannot read {dir}/global/pg_control on {} (log in as the cluster's owner)",
                            host.describe()
                        )
                    }),
                ));
            }
            _ => out.push(Check::new(
                "data directory access",
                false,
                Some(
                    "cannot read data_directory: the backup user needs superuser or pg_read_all_settings"
                        .into(),
                ),
            )),
        }
    }
    out
}

/// The same checks as `(name, OK/FAILED (hint))` rows for `pgbak status`.
pub fn status_rows(server: &Server) -> Vec<(String, String)> {
    rsync_checks(server)
        .into_iter()
        .map(|c| {
            let state = if c.ok { "OK" } else { "FAILED" };
            let value = match c.hint {
                Some(h) => format!("{state} ({h})"),
                None => state.to_string(),
            };
            (c.name, value)
        })
        .collect()
}
