//! The local filesystem backend. An object is written to a temporary name in its final folder,
//! fsynced, then renamed (or hard-linked, when it must not replace anything) into place, and the
//! folder is fsynced, so a crash never leaves a partial object under a final name.

use crate::{
    validate_key, CommitMode, Error, Listing, ObjectMeta, ObjectRef, ObjectWriter, Result,
    StorageBackend,
};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Objects stored as files below a root directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A backend rooted at `root` (created on first write if missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    /// The directory objects live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of `key`.
    pub fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn object(&self, key: &str) -> ObjectRef {
        ObjectRef::new(self.root.display().to_string(), key)
    }

    fn open_file(&self, key: &str) -> Result<File> {
        let path = self.path_of(key)?;
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(self.object(key))),
            Err(e) => Err(Error::io("open", path.display().to_string(), e)),
        }
    }

    /// The folder of a listing prefix and the start of the names in it it selects.
    fn split_prefix<'a>(&self, prefix: &'a str) -> Result<(PathBuf, &'a str, &'a str)> {
        let (dir_part, name_part) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        if dir_part.is_empty() {
            Ok((self.root.clone(), dir_part, name_part))
        } else {
            validate_key(dir_part)?;
            Ok((self.root.join(dir_part), dir_part, name_part))
        }
    }
}

/// Whether a folder holds at least one object, at any depth (object stores have no empty
/// folders, so a listing does not show them here either).
fn holds_objects(dir: &Path) -> io::Result<bool> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

use crate::staging::{fsync_dir, DurableFile};

struct LocalWriter {
    object: ObjectRef,
    inner: DurableFile,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(self: Box<Self>, mode: CommitMode) -> Result<()> {
        let LocalWriter { object, inner } = *self;
        let path = inner.dest().display().to_string();
        inner.commit(mode).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::AlreadyExists(object)
            } else {
                Error::io("commit", path, e)
            }
        })
    }
}

