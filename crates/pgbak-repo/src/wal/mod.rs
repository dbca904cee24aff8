//! The WAL archive: archived WAL files under `<timeline><log>/<name>` (history files at the top)
//! and their index.

pub mod index;

pub use index::{CompactReport, IndexEntry, WalIndex};
