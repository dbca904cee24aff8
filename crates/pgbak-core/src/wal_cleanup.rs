//! Which archived WAL files a delete may remove lives in the repository layer.

pub use pgbak_repo::wal::cleanup::*;
