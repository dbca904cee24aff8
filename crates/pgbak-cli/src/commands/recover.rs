//! `pgbak recover SERVER BACKUP_ID DEST`: restores a backup for point-in-time recovery.

use crate::cli::{Cli, Format};
use crate::output::print_json;
use crate::progress;
use pgbak_core::config::Config;
use pgbak_core::Server;
use pgbak_core::{recover, RecoverOptions, RecoveryTarget};
use pgbak_core::{Error, Result};
use std::path::PathBuf;

pub fn run(cli: &Cli, config: &Config, a: &crate::cli::RecoverArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let mut tablespaces = Vec::new();
    for t in &a.tablespace {
        let (name, loc) = t
            .split_once(':')
            .ok_or_else(|| Error::Usage(format!("--tablespace '{t}' is not NAME:LOCATION")))?;
        tablespaces.push((name.to_string(), PathBuf::from(loc)));
    }
    // Neither flag: as the server's recovery_options say.
    let flag = |on: bool, off: bool| match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let get_wal = flag(a.get_wal, a.no_get_wal);
    let delta_restore = flag(a.delta_restore, a.no_delta_restore);
    let dest = if a.remote_ssh_command.is_some() {
        // A path on the target host: this host's working directory means nothing there.
        if !a.destination_directory.is_absolute() {
            return Err(Error::Usage(format!(
                "with --remote-ssh-command the destination must be an absolute path, not {}",
                a.destination_directory.display()
            )));
        }
        a.destination_directory.clone()
    } else {
        absolute(&a.destination_directory)?
    };
    let mut target = RecoveryTarget::default();
    target.time = a.target_time.clone();
    target.xid = a.target_xid.clone();
    target.lsn = a.target_lsn.clone();
    target.name = a.target_name.clone();
    target.immediate = a.target_immediate;
    target.tli = a.target_tli.clone();
    target.exclusive = a.exclusive;
    target.action = a.target_action.as_deref().map(str::parse).transpose()?;
    let mut opts = RecoverOptions::new(a.backup_id.clone(), dest);
    opts.target = target;
    opts.tablespaces = tablespaces;
    opts.standby_mode = a.standby_mode;
    opts.get_wal = get_wal;
    opts.force = a.force;
    // restore_command calls this very program.
    opts.pgbak_exe = std::env::current_exe().map_err(|e| Error::io("locate", "pgbak", e))?;
    opts.config_file = config.source.first().map(|p| absolute(p)).transpose()?;
    opts.remote_ssh_command = a.remote_ssh_command.clone();
    opts.jobs = a.jobs;
    opts.bwlimit = a.bwlimit;
    opts.delta_restore = delta_restore;
    let bar = progress::MeterBar::start(cli.quiet, "recover");
    opts.progress = bar.meter();
    let result = recover(&server, &opts);
    bar.finish();
    let s = result?;
    match cli.format {
        Format::Json => print_json(&s),
        Format::Console => {
            if !cli.quiet {
                println!(
                    "Restored backup {} of server '{}' into {}",
                    s.backup.backup_id,
                    server.name(),
                    s.dest.display()
                );
                let r = &s.restore;
                if r.delta {
                    println!(
                        "Delta restore: {} files written ({} bytes), {} unchanged ({} bytes), {} removed",
                        r.files_written, r.bytes_written, r.files_unchanged, r.bytes_unchanged, r.removed
                    );
                }
                if s.wal_files_copied > 0 {
                    println!(
                        "Copied {} WAL files into {}",
                        s.wal_files_copied,
                        s.dest.join(pgbak_core::WAL_SPOOL_DIR).display()
                    );
                }
                println!("Recovery settings written to postgresql.auto.conf:");
                for (k, v) in &s.settings {
                    println!("  {k} = '{v}'");
                }
                println!("Start the server on {} to recover.", s.dest.display());
            }
        }
    }
    Ok(0)
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}
