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

    /// Where the store is, for messages (a path or a URL; never a secret).
    fn describe(&self) -> String;

    /// The directory this store keeps its objects in, when it is the local filesystem: what
    /// only works on files (plain-format trees, rsync) asks for it. `None` for object stores.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }

    /// Removes several objects (missing ones are not an error).
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            self.delete(k)?;
        }
        Ok(())
    }

    /// One level of the key space below `prefix` (empty, or ending with `/`): the objects
    /// directly under it and the names of its child "folders" (common prefixes, without the
    /// trailing `/`), both sorted.
    fn list_dir(&self, prefix: &str) -> Result<Listing> {
        let mut out = Listing::default();
        for m in self.list(prefix)? {
            let rest = &m.key[prefix.len()..];
            match rest.split_once('/') {
                Some((dir, _)) => {
                    if out.prefixes.last().map(String::as_str) != Some(dir) {
                        out.prefixes.push(dir.to_string());
                    }
                }
                None => out.objects.push(m),
            }
        }
        out.prefixes.dedup();
        Ok(out)
    }

    /// Removes every object whose key starts with `prefix` (a "folder" when it ends with `/`).
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let keys: Vec<String> = self.list(prefix)?.into_iter().map(|m| m.key).collect();
        self.delete_many(&keys)
    }
}

/// One level of a listing: see [`StorageBackend::list_dir`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Objects directly below the prefix.
    pub objects: Vec<ObjectMeta>,
    /// Names of the child folders.
    pub prefixes: Vec<String>,
}
