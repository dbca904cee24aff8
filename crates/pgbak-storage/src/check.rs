//! The repository check behind `pgbak check` and `diagnose`: is the store reachable, does the
//! bucket exist, can pgbak write, read back, be refused an overwrite, and delete. Each step is
//! reported on its own so that a front end can print one line per step.

use crate::{CommitMode, ErrorKind, StorageBackend};
use serde::Serialize;
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// The outcome of one step of [`probe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeStep {
    /// What was checked: `reachable`, `writable`, `readable`, `create-new refused`,
    /// `deletable`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// The kind of error when it failed.
    pub error_kind: Option<ErrorKind>,
    /// The error message when it failed (no secrets: storage errors never carry them).
    pub detail: Option<String>,
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// The repository, without secrets.
    pub repository: String,
    /// The steps in the order they ran; a failed step stops the ones that depend on it.
    pub steps: Vec<ProbeStep>,
}

impl ProbeReport {
    /// Whether every step passed.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// The first failed step.
    pub fn first_failure(&self) -> Option<&ProbeStep> {
        self.steps.iter().find(|s| !s.ok)
    }
}

/// Checks the repository with a probe object under `prefix` (a folder ending with '/', or "").
/// The probe object is removed at the end.
pub fn probe(storage: &dyn StorageBackend, prefix: &str) -> ProbeReport {
    let mut report = ProbeReport {
        repository: storage.describe(),
        steps: Vec::new(),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let key = format!("{prefix}.pgbak-check-{}-{nanos}", std::process::id());
    let body = format!("pgbak repository check {nanos}\n").into_bytes();

    let mut step = |name: &'static str, r: crate::Result<()>| -> bool {
        let ok = r.is_ok();
        report.steps.push(ProbeStep {
            name,
            ok,
            error_kind: r.as_ref().err().map(|e| e.kind()),
            detail: r.err().map(|e| e.to_string()),
        });
        ok
    };

    if !step("reachable", storage.list_dir(prefix).map(|_| ())) {
        return report;
    }
    let write = |mode| -> crate::Result<()> {
        let mut w = storage.put(&key)?;
        w.write_all(&body)
            .map_err(|e| crate::Error::io("write", &key, e))?;
        w.commit(mode)
    };
    if !step("writable", write(CommitMode::CreateNew)) {
        return report;
    }
    let read = || -> crate::Result<()> {
        let mut got = Vec::new();
        storage
            .get(&key)?
            .read_to_end(&mut got)
            .map_err(|e| crate::Error::io("read", &key, e))?;
        if got != body {
            return Err(crate::Error::Corrupt {
                object: crate::ObjectRef::new(storage.describe(), &key),
                detail: "the probe object read back differs from what was written".into(),
            });
        }
        Ok(())
    };
    step("readable", read());
    let refused = match write(CommitMode::CreateNew) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
        Ok(()) => Err(crate::Error::Config {
            repo: storage.describe(),
            detail: "the store accepted a create-new upload over an existing object: it ignores \
                     conditional writes (for S3-compatible servers set s3_no_conditional_writes)"
                .into(),
        }),
    };
    step("create-new refused", refused);
    let delete = || -> crate::Result<()> {
        storage.delete(&key)?;
        match storage.stat(&key)? {
            None => Ok(()),
            Some(_) => Err(crate::Error::Config {
                repo: storage.describe(),
                detail: "the probe object is still there after its deletion".into(),
            }),
        }
    };
    step("deletable", delete());
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStorage;

    #[test]
    fn a_local_repository_passes_and_is_left_clean() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("repo"));
        let r = probe(&s, "");
        assert!(r.ok(), "{r:?}");
        let names: Vec<_> = r.steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "reachable",
                "writable",
                "readable",
                "create-new refused",
                "deletable"
            ]
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("repo")).unwrap().count(),
            0
        );
    }
}
