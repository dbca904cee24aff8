//! The backups of one server in their store: `<backup_id>/backup.json` metadata written
//! atomically, the backup's data below `<backup_id>/` (a plain tree under `data/` and
//! `<tablespace oid>/`, or tar streams under `data/`), and two markers: `keep` (the keep target)
//! and `delete_this` (a delete in progress, holding the record it deletes).
//!
//! Only `DONE` backups are ever used by recovery, `latest` and retention. Every record read is
//! checked against the place it was read from.

use super::record::{
    check_tablespace, is_backup_id, parse_info, BackupInfo, BackupStatus, KeepTarget,
};
use crate::{Error, Result};
use pgbak_storage::{CommitMode, StorageBackend};
use std::io::{Read, Write};
use std::sync::Arc;

/// Name of the metadata object inside a backup's folder.
pub const INFO_FILE: &str = "backup.json";

/// Name of the marker a delete writes into a backup's folder before removing anything (it holds
/// the backup's metadata, so an interrupted delete can be finished). A backup whose folder has
/// it is never listed or used.
pub const DELETE_MARKER: &str = "delete_this";

/// Name of the keep mark inside a backup's folder.
pub const KEEP_FILE: &str = "keep";

/// Largest record read (a backup.json lists the files of the backup: a few MB at most).
const MAX_RECORD: u64 = 64 << 20;

/// What a delete may leave in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Folders holding the delete marker: deletes to finish.
    pub marked: Vec<String>,
    /// Folders with nothing in them: a delete that stopped between its marker and its folder.
    pub empty: Vec<String>,
}

/// The backups of one server.
#[derive(Clone)]
pub struct Catalogue {
    server: String,
    storage: Arc<dyn StorageBackend>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// The catalogue of `server` whose backups live in `storage`.
    pub fn new(server: &str, storage: Arc<dyn StorageBackend>) -> Self {
        Catalogue {
            server: server.to_string(),
            storage,
        }
    }

    /// The store holding the backups.
    pub fn storage(&self) -> &Arc<dyn StorageBackend> {
        &self.storage
    }

    /// The key prefix of backup `id`'s folder (`<id>/`).
    pub fn folder(id: &str) -> String {
        format!("{id}/")
    }

    fn key(id: &str, name: &str) -> String {
        format!("{id}/{name}")
    }

    fn not_an_id(&self, id: &str) -> Error {
        Error::Backup {
            server: self.server.clone(),
            problem: crate::BackupProblem::NotFound,
            message: format!("'{id}' is not a backup id (expected YYYYMMDDTHHMMSS)"),
        }
    }

    fn read_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = match self.storage.get(key) {
            Ok(r) => r,
            Err(pgbak_storage::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut bytes = Vec::new();
        r.take(MAX_RECORD)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", key, e))?;
        Ok(Some(bytes))
    }

    fn write_object(&self, key: &str, bytes: &[u8], mode: CommitMode) -> Result<()> {
        let mut w = self.storage.put(key)?;
        w.write_all(bytes).map_err(|e| Error::io("write", key, e))?;
        w.commit(mode)?;
        Ok(())
    }

    fn encode(info: &BackupInfo) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec_pretty(info)
            .map_err(|e| Error::Usage(format!("cannot encode backup metadata: {e}")))?;
        text.push(b'\n');
        Ok(text)
    }

    /// Writes the metadata atomically and durably.
    pub fn write(&self, info: &BackupInfo) -> Result<()> {
        if !is_backup_id(&info.backup_id) {
            return Err(self.not_an_id(&info.backup_id));
        }
        let text = Self::encode(info)?;
        self.write_object(
            &Self::key(&info.backup_id, INFO_FILE),
            &text,
            CommitMode::Replace,
        )
    }

    /// Parses a backup record (`backup.json`, or the copy a delete marker holds) read from the
    /// folder of backup `id`, and checks it against that place: a record is never trusted to say
    /// which backup it is, nor where its tablespaces go, beyond what the place allows.
    fn parse_record(&self, text: &[u8], key: &str, id: &str, what: &str) -> Result<BackupInfo> {
        let mut info = parse_record(text, key, id, what)?;
        // The folder says which server the record belongs to (a server section may have been
        // renamed since the backup was taken).
        info.server_name.clone_from(&self.server);
        Ok(info)
    }
    /// Whether a delete of backup `id` was begun (its folder holds the marker).
    pub fn is_being_deleted(&self, id: &str) -> Result<bool> {
        if !is_backup_id(id) {
            return Ok(false);
        }
        Ok(self.storage.stat(&Self::key(id, DELETE_MARKER))?.is_some())
    }

