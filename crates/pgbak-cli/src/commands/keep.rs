//! `pgbak keep`: keep a backup whatever the retention policy says, show or release the keep
//! (Barman's `barman keep` options).

use crate::cli::{Cli, Format};
use crate::output::print_json;
use clap::{ArgGroup, Args, ValueEnum};
use pgbak_core::config::Config;
use pgbak_core::Result;
use pgbak_core::Server;
use pgbak_core::{keep, release_keep, KeepTarget};

/// What a kept backup keeps, as typed on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// The backup and all WAL after it.
    Full,
    /// The backup and only the WAL that makes it consistent.
    Standalone,
}

/// `keep`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["target", "status", "release"])))]
pub struct KeepArgs {
    pub server: String,
    /// A backup id, or latest/last/oldest/first.
    pub backup_id: String,
    /// Keep the backup: `full` (with all later WAL) or `standalone` (with the WAL it needs only).
    #[arg(long, value_enum)]
    pub target: Option<TargetArg>,
    /// Show whether the backup is kept and how.
    #[arg(short = 's', long)]
    pub status: bool,
    /// Release the keep: the backup follows the retention policy again.
    #[arg(short = 'r', long)]
    pub release: bool,
}

/// Runs `keep`.
pub fn run(cli: &Cli, config: &Config, a: &KeepArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    if a.status {
        let status = pgbak_core::reports::keep_status(&server, &a.backup_id)?;
        match cli.format {
            Format::Json => print_json(&status),
            Format::Console => println!("Keep: {}", status.keep),
        }
    } else if a.release {
        let info = release_keep(&server, &a.backup_id)?;
        if !cli.quiet && cli.format == Format::Console {
            println!(
                "Released the keep of backup {} of server '{}'",
                info.backup_id,
                server.name()
            );
        }
    } else if let Some(t) = a.target {
        let target = match t {
            TargetArg::Full => KeepTarget::Full,
            TargetArg::Standalone => KeepTarget::Standalone,
        };
        let info = keep(&server, &a.backup_id, target)?;
        if !cli.quiet && cli.format == Format::Console {
            println!(
                "Backup {} of server '{}' is kept ({target})",
                info.backup_id,
                server.name()
            );
        }
    }
    Ok(0)
}