impl StorageBackend for LocalStorage {
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let path = self.path_of(key)?;
        let inner = DurableFile::create(&path)
            .map_err(|e| Error::io("create", path.display().to_string(), e))?;
        Ok(Box::new(LocalWriter {
            object: self.object(key),
            inner,
        }))
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_file(key)?))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        let mut f = self.open_file(key)?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek", self.root.join(key).display().to_string(), e))?;
        Ok(Box::new(f.take(len)))
    }

    fn list_dir(&self, prefix: &str) -> Result<Listing> {
        let (dir, rel, name_part) = self.split_prefix(prefix)?;
        let mut out = Listing::default();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", dir.display().to_string(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.starts_with(name_part) {
                continue; // temporary files of uploads in progress, or not selected
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path().display().to_string(), e))?;
            if meta.is_dir() {
                let held = holds_objects(&entry.path())
                    .map_err(|e| Error::io("list", entry.path().display().to_string(), e))?;
                if held {
                    out.prefixes.push(format!("{key}/"));
                }
            } else if meta.is_file() {
                out.objects.push(ObjectMeta {
                    key,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                });
            }
        }
        out.objects.sort_by(|a, b| a.key.cmp(&b.key));
        out.prefixes.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the deepest folder the prefix names, not the whole root.
        let (start, dir_part, _) = self.split_prefix(prefix)?;
        let mut out = Vec::new();
        let mut stack = vec![(start, dir_part.to_string())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", dir.display().to_string(), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue; // temporary files of uploads in progress
                }
                let key = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = entry
                    .metadata()
                    .map_err(|e| Error::io("stat", entry.path().display().to_string(), e))?;
                if meta.is_dir() {
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        stack.push((entry.path(), key));
                    }
                } else if key.starts_with(prefix) {
                    out.push(ObjectMeta {
                        key,
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        // One fsync per folder, not per file: removing thousands of WAL files stays quick.
        let mut dirs = std::collections::BTreeSet::new();
        for key in keys {
            let path = self.path_of(key)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(parent) = path.parent() {
                        dirs.insert(parent.to_path_buf());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", key.clone(), e)),
            }
        }
        for d in &dirs {
            fsync_dir(d).map_err(|e| Error::io("fsync", d.display().to_string(), e))?;
        }
        Ok(())
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        // A folder goes in one pass (a plain backup holds thousands of files); links inside it
        // are removed, never followed.
        if let Some(folder) = prefix.strip_suffix('/') {
            let path = self.path_of(folder)?;
            return match fs::remove_dir_all(&path) {
                Ok(()) => {
                    if let Some(parent) = path.parent() {
                        fsync_dir(parent).map_err(|e| Error::io("fsync", folder, e))?;
                    }
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("delete", folder, e)),
            };
        }
        let keys: Vec<String> = self.list(prefix)?.into_iter().map(|m| m.key).collect();
        self.delete_many(&keys)
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path_of(key)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: m.len(),
                modified: m.modified().unwrap_or(std::time::UNIX_EPOCH),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path.display().to_string(), e)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    fsync_dir(parent)
                        .map_err(|e| Error::io("fsync", parent.display().to_string(), e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", path.display().to_string(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("repo"));
        (dir, s)
    }

    fn put(s: &LocalStorage, key: &str, data: &[u8], mode: CommitMode) -> Result<()> {
        let mut w = s.put(key)?;
        w.write_all(data).unwrap();
        w.commit(mode)
    }

    #[test]
    fn round_trip_and_list() {
        let (_d, s) = store();
        put(&s, "a/b/c", b"hello", CommitMode::Replace).unwrap();
        put(&s, "a/d", b"xy", CommitMode::Replace).unwrap();
        put(&s, "z", b"", CommitMode::Replace).unwrap();
        let mut buf = Vec::new();
        s.get("a/b/c").unwrap().read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"hello");
        let keys: Vec<_> = s.list("a/").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, ["a/b/c", "a/d"]);
        let keys: Vec<_> = s.list("").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, ["a/b/c", "a/d", "z"]);
        assert_eq!(s.stat("a/d").unwrap().unwrap().size, 2);
        assert!(s.stat("nope").unwrap().is_none());
    }

    #[test]
    fn create_new_never_overwrites() {
        let (_d, s) = store();
        put(&s, "w/seg", b"one", CommitMode::CreateNew).unwrap();
        let err = put(&s, "w/seg", b"two", CommitMode::CreateNew).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(_)));
        let mut buf = Vec::new();
        s.get("w/seg").unwrap().read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"one");
        // no temporary file left behind
        let names: Vec<_> = fs::read_dir(s.root().join("w"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn uncommitted_upload_is_invisible_and_cleaned() {
        let (_d, s) = store();
        {
            let mut w = s.put("x/y").unwrap();
            w.write_all(b"partial").unwrap();
        }
        assert!(s.stat("x/y").unwrap().is_none());
        assert_eq!(fs::read_dir(s.root().join("x")).unwrap().count(), 0);
    }

    #[test]
    fn bad_keys_are_refused() {
        let (_d, s) = store();
        assert!(matches!(s.put("../escape"), Err(Error::InvalidKey { .. })));
        assert!(matches!(
            s.get("/etc/passwd"),
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(s.get("missing"), Err(Error::NotFound(_))));
        s.delete("missing").unwrap();
    }

    #[test]
    fn list_dir_shows_one_level_and_hides_empty_folders() {
        let (_d, s) = store();
        for k in [
            "base/1/backup.json",
            "base/1/data/x",
            "base/2/backup.json",
            "base/top",
        ] {
            put(&s, k, b"x", CommitMode::Replace).unwrap();
        }
        fs::create_dir_all(s.root().join("base/empty/deeper")).unwrap();
        fs::write(s.root().join("base/.pgbak-tmp.1.2.top"), b"partial").unwrap();
        let l = s.list_dir("base/").unwrap();
        assert_eq!(l.prefixes, ["base/1/", "base/2/"]);
        let keys: Vec<_> = l.objects.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["base/top"]);
        assert_eq!(s.list_dir("").unwrap().prefixes, ["base/"]);
        assert_eq!(s.list_dir("base/1").unwrap().prefixes, ["base/1/"]);
        assert_eq!(s.list_dir("nothing/").unwrap(), Listing::default());
    }

    #[test]
    fn get_range_reads_a_slice() {
        let (_d, s) = store();
        put(&s, "k", b"0123456789", CommitMode::Replace).unwrap();
        let mut buf = String::new();
        s.get_range("k", 3, 4)
            .unwrap()
            .read_to_string(&mut buf)
            .unwrap();
        assert_eq!(buf, "3456");
        buf.clear();
        s.get_range("k", 8, 100)
            .unwrap()
            .read_to_string(&mut buf)
            .unwrap();
        assert_eq!(buf, "89");
    }

    #[test]
    fn errors_name_the_repository() {
        let (_d, s) = store();
        let e = match s.get("missing/key") {
            Err(e) => e,
            Ok(_) => panic!("found"),
        };
        assert!(e.to_string().contains(&s.describe()), "{e}");
        assert!(e.to_string().contains("missing/key"), "{e}");
    }
}
