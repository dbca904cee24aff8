//! Errors of the storage layer.

use std::io;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong while storing or reading an object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is not a safe relative object name.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// No object under this key.
    #[error("object {0:?} not found")]
    NotFound(String),
    /// [`crate::CommitMode::CreateNew`] and the key exists.
    #[error("object {0:?} already exists")]
    AlreadyExists(String),
    /// An I/O error, with the key or path it happened on.
    #[error("{op} {what}: {source}")]
    Io {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            what: what.into(),
            source,
        }
    }
}
