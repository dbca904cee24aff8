//! `pgbak verify-backup` and `pgbak check-backup`.
//!
//! verify-backup reads every file of a stored backup once (plain tree or compressed tar streams)
//! and compares it with the backup's PostgreSQL manifest: files missing, files the manifest does
//! not list, sizes and checksums, plus the manifest's own checksum. check-backup makes sure every
//! WAL segment from the backup's start to its end is in the archive, and settles a backup that
//! waits for its WAL (DONE when all of it arrived, FAILED when a gap can no longer be filled).

use crate::backup::complete_if_wal_archived;
use crate::backup_scan::{outside_manifest, scan_backup, BackupLayout, ScanEvent, ScanStats};
use crate::catalogue::{is_backup_id, BackupInfo, BackupStatus};
use crate::locks::LockName;
use crate::manifest::{hex_encode, BackupManifest, ManifestFile, MANIFEST_FILE};
use crate::server::Server;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::time::Instant;

/// Options of a verification.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Threads reading files (plain) or streams (tar).
    pub jobs: usize,
    /// Counts the bytes of the files read back, against the manifest's total: for a front
    /// end's progress bar.
    pub progress: Option<pgbak_copy::Meter>,
}

impl VerifyOptions {
    /// `jobs` readers at once.
    pub fn jobs(jobs: usize) -> Self {
        VerifyOptions {
            jobs,
            ..Default::default()
        }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: 1,
            progress: None,
        }
    }
}

/// One thing found wrong with a backup, naming the file concerned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum VerifyProblem {
    /// The manifest lists the file; the backup does not have it.
    Missing { path: String },
    /// The backup has a file the manifest does not list.
    Extra { path: String, source: String },
    /// Sizes differ.
    SizeMismatch {
        path: String,
        source: String,
        expected: u64,
        actual: u64,
    },
    /// Checksums differ.
    ChecksumMismatch {
        path: String,
        source: String,
        algorithm: String,
        expected: String,
        actual: String,
    },
    /// The file (or the stream holding it) could not be read.
    Unreadable {
        path: Option<String>,
        source: String,
        error: String,
    },
    /// The manifest's own checksum does not match its contents.
    ManifestChecksum { expected: String, actual: String },
    /// The manifest belongs to another cluster than the backup's metadata says.
    SystemIdentifier { manifest: String, backup: String },
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyProblem::Missing { path } => {
                write!(f, "\"{path}\" is present in the manifest but not in the backup")
            }
            VerifyProblem::Extra { path, source } => {
                write!(f, "\"{path}\" is present in the backup ({source}) but not in the manifest")
            }
            VerifyProblem::SizeMismatch {
                path,
                source,
                expected,
                actual,
            } => write!(
                f,
                "\"{path}\" has size {actual} in the backup ({source}) but size {expected} in the manifest"
            ),
            VerifyProblem::ChecksumMismatch {
                path,
                source,
                algorithm,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch for file \"{path}\" ({source}): {algorithm} {actual}, manifest says {expected}"
            ),
            VerifyProblem::Unreadable {
                path: Some(path),
                source,
                error,
            } => write!(f, "could not read \"{path}\" ({source}): {error}"),
            VerifyProblem::Unreadable {
                path: None,
                source,
                error,
            } => write!(f, "could not read {source}: {error}"),
            VerifyProblem::ManifestChecksum { expected, actual } => write!(
                f,
                "manifest checksum mismatch: the manifest says {expected}, its contents hash to {actual}"
            ),
            VerifyProblem::SystemIdentifier { manifest, backup } => write!(
                f,
                "the manifest's system identifier {manifest} is not the backup's ({backup})"
            ),
        }
    }
}

/// The outcome of `verify-backup`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The server.
    pub server: String,
    /// The backup verified.
    pub backup_id: String,
    /// `plain` or `tar`.
    pub backup_format: String,
    /// Compression of the tar streams.
    pub compression: String,
    /// Files of the manifest that were found and compared.
    pub files_checked: u64,
    /// Bytes of file contents checksummed.
    pub bytes_checked: u64,
    /// Bytes read from disk (compressed size for tar streams).
    pub bytes_read: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Everything found wrong; empty when the backup is intact.
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// Whether the backup matches its manifest.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Largest manifest read (PostgreSQL writes about 200 bytes per file).
const MAX_MANIFEST: u64 = 1 << 30;

