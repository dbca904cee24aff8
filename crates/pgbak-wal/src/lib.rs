//! PostgreSQL's write-ahead log as pgbak sees it: LSNs, segment and history file names, timeline
//! histories, backup labels, libpq-style connection parameters, and a small replication-protocol
//! client (IDENTIFY_SYSTEM, BASE_BACKUP, ...) built on `postgres-protocol` codecs.
//!
//! Framing and parsing are pure functions fed with bytes ([`protocol`]); [`replication`] is the thin
//! async layer that moves them over a socket.

pub mod backup_label;
pub mod conninfo;
mod error;
pub mod history;
pub mod lsn;
pub mod protocol;
pub mod replication;
pub mod segment;

pub use backup_label::BackupLabel;
pub use conninfo::ConnParams;
pub use error::{DbError, Error, Result};
pub use history::{HistoryEntry, TimelineHistory};
pub use lsn::Lsn;
pub use replication::{
    BaseBackupEnd, BaseBackupOptions, BaseBackupSink, IdentifySystem, ReplicationClient,
    TablespaceInfo,
};
pub use segment::{
    segments_between, validate_segment_size, SegmentName, WalFileName, DEFAULT_SEGMENT_SIZE,
};
