//! Errors of the copy layer: one enum for tar parsing, safe extraction and streaming backups, with
//! the path, entry or stream offset each failure happened at.

use std::io;
use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong while receiving, parsing, extracting or storing backup bytes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The replication connection or the BASE_BACKUP protocol failed.
    #[error(transparent)]
    Wal(#[from] pgbak_wal::Error),
    /// The storage backend failed (put, commit, ...).
    #[error(transparent)]
    Storage(#[from] pgbak_storage::Error),
    /// A filesystem operation failed on `path`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory it was done on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a stream that has no path (a tar stream, a compressed object) failed.
    #[error("{op} {what}: {source}")]
    Stream {
        /// What was being done ("read", "compress", ...).
        op: &'static str,
        /// Which stream (an object key, "tar stream", ...).
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tar entry that would write outside the destination (absolute name, `..`, a path through a
    /// symlink, a hard link that escapes). Nothing is written for it.
    #[error("refusing tar entry {entry:?}: {reason}")]
    HostileTar {
        /// The entry name as found in the archive.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tar entry of a kind pgbak does not extract (device, FIFO, ...).
    #[error("tar entry {entry:?}: unsupported entry type {typeflag:?}")]
    UnsupportedEntry {
        /// The entry name as found in the archive.
        entry: String,
        /// The header's type flag.
        typeflag: char,
    },
    /// The tar stream is malformed (bad checksum, bad numeric field, bad extended header, ...).
    #[error("corrupt tar stream at byte {offset}: {reason}")]
    CorruptTar {
        /// Offset of the offending block in the stream (0 for a header parsed on its own).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The tar stream ended before its end-of-archive blocks.
    #[error("tar stream truncated after {offset} bytes: {reason}")]
    TruncatedTar {
        /// Bytes received before the end.
        offset: u64,
        /// Where the stream stopped.
        reason: &'static str,
    },
    /// A file, link or directory to be created already exists and may not be replaced.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },
    /// A destination directory that must be new or empty is not.
    #[error("destination {} is not empty", path.display())]
    DestinationNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The server answered something pgbak cannot use (an unexpected archive name, a setting it
    /// cannot parse, ...).
    #[error("unexpected answer from the server: {0}")]
    Server(String),
    /// The backup stopped before completion because another part failed or the stream was cut;
    /// nothing was committed.
    #[error("backup aborted: {0}")]
    Aborted(String),
    /// An SSH connection, or a command run over it, failed.
    #[error("SSH to {destination}: {message}")]
    Ssh {
        /// The `user@host` of the connection.
        destination: String,
        /// What failed, with ssh's own words when it said any.
        message: String,
    },
    /// An rsync run failed (after its retries, if any).
    #[error("rsync of {what}: {message}")]
    Rsync {
        /// What was being copied ("PGDATA bucket 3 of 8", "tablespace tbs1", ...).
        what: String,
        /// Exit status and rsync's error lines.
        message: String,
    },
    /// The server-side backup session (`pg_backup_start` / `pg_backup_stop`) failed; the text
    /// already names the server.
    #[error("{0}")]
    Session(String),
    /// A setting of the copy is unusable (an `ssh_command` without a host, ...).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An [`Error::Io`] on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Stream`] on `what`.
    pub(crate) fn stream(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Stream {
            op,
            what: what.into(),
            source,
        }
    }
}
