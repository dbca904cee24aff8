//! Handlers of the WAL commands: they parse, call `pgbak-core` and print.

use super::wal_args::{
    CheckWalArchiveArgs, GetWalArgs, PutWalArgs, WalArchiveArgs, WalRestoreArgs,
};
use crate::cli::{Cli, Format};
use crate::output::{print_json, print_kv};
use pgbak_compress::{Codec, Compressor};
use pgbak_core::config::Config;
use pgbak_core::wal::client::{
    self as wal_client, HelperError, RestoreSource, SshTarget, WalArchiveOptions, WalRestoreOptions,
};
use pgbak_core::wal::ArchiveOutcome;
use pgbak_core::wal::SumKind;
use pgbak_core::Server;
use pgbak_core::{wal, Error, Result};
use std::io::Write;
use std::path::Path;

/// `archive-wal SERVER PATH`, PostgreSQL's hot path: read the configuration, store the file,
/// nothing else (hook scripts run only when some archive hook is configured).
pub fn archive_wal(
    cli: &Cli,
    config: &Config,
    name: &str,
    path: &std::path::Path,
    parallel: Option<u32>,
) -> Result<u8> {
    let server = Server::new(config, name)?;
    match pgbak_core::wal::archive_wal(&server, path, parallel)? {
        pgbak_core::wal::ArchiveOutcome::Stored { .. } => {}
        pgbak_core::wal::ArchiveOutcome::AlreadyArchived { name } => {
            if !cli.quiet {
                eprintln!("{name} was already archived with identical content");
            }
        }
    }
    Ok(0)
}

/// `get-wal`: one file to a path, a folder or standard output; `--peek` lists; `--bundle` sends
/// a tar stream of following segments for `wal-restore`.
pub fn get_wal(config: &Config, a: &GetWalArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let archive = server.wal_archive()?;
    if a.test {
        // The archive answers (an empty one too).
        archive.storage().list_dir("")?;
        println!(
            "Ready to retrieve WAL files from the server {}",
            server.name()
        );
        return Ok(0);
    }
    let name = a
        .wal_name
        .as_deref()
        .ok_or_else(|| Error::Usage("get-wal needs a WAL file name".into()))?;
    if let Some(n) = a.peek {
        for w in archive.peek(name, n)? {
            println!("{w}");
        }
        return Ok(0);
    }
    if let Some(dest) = &a.dest {
        archive.fetch(name, dest)?;
        return Ok(0);
    }
    if let Some(dir) = &a.output_directory {
        pgbak_core::wal::WalArchive::key_of(name)?;
        archive.fetch(name, &dir.join(name))?;
        return Ok(0);
    }
    let label = Path::new("standard output");
    // A file on descriptor 1: binary data, no line buffering, and Send (compressors need it).
    let stdout = {
        use std::os::fd::AsFd;
        std::fs::File::from(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io("open", label, e))?,
        )
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
    let wire = a.wire_compression();
    let result = match wire {
        None => write_answer(&archive, name, a.bundle, &mut out),
        Some(c) => {
            let codec = Codec::new(c, Some(pgbak_compress::Level::Low))
                .map_err(|e| Error::Usage(e.to_string()))?;
            let mut enc = codec
                .encoder(Box::new(&mut out))
                .map_err(|e| Error::io("compress", label, e))?;
            let r = write_answer(&archive, name, a.bundle, &mut enc);
            enc.finish().map_err(|e| Error::io("write", label, e))?;
            r
        }
    };
    result?;
    out.flush().map_err(|e| Error::io("write", label, e))?;
    Ok(0)
}

fn write_answer(
    archive: &pgbak_core::wal::WalArchive,
    name: &str,
    bundle: Option<usize>,
    out: &mut dyn Write,
) -> Result<()> {
    match bundle {
        Some(n) => Ok(archive.write_bundle(name, n, out).map(|_| ())?),
        None => Ok(archive.fetch_to(name, out, "standard output").map(|_| ())?),
    }
}

