//! The WAL archive: archived WAL files under `<timeline><log>/<name>` (history files at the top),
//! their index, and what is built on them: timelines and recovery plans, bundles for
//! `wal-restore`, the rules for removing WAL, and the tar streams the WAL helpers exchange.

mod archive;
pub mod bundle;
pub mod cleanup;
pub mod index;
mod rebuild;
pub mod tar_stream;
pub mod timelines;

pub use archive::*;
pub use index::{CompactReport, IndexEntry, WalIndex};
pub use rebuild::RebuildReport;
