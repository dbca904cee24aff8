//! How backup bytes arrive: the [`CopyStrategy`] seam and its streaming implementation
//! ([`StreamingCopy`], BASE_BACKUP over a replication connection), tar parsing ([`tar`]) and safe
//! extraction ([`extract_tar`], [`TarExtractor`]), used both to write plain-format backups and to
//! restore tar-format ones, and [`copy_tree`] and [`restore_tree`] (several workers) to restore
//! plain-format backups. [`delta`] restores onto an older copy of the same tree, writing only what
//! differs. The [`rsync`] module holds the file-level strategy ([`RsyncCopy`], rsync over SSH or
//! locally) and the parallel copy controller that remote recovery uses too.
//!
//! ```no_run
//! use pgbak_copy::{BackupDestination, CopyStrategy, NoProgress, StreamingCopy};
//! use pgbak_wal::{BaseBackupOptions, ConnParams};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conninfo = ConnParams::resolve("host=db1 user=backup")?;
//! let options = BaseBackupOptions {
//!     label: "pgbak 20260101T000000".into(),
//!     progress: true,
//!     fast_checkpoint: true,
//!     manifest: true,
//!     manifest_checksums: None,
//!     tablespace_map: true,
//!     max_rate_kbps: None,
//!     verify_checksums: true,
//!     wait_for_wal_archive: false,
//!     server_compression: None,
//!     incremental: false,
//! };
//! let dest = BackupDestination::Plain {
//!     data_dir: "/var/lib/pgbak/db1/base/20260101T000000/data".into(),
//!     tablespaces_root: "/var/lib/pgbak/db1/base/20260101T000000/tablespaces".into(),
//! };
//! let outcome = StreamingCopy::new(conninfo, options).copy(&dest, &mut NoProgress)?;
//! println!("backup from {} to {}", outcome.start_lsn, outcome.end_lsn);
//! # Ok(())
//! # }
//! ```

pub mod delta;
mod durable;
mod error;
pub mod extract;
mod meter;
pub mod rsync;
mod server_decode;
mod strategy;
mod streaming;
pub mod tar;
pub mod tree_restore;
mod writer;

pub use delta::{extract_stored_tar_delta, DeltaExtractor, RestoreStats};
pub use durable::SyncMethod;
pub use error::{Error, Result};
pub use extract::{
    copy_tree, copy_tree_with, extract_stored_tar, extract_tar, ExtractOptions, ExtractStats,
    TarExtractor,
};
pub use meter::{tick as count_progress, Meter};
pub use rsync::RsyncCopy;
pub use strategy::{
    BackupDestination, CopyOutcome, CopyPhases, CopyProgress, CopyStrategy, NoProgress, OutputFile,
};
pub use streaming::StreamingCopy;
pub use tar::{EntryKind, TarEntry, TarHeader, TarStreamParser, TarVisitor};
pub use tree_restore::{restore_tree, TreeRestoreOptions};
