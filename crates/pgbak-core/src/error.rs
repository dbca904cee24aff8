//! The error type of pgbak's workflows. Front ends map it to one clear line and an exit code.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong in a pgbak workflow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The command line asked for something impossible or contradictory.
    #[error("{0}")]
    Usage(String),
    /// Another process holds a lock this command needs.
    #[error(transparent)]
    Lock(#[from] crate::locks::LockError),
    /// WAL names, LSNs or the replication protocol.
    #[error(transparent)]
    Wal(#[from] pgbak_wal::Error),
    /// Copying a backup.
    #[error(transparent)]
    Copy(#[from] pgbak_copy::Error),
    /// Storing or reading objects.
    #[error(transparent)]
    Storage(#[from] pgbak_storage::Error),
    /// A SQL connection or query failed.
    #[error("PostgreSQL server '{server}': {message}")]
    Sql { server: String, message: String },
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The requested backup does not exist, is in use, cannot serve the request, or the request
    /// is refused by a rule; `problem` says which.
    #[error("server '{server}': {message}")]
    Backup {
        server: String,
        problem: crate::BackupProblem,
        message: String,
    },
    /// A WAL file is not in the archive.
    #[error("WAL file {name} not found in the archive of server '{server}'")]
    WalNotFound { server: String, name: String },
    /// The same WAL name was archived with different content; both copies are kept.
    #[error("WAL file {name} is already archived with different content; the new copy was kept as {kept}")]
    WalConflict { name: String, kept: String },
    /// Stored data failed a check (checksum, size, header).
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// A pre `*_retry_script` hook exited with ABORT_STOP (63): the operation was stopped before
    /// it changed anything (a backup is left FAILED, as in Barman).
    #[error("server '{server}': {hook} '{script}' asked to stop the operation (exit code 63, ABORT_STOP)")]
    HookAborted {
        server: String,
        hook: String,
        script: String,
    },
    /// The caller asked for the operation to stop (a library caller's cancellation); what it
    /// had written is cleaned up as for any failure.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A failure of a known kind that is not about a backup, said plainly (a replication slot
    /// that does not exist or is in use, another cluster behind the connection...). Its exit
    /// code is 1 whatever the kind.
    #[error("{message}")]
    Kind { kind: ErrorKind, message: String },
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// What kind of failure an [`Error`] is, for callers that act on it (the C ABI's status codes
/// and the Python exceptions are these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is missing or invalid.
    Configuration,
    /// The request is impossible or contradictory as asked (bad option, bad name).
    Usage,
    /// No such backup, WAL file or server.
    NotFound,
    /// Another pgbak process holds what this one needs (a lock); try again later.
    Busy,
    /// The backup is in use: being taken, deleted, restored or kept.
    InUse,
    /// Refused by a rule: retention, `keep`, `minimum_redundancy`, a hook's ABORT_STOP, the
    /// incremental chain.
    Refused,
    /// Stored data failed a check, or the same WAL name came with different content.
    Corrupt,
    /// PostgreSQL could not be reached or a query or the replication protocol failed.
    Connection,
    /// The object store could not be reached.
    StorageUnreachable,
    /// The object store refused access, or its bucket or container does not exist.
    StorageDenied,
    /// A local file operation failed.
    Io,
    /// The caller cancelled the operation.
    Cancelled,
    /// Something did not happen in the time allowed (a WAL segment not archived, a server that
    /// kept failing).
    Timeout,
    /// Not enough free space where the data was to go.
    NoSpace,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A stable lower-case name (`not_found`, `busy`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "configuration",
            ErrorKind::Usage => "usage",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Busy => "busy",
            ErrorKind::InUse => "in_use",
            ErrorKind::Refused => "refused",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Connection => "connection",
            ErrorKind::StorageUnreachable => "storage_unreachable",
            ErrorKind::StorageDenied => "storage_denied",
            ErrorKind::Io => "io",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Other => "other",
        }
    }
}

impl From<pgbak_repo::Error> for Error {
    fn from(e: pgbak_repo::Error) -> Self {
        use pgbak_repo::Error as R;
        match e {
            R::Storage(e) => Error::Storage(e),
            R::Wal(e) => Error::Wal(e),
            R::Backup {
                server,
                problem,
                message,
            } => Error::Backup {
                server,
                problem,
                message,
            },
            R::WalNotFound { server, name } => Error::WalNotFound { server, name },
            R::WalConflict { name, kept } => Error::WalConflict { name, kept },
            R::Corrupt { what, detail } => Error::Corrupt { what, detail },
            R::Io { op, what, source } => Error::Io {
                op,
                path: what.into(),
                source,
            },
            R::Usage(m) => Error::Usage(m),
        }
    }
}

impl Error {
    /// A failure of kind `kind` with `message` (exit code 1).
    pub fn kind_of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Kind {
            kind,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what was being done and where.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::BackupProblem as P;
        use pgbak_storage::ErrorKind as K;
        match self {
            Error::Config(_) => ErrorKind::Configuration,
            Error::Usage(_) => ErrorKind::Usage,
            Error::Lock(_) => ErrorKind::Busy,
            Error::Sql { .. } => ErrorKind::Connection,
            Error::Backup { problem, .. } => match problem {
                P::NotFound => ErrorKind::NotFound,
                P::InUse => ErrorKind::InUse,
                P::Refused => ErrorKind::Refused,
                _ => ErrorKind::Other,
            },
            Error::WalNotFound { .. } => ErrorKind::NotFound,
            Error::WalConflict { .. } | Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::HookAborted { .. } => ErrorKind::Refused,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Kind { kind, .. } => *kind,
            Error::Copy(pgbak_copy::Error::HostileTar { .. }) => ErrorKind::Corrupt,
            Error::Wal(e) | Error::Copy(pgbak_copy::Error::Wal(e)) => {
                use pgbak_wal::Error as W;
                match e {
                    W::Io { .. }
                    | W::Server { .. }
                    | W::Protocol { .. }
                    | W::Authentication { .. }
                    | W::PasswordRequired { .. }
                    | W::UnsupportedAuthentication { .. }
                    | W::Tls { .. }
                    | W::TlsRequired { .. }
                    | W::UnsupportedServerVersion { .. } => ErrorKind::Connection,
                    W::InvalidConninfo { .. } | W::InvalidOption { .. } => ErrorKind::Configuration,
                    _ => ErrorKind::Corrupt,
                }
            }
            Error::Io { .. } => ErrorKind::Io,
            _ => match self.storage_cause() {
                Some(pgbak_storage::Error::Io { .. }) => ErrorKind::Io,
                Some(e) => match e.kind() {
                    K::NotFound => ErrorKind::NotFound,
                    K::Corrupt => ErrorKind::Corrupt,
                    K::Unreachable => ErrorKind::StorageUnreachable,
                    K::PermissionDenied | K::NoSuchBucket => ErrorKind::StorageDenied,
                    K::Config | K::InvalidKey => ErrorKind::Configuration,
                    _ => ErrorKind::Other,
                },
                None => ErrorKind::Other,
            },
        }
    }

    /// The process exit code for this error: 2 for usage and configuration errors (a bad
    /// repository URL or option included), 3 when an object store cannot be reached, 4 when it
    /// refuses access or its bucket or container does not exist, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        use pgbak_storage::ErrorKind as K;
        if matches!(self, Error::Config(_) | Error::Usage(_)) {
            return 2;
        }
        match self.storage_cause() {
            // Local I/O errors are ordinary failures; these codes are about remote stores.
            None | Some(pgbak_storage::Error::Io { .. }) => 1,
            Some(e) => match e.kind() {
                K::Config | K::InvalidKey => 2,
                K::Unreachable => 3,
                K::PermissionDenied | K::NoSuchBucket => 4,
                _ => 1,
            },
        }
    }

    /// The storage error this one comes from: itself, or the cause of a failed write or read
    /// (a storage error travels through `std::io` inside the stream pipeline).
    fn storage_cause(&self) -> Option<&pgbak_storage::Error> {
        if let Error::Storage(e) = self {
            return Some(e);
        }
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            if let Some(s) = e.downcast_ref::<pgbak_storage::Error>() {
                return Some(s);
            }
            if let Some(s) = e
                .downcast_ref::<std::io::Error>()
                .and_then(pgbak_storage::Error::from_io)
            {
                return Some(s);
            }
            cause = e.source();
        }
        None
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_typed_message_keeps_its_kind_its_text_and_exit_code_1() {
        let e = Error::kind_of(
            ErrorKind::NotFound,
            "server 'main': replication slot 'x' does not exist",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "server 'main': replication slot 'x' does not exist"
        );
        assert_eq!(Error::Usage("u".into()).exit_code(), 2);
        assert_eq!(Error::Usage("u".into()).kind(), ErrorKind::Usage);
        assert_eq!(Error::Other("o".into()).kind(), ErrorKind::Other);
    }

    use super::*;

    fn missing_bucket() -> pgbak_storage::Error {
        pgbak_storage::Error::NoSuchBucket {
            repo: "s3://b/p".into(),
            detail: "NoSuchBucket".into(),
        }
    }

    #[test]
    fn a_store_error_gives_its_exit_code_through_the_stream_that_carried_it() {
        assert_eq!(Error::Storage(missing_bucket()).exit_code(), 4);
        let through_io = Error::io("write", "s3://b/p/k", missing_bucket().into_io());
        assert_eq!(through_io.exit_code(), 4, "{through_io}");
        let unreachable = pgbak_storage::Error::Unreachable {
            repo: "gs://b".into(),
            op: "put",
            key: None,
            detail: "connection refused".into(),
        };
        let through_copy = Error::Copy(pgbak_copy::Error::Stream {
            op: "write",
            what: "k".into(),
            source: unreachable.into_io(),
        });
        assert_eq!(through_copy.exit_code(), 3, "{through_copy}");
        let local = Error::io(
            "write",
            "/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(local.exit_code(), 1);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
    }
}
