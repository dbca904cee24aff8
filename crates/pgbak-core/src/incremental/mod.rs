//! Block-level incremental backups of PostgreSQL 17 and later, as Barman takes them: a backup
//! holds only the blocks changed since its parent (`INCREMENTAL.<file>` entries), and `recover`
//! combines the chain back into full files natively, without `pg_combinebackup`.
//!
//! - [`chain`]: choosing and checking the parent of a new incremental backup, and the chain of
//!   ancestors a restore needs.
//! - [`header`]: the format of an incremental file, parsed as it streams by.
//! - [`combine`]: the streaming restore of a chain into a data directory.
//! - [`restore`]: what `recover` calls: the chain checked and locked, then combined.

pub mod chain;
pub mod combine;
pub mod header;
pub mod restore;

pub use restore::RestoreChain;
