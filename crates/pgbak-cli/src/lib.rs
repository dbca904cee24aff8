//! `pgbak`: parses the command line, builds the parts from the configuration and calls
//! `pgbak-core`. Exit codes: 0 success, 1 failure, 2 usage or configuration error.
//!
//! The program lives in this library so that two binaries share it: `pgbak` and
//! `pgbak-test-hooks` (the same program built with the `test-hooks` feature, for the end-to-end
//! tests). It is not an API for other callers: use `pgbak-core`.

mod cli;
mod commands;
mod logging;
mod output;
mod progress;

use clap::Parser;
use cli::{Cli, Command};
use pgbak_core::config::Config;
use pgbak_core::Result;
use std::process::ExitCode;

/// Runs the `pgbak` command line and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli);
    let _span = tracing::info_span!("pgbak", pid = std::process::id()).entered();
    let args: Vec<String> = std::env::args().skip(1).collect();
    tracing::info!(target: logging::FILE_ONLY, ?args, "started");
    match run(&cli) {
        Ok(code) => {
            tracing::info!(target: logging::FILE_ONLY, exit_code = code, "finished");
            ExitCode::from(code)
        }
        Err(e) => {
            tracing::error!(target: logging::FILE_ONLY, exit_code = e.exit_code(), "{e}");
            output::eprint_line(format_args!("ERROR: {e}"));
            if cli.debug {
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    output::eprint_line(format_args!("  caused by: {s}"));
                    src = s.source();
                }
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn load(cli: &Cli) -> Result<Config> {
    let config = Config::load(cli.config.as_deref())?;
    if !cli.quiet {
        for w in &config.warnings {
            output::eprint_line(format_args!("WARNING: {w}"));
        }
    }
    Ok(config)
}

fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Completion { shell } => commands::generated::completion(*shell),
        Command::Manpage => commands::generated::manpage(),
        Command::ArchiveWal { server, path } => commands::wal::archive_wal(cli, server, path),
        Command::GetWal(a) => commands::wal::get_wal(cli, a),
        Command::PutWal(a) => commands::wal::put_wal(cli, a),
        Command::WalArchive(a) => commands::wal::wal_archive(cli, a),
        Command::WalRestore(a) => commands::wal::wal_restore(cli, a),
        Command::RebuildXlogdb { server } => commands::wal::rebuild_xlogdb(cli, server),
        Command::CheckWalArchive(a) => commands::wal::check_wal_archive(cli, a),
        Command::ReplicationStatus { server } => commands::wal::replication_status(cli, server),
        Command::Keep(a) => commands::keep::run(cli, a),
        Command::Delete { server, backup_id } => commands::delete::run(cli, server, backup_id),
        Command::Check(a) => commands::check::run(cli, a),
        Command::ShowServers(a) => commands::inspect::show_servers(cli, a),
        Command::Diagnose(a) => commands::inspect::run_diagnose(cli, a),
        Command::VerifyBackup(a) => commands::verify::verify_backup_cmd(cli, a),
        Command::CheckBackup(a) => commands::verify::check_backup_cmd(cli, a),
        Command::GenerateManifest(a) => commands::verify::generate_manifest_cmd(cli, a),
        Command::LockDirectoryCleanup(a) => commands::lock_cleanup::run(cli, a),
        Command::ReceiveWal(a) => commands::receive_wal::run(cli, a),
        Command::Backup(a) => commands::backup::run(cli, a),
        Command::Cron => commands::cron::run(cli),
        Command::Recover(a) => commands::recover::run(cli, a),
        Command::ListServers => commands::listing::list_servers(cli),
        Command::ListBackups { server } => commands::listing::list_backups(cli, server),
        Command::ShowBackup { server, backup_id } => {
            commands::show_backup::run(cli, server, backup_id)
        }
        Command::Status { server } => commands::listing::status(cli, server),
        Command::SwitchWal(a) | Command::SwitchXlog(a) => commands::listing::switch_wal(cli, a),
    }
}
