//! Timelines of the WAL archive (recovery plans, target timelines) live in the repository
//! layer.

pub use pgbak_repo::wal::timelines::*;
