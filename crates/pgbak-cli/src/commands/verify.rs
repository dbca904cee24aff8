//! `pgbak verify-backup` (every file against the manifest), `pgbak check-backup` (the WAL from
//! start to end is archived) and `pgbak generate-manifest`.

use crate::cli::{Cli, Format};
use crate::output::{human_size, print_json};
use clap::Args;
use pgbak_core::config::Config;
use pgbak_core::generate_manifest;
use pgbak_core::Result;
use pgbak_core::Server;
use pgbak_core::{check_backup, verify_backup, VerifyOptions};

/// Arguments of `verify-backup` and `generate-manifest`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub server: String,
    /// A backup id, or latest/last/oldest/first.
    pub backup_id: String,
    /// Files (plain) or streams (tar) read at once (default: the server's parallel_jobs).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
}

/// Arguments of `check-backup`.
#[derive(Args, Debug)]
pub struct CheckBackupArgs {
    pub server: String,
    /// A backup id, or latest/last/oldest/first.
    pub backup_id: String,
}

fn options(server: &Server, jobs: Option<usize>) -> VerifyOptions {
    VerifyOptions::jobs(jobs.unwrap_or(server.config.parallel_jobs as usize).max(1))
}

/// Runs `verify-backup`: exit 0 when every file matches the manifest, 1 otherwise.
pub fn verify_backup_cmd(cli: &Cli, config: &Config, a: &VerifyArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let mut opts = options(&server, a.jobs);
    let bar = crate::progress::MeterBar::start(cli.quiet, "verify");
    opts.progress = bar.meter();
    let result = verify_backup(&server, &a.backup_id, &opts);
    bar.finish();
    let report = result?;
    match cli.format {
        Format::Json => print_json(&report),
        Format::Console => {
            let rate = report.bytes_checked as f64 / 1e6 / report.seconds.max(0.001);
            if report.ok() {
                if !cli.quiet {
                    println!(
                        "Backup {} of server '{}' is intact: {} files, {} checked in {:.1}s ({rate:.0} MB/s)",
                        report.backup_id,
                        report.server,
                        report.files_checked,
                        human_size(report.bytes_checked),
                        report.seconds
                    );
                }
            } else {
                println!(
                    "Backup {} of server '{}' FAILED verification ({} problem(s); {} files, {} checked):",
                    report.backup_id,
                    report.server,
                    report.problems.len(),
                    report.files_checked,
                    human_size(report.bytes_checked)
                );
                for p in &report.problems {
                    println!("  {p}");
                }
            }
        }
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// Runs `check-backup`: exit 0 when all the backup's WAL is archived, 1 otherwise.
pub fn check_backup_cmd(cli: &Cli, config: &Config, a: &CheckBackupArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let r = check_backup(&server, &a.backup_id)?;
    match cli.format {
        Format::Json => print_json(&r),
        Format::Console => {
            let range = match (r.required.first(), r.required.last()) {
                (Some(a), Some(b)) => format!("{a} to {b}"),
                _ => "-".into(),
            };
            let changed = if r.status != r.status_before {
                format!(
                    " (status {} -> {})",
                    r.status_before.as_str(),
                    r.status.as_str()
                )
            } else {
                format!(" (status {})", r.status.as_str())
            };
            if r.ok() {
                if !cli.quiet {
                    println!(
                        "Backup {} of server '{}': all {} WAL files from {range} are archived{changed}",
                        r.backup_id,
                        r.server,
                        r.required.len()
                    );
                }
            } else {
                println!(
                    "Backup {} of server '{}': {} of {} WAL files from {range} are missing{changed}:",
                    r.backup_id,
                    r.server,
                    r.missing.len(),
                    r.required.len()
                );
                for m in &r.missing {
                    println!("  {m}");
                }
            }
        }
    }
    Ok(if r.ok() { 0 } else { 1 })
}

/// Runs `generate-manifest`.
pub fn generate_manifest_cmd(cli: &Cli, config: &Config, a: &VerifyArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let g = generate_manifest(&server, &a.backup_id, &options(&server, a.jobs))?;
    match cli.format {
        Format::Json => print_json(&g),
        Format::Console => {
            if !cli.quiet {
                println!(
                    "Backup manifest for backup {} of server '{}' written to {} ({} files, {})",
                    g.backup_id,
                    g.server,
                    g.path,
                    g.files,
                    human_size(g.bytes)
                );
            }
        }
    }
    Ok(0)
}
