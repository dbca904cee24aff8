//! `pgbak delete`: delete a backup and the WAL that only it needed.

use crate::cli::{Cli, Format};
use crate::output::print_json;
use pgbak_core::config::Config;
use pgbak_core::delete_backup_with;
use pgbak_core::Result;
use pgbak_core::Server;

/// Runs `delete SERVER BACKUP_ID`.
pub fn run(cli: &Cli, config: &Config, server: &str, backup_id: &str) -> Result<u8> {
    let server = Server::new(config, server)?;
    let bar = crate::progress::MeterBar::start_files(cli.quiet, "delete");
    let meter = bar.meter();
    let result = delete_backup_with(&server, backup_id, meter.as_ref());
    bar.finish();
    let r = result?;
    match cli.format {
        Format::Json => print_json(&r),
        Format::Console => {
            if !cli.quiet {
                let how = if r.resumed {
                    " (finishing an interrupted delete)"
                } else {
                    ""
                };
                println!(
                    "Deleted backup {} of server '{}'{how}; {} WAL file(s) removed",
                    r.backup.backup_id,
                    server.name(),
                    r.wal_removed.len()
                );
            }
        }
    }
    Ok(0)
}
