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
use pgbak_core::config::{Config, ConfigError};
use pgbak_core::Result;
use std::process::ExitCode;

/// Runs the `pgbak` command line and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The configuration is read once per run, before logging starts (it names the log file);
    // an error in it is reported by `run`, once logging is set up.
    let config = needs_config(&cli.command).then(|| Config::load(cli.config.as_deref()));
    logging::init(&cli, config.as_ref().and_then(|c| c.as_ref().ok()));
    let _span = tracing::info_span!("pgbak", pid = std::process::id()).entered();
    let args: Vec<String> = std::env::args().skip(1).collect();
    tracing::info!(target: logging::FILE_ONLY, ?args, "started");
    match run(&cli, config) {
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

/// Whether `command` reads the configuration: all but the generated files and the client run
/// on the PostgreSQL host (`wal-archive`, `wal-restore`), which has none.
fn needs_config(command: &Command) -> bool {
    !matches!(
        command,
        Command::Completion { .. }
            | Command::Manpage
            | Command::WalArchive(_)
            | Command::WalRestore(_)
    )
}

fn run(cli: &Cli, loaded: Option<std::result::Result<Config, ConfigError>>) -> Result<u8> {
    let loaded = loaded.transpose()?;
    if let (Some(c), false) = (&loaded, cli.quiet) {
        for w in &c.warnings {
            output::eprint_line(format_args!("WARNING: {w}"));
        }
    }
    // `main` read the configuration for every command that needs it (`needs_config`).
    let config = || {
        loaded.as_ref().ok_or_else(|| {
            pgbak_core::Error::Other("the configuration was not read for this command".into())
        })
    };
    match &cli.command {
        Command::Completion { shell } => commands::generated::completion(*shell),
        Command::Manpage => commands::generated::manpage(),
        Command::WalArchive(a) => commands::wal::wal_archive(cli, a),
        Command::WalRestore(a) => commands::wal::wal_restore(cli, a),
        Command::ArchiveWal {
            server,
            path,
            parallel,
        } => commands::wal::archive_wal(cli, config()?, server, path, *parallel),
        Command::GetWal(a) => commands::wal::get_wal(config()?, a),
        Command::PutWal(a) => commands::wal::put_wal(cli, config()?, a),
        Command::RebuildXlogdb { server } => commands::wal::rebuild_xlogdb(cli, config()?, server),
        Command::CheckWalArchive(a) => commands::wal::check_wal_archive(cli, config()?, a),
        Command::ReplicationStatus { server } => {
            commands::wal::replication_status(cli, config()?, server)
        }
        Command::Keep(a) => commands::keep::run(cli, config()?, a),
        Command::Delete { server, backup_id } => {
            commands::delete::run(cli, config()?, server, backup_id)
        }
        Command::Check(a) => commands::check::run(cli, config()?, a),
        Command::ShowServers(a) => commands::inspect::show_servers(cli, config()?, a),
        Command::Diagnose(a) => commands::inspect::run_diagnose(config()?, a),
        Command::VerifyBackup(a) => commands::verify::verify_backup_cmd(cli, config()?, a),
        Command::CheckBackup(a) => commands::verify::check_backup_cmd(cli, config()?, a),
        Command::GenerateManifest(a) => commands::verify::generate_manifest_cmd(cli, config()?, a),
        Command::LockDirectoryCleanup(a) => commands::lock_cleanup::run(cli, config()?, a),
        Command::ReceiveWal(a) => commands::receive_wal::run(cli, config()?, a),
        Command::Backup(a) => commands::backup::run(cli, config()?, a),
        Command::Cron => commands::cron::run(cli, config()?),
        Command::Recover(a) => commands::recover::run(cli, config()?, a),
        Command::ListServers => commands::listing::list_servers(cli, config()?),
        Command::ListBackups { server } => commands::listing::list_backups(cli, config()?, server),
        Command::ShowBackup { server, backup_id } => {
            commands::show_backup::run(cli, config()?, server, backup_id)
        }
        Command::Status { server } => commands::listing::status(cli, config()?, server),
        Command::SwitchWal(a) | Command::SwitchXlog(a) => {
            commands::listing::switch_wal(cli, config()?, a)
        }
    }
}
