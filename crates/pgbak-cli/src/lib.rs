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
use cli::{Cli, Command, Format};
use output::{human_size, print_json, print_kv};
use pgbak_core::backup::{backup, BackupOptions};
use pgbak_core::config::Config;
use pgbak_core::recover::{recover, RecoverOptions, RecoveryTarget};
use pgbak_core::server::Server;
use pgbak_core::wal_archive::ArchiveOutcome;
use pgbak_core::{maintenance, Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "pgbak", &mut script);
            output::write_stdout(&script)?;
            Ok(0)
        }
        Command::Manpage => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| Error::io("render", "the manual page", e))?;
            output::write_stdout(&page)?;
            Ok(0)
        }
        Command::ArchiveWal { server, path } => {
            // The hot path of archive_command: read the configuration, store the file, nothing else.
            let config = load(cli)?;
            let server = Server::new(&config, server)?;
            // Hook scripts run only when some archive hook is configured.
            match pgbak_core::hooks::archive_file(&server, &server.wal_archive()?, path)? {
                ArchiveOutcome::Stored { .. } => {}
                ArchiveOutcome::AlreadyArchived { name } => {
                    if !cli.quiet {
                        eprintln!("{name} was already archived with identical content");
                    }
                }
            }
            Ok(0)
        }
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
        Command::Backup(a) => {
            let config = load(cli)?;
            let server = Server::new(&config, &a.server)?;
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
                        if let (Some(copied), Some(reused)) = (info.copied_bytes, info.reused_bytes)
                        {
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
        Command::Cron => {
            let config = load(cli)?;
            // This program starts the WAL receivers: it is the pgbak binary.
            let launcher = std::env::current_exe()
                .map(|program| {
                    std::sync::Arc::new(pgbak_core::receive_wal::ProcessLauncher { program })
                        as std::sync::Arc<dyn pgbak_core::receive_wal::ReceiverLauncher>
                })
                .map_err(|e| Error::io("locate", "the pgbak program", e))?;
            let reports = maintenance::cron(&config, Some(launcher));
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
        Command::Recover(a) => {
            let config = load(cli)?;
            let server = Server::new(&config, &a.server)?;
            let mut tablespaces = Vec::new();
            for t in &a.tablespace {
                let (name, loc) = t.split_once(':').ok_or_else(|| {
                    Error::Usage(format!("--tablespace '{t}' is not NAME:LOCATION"))
                })?;
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
            opts.pgbak_exe =
                std::env::current_exe().map_err(|e| Error::io("locate", "pgbak", e))?;
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
                                s.dest.join(pgbak_core::recover::WAL_SPOOL_DIR).display()
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
        Command::ListServers => {
            let config = load(cli)?;
            match cli.format {
                Format::Json => print_json(&pgbak_core::reports::list_servers(&config)),
                Format::Console => {
                    for n in config.server_names() {
                        // Barman's line: `name - description (flags)`.
                        let (description, flag) =
                            match (config.servers.get(&n), config.disabled.get(&n)) {
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
        Command::ListBackups { server } => {
            let config = load(cli)?;
            let server = Server::new(&config, server)?;
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
        Command::ShowBackup { server, backup_id } => {
            commands::show_backup::run(cli, server, backup_id)
        }
        Command::Status { server } => {
            let config = load(cli)?;
            let server = Server::new(&config, server)?;
            let mut rows = maintenance::status(&server)?;
            rows.extend(pgbak_core::rsync_check::status_rows(&server));
            rows.extend(pgbak_core::streaming_status::status_rows(&server));
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
        Command::SwitchWal(a) | Command::SwitchXlog(a) => {
            let config = load(cli)?;
            let server = Server::new(&config, &a.server)?;
            let r = maintenance::switch_wal(
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
    }
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}
