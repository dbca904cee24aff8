//! pgbak's domain and workflows: configuration, the catalogue of backups and WAL, locks, and the
//! backup, archive, restore and recovery workflows. Front ends (the CLI, the C ABI) only parse
//! input, build the parts and call into this crate.
//!
//! The entry points are re-exported here: build a [`Server`] from a [`Config`] (or from its
//! parts, [`Server::from_parts`]), then call the workflows on it. Errors are [`Error`]s whose
//! [`Error::kind`] a caller can act on; reports are `Serialize` types ([`reports`]).
//!
//! ```no_run
//! use pgbak_core::{backup, recover, BackupOptions, Config, RecoverOptions, RecoveryTarget};
//! use pgbak_core::{ErrorKind, NoProgress, Server, TargetAction};
//! use std::time::Duration;
//!
//! # fn main() -> pgbak_core::Result<()> {
//! let config = Config::load(Some("/etc/pgbak.conf".as_ref()))?;
//! let server = Server::new(&config, "main")?;
//! let opts = BackupOptions::default().wait(Some(Duration::from_secs(600)));
//! let info = backup(&server, &opts, &mut NoProgress)?;
//! println!("backup {} is {}", info.backup_id, info.status.as_str());
//!
//! let mut restore = RecoverOptions::new("latest", "/var/lib/postgresql/restored");
//! restore.target = RecoveryTarget::time("2026-12-05 10:00:00+00").then(TargetAction::Promote);
//! match recover(&server, &restore) {
//!     Ok(summary) => println!("{} WAL files copied", summary.wal_files_copied),
//!     Err(e) if e.kind() == ErrorKind::NotFound => println!("no backup to restore: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

// Everything below is private: callers use the entry points re-exported here and the few
// public modules (`config`, `reports`, `wal`, `streaming`). `fuzzing` is for the fuzz targets.
mod archive_queue;
mod backup;
mod backup_lock;
mod backup_scan;
mod catalogue;
mod check;
mod clock;
pub mod config;
mod delete;
mod diagnose;
mod error;
mod fault_points;
#[doc(hidden)]
pub mod fuzzing;
mod generate_manifest;
mod hooks;
mod identity;
mod incremental;
mod keep;
mod lock_cleanup;
mod locks;
mod maintenance;
mod manifest;
mod pg;
mod put_wal;
mod receive_wal;
mod recover;
mod remote_recover;
pub mod reports;
mod restore_tree;
mod retention;
mod rsync_backup;
mod rsync_check;
mod server;
mod streaming_status;
mod timelines;
mod units;
mod verify;
mod wal_archive;
mod wal_cleanup;
mod wal_client;
mod wal_status;
mod wal_tar;

pub use error::{Error, ErrorKind, Result};

// The entry points.
pub use backup::{backup, BackupOptions};
pub use catalogue::{BackupInfo, BackupStatus};
pub use check::{
    check_server, console_lines, json_report, nagios_report, CheckOptions, NagiosReport,
    ServerChecks,
};
pub use config::{Config, ConfigError};
pub use delete::{delete_backup, delete_backup_with, DeleteReport};
pub use generate_manifest::{generate_manifest, GeneratedManifest};
pub use keep::{keep, release_keep, KeepTarget};
pub use lock_cleanup::{lock_directory_cleanup, lock_files, CleanupReport, LockFileState};
pub use maintenance::{cron, status as server_status, switch_wal, CronReport, SwitchReport};
pub use pgbak_copy::{CopyProgress, Meter, NoProgress};
pub use pgbak_repo::BackupProblem;
pub use recover::{
    recover, RecoverOptions, RecoverySummary, RecoveryTarget, TargetAction, WAL_SPOOL_DIR,
};
pub use reports::{backup_details, list_backups, BackupDetails};
pub use retention::{enforce_retention, RetentionReport};
pub use server::Server;
pub use units::human_size;
pub use verify::{check_backup, verify_backup, VerifyOptions, VerifyReport, WalCheckReport};

/// The WAL archive: what PostgreSQL's `archive_command` and `restore_command` call on the
/// backup host, and its checks.
pub mod wal {
    pub use crate::archive_queue::{archive_wal, QUEUE_DIR};
    pub use crate::hooks::archive_file;
    pub use crate::put_wal::put_wal_with_hooks;
    pub use crate::wal_archive::{ArchiveOutcome, WalArchive};
    pub use crate::wal_status::{
        check_wal_archive, replication_status, ReplicationClient, ReplicationStatus, SlotStatus,
        WalArchiveCheck,
    };
    pub use crate::wal_tar::SumKind;

    /// The client run on the PostgreSQL host (`wal-archive`, `wal-restore`): it reaches the
    /// backup host over SSH and needs no configuration of its own.
    pub mod client {
        pub use crate::wal_client::{
            test_connection, wal_archive, wal_restore, HelperError, RestoreSource, SshTarget,
            WalArchiveOptions, WalRestoreOptions,
        };
    }
}

/// Streaming WAL from the server (`receive-wal`) and its replication slot.
pub mod streaming {
    pub use crate::receive_wal::{
        create_slot, drop_slot, receive_wal, reset, stop, ProcessLauncher, ReceiveWalOptions,
        ReceiveWalReport, ReceiverLauncher, ResetReport, SlotCreation, StopOutcome,
    };
}
