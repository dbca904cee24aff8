//! Where bytes rest. [`StorageBackend`] is the one seam every repository type implements: the
//! local filesystem ([`LocalStorage`]) and, behind the cargo features `s3`, `azure` and `gcs`,
//! Amazon S3 (and S3-compatible servers), Azure Blob Storage and Google Cloud Storage.
//!
//! The promise is the same everywhere: an object is visible under its final key only once it is
//! complete (local: temp file, fsync, rename or link, fsync of the folder; cloud: a completed
//! upload whose checksums the store verified), a create-new upload never replaces an existing
//! object, and a writer dropped before its commit leaves nothing behind under the key.
//!
//! [`open`] turns a repository URL and [`CloudOptions`] into a backend:
//!
//! ```
//! use pgbak_storage::{open, CloudOptions, CommitMode};
//! use std::io::{Read, Write};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let repo = open(dir.path().to_str().unwrap(), &CloudOptions::default()).unwrap();
//! let mut w = repo.put("base/20240101T000000/backup.json").unwrap();
//! w.write_all(b"{}").unwrap();
//! w.commit(CommitMode::CreateNew).unwrap();
//! let listing = repo.list_dir("base/").unwrap();
//! assert_eq!(listing.prefixes, ["base/20240101T000000/"]);
//! let mut s = String::new();
//! repo.get("base/20240101T000000/backup.json").unwrap().read_to_string(&mut s).unwrap();
//! assert_eq!(s, "{}");
//! ```
//!
//! The cloud backends are synchronous to their callers: each owns a small tokio runtime and waits
//! on it, so they can be called from any thread, including one that belongs to another runtime.

mod error;
mod key;
mod location;
mod options;

pub mod check;
pub mod local;
pub mod staging;
pub mod write_behind;

#[cfg(feature = "cloud")]
mod cloud;

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "gcs")]
pub mod gcs;
#[cfg(feature = "s3")]
pub mod s3;

pub use error::{Error, ErrorKind, ObjectRef, Result};
pub use key::validate_key;
pub use local::LocalStorage;
pub use location::Location;
pub use options::{
    AddressingStyle, AzureCredential, ChecksumCalculation, CloudOptions, S3Encryption, Secret,
    MAX_PART_SIZE, MIN_PART_SIZE,
};

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// One level of a listing: the objects directly under a prefix, and the "folders" below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Objects whose key starts with the prefix and has no further '/', sorted by key.
    pub objects: Vec<ObjectMeta>,
    /// The distinct `prefix + name + "/"` under which at least one object lies, sorted.
    pub prefixes: Vec<String>,
}

impl Listing {
    /// Groups a recursive listing of `prefix` into one level.
    pub fn from_recursive(prefix: &str, all: Vec<ObjectMeta>) -> Listing {
        let mut out = Listing::default();
        for m in all {
            let Some(rest) = m.key.strip_prefix(prefix) else {
                continue;
            };
            match rest.find('/') {
                Some(i) => {
                    let p = format!("{prefix}{}", &rest[..=i]);
                    if out.prefixes.last() != Some(&p) {
                        out.prefixes.push(p);
                    }
                }
                None => out.objects.push(m),
            }
        }
        out.objects.sort_by(|a, b| a.key.cmp(&b.key));
        out.prefixes.sort();
        out.prefixes.dedup();
        out
    }
}

/// How a finished upload takes its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Replace whatever is there (metadata files).
    Replace,
    /// Fail with [`Error::AlreadyExists`] if the key exists (archived WAL: never overwrite). The
    /// stores check this atomically (S3 and Azure `If-None-Match: *`, GCS `ifGenerationMatch=0`,
    /// local `link(2)`); see each backend for the rare cases where a check precedes the write.
    CreateNew,
}

/// A streaming upload. Bytes written are not visible under the key until [`ObjectWriter::commit`]
/// returns; dropping the writer without committing discards them (and, on object stores, aborts
/// the multipart upload).
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key.
    fn commit(self: Box<Self>, mode: CommitMode) -> Result<()>;

    /// A watch on the parts this writer sends in the background, for a caller that may wait long
    /// between writes and wants to learn early that the upload is lost. `None` when nothing is
    /// sent in the background (every failure then shows in `write` or `commit`).
    fn failure_watch(&self) -> Option<FailureWatch> {
        None
    }
}