/// `put-wal`: a tar stream with WAL files and their checksums on standard input.
pub fn put_wal(cli: &Cli, config: &Config, a: &PutWalArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    if !server.config.active {
        return Err(Error::Usage(format!("server '{}' is not active", a.server)));
    }
    if a.test {
        println!("Ready to accept WAL files for the server {}", server.name());
        return Ok(0);
    }
    let mut stdin = std::io::stdin().lock();
    // The archive hooks run around each file, as for archive-wal.
    let outcomes = pgbak_core::wal::put_wal_with_hooks(&server, &mut stdin)?;
    if !cli.quiet {
        for o in outcomes {
            if let ArchiveOutcome::AlreadyArchived { name } = o {
                eprintln!("{name} was already archived with identical content");
            }
        }
    }
    Ok(0)
}

fn target(cli: &Cli, host: &str, r: &super::wal_args::RemoteArgs) -> SshTarget {
    SshTarget {
        ssh_command: r.ssh_command.clone(),
        host: host.to_string(),
        user: r.user.clone(),
        port: r.port,
        pgbak_path: r.pgbak_path.clone(),
        config: cli.config.as_ref().map(|p| p.display().to_string()),
    }
}

fn report(e: &HelperError, archiving: bool) -> u8 {
    crate::output::eprint_line(format_args!("ERROR: {e}"));
    e.exit_code(archiving)
}

/// `wal-archive`: runs on the database host as `archive_command`.
pub fn wal_archive(cli: &Cli, a: &WalArchiveArgs) -> Result<u8> {
    let t = target(cli, &a.backup_host, &a.remote);
    if a.test {
        return Ok(match wal_client::test_connection(&t, &a.server, false) {
            Ok(answer) => {
                println!("{answer}");
                0
            }
            Err(e) => report(&e, true),
        });
    }
    let Some(path) = &a.wal_path else {
        return Err(Error::Usage(
            "wal-archive needs the WAL file path (%p)".into(),
        ));
    };
    let opts = WalArchiveOptions {
        target: t,
        server: a.server.clone(),
        wal_path: path.clone(),
        compression: a.compression(),
        sums: if a.md5 {
            SumKind::Md5
        } else if a.sha256 {
            SumKind::Sha256
        } else {
            SumKind::Crc32c
        },
    };
    Ok(match wal_client::wal_archive(&opts) {
        Ok(()) => 0,
        Err(e) => report(&e, true),
    })
}

/// `wal-restore`: runs on the database host as `restore_command`.
pub fn wal_restore(cli: &Cli, a: &WalRestoreArgs) -> Result<u8> {
    let t = target(cli, &a.backup_host, &a.remote);
    if a.test {
        return Ok(match wal_client::test_connection(&t, &a.server, true) {
            Ok(answer) => {
                println!("{answer}");
                0
            }
            Err(e) => report(&e, false),
        });
    }
    let (Some(name), Some(dest)) = (&a.wal_name, &a.wal_dest) else {
        return Err(Error::Usage(
            "wal-restore needs the WAL file name (%f) and destination (%p)".into(),
        ));
    };
    let network_compression = if a.gzip {
        Some(pgbak_compress::Compression::Gzip)
    } else if a.bzip2 {
        Some(pgbak_compress::Compression::Bzip2)
    } else {
        a.network_compression
            .filter(|c| *c != pgbak_compress::Compression::None)
    };
    let opts = WalRestoreOptions {
        target: t,
        server: a.server.clone(),
        wal_name: name.clone(),
        dest: dest.clone(),
        parallel: a.parallel,
        spool_dir: a.spool_dir.clone(),
        network_compression,
    };
    Ok(match wal_client::wal_restore(&opts) {
        Ok(RestoreSource::Spool) => {
            tracing::debug!("{name} served from the spool");
            0
        }
        Ok(RestoreSource::Remote { prefetched }) => {
            tracing::debug!("{name} fetched, {prefetched} more spooled");
            0
        }
        Err(e) => {
            let code = report(&e, false);
            if code != 1 && a.sleep > 0 {
                std::thread::sleep(std::time::Duration::from_secs(a.sleep));
            }
            code
        }
    })
}

