//! Errors of the storage layer. Every error names the repository (its URL without secrets) and,
//! when there is one, the object key, so that a front end can print one clear line; [`Error::kind`]
//! gives the closed set of cases a caller decides on (and maps to an exit code).

use std::fmt;
use std::io;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An object of a repository: where an error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The repository, as [`crate::StorageBackend::describe`] gives it.
    pub repo: String,
    /// The object's key, relative to the repository.
    pub key: String,
}

impl ObjectRef {
    /// `key` in `repo`.
    pub fn new(repo: impl Into<String>, key: impl Into<String>) -> Self {
        ObjectRef {
            repo: repo.into(),
            key: key.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} in repository {}", self.key, self.repo)
    }
}

/// What can go wrong while storing or reading an object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is not a safe relative object name.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// No object under this key.
    #[error("object {0} not found")]
    NotFound(ObjectRef),
    /// [`crate::CommitMode::CreateNew`] and the key exists: nothing was written.
    #[error("object {0} already exists")]
    AlreadyExists(ObjectRef),
    /// The bucket or container of the repository does not exist.
    #[error("repository {repo}: {detail}")]
    NoSuchBucket { repo: String, detail: String },
    /// The store refused the credentials, or they do not allow the operation.
    #[error(
        "repository {repo}: permission denied ({op}{}): {detail}",
        key_suffix(key)
    )]
    PermissionDenied {
        repo: String,
        op: &'static str,
        key: Option<String>,
        detail: String,
    },
    /// The store could not be reached (connection refused, name resolution, timeouts), after
    /// the retries.
    #[error(
        "repository {repo}: cannot reach the store ({op}{}): {detail}",
        key_suffix(key)
    )]
    Unreachable {
        repo: String,
        op: &'static str,
        key: Option<String>,
        detail: String,
    },
    /// The bytes stored or read do not match their checksum.
    #[error("object {object} is corrupt: {detail}")]
    Corrupt { object: ObjectRef, detail: String },
    /// The repository URL or its options are wrong, or the build lacks the backend it needs.
    #[error("repository {repo}: {detail}")]
    Config { repo: String, detail: String },
    /// Any other answer of the store, after the retries.
    #[error("repository {repo}: {op}{} failed: {detail}", key_suffix(key))]
    Remote {
        repo: String,
        op: &'static str,
        key: Option<String>,
        detail: String,
    },
    /// An I/O error of the local backend, with the path it happened on.
    #[error("{op} {what}: {source}")]
    Io {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
}

fn key_suffix(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" {k:?}"),
        None => String::new(),
    }
}

/// The cases of [`Error`] a caller decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key that could escape the repository.
    InvalidKey,
    /// The object does not exist.
    NotFound,
    /// A create-new upload found the key taken.
    AlreadyExists,
    /// The bucket or container does not exist.
    NoSuchBucket,
    /// Wrong or insufficient credentials, or a local permission error.
    PermissionDenied,
    /// The store could not be reached.
    Unreachable,
    /// A checksum mismatch.
    Corrupt,
    /// A wrong URL or option, or a backend missing from the build.
    Config,
    /// Anything else.
    Other,
}

impl Error {
    pub(crate) fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            what: what.into(),
            source,
        }
    }

    /// Which case this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidKey { .. } => ErrorKind::InvalidKey,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::NoSuchBucket { .. } => ErrorKind::NoSuchBucket,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Config { .. } => ErrorKind::Config,
            Error::Remote { .. } => ErrorKind::Other,
            Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Other,
            },
        }
    }

    /// Turns this error into an [`io::Error`] for the `Read`/`Write` methods of readers and
    /// writers; [`Error::from_io`] gets it back.
    pub fn into_io(self) -> io::Error {
        let kind = match self.kind() {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::Corrupt => io::ErrorKind::InvalidData,
            ErrorKind::Unreachable => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }

    /// The storage error inside an [`io::Error`] made by [`Error::into_io`], if it is one.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref().and_then(|e| e.downcast_ref::<Error>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_repository_and_the_key() {
        let e = Error::NotFound(ObjectRef::new("s3://bucket/prefix", "wals/0001"));
        assert_eq!(
            e.to_string(),
            "object \"wals/0001\" in repository s3://bucket/prefix not found"
        );
        let e = Error::PermissionDenied {
            repo: "gs://b".into(),
            op: "put",
            key: Some("k".into()),
            detail: "403 Forbidden".into(),
        };
        assert_eq!(
            e.to_string(),
            "repository gs://b: permission denied (put \"k\"): 403 Forbidden"
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn io_round_trip_keeps_the_error() {
        let io = Error::AlreadyExists(ObjectRef::new("r", "k")).into_io();
        assert_eq!(io.kind(), io::ErrorKind::AlreadyExists);
        assert!(matches!(Error::from_io(&io), Some(Error::AlreadyExists(_))));
    }
}
