//! `pgbak backup SERVER`: takes a base backup and prints its record.

use crate::cli::{Cli, Format};
use crate::output::{human_size, print_json};
use crate::progress;
use pgbak_core::config::Config;
use pgbak_core::Result;
use pgbak_core::Server;
use pgbak_core::{backup, BackupOptions};
use std::time::Duration;

pub fn run(cli: &Cli, config: &Config, a: &crate::cli::BackupArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let mut opts = BackupOptions::default();
    opts.immediate_checkpoint = if a.immediate_checkpoint {
        Some(true)
    } else if a.no_immediate_checkpoint {
        Some(false)
    } else {
        None
    };
    opts.wait = a.wait;
    opts.wait_timeout = (a.wait_timeout > 0).then(|| Duration::from_secs(a.wait_timeout));
    opts.jobs = a.jobs;
    opts.reuse_backup = a.reuse_backup.clone();
    opts.retry_times = if a.no_retry { Some(0) } else { a.retry_times };
    opts.retry_sleep = a.retry_sleep;
    opts.incremental = a.incremental.clone();
    if !cli.quiet && cli.format == Format::Console {
        eprintln!("Starting backup of server '{}'", server.name());
    }
    let mut progress = progress::Progress::new(cli.quiet);
    let result = backup(&server, &opts, &mut progress);
    progress.finish();
    let info = result?;
    match cli.format {
        Format::Json => print_json(&info),
        Format::Console => {
            if !cli.quiet {
                let secs = info.copy_seconds.unwrap_or(0.0);
                println!(
                    "Backup {} of server '{}': {} ({} received in {:.1}s, {:.0} MB/s; {} stored; WAL {} to {})",
                    info.backup_id,
                    info.server_name,
                    info.status.as_str(),
                    human_size(info.data_size),
                    secs,
                    info.data_size as f64 / 1e6 / secs.max(0.001),
                    human_size(info.size),
                    info.begin_wal.as_deref().unwrap_or("-"),
                    info.end_wal.as_deref().unwrap_or("-"),
                );
                if let (Some(copied), Some(reused)) = (info.copied_bytes, info.reused_bytes) {
                    println!(
                        "  rsync: {} copied, {} reused{}, {} sent over the network",
                        human_size(copied),
                        human_size(reused),
                        info.reuse_backup_id
                            .as_deref()
                            .map(|id| format!(" from {id}"))
                            .unwrap_or_default(),
                        human_size(info.network_bytes.unwrap_or(0)),
                    );
                }
            }
        }
    }
    Ok(0)
}
