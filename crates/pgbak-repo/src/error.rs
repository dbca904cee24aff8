//! The error type of the repository.

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong reading or writing a repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store itself (not found, unreachable, refused...).
    #[error(transparent)]
    Storage(#[from] pgbak_storage::Error),
    /// A WAL name, timeline history or segment header.
    #[error(transparent)]
    Wal(#[from] pgbak_wal::Error),
    /// A backup that does not exist or cannot be used, or a refusal about one; `problem` says
    /// which, for callers that act on it.
    #[error("server '{server}': {message}")]
    Backup {
        server: String,
        problem: BackupProblem,
        message: String,
    },
    /// A WAL file is not in the archive.
    #[error("WAL file {name} not found in the archive of server '{server}'")]
    WalNotFound { server: String, name: String },
    /// The same WAL name was archived with different content; both copies are kept.
    #[error("WAL file {name} is already archived with different content; the new copy was kept as {kept}")]
    WalConflict { name: String, kept: String },
    /// Stored data or a record failed a check (checksum, size, header, place).
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// Reading a local source file or a stream failed.
    #[error("{op} {what}: {source}")]
    Io {
        op: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A request that cannot be served as asked.
    #[error("{0}")]
    Usage(String),
}

/// What is wrong with a backup a request named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackupProblem {
    /// No such backup (or no backup matches `latest`, `oldest`, ...), or not a backup id.
    NotFound,
    /// Another process is using it: being taken, deleted, restored or kept.
    InUse,
    /// The request is refused by a rule: retention, `keep`, `minimum_redundancy`, a chain.
    Refused,
    /// It exists but cannot serve the request (failed, incomplete, missing a part).
    Unusable,
}

impl Error {
    /// Wraps an I/O error with what was being done and on what (a key, a URL or a path).
    pub fn io(op: &'static str, what: impl Location, source: std::io::Error) -> Self {
        Error::Io {
            op,
            what: what.location(),
            source,
        }
    }

    /// A corrupt-data error.
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// What an error names: a key, a URL or a local path.
pub trait Location {
    /// The text shown.
    fn location(&self) -> String;
}

impl Location for str {
    fn location(&self) -> String {
        self.to_string()
    }
}

impl Location for String {
    fn location(&self) -> String {
        self.clone()
    }
}

impl Location for std::path::Path {
    fn location(&self) -> String {
        self.display().to_string()
    }
}

impl Location for std::path::PathBuf {
    fn location(&self) -> String {
        self.display().to_string()
    }
}

impl<T: Location + ?Sized> Location for &T {
    fn location(&self) -> String {
        (**self).location()
    }
}