/// Tells, without blocking, whether an upload has already failed in the background: a part sent
/// while its writer waited for more bytes was refused, or the store stopped answering. The
/// writer reports the same failure at its next write and at commit.
#[derive(Clone, Default)]
pub struct FailureWatch(Arc<std::sync::OnceLock<FailureMaker>>);

type FailureMaker = Box<dyn Fn() -> Error + Send + Sync>;

impl FailureWatch {
    /// The failure, if one happened.
    pub fn failure(&self) -> Option<Error> {
        self.0.get().map(|make| make())
    }

    /// Records the first failure; later ones are ignored.
    #[cfg_attr(not(feature = "cloud"), allow(dead_code))]
    pub(crate) fn fail(&self, make: impl Fn() -> Error + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(make));
    }
}

impl std::fmt::Debug for FailureWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureWatch")
            .field("failed", &self.0.get().is_some())
            .finish()
    }
}

/// A place where objects rest.
///
/// Keys are relative '/'-separated names checked by [`validate_key`]. Methods are blocking.
pub trait StorageBackend: Send + Sync {
    /// Starts a streaming upload to `key`.
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Starts a streaming upload whose commit mode is known from the start; the commit must use
    /// the same mode. A store that states a create-new condition when an upload begins (GCS
    /// resumable uploads, for objects larger than one part) makes `CreateNew` atomic this way;
    /// the others behave as [`StorageBackend::put`].
    fn put_with_mode(&self, key: &str, mode: CommitMode) -> Result<Box<dyn ObjectWriter>> {
        let _ = mode;
        self.put(key)
    }

    /// Opens `key` for streaming reads. A missing key is [`Error::NotFound`].
    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>>;

    /// Opens `len` bytes of `key` from `offset` (fewer if the object ends first).
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        let mut r = self.get(key)?;
        std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())
            .map_err(|e| Error::io("read", key, e))?;
        Ok(Box::new(r.take(len)))
    }

    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// One level below `prefix` (usually "" or a folder ending with '/'): the objects directly
    /// under it and the child folders, without listing what lies deeper.
    fn list_dir(&self, prefix: &str) -> Result<Listing> {
        Ok(Listing::from_recursive(prefix, self.list(prefix)?))
    }

    /// The object's metadata, or `None` when it does not exist.
    fn stat(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Removes the object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Removes many objects (in batches where the store has a batch call); missing ones are not
    /// an error.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|k| self.delete(k))
    }

    /// Removes what interrupted uploads left behind that is older than `older_than` (parts of
    /// multipart uploads that were never completed nor aborted) and returns how many uploads
    /// were cleaned. Stores that expire such leftovers by themselves return 0.
    fn cleanup_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }

    /// The directory this store keeps its objects in, when it is the local filesystem: what
    /// only works on files (plain-format trees, rsync) asks for it. `None` for object stores.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }

    /// Removes every object whose key starts with `prefix` (a "folder" when it ends with `/`).
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let keys: Vec<String> = self.list(prefix)?.into_iter().map(|m| m.key).collect();
        self.delete_many(&keys)
    }

    /// The repository, as a URL or path without secrets, for messages and `diagnose`.
    fn describe(&self) -> String {
        "storage".to_string()
    }
}

/// Opens the repository at `url`:
///
/// - a local path (absolute, or `file:///path`);
/// - `s3://bucket/prefix` (feature `s3`);
/// - `azure://container/prefix` or `https://ACCOUNT.blob.core.windows.net/container/prefix`
///   (feature `azure`);
/// - `gs://bucket/prefix` (feature `gcs`).
///
/// Options not given in `opts` come from each ecosystem's standard environment (`AWS_*`,
/// `AZURE_STORAGE_*`, `GOOGLE_APPLICATION_CREDENTIALS`, `STORAGE_EMULATOR_HOST`), as the
/// official tools read them. Opening does not contact the store; [`check::probe`] does.
pub fn open(url: &str, opts: &CloudOptions) -> Result<Arc<dyn StorageBackend>> {
    open_location(&Location::parse(url)?, opts)
}