/// Finds a backup by id or shortcut (`latest`, `oldest`, ...) for inspection: any status is
/// accepted for an explicit id, shortcuts mean DONE backups.
pub fn find_backup(server: &Server, backup_id: &str) -> Result<BackupInfo> {
    let cat = server.catalogue();
    if is_backup_id(backup_id) {
        Ok(cat.read(backup_id)?)
    } else {
        Ok(cat.resolve(backup_id)?)
    }
}

/// Checks every file of backup `backup_id` of `server` against its manifest, reading each byte of
/// the backup once. Holds the backup's lock meanwhile, so it is not deleted under the check.
pub fn verify_backup(
    server: &Server,
    backup_id: &str,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let info = find_backup(server, backup_id)?;
    let _lock = server.locks().try_lock(&LockName::Backup {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
    })?;
    if info.status == BackupStatus::Started {
        return Err(Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::InUse,
            message: format!("backup {} is still being taken (STARTED)", info.backup_id),
        });
    }
    let manifest_key = format!("{}/data/{MANIFEST_FILE}", info.backup_id);
    let manifest_path = format!("{}/{manifest_key}", server.stores().backups.describe());
    let text = match server.stores().backups.get(&manifest_key) {
        Ok(r) => {
            let mut text = Vec::new();
            r.take(MAX_MANIFEST)
                .read_to_end(&mut text)
                .map_err(|e| Error::io("read", &manifest_path, e))?;
            text
        }
        Err(pgbak_storage::Error::NotFound(_)) => {
            return Err(Error::Backup {
                server: server.name().to_string(),
                problem: crate::BackupProblem::Unusable,
                message: format!(
                "backup {} has no manifest ({manifest_path}); create one with 'pgbak generate-manifest {} {}'",
                info.backup_id,
                server.name(),
                info.backup_id
            ),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let started = Instant::now();
    let manifest = BackupManifest::parse(&text).map_err(|e| match e {
        Error::Corrupt { detail, .. } => Error::Corrupt {
            what: format!("manifest {manifest_path}"),
            detail,
        },
        other => other,
    })?;
    let mut problems = Vec::new();
    let computed = BackupManifest::computed_checksum(&text)?;
    if !computed.eq_ignore_ascii_case(&manifest.manifest_checksum) {
        problems.push(VerifyProblem::ManifestChecksum {
            expected: manifest.manifest_checksum.clone(),
            actual: computed,
        });
    }
    if let (Some(m), Some(b)) = (manifest.system_identifier, &info.systemid) {
        if m.to_string() != *b {
            problems.push(VerifyProblem::SystemIdentifier {
                manifest: m.to_string(),
                backup: b.clone(),
            });
        }
    }
    let layout = BackupLayout::of_backup(server, &info)?;
    if let Some(m) = &opts.progress {
        m.set_total(manifest.files.iter().map(|f| f.size).sum());
    }
    let (stats, mut found) =
        compare_with_manifest(&layout, &manifest, opts.jobs, opts.progress.as_ref());
    problems.append(&mut found);
    let report = VerifyReport {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
        backup_format: info.backup_format.clone(),
        compression: info.compression.clone(),
        files_checked: stats.files,
        bytes_checked: stats.bytes_checksummed,
        bytes_read: stats.bytes_read,
        seconds: started.elapsed().as_secs_f64(),
        problems,
    };
    if report.ok() {
        tracing::info!(server = server.name(), backup = %info.backup_id, files = report.files_checked, "backup verified");
    } else {
        // The command reports each problem; the log keeps the outcome.
        tracing::info!(server = server.name(), backup = %info.backup_id, problems = report.problems.len(), "backup verification failed");
    }
    Ok(report)
}

/// Reads the backup in `layout` and lists how it differs from `manifest`. Returns the scan totals
/// (files counts only files of the manifest) and the problems, sorted by path.
pub fn compare_with_manifest(
    layout: &BackupLayout,
    manifest: &BackupManifest,
    jobs: usize,
    progress: Option<&pgbak_copy::Meter>,
) -> (ScanStats, Vec<VerifyProblem>) {
    let expected: HashMap<&[u8], &ManifestFile> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_slice(), f))
        .collect();
    let plan = |path: &[u8]| expected.get(path).map(|f| f.algorithm);
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(expected.len());
    let mut problems = Vec::new();
    let mut unreadable = Vec::new();
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let counted = |size: u64| {
        if let Some(m) = progress {
            m.add(size);
        }
    };
    let result = scan_backup(layout, jobs, &plan, &mut |ev| {
        if let ScanEvent::File(f) = &ev {
            counted(f.size);
        }
        match ev {
            ScanEvent::File(f) => match expected.get_key_value(f.path.as_slice()) {
                None => {
                    if !outside_manifest(&f.path) {
                        problems.push(VerifyProblem::Extra {
                            path: show(&f.path),
                            source: f.source,
                        });
                    }
                }
                Some((key, m)) => {
                    seen.insert(key);
                    if f.size != m.size {
                        problems.push(VerifyProblem::SizeMismatch {
                            path: show(&f.path),
                            source: f.source,
                            expected: m.size,
                            actual: f.size,
                        });
                    } else if let Some((algorithm, sum)) = f.checksum {
                        if !m.algorithm.is_empty() && sum != m.checksum {
                            problems.push(VerifyProblem::ChecksumMismatch {
                                path: show(&f.path),
                                source: f.source,
                                algorithm: algorithm.name().to_string(),
                                expected: hex_encode(&m.checksum),
                                actual: hex_encode(&sum),
                            });
                        }
                    }
                }
            },
            ScanEvent::Unreadable {
                path,
                source,
                error,
            } => {
                if let Some(key) = path
                    .as_deref()
                    .and_then(|p| expected.get_key_value(p).map(|(k, _)| *k))
                {
                    // Reported as unreadable, not also as missing.
                    seen.insert(key);
                }
                unreadable.push(VerifyProblem::Unreadable {
                    path: path.as_deref().map(show),
                    source,
                    error,
                });
            }
        }
    });
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            unreadable.push(VerifyProblem::Unreadable {
                path: None,
                source: "backup".into(),
                error: e.to_string(),
            });
            ScanStats::default()
        }
    };
    // A stream that failed part-way leaves the rest of its files unseen; they are reported as
    // missing only when every stream was read to its end, so one damaged byte is one problem.
    if unreadable.is_empty() {
        for f in &manifest.files {
            if !seen.contains(f.path.as_slice()) && !outside_manifest(&f.path) {
                problems.push(VerifyProblem::Missing {
                    path: show(&f.path),
                });
            }
        }
    }
    problems.sort_by(|a, b| problem_path(a).cmp(problem_path(b)));
    unreadable.append(&mut problems);
    let files = seen.len() as u64;
    (ScanStats { files, ..stats }, unreadable)
}

