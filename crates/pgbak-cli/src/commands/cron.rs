//! `pgbak cron`: the periodic work of every server, and what it did.

use crate::cli::{Cli, Format};
use crate::output;
use crate::output::print_json;
use pgbak_core::config::Config;
use pgbak_core::{Error, Result};

pub fn run(cli: &Cli, config: &Config) -> Result<u8> {
    // This program starts the WAL receivers: it is the pgbak binary.
    let launcher = std::env::current_exe()
        .map(|program| {
            std::sync::Arc::new(pgbak_core::streaming::ProcessLauncher { program })
                as std::sync::Arc<dyn pgbak_core::streaming::ReceiverLauncher>
        })
        .map_err(|e| Error::io("locate", "the pgbak program", e))?;
    let reports = pgbak_core::cron(config, Some(launcher));
    let mut failed = false;
    for r in &reports {
        failed |= !r.errors.is_empty();
        if let Some(reason) = &r.disabled {
            if !cli.quiet {
                output::eprint_line(format_args!(
                    "WARNING: {}: skipped, the server is disabled by its configuration: {reason}",
                    r.server
                ));
            }
            continue;
        }
        if cli.format == Format::Console && !cli.quiet {
            if r.skipped {
                println!("{}: another cron is running, skipped", r.server);
            }
            for n in &r.archived {
                println!("{}: archived {n} from incoming", r.server);
            }
            for b in &r.completed_backups {
                println!("{}: backup {b} is DONE", r.server);
            }
            for b in &r.failed_backups {
                println!("{}: backup {b} was interrupted and is now FAILED", r.server);
            }
            for b in &r.deleted_backups {
                println!("{}: retention policy: deleted backup {b}", r.server);
            }
            if r.removed_wal > 0 {
                println!(
                    "{}: removed {} WAL file(s) no backup needs",
                    r.server, r.removed_wal
                );
            }
            for n in &r.retention_notes {
                println!("{}: retention: {n}", r.server);
            }
            if let Some(action) = &r.receive_wal {
                println!("{}: {action}", r.server);
            }
            for t in &r.removed_temp_files {
                println!("{}: removed {t}, left by a process that died", r.server);
            }
            if r.aborted_uploads > 0 {
                println!(
                    "{}: aborted {} unfinished upload(s) left by a process that died",
                    r.server, r.aborted_uploads
                );
            }
        }
        for e in &r.errors {
            output::eprint_line(format_args!("ERROR: {}: {e}", r.server));
        }
    }
    if cli.format == Format::Json {
        print_json(&reports);
    }
    Ok(if failed { 1 } else { 0 })
}
