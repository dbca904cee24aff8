//! Where bytes rest. [`StorageBackend`] is the one seam every repository type (local disk, S3,
//! Azure, GCS) implements: streaming put and get, list by prefix, stat and delete, with the promise
//! that an object is visible under its final name only once it is complete and durable.

mod error;
mod key;
pub mod local;
pub mod staging;

pub use error::{Error, Result};
pub use key::validate_key;
pub use local::LocalStorage;

use std::io::{Read, Write};
use std::time::SystemTime;

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key, '/'-separated, relative to the backend's root.
    pub key: String,
    /// Size in bytes as stored.
    pub size: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// How a finished upload takes its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Replace whatever is there (metadata files).
    Replace,
    /// Fail with [`Error::AlreadyExists`] if the key exists (archived WAL: never overwrite).
    CreateNew,
}

/// A streaming upload. Bytes written are not visible under the key until [`ObjectWriter::commit`]
/// returns; dropping the writer without committing discards them.
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key.
    fn commit(self: Box<Self>, mode: CommitMode) -> Result<()>;
}

/// A place where objects rest.
pub trait StorageBackend: Send + Sync {
    /// Starts a streaming upload to `key`.
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    /// Opens `key` for streaming reads. A missing key is [`Error::NotFound`].
    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// The object's metadata, or `None` when it does not exist.
    fn stat(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// Removes the object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
}
