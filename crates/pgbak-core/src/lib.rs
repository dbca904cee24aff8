//! pgbak's domain and workflows: configuration, the catalogue of backups and WAL, locks, and the
//! backup, archive, restore and recovery workflows. Front ends (the CLI, the C ABI) only parse
//! input, build the parts and call into this crate.

pub mod backup;
pub mod catalogue;
pub mod config;
mod error;
pub mod locks;
pub mod maintenance;
pub mod pg;
pub mod recover;
pub mod server;
pub mod wal_archive;

pub use error::{Error, Result};
