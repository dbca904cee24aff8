//! The command line, with Barman's command and option names where Barman has them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Backup and recovery manager for PostgreSQL.
#[derive(Parser, Debug)]
#[command(
    name = "pgbak",
    version,
    about = "Backup and recovery manager for PostgreSQL",
    long_about = None
)]
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
    /// Format of the logs on stderr: text, or json (one object per event).
    #[arg(long = "log-format", global = true, value_enum, env = "PGBAK_LOG_FORMAT", default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
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
    /// Print the shell completion script for bash, zsh or fish (e.g.
    /// `pgbak completion bash > /etc/bash_completion.d/pgbak`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print pgbak's manual page (roff), e.g. `pgbak manpage > /usr/local/share/man/man1/pgbak.1`.
    Manpage,
    /// Archive one WAL file (use as archive_command: `pgbak -c CONF archive-wal SERVER %p`).
    ArchiveWal {
        server: String,
        path: PathBuf,
        /// Also archive up to N-1 of the following segments PostgreSQL has marked ready, N at a
        /// time, and answer for them at once when PostgreSQL asks (default: the server's
        /// cloud_wal_archive_parallel; 0 or 1 archives only PATH).
        #[arg(short = 'p', long, value_parser = clap::value_parser!(u32).range(0..=64))]
        parallel: Option<u32>,
    },
    /// Write an archived WAL file to DEST or standard output (use as restore_command:
    /// `pgbak -c CONF get-wal SERVER %f %p`).
    GetWal(crate::commands::wal_args::GetWalArgs),
    /// Archive WAL files sent as a tar stream with checksums on standard input (the backup-host
    /// end of `wal-archive`).
    PutWal(crate::commands::wal_args::PutWalArgs),
    /// On the database host: send a WAL file to the backup host over SSH
    /// (`archive_command = 'pgbak wal-archive BACKUP_HOST SERVER %p'`).
    #[command(alias = "pgbak-wal-archive")]
    WalArchive(crate::commands::wal_args::WalArchiveArgs),
    /// On the database host: fetch a WAL file from the backup host over SSH, with prefetch
    /// (`restore_command = 'pgbak wal-restore -p 4 BACKUP_HOST SERVER %f %p'`).
    #[command(alias = "pgbak-wal-restore")]
    WalRestore(crate::commands::wal_args::WalRestoreArgs),
    /// Recreate the WAL index (xlog.db) of a server from its wals/ folder.
    RebuildXlogdb { server: String },
    /// Check that a server's WAL archive is empty or holds WAL of this server's system.
    CheckWalArchive(crate::commands::wal_args::CheckWalArchiveArgs),
    /// Show the streaming clients of a server and the lag of its replication slots.
    ReplicationStatus { server: String },
    /// Periodic work for every active server (safe to run every minute).
    Cron,
    /// Keep a backup whatever the retention policy says (--target full|standalone), show the
    /// keep (--status) or release it (--release).
    Keep(crate::commands::keep::KeepArgs),
    /// Delete a backup and the WAL that only it needed.
    Delete { server: String, backup_id: String },
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
    /// Run every check on servers (`all` for every server): one OK/FAILED line each, exit 1 on
    /// any failure; --nagios prints a Nagios plugin status.
    Check(crate::commands::check::CheckArgs),
    /// Show the effective configuration of servers (`all` for every server).
    #[command(alias = "show-server")]
    ShowServers(crate::commands::inspect::ShowServersArgs),
    /// JSON with every server's configuration (secrets removed), versions, catalogue and locks.
    Diagnose(crate::commands::inspect::DiagnoseArgs),
    /// Check every file of a backup against its manifest (checksums), plain or compressed.
    #[command(alias = "verify")]
    VerifyBackup(crate::commands::verify::VerifyArgs),
    /// Check that all WAL from the start to the end of a backup is archived.
    CheckBackup(crate::commands::verify::CheckBackupArgs),
    /// Write a PostgreSQL-format backup_manifest for a backup that has none.
    GenerateManifest(crate::commands::verify::VerifyArgs),
    /// Remove lock files nobody holds; report the others and locks left by dead processes.
    LockDirectoryCleanup(crate::commands::lock_cleanup::LockCleanupArgs),
    /// Stream WAL from a server into its archive over a replication connection (foreground, until
    /// SIGTERM/SIGINT), or manage it: --create-slot, --drop-slot, --reset, --stop.
    ReceiveWal(crate::commands::receive_wal::ReceiveWalArgs),
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
    #[arg(long = "wait-timeout", value_parser = clap::value_parser!(u64).range(0..=pgbak_core::config::MAX_SECONDS), default_value_t = 0)]
    pub wait_timeout: u64,
    /// rsync methods: take unchanged files from the previous backup: off, copy or link (alone: link).
    #[arg(
        long = "reuse-backup",
        value_name = "MODE",
        num_args = 0..=1,
        default_missing_value = "link",
        value_parser = ["off", "copy", "link"]
    )]
    pub reuse_backup: Option<String>,
    /// rsync methods: parallel copy workers (overrides parallel_jobs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// rsync methods: retries of a failed copy step (overrides basebackup_retry_times).
    #[arg(long = "retry-times", value_name = "N")]
    pub retry_times: Option<u32>,
    /// rsync methods: seconds before each retry (overrides basebackup_retry_sleep).
    #[arg(long = "retry-sleep", value_name = "SECONDS")]
    pub retry_sleep: Option<u64>,
    /// rsync methods: no retries (--retry-times 0).
    #[arg(long = "no-retry", conflicts_with = "retry_times")]
    pub no_retry: bool,
    /// PostgreSQL 17+, postgres method: a block-level incremental backup relative to this
    /// backup (an id, latest or latest-full).
    #[arg(long = "incremental", value_name = "PARENT")]
    pub incremental: Option<String>,
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
    /// Restore onto another host reached with this ssh command (e.g. "ssh postgres@pg2");
    /// the destination and tablespace locations are paths there.
    #[arg(long = "remote-ssh-command", value_name = "CMD")]
    pub remote_ssh_command: Option<String>,
    /// Restore onto an older copy of the same cluster in the destination (not running): write
    /// only the files that differ, remove the ones the backup does not have.
    #[arg(long = "delta-restore", conflicts_with = "no_delta_restore")]
    pub delta_restore: bool,
    /// Do not use delta restore even if recovery_options says so.
    #[arg(long = "no-delta-restore")]
    pub no_delta_restore: bool,
    /// Workers of a local recovery (files of a plain backup, tar streams, archived WAL files),
    /// or parallel rsync runs of a remote recovery (default: parallel_jobs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Bandwidth limit of a remote recovery in kB/s (default: bandwidth_limit).
    #[arg(long = "bwlimit", value_name = "KBPS")]
    pub bwlimit: Option<u64>,
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
    #[arg(long = "archive-timeout", value_parser = clap::value_parser!(u64).range(0..=pgbak_core::config::MAX_SECONDS), default_value_t = 30)]
    pub archive_timeout: u64,
}
