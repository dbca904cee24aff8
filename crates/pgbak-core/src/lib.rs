//! pgbak's domain and workflows: configuration, the catalogue of backups and WAL, locks, and the
//! backup, archive, restore and recovery workflows. Front ends (the CLI, the C ABI) only parse
//! input, build the parts and call into this crate.

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
pub use pgbak_repo::BackupProblem;
