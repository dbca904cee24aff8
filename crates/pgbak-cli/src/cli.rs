//! The command line, with Barman's command and option names where Barman has them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Backup and recovery manager for PostgreSQL.
#[derive(Parser, Debug)]
#[command(name = "pgbak", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (else $PGBAK_CONFIG, ~/.pgbak.conf, /etc/pgbak.conf, /etc/pgbak/pgbak.conf).
    #[arg(short = 'c', long = "config", global = true, env = "PGBAK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format of listings.
    #[arg(short = 'f', long = "format", global = true, value_enum, default_value_t = Format::Console)]
    pub format: Format,
    /// Only print errors.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Print debug logs and the full chain of an error.
    #[arg(short = 'd', long, global = true)]
    pub debug: bool,
    /// Log level on stderr (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long = "log-level", global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// How listings are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Console,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Take a base backup of a server.
    Backup(BackupArgs),
    /// Archive one WAL file (use as archive_command: `pgbak -c CONF archive-wal SERVER %p`).
    ArchiveWal { server: String, path: PathBuf },
    /// Write an archived WAL file to DEST (use as restore_command: `pgbak -c CONF get-wal SERVER %f %p`).
    GetWal {
        server: String,
        wal_name: String,
        dest: PathBuf,
    },
    /// Periodic work for every active server (safe to run every minute).
    Cron,
    /// Restore a backup into a directory, ready for point-in-time recovery.
    #[command(alias = "restore")]
    Recover(RecoverArgs),
    /// List the configured servers.
    ListServers,
    /// List the backups of a server.
    #[command(alias = "list-backup")]
    ListBackups { server: String },
    /// Show everything known about one backup.
    ShowBackup { server: String, backup_id: String },
    /// Show the state of a server.
    Status { server: String },
    /// Close the current WAL segment so it gets archived.
    SwitchWal(SwitchWalArgs),
    /// Alias of switch-wal (Barman's older name).
    #[command(hide = true)]
    SwitchXlog(SwitchWalArgs),
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    pub server: String,
    /// Ask PostgreSQL for an immediate checkpoint.
    #[arg(
        long = "immediate-checkpoint",
        conflicts_with = "no_immediate_checkpoint"
    )]
    pub immediate_checkpoint: bool,
    #[arg(long = "no-immediate-checkpoint")]
    pub no_immediate_checkpoint: bool,
    /// Wait until all WAL the backup needs is archived.
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// Seconds to wait with --wait (0 = no limit).
    #[arg(long = "wait-timeout", default_value_t = 0)]
    pub wait_timeout: u64,
}

#[derive(Args, Debug)]
pub struct RecoverArgs {
    pub server: String,
    /// A backup id, or latest/last/oldest/first.
    pub backup_id: String,
    pub destination_directory: PathBuf,
    /// Recover to this time (e.g. '2024-05-01 12:00:00+00'; no zone = local time).
    #[arg(long = "target-time")]
    pub target_time: Option<String>,
    #[arg(long = "target-xid")]
    pub target_xid: Option<String>,
    #[arg(long = "target-lsn")]
    pub target_lsn: Option<String>,
    /// A restore point created with pg_create_restore_point().
    #[arg(long = "target-name")]
    pub target_name: Option<String>,
    /// Stop as soon as the backup is consistent.
    #[arg(long = "target-immediate")]
    pub target_immediate: bool,
    /// Timeline: a number, current or latest.
    #[arg(long = "target-tli")]
    pub target_tli: Option<String>,
    /// Stop just before the target instead of just after it.
    #[arg(long)]
    pub exclusive: bool,
    /// What to do at the target: pause, promote or shutdown.
    #[arg(long = "target-action")]
    pub target_action: Option<String>,
    /// Relocate a tablespace: NAME:LOCATION (repeatable).
    #[arg(long = "tablespace", value_name = "NAME:LOCATION")]
    pub tablespace: Vec<String>,
    /// Start the restored server as a standby.
    #[arg(long = "standby-mode")]
    pub standby_mode: bool,
    /// Fetch WAL on demand with `pgbak get-wal` instead of copying it into the destination.
    #[arg(long = "get-wal", conflicts_with = "no_get_wal")]
    pub get_wal: bool,
    #[arg(long = "no-get-wal")]
    pub no_get_wal: bool,
    /// Restore even if the destination is not empty.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SwitchWalArgs {
    pub server: String,
    /// CHECKPOINT first, so there is something to switch.
    #[arg(long)]
    pub force: bool,
    /// Wait until the closed segment is archived.
    #[arg(long)]
    pub archive: bool,
    /// Seconds to wait with --archive.
    #[arg(long = "archive-timeout", default_value_t = 30)]
    pub archive_timeout: u64,
}