/// Opens the repository at an already parsed `location` (see [`open`]).
pub fn open_location(location: &Location, opts: &CloudOptions) -> Result<Arc<dyn StorageBackend>> {
    let location = location.clone();
    match location {
        Location::Local(path) => Ok(Arc::new(LocalStorage::new(path))),
        #[cfg(feature = "s3")]
        Location::S3 { .. } => Ok(Arc::new(s3::S3Storage::open(&location, opts)?)),
        #[cfg(feature = "azure")]
        Location::Azure { .. } => Ok(Arc::new(azure::AzureStorage::open(&location, opts)?)),
        #[cfg(feature = "gcs")]
        Location::Gcs { .. } => Ok(Arc::new(gcs::GcsStorage::open(&location, opts)?)),
        #[allow(unreachable_patterns)]
        other => {
            let _ = opts;
            Err(Error::Config {
                repo: other.to_string(),
                detail: format!(
                    "this build of pgbak has no {} support (cargo feature `{}`)",
                    other.service(),
                    other.feature()
                ),
            })
        }
    }
}

/// Creates the bucket or container of `url` if it does not exist yet (as Barman's
/// `barman-cloud-check-wal-archive` does); a local repository's folder is created. Returns
/// whether something was created.
pub fn create_bucket(url: &str, opts: &CloudOptions) -> Result<bool> {
    let location = Location::parse(url)?;
    match &location {
        Location::Local(path) => {
            let existed = path.is_dir();
            staging::create_dir_all_private(path)
                .map_err(|e| Error::io("create", path.display().to_string(), e))?;
            Ok(!existed)
        }
        #[cfg(feature = "s3")]
        Location::S3 { .. } => s3::S3Storage::open(&location, opts)?.create_bucket(),
        #[cfg(feature = "azure")]
        Location::Azure { .. } => azure::AzureStorage::open(&location, opts)?.create_container(),
        #[cfg(feature = "gcs")]
        Location::Gcs { .. } => gcs::GcsStorage::open(&location, opts)?.create_bucket(),
        #[allow(unreachable_patterns)]
        other => {
            let _ = opts;
            Err(Error::Config {
                repo: other.to_string(),
                detail: format!(
                    "this build of pgbak has no {} support (cargo feature `{}`)",
                    other.service(),
                    other.feature()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size: 0,
            modified: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn listing_groups_one_level() {
        let all = ["a/1", "a/b/2", "a/b/3", "a/c/d/4", "a/z"]
            .into_iter()
            .map(meta)
            .collect();
        let l = Listing::from_recursive("a/", all);
        let keys: Vec<_> = l.objects.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a/1", "a/z"]);
        assert_eq!(l.prefixes, ["a/b/", "a/c/"]);
    }

    #[test]
    fn a_build_without_a_backend_names_the_feature() {
        #[cfg(not(feature = "s3"))]
        {
            let e = match open("s3://bucket/p", &CloudOptions::default()) {
                Err(e) => e,
                Ok(_) => panic!("opened"),
            };
            assert!(e.to_string().contains("cargo feature `s3`"), "{e}");
            assert_eq!(e.kind(), ErrorKind::Config);
        }
        #[cfg(not(feature = "gcs"))]
        {
            let e = match open("gs://bucket/p", &CloudOptions::default()) {
                Err(e) => e,
                Ok(_) => panic!("opened"),
            };
            assert!(e.to_string().contains("cargo feature `gcs`"), "{e}");
        }
        #[cfg(not(feature = "azure"))]
        {
            let e = match open("azure://container/p", &CloudOptions::default()) {
                Err(e) => e,
                Ok(_) => panic!("opened"),
            };
            assert!(e.to_string().contains("cargo feature `azure`"), "{e}");
        }
    }
}
