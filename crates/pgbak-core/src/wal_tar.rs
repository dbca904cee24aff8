//! The tar streams of the WAL helpers live in the repository layer.

pub use pgbak_repo::wal::tar_stream::*;