fn problem_path(p: &VerifyProblem) -> &str {
    match p {
        VerifyProblem::Missing { path }
        | VerifyProblem::Extra { path, .. }
        | VerifyProblem::SizeMismatch { path, .. }
        | VerifyProblem::ChecksumMismatch { path, .. } => path,
        _ => "",
    }
}

/// The outcome of `check-backup`.
#[derive(Clone, Debug, Serialize)]
pub struct WalCheckReport {
    /// The server.
    pub server: String,
    /// The backup checked.
    pub backup_id: String,
    /// Status before the check.
    pub status_before: BackupStatus,
    /// Status after it (a WAITING_FOR_WALS backup may have become DONE or FAILED).
    pub status: BackupStatus,
    /// Segments from the backup's start to its end.
    pub required: Vec<String>,
    /// Those not in the archive.
    pub missing: Vec<String>,
}

impl WalCheckReport {
    /// Whether every required segment is archived.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Checks that all WAL from the start to the end of backup `backup_id` is in the archive.
///
/// A WAITING_FOR_WALS backup becomes DONE when it is; it becomes FAILED (as Barman does) when a
/// missing segment is older than a segment already archived on the same timeline, since
/// PostgreSQL archives in order and the gap will never be filled.
pub fn check_backup(server: &Server, backup_id: &str) -> Result<WalCheckReport> {
    let mut info = find_backup(server, backup_id)?;
    let _lock = server.locks().try_lock(&LockName::Backup {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
    })?;
    let status_before = info.status;
    if matches!(info.status, BackupStatus::Started | BackupStatus::Failed) {
        return Err(Error::Backup {
            server: server.name().to_string(),
            problem: crate::BackupProblem::Unusable,
            message: format!(
                "backup {} is {}: it has no complete WAL range to check",
                info.backup_id,
                info.status.as_str()
            ),
        });
    }
    let archive = server.wal_archive()?;
    let required = archive.backup_required_segments(&info)?;
    let mut missing = Vec::new();
    for name in &required {
        if !archive.contains(name)? {
            missing.push(name.clone());
        }
    }
    if info.status == BackupStatus::WaitingForWals {
        if missing.is_empty() {
            complete_if_wal_archived(server, &mut info)?;
        } else if let Some(first) = missing.first() {
            let newer = archive
                .segment_names()?
                .into_iter()
                .any(|n| n.get(..8) == first.get(..8) && n.as_str() > first.as_str());
            if newer {
                info.status = BackupStatus::Failed;
                info.error = Some(format!(
                    "WAL segment {first} is missing from the archive while later segments are archived"
                ));
                server.catalogue().write(&info)?;
                tracing::warn!(server = server.name(), backup = %info.backup_id, segment = %first, "backup marked FAILED: required WAL is missing");
            }
        }
    }
    Ok(WalCheckReport {
        server: server.name().to_string(),
        backup_id: info.backup_id.clone(),
        status_before,
        status: info.status,
        required,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChecksumAlgorithm, WalRange};

    fn entry(path: &str, data: &[u8], algorithm: ChecksumAlgorithm) -> ManifestFile {
        let mut h = algorithm.hasher();
        h.update(data);
        ManifestFile {
            path: path.as_bytes().to_vec(),
            size: data.len() as u64,
            last_modified: "2024-01-01 00:00:00 GMT".into(),
            algorithm,
            checksum: h.finish(),
        }
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("base/1")).unwrap();
        std::fs::create_dir_all(data.join("pg_wal")).unwrap();
        std::fs::write(data.join("PG_VERSION"), b"15\n").unwrap();
        std::fs::write(data.join("base/1/100"), b"flipped").unwrap();
        std::fs::write(data.join("base/1/200"), b"longer than said").unwrap();
        std::fs::write(data.join("base/1/300"), b"sha").unwrap();
        std::fs::write(data.join("extra"), b"?").unwrap();
        std::fs::write(data.join("backup_manifest"), b"ignored").unwrap();
        std::fs::write(data.join("pg_wal/000000010000000000000001"), b"ignored").unwrap();
        let manifest = BackupManifest {
            version: 1,
            system_identifier: None,
            files: vec![
                entry("PG_VERSION", b"15\n", ChecksumAlgorithm::Crc32c),
                entry("base/1/100", b"flopped", ChecksumAlgorithm::Crc32c),
                entry("base/1/200", b"short", ChecksumAlgorithm::Crc32c),
                entry("base/1/300", b"sha", ChecksumAlgorithm::Sha512),
                entry("gone", b"x", ChecksumAlgorithm::None),
            ],
            wal_ranges: vec![WalRange {
                timeline: 1,
                start_lsn: "0/1".parse().unwrap(),
                end_lsn: "0/2".parse().unwrap(),
            }],
            manifest_checksum: String::new(),
        };
        let layout = BackupLayout::discover(dir.path(), "plain").unwrap();
        let (stats, problems) = compare_with_manifest(&layout, &manifest, 3, None);
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{shown:#?}");
        assert!(
            matches!(&problems[0], VerifyProblem::ChecksumMismatch { path, .. } if path == "base/1/100")
        );
        assert!(
            matches!(&problems[1], VerifyProblem::SizeMismatch { path, expected: 5, actual: 16, .. } if path == "base/1/200")
        );
        assert!(matches!(&problems[2], VerifyProblem::Extra { path, .. } if path == "extra"));
        assert!(matches!(&problems[3], VerifyProblem::Missing { path } if path == "gone"));
        assert!(shown[0].contains("checksum mismatch for file \"base/1/100\""));
        assert_eq!(stats.files, 4);
    }

    #[test]
    fn a_clean_backup_has_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("a"), vec![3u8; 3 << 20]).unwrap();
        let manifest = BackupManifest {
            version: 1,
            system_identifier: None,
            files: vec![entry("a", &vec![3u8; 3 << 20], ChecksumAlgorithm::Sha256)],
            wal_ranges: Vec::new(),
            manifest_checksum: String::new(),
        };
        let layout = BackupLayout::discover(dir.path(), "plain").unwrap();
        let (stats, problems) = compare_with_manifest(&layout, &manifest, 1, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(stats.bytes_checksummed, 3 << 20);
    }
}
