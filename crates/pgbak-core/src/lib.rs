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

pub mod backup;
pub mod backup_lock;
pub mod backup_scan;
pub mod catalogue;
pub mod check;
pub mod clock;
pub mod config;
pub mod delete;
pub mod diagnose;
mod error;
pub mod fault_points;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate_manifest;
pub mod hooks;
pub mod identity;
pub mod incremental;
pub mod keep;
pub mod lock_cleanup;
pub mod locks;
pub mod maintenance;
pub mod manifest;
pub mod pg;
pub mod put_wal;
pub mod receive_wal;
pub mod recover;
pub mod remote_recover;
pub mod reports;
pub mod restore_tree;
pub mod retention;
pub mod rsync_backup;
pub mod rsync_check;
pub mod server;
pub mod streaming_status;
pub mod timelines;
pub mod units;
pub mod verify;
pub mod wal_archive;
pub mod wal_cleanup;
pub mod wal_client;
pub mod wal_status;
pub mod wal_tar;

pub use error::{Error, ErrorKind, Result};

// The entry points.
pub use backup::{backup, BackupOptions};
pub use catalogue::{BackupInfo, BackupStatus};
pub use check::{check_server, CheckOptions, ServerChecks};
pub use config::Config;
pub use delete::{delete_backup, DeleteReport};
pub use keep::{keep, release_keep, KeepTarget};
pub use pgbak_copy::{CopyProgress, Meter, NoProgress};
pub use pgbak_repo::BackupProblem;
pub use recover::{recover, RecoverOptions, RecoverySummary, RecoveryTarget, TargetAction};
pub use reports::{backup_details, list_backups, BackupDetails};
pub use server::Server;
pub use verify::{verify_backup, VerifyOptions, VerifyReport};
