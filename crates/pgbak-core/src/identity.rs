//! The identity of the cluster a server's catalogue belongs to: `<backup_directory>/identity.json`,
//! `{"systemid": "...", "version": "<major>"}` as Barman writes it. Recorded by the first backup;
//! `pgbak check` compares the live server's system identifier with it, so that a catalogue is
//! never fed by another cluster (a re-initialised or swapped server) without anyone noticing.

use crate::{Error, Result};
use pgbak_storage::local::DurableFile;
use pgbak_storage::CommitMode;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the identity file inside a server's backup directory.
pub const IDENTITY_FILE: &str = "identity.json";

/// The recorded identity of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// PostgreSQL's system identifier, in decimal.
    pub systemid: String,
    /// Major version (`"15"`; `"9.6"` style before 10).
    pub version: String,
}

/// The major version of a `server_version_num`, as Barman writes it.
pub fn major_version(server_version_num: u32) -> String {
    if server_version_num >= 100000 {
        (server_version_num / 10000).to_string()
    } else {
        format!(
            "{}.{}",
            server_version_num / 10000,
            (server_version_num / 100) % 100
        )
    }
}

/// The identity file of the server whose backup directory is `backup_directory`.
pub fn identity_path(backup_directory: &Path) -> PathBuf {
    backup_directory.join(IDENTITY_FILE)
}

/// Reads the identity file; `None` when there is none yet.
pub fn read_identity(backup_directory: &Path) -> Result<Option<Identity>> {
    let path = identity_path(backup_directory);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            what: format!("identity file {}", path.display()),
            detail: e.to_string(),
        })
}

/// Records `systemid` as the catalogue's cluster if nothing is recorded yet; when something is,
/// it must be the same cluster. Returns whether the file was written.
pub fn record_identity(
    backup_directory: &Path,
    systemid: &str,
    server_version_num: u32,
) -> Result<bool> {
    if let Some(existing) = read_identity(backup_directory)? {
        if existing.systemid != systemid {
            return Err(Error::Other(format!(
                "the system identifier of the PostgreSQL server ({systemid}) is not the one this catalogue belongs to ({}, recorded in {}): a different cluster is connected",
                existing.systemid,
                identity_path(backup_directory).display()
            )));
        }
        return Ok(false);
    }
    let identity = Identity {
        systemid: systemid.to_string(),
        version: major_version(server_version_num),
    };
    let path = identity_path(backup_directory);
    let mut text = serde_json::to_vec(&identity)
        .map_err(|e| Error::Other(format!("cannot encode {}: {e}", path.display())))?;
    text.push(b'\n');
    let mut f = DurableFile::create(&path).map_err(|e| Error::io("create", &path, e))?;
    f.write_all(&text)
        .map_err(|e| Error::io("write", &path, e))?;
    match f.commit(CommitMode::CreateNew) {
        Ok(()) => Ok(true),
        // Another process recorded it first: it must agree with us.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            record_identity(backup_directory, systemid, server_version_num).map(|_| false)
        }
        Err(e) => Err(Error::io("commit", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_once_then_compare() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_identity(dir.path()).unwrap(), None);
        assert!(record_identity(dir.path(), "7312", 150018).unwrap());
        assert!(!record_identity(dir.path(), "7312", 150018).unwrap());
        assert_eq!(
            read_identity(dir.path()).unwrap(),
            Some(Identity {
                systemid: "7312".into(),
                version: "15".into()
            })
        );
        let err = record_identity(dir.path(), "9999", 150018).unwrap_err();
        assert!(err.to_string().contains("different cluster"), "{err}");
        let text = std::fs::read_to_string(dir.path().join(IDENTITY_FILE)).unwrap();
        assert_eq!(text, "{\"systemid\":\"7312\",\"version\":\"15\"}\n");
        std::fs::write(dir.path().join(IDENTITY_FILE), "garbage").unwrap();
        assert!(read_identity(dir.path()).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(major_version(150018), "15");
        assert_eq!(major_version(170000), "17");
        assert_eq!(major_version(90624), "9.6");
    }
}
