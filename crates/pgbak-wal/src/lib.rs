//! PostgreSQL's write-ahead log as pgbak sees it: LSNs, segment and history file names, timeline
//! histories, backup labels, libpq-style connection parameters, and a small replication-protocol
//! client (IDENTIFY_SYSTEM, BASE_BACKUP, START_REPLICATION, slots, ...) built on
//! `postgres-protocol` codecs, and a WAL receiver that streams into a directory like
//! `pg_receivewal` ([`receiver`]).
//!
//! Framing and parsing are pure functions fed with bytes ([`protocol`]); [`replication`] is the thin
//! async layer that moves them over a socket.

pub mod backup_label;
pub mod conninfo;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod lsn;
pub mod protocol;
pub mod receiver;
pub mod redact;
pub mod replication;
pub mod segment;
#[cfg(test)]
mod test_server;
pub mod tls;

pub use backup_label::BackupLabel;
pub use conninfo::ConnParams;
pub use error::{DbError, Error, Result};
pub use history::{HistoryEntry, TimelineHistory};
pub use lsn::Lsn;
pub use protocol::stream::{SlotInfo, StandbyStatusUpdate};
pub use receiver::{
    ReceivedFile, ReceiverHandler, ReceiverOptions, RunEnd, StartPoint, StartSource, WalReceiver,
};
pub use replication::{
    BaseBackupEnd, BaseBackupOptions, BaseBackupSink, IdentifySystem, ReplicationClient,
    ReplicationMessage, ReplicationStream, ServerCompression, StreamEnd, TablespaceInfo,
};
pub use segment::{
    segments_between, validate_segment_size, SegmentName, WalFileName, DEFAULT_SEGMENT_SIZE,
};