/// `rebuild-xlogdb`.
pub fn rebuild_xlogdb(cli: &Cli, config: &Config, name: &str) -> Result<u8> {
    let server = Server::new(config, name)?;
    let bar = crate::progress::MeterBar::start_files(cli.quiet, "rebuild-xlogdb");
    let meter = bar.meter();
    let result = pgbak_core::reports::rebuild_xlogdb_with(&server, meter.as_ref());
    bar.finish();
    let rebuilt = result?;
    let r = &rebuilt.report;
    match cli.format {
        Format::Json => print_json(&rebuilt),
        Format::Console => {
            if !cli.quiet {
                println!(
                    "Rebuilt the WAL index of server '{name}': {} files ({} checksummed now, {} stale lines dropped)",
                    r.entries,
                    r.checksummed,
                    r.dropped.len()
                );
            }
            for u in &r.unknown {
                eprintln!("WARNING: {u} is not a WAL file of this archive; it was not indexed");
            }
            for u in &r.unreadable {
                eprintln!("ERROR: {u} cannot be read back (damaged); it was not indexed");
            }
        }
    }
    // Damaged files are not indexed, so get-wal refuses them; the exit code says so.
    Ok(u8::from(!r.unreadable.is_empty()))
}

/// `check-wal-archive`.
pub fn check_wal_archive(cli: &Cli, config: &Config, a: &CheckWalArchiveArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let r = wal::check_wal_archive(&server, a.timeline, a.system_id)?;
    match cli.format {
        Format::Json => print_json(&r),
        Format::Console => {
            if !cli.quiet {
                if r.segments == 0 {
                    println!("The WAL archive of server '{}' is empty: OK", a.server);
                } else {
                    println!(
                        "The WAL archive of server '{}' holds {} segments of system {}: OK",
                        a.server,
                        r.segments,
                        r.archive_system_id.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(0)
}

/// `replication-status`.
pub fn replication_status(cli: &Cli, config: &Config, name: &str) -> Result<u8> {
    let server = Server::new(config, name)?;
    let s = wal::replication_status(&server)?;
    match cli.format {
        Format::Json => print_json(&s),
        Format::Console => {
            println!(
                "Status of streaming clients for server '{name}' ({}, current LSN {}):",
                if s.in_recovery { "standby" } else { "primary" },
                s.current_lsn
            );
            if s.clients.is_empty() {
                println!("  No streaming clients attached");
            }
            for (i, c) in s.clients.iter().enumerate() {
                println!("  {}. {} ({})", i + 1, c.application_name, c.state);
                let lag = |v: Option<i64>| v.map_or("-".to_string(), |b| format!("{b} bytes"));
                print_kv(&[
                    ("pid".into(), c.pid.clone()),
                    ("user".into(), c.user.clone()),
                    ("client".into(), c.client_addr.clone()),
                    ("sync state".into(), c.sync_state.clone()),
                    (
                        "sent / write / flush / replay".into(),
                        format!(
                            "{} / {} / {} / {}",
                            c.sent_lsn, c.write_lsn, c.flush_lsn, c.replay_lsn
                        ),
                    ),
                    ("flush lag".into(), lag(c.flush_lag_bytes)),
                    ("replay lag".into(), lag(c.replay_lag_bytes)),
                    (
                        "slot".into(),
                        if c.slot_name.is_empty() {
                            "-".into()
                        } else {
                            c.slot_name.clone()
                        },
                    ),
                ]);
            }
            for sl in &s.slots {
                println!(
                    "  Slot {} ({}, {}): restart_lsn {}, lag {}, wal_status {}",
                    sl.slot_name,
                    sl.slot_type,
                    if sl.active { "active" } else { "inactive" },
                    if sl.restart_lsn.is_empty() {
                        "-"
                    } else {
                        &sl.restart_lsn
                    },
                    sl.lag_bytes
                        .map_or("-".to_string(), |b| format!("{b} bytes")),
                    if sl.wal_status.is_empty() {
                        "-"
                    } else {
                        &sl.wal_status
                    },
                );
            }
        }
    }
    Ok(0)
}
