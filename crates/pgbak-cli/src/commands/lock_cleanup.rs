//! `pgbak lock-directory-cleanup`: removes lock files nobody holds and reports the others,
//! naming locks left behind by processes that died. `--list` only reports.

use crate::cli::{Cli, Format};
use crate::output::print_json;
use clap::Args;
use pgbak_core::config::Config;
use pgbak_core::Result;
use pgbak_core::{lock_directory_cleanup, lock_files};

/// Arguments of `lock-directory-cleanup`.
#[derive(Args, Debug)]
pub struct LockCleanupArgs {
    /// Only list the lock files and their holders; remove nothing.
    #[arg(long)]
    pub list: bool,
}

/// Runs `lock-directory-cleanup`.
pub fn run(cli: &Cli, config: &Config, a: &LockCleanupArgs) -> Result<u8> {
    let dir = &config.global.lock_directory;
    if a.list {
        let states = lock_files(dir)?;
        match cli.format {
            Format::Json => print_json(&states),
            Format::Console => {
                for s in &states {
                    println!("{}", s.describe());
                }
            }
        }
        return Ok(0);
    }
    let report = lock_directory_cleanup(dir)?;
    match cli.format {
        Format::Json => print_json(&report),
        Format::Console => {
            if !cli.quiet {
                for s in &report.removed {
                    let left_by = match (s.holder_pid, s.pid_running) {
                        (Some(pid), Some(false)) => {
                            format!(" (left by process {pid}, which is no longer running)")
                        }
                        _ => String::new(),
                    };
                    println!("removed {}{left_by}", s.name);
                }
                for (s, why) in &report.kept {
                    println!("kept {}: {why}", s.name);
                }
            }
            for s in &report.held {
                println!("in use: {}", s.describe());
            }
        }
    }
    Ok(0)
}