    /// Reads one backup's metadata.
    pub fn read(&self, id: &str) -> Result<BackupInfo> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        if self.is_being_deleted(id)? {
            return Err(Error::Backup {
                server: self.server.clone(),
                problem: crate::BackupProblem::InUse,
                message: format!("backup {id} is being deleted"),
            });
        }
        let key = Self::key(id, INFO_FILE);
        match self.read_object(&key)? {
            Some(text) => self.parse_record(&text, &key, id, "backup metadata"),
            None => Err(Error::Backup {
                server: self.server.clone(),
                problem: crate::BackupProblem::NotFound,
                message: format!("backup {id} does not exist"),
            }),
        }
    }

    /// Ids of the backup folders in the store (whatever state they are in), sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self
            .storage
            .list_dir("")?
            .prefixes
            .into_iter()
            .filter_map(|p| p.strip_suffix('/').map(str::to_string))
            .filter(|p| is_backup_id(p))
            .collect())
    }

    /// Whether anything is stored in backup `id`'s folder.
    pub fn exists(&self, id: &str) -> Result<bool> {
        Ok(is_backup_id(id) && self.ids()?.iter().any(|i| i == id))
    }

    /// Every backup, oldest first. Folders without readable metadata are reported as errors in
    /// the second list rather than silently skipped.
    pub fn list(&self) -> Result<(Vec<BackupInfo>, Vec<String>)> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for id in self.ids()? {
            match self.read(&id) {
                Ok(i) => out.push(i),
                Err(e) => problems.push(format!("{id}: {e}")),
            }
        }
        Ok((out, problems))
    }

    /// Resolves `latest`/`last`, `oldest`/`first` or an id to a `DONE` backup.
    pub fn resolve(&self, id: &str) -> Result<BackupInfo> {
        let found = match id {
            "latest" | "last" | "oldest" | "first" => {
                let (all, _) = self.list()?;
                let mut done = all.into_iter().filter(|b| b.status == BackupStatus::Done);
                if matches!(id, "latest" | "last") {
                    done.next_back()
                } else {
                    done.next()
                }
            }
            _ => {
                let info = self.read(id)?;
                if info.status != BackupStatus::Done {
                    return Err(Error::Backup {
                        server: self.server.clone(),
                        problem: crate::BackupProblem::Unusable,
                        message: format!(
                            "backup {id} is {} and cannot be used",
                            info.status.as_str()
                        ),
                    });
                }
                Some(info)
            }
        };
        found.ok_or_else(|| Error::Backup {
            server: self.server.clone(),
            problem: crate::BackupProblem::NotFound,
            message: "no usable (DONE) backup available".into(),
        })
    }

    /// Removes everything backup `id`'s folder holds but `keep`: what a failed backup wrote so
    /// far (keeping its metadata), or a delete's steps.
    fn remove_all_but(&self, id: &str, keep: &[&str]) -> Result<()> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        let folder = Self::folder(id);
        let listing = self.storage.list_dir(&folder)?;
        for sub in &listing.prefixes {
            self.storage.delete_prefix(sub)?;
        }
        let objects: Vec<String> = listing
            .objects
            .into_iter()
            .map(|m| m.key)
            .filter(|k| !keep.iter().any(|n| *k == Self::key(id, n)))
            .collect();
        self.storage.delete_many(&objects)?;
        Ok(())
    }

    /// Removes what a failed backup wrote, keeping only its metadata (and so its FAILED record).
    pub fn discard_data(&self, id: &str) -> Result<()> {
        self.remove_all_but(id, &[INFO_FILE])
    }

    // ---- keep marks ----

    /// The keep target of backup `id`, or `None` when it is not kept. A mark that cannot be
    /// understood counts as `full`, the safe reading (Barman does the same).
    pub fn keep_target(&self, id: &str) -> Result<Option<KeepTarget>> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        let key = Self::key(id, KEEP_FILE);
        Ok(self.read_object(&key)?.map(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            text.parse().unwrap_or_else(|_| {
                tracing::warn!(
                    "{key}: unknown keep target {:?}; keeping the backup in full",
                    text.trim()
                );
                KeepTarget::Full
            })
        }))
    }

    /// Marks backup `id` to be kept with `target`.
    pub fn set_keep(&self, id: &str, target: KeepTarget) -> Result<()> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        self.write_object(
            &Self::key(id, KEEP_FILE),
            format!("{target}\n").as_bytes(),
            CommitMode::Replace,
        )
    }

    /// Removes the keep mark of backup `id` (nothing to do when it has none).
    pub fn release_keep(&self, id: &str) -> Result<()> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        self.storage.delete(&Self::key(id, KEEP_FILE))?;
        Ok(())
    }

    // ---- deletes ----

    /// Writes the delete marker of `info`'s backup: from now on the backup is not listed, and
    /// the marker says what an interrupted delete must finish.
    pub fn write_delete_marker(&self, info: &BackupInfo) -> Result<()> {
        if !is_backup_id(&info.backup_id) {
            return Err(self.not_an_id(&info.backup_id));
        }
        let text = Self::encode(info)?;
        self.write_object(
            &Self::key(&info.backup_id, DELETE_MARKER),
            &text,
            CommitMode::Replace,
        )
    }

    /// The record a delete marker holds, checked against the folder it lies in.
    pub fn read_delete_marker(&self, id: &str) -> Result<BackupInfo> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        let key = Self::key(id, DELETE_MARKER);
        let text = self.read_object(&key)?.ok_or_else(|| Error::Backup {
            server: self.server.clone(),
            problem: crate::BackupProblem::Unusable,
            message: format!("backup {id} has no delete marker"),
        })?;
        self.parse_record(&text, &key, id, "delete marker")
    }

    /// Delete, step 1 after the marker: the metadata goes, so no reader takes the backup for
    /// whole any more.
    pub fn remove_metadata(&self, id: &str) -> Result<()> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        self.storage.delete(&Self::key(id, INFO_FILE))?;
        Ok(())
    }

    /// Delete, step 2: everything but the marker.
    pub fn remove_data(&self, id: &str) -> Result<()> {
        self.remove_all_but(id, &[DELETE_MARKER])
    }

    /// Delete, last step: the marker, and with it the folder.
    pub fn remove_folder(&self, id: &str) -> Result<()> {
        if !is_backup_id(id) {
            return Err(self.not_an_id(id));
        }
        self.storage.delete_prefix(&Self::folder(id))?;
        Ok(())
    }

    /// Folders a delete left behind: ones with the marker, and empty ones.
    pub fn leftovers(&self) -> Result<Leftovers> {
        let mut out = Leftovers::default();
        for id in self.ids()? {
            let listing = self.storage.list_dir(&Self::folder(&id))?;
            if listing
                .objects
                .iter()
                .any(|m| m.key == Self::key(&id, DELETE_MARKER))
            {
                out.marked.push(id);
            }
        }
        // Listings show only folders that hold objects (object stores have no others); on the
        // filesystem an empty backup folder can be left, and is found by looking at the folder.
        if let Some(root) = self.storage.local_root() {
            let entries = match std::fs::read_dir(root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(Error::io("list", root.display().to_string(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", root.display().to_string(), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir
                    && is_backup_id(&name)
                    && self.storage.list(&Self::folder(&name))?.is_empty()
                {
                    out.empty.push(name);
                }
            }
            out.empty.sort();
        }
        Ok(out)
    }
}

/// Parses a backup record read from `key` in the folder of backup `id`, and checks it against
/// that place: it must name that backup, and its tablespaces must have usable locations.
pub fn parse_record(text: &[u8], key: &str, id: &str, what: &str) -> Result<BackupInfo> {
    let what = format!("{what} {key}");
    let info = parse_info(text, &what)?;
    if info.backup_id != id {
        return Err(Error::corrupt(
            what,
            format!(
                "it names backup {:?} but lies in the folder of backup {id}",
                info.backup_id
            ),
        ));
    }
    for t in &info.tablespaces {
        check_tablespace(t).map_err(|d| Error::corrupt(what.clone(), d))?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backups::record::TablespaceRecord;
    use chrono::{TimeZone, Utc};
    use pgbak_storage::LocalStorage;

    fn info(id: &str, status: BackupStatus) -> BackupInfo {
        let mut b = BackupInfo::new(
            "main",
            id,
            "postgres",
            "tar",
            "zstd",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        );
        b.status = status;
        b
    }

    fn catalogue() -> (tempfile::TempDir, Catalogue) {
        let d = tempfile::tempdir().unwrap();
        let s: Arc<dyn StorageBackend> = Arc::new(LocalStorage::new(d.path().join("base")));
        (d, Catalogue::new("main", s))
    }

    fn put(c: &Catalogue, key: &str, bytes: &[u8]) {
        c.write_object(key, bytes, CommitMode::Replace).unwrap();
    }

    #[test]
    fn write_read_list_resolve() {
        let (_d, cat) = catalogue();
        let a = info("20240101T000000", BackupStatus::Done);
        let b = info("20240102T000000", BackupStatus::Failed);
        let c = info("20240103T000000", BackupStatus::Done);
        for i in [&a, &b, &c] {
            cat.write(i).unwrap();
        }
        put(&cat, "20240103T000000/data/base.tar.zst", b"x");
        assert_eq!(cat.read("20240102T000000").unwrap(), b);
        let (all, problems) = cat.list().unwrap();
        assert_eq!(all.len(), 3);
        assert!(problems.is_empty());
        assert_eq!(cat.resolve("latest").unwrap().backup_id, "20240103T000000");
        assert_eq!(cat.resolve("first").unwrap().backup_id, "20240101T000000");
        assert!(
            cat.resolve("20240102T000000").is_err(),
            "FAILED is not usable"
        );
        assert!(cat.resolve("20991231T000000").is_err());
        assert!(cat.resolve("nonsense").is_err());
        assert!(cat.exists("20240103T000000").unwrap());
    }

    #[test]
    fn records_are_checked_against_their_place() {
        let (_d, cat) = catalogue();
        let mut a = info("20240101T000000", BackupStatus::Done);
        cat.write(&a).unwrap();
        let other = info("20240102T000000", BackupStatus::Done);
        // A record copied into another backup's folder names the wrong backup.
        put(
            &cat,
            "20240102T000000/backup.json",
            &Catalogue::encode(&a).unwrap(),
        );
        let e = cat.read("20240102T000000").unwrap_err().to_string();
        assert!(e.contains("lies in the folder of backup"), "{e}");
        // A marker that names another backup, or a path.
        put(
            &cat,
            "20240101T000000/delete_this",
            &Catalogue::encode(&other).unwrap(),
        );
        assert!(cat.read_delete_marker("20240101T000000").is_err());
        a.tablespaces.push(TablespaceRecord {
            name: "ts".into(),
            oid: 16400,
            location: "../../etc".into(),
        });
        cat.write(&a).unwrap();
        assert!(cat.read("20240101T000000").is_err());
        a.backup_id = "../../x".into();
        assert!(cat.write(&a).is_err());
        assert!(cat.read("../../x").is_err());
    }

    #[test]
    fn keep_marks_and_the_steps_of_a_delete() {
        let (_d, cat) = catalogue();
        let a = info("20240101T000000", BackupStatus::Done);
        cat.write(&a).unwrap();
        put(&cat, "20240101T000000/data/base/1/1259", b"rel");
        put(&cat, "20240101T000000/data/PG_VERSION", b"15");
        assert_eq!(cat.keep_target(&a.backup_id).unwrap(), None);
        cat.set_keep(&a.backup_id, KeepTarget::Standalone).unwrap();
        assert_eq!(
            cat.keep_target(&a.backup_id).unwrap(),
            Some(KeepTarget::Standalone)
        );
        put(&cat, "20240101T000000/keep", b"???");
        assert_eq!(
            cat.keep_target(&a.backup_id).unwrap(),
            Some(KeepTarget::Full)
        );
        cat.release_keep(&a.backup_id).unwrap();
        assert_eq!(cat.keep_target(&a.backup_id).unwrap(), None);

        cat.write_delete_marker(&a).unwrap();
        assert!(cat.read(&a.backup_id).is_err());
        assert!(cat.list().unwrap().0.is_empty());
        assert_eq!(cat.leftovers().unwrap().marked, vec![a.backup_id.clone()]);
        cat.remove_metadata(&a.backup_id).unwrap();
        cat.remove_data(&a.backup_id).unwrap();
        assert_eq!(cat.read_delete_marker(&a.backup_id).unwrap(), a);
        let left: Vec<String> = cat
            .storage()
            .list("20240101T000000/")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(left, ["20240101T000000/delete_this"]);
        cat.remove_folder(&a.backup_id).unwrap();
        assert!(cat.ids().unwrap().is_empty());
    }

    #[test]
    fn a_failed_backup_keeps_only_its_record() {
        let (_d, cat) = catalogue();
        let a = info("20240101T000000", BackupStatus::Failed);
        cat.write(&a).unwrap();
        put(&cat, "20240101T000000/data/base.tar.zst", b"partial");
        put(&cat, "20240101T000000/16400/x", b"partial");
        cat.discard_data(&a.backup_id).unwrap();
        let left: Vec<String> = cat
            .storage()
            .list("")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(left, ["20240101T000000/backup.json"]);
        assert_eq!(cat.read(&a.backup_id).unwrap(), a);
    }
}
