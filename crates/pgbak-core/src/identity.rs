//! The identity of the cluster a server's catalogue belongs to: `identity.json` in the server's meta store (`<backup_directory>/` on local disk),
//! `{"systemid": "...", "version": "<major>"}` as Barman writes it. Recorded by the first backup;
//! `pgbak check` compares the live server's system identifier with it, so that a catalogue is
//! never fed by another cluster (a re-initialised or swapped server) without anyone noticing.

use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_storage::{CommitMode, StorageBackend};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

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

/// Where the identity of the store `meta` is, for messages.
pub fn identity_location(meta: &dyn StorageBackend) -> String {
    format!("{}/{IDENTITY_FILE}", meta.describe())
}

/// Reads the identity; `None` when there is none yet.
pub fn read_identity(meta: &dyn StorageBackend) -> Result<Option<Identity>> {
    let r = match meta.get(IDENTITY_FILE) {
        Ok(r) => r,
        Err(pgbak_storage::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut text = Vec::new();
    r.take(1 << 20)
        .read_to_end(&mut text)
        .map_err(|e| Error::io("read", identity_location(meta), e))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            what: format!("identity file {}", identity_location(meta)),
            detail: e.to_string(),
        })
}

/// Records `systemid` as the catalogue's cluster if nothing is recorded yet; when something is,
/// it must be the same cluster. Returns whether the identity was written.
pub fn record_identity(
    meta: &dyn StorageBackend,
    systemid: &str,
    server_version_num: u32,
) -> Result<bool> {
    if let Some(existing) = read_identity(meta)? {
        if existing.systemid != systemid {
            return Err(Error::kind_of(ErrorKind::Refused, format!(
                "the system identifier of the PostgreSQL server ({systemid}) is not the one this catalogue belongs to ({}, recorded in {}): a different cluster is connected",
                existing.systemid,
                identity_location(meta)
            )));
        }
        return Ok(false);
    }
    let identity = Identity {
        systemid: systemid.to_string(),
        version: major_version(server_version_num),
    };
    let mut text = serde_json::to_vec(&identity)
        .map_err(|e| Error::Other(format!("cannot encode the identity: {e}")))?;
    text.push(b'\n');
    let mut f = meta.put_with_mode(IDENTITY_FILE, CommitMode::CreateNew)?;
    f.write_all(&text)
        .map_err(|e| Error::io("write", identity_location(meta), e))?;
    match f.commit(CommitMode::CreateNew) {
        Ok(()) => Ok(true),
        // Another process recorded it first: it must agree with us.
        Err(pgbak_storage::Error::AlreadyExists(_)) => {
            record_identity(meta, systemid, server_version_num).map(|_| false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_once_then_compare() {
        let dir = tempfile::tempdir().unwrap();
        let meta = pgbak_storage::LocalStorage::new(dir.path());
        assert_eq!(read_identity(&meta).unwrap(), None);
        assert!(record_identity(&meta, "7312", 150018).unwrap());
        assert!(!record_identity(&meta, "7312", 150018).unwrap());
        assert_eq!(
            read_identity(&meta).unwrap(),
            Some(Identity {
                systemid: "7312".into(),
                version: "15".into()
            })
        );
        let err = record_identity(&meta, "9999", 150018).unwrap_err();
        assert!(err.to_string().contains("different cluster"), "{err}");
        let text = std::fs::read_to_string(dir.path().join(IDENTITY_FILE)).unwrap();
        assert_eq!(text, "{\"systemid\":\"7312\",\"version\":\"15\"}\n");
        std::fs::write(dir.path().join(IDENTITY_FILE), "garbage").unwrap();
        assert!(read_identity(&meta).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(major_version(150018), "15");
        assert_eq!(major_version(170000), "17");
        assert_eq!(major_version(90624), "9.6");
    }
}
