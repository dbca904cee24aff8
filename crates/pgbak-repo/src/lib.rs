//! pgbak's repository: everything pgbak stores about one server, as keys and typed records over
//! a [`pgbak_storage::StorageBackend`], whatever the store (local disk, S3, Azure, GCS).
//!
//! Workflows in `pgbak-core` speak the records and keys of this crate, never paths; the key
//! layout is documented in `docs/catalogue.md`.

pub mod backups;
mod error;
pub mod fault_points;
pub mod wal;

pub use error::{BackupProblem, Error, Result};
