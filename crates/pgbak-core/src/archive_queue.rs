//! Parallel, asynchronous archiving (`cloud_wal_archive_parallel = N`, `archive-wal --parallel
//! N`): a call for segment S archives S and up to N-1 of the segments after it that PostgreSQL
//! has marked ready (`pg_wal/archive_status/*.ready`), N at a time, and answers for S once S is
//! durable. Each following segment that became durable gets an acknowledgement in the server's
//! local queue folder; PostgreSQL's later call for it finds the acknowledgement, checks that
//! the file it hands over is the one that was archived (size and CRC-32C), and returns at once.
//!
//! Nothing is acknowledged to PostgreSQL before it is durable: an acknowledgement is written
//! only after the segment and its index line are committed, and is trusted only for the same
//! bytes. A process killed at any point leaves at worst a segment archived without its
//! acknowledgement (the next call finds it archived with identical content: success, no second
//! copy) or an acknowledgement without a caller yet (used or dropped later). Nothing is lost or
//! stored twice.

use crate::hooks::archive_file;
use crate::server::Server;
use crate::wal_archive::{file_crc32c, ArchiveOutcome, WalArchive};
use crate::{Error, Result};
use pgbak_storage::{CommitMode, LocalStorage, StorageBackend};
use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The folder of acknowledgements, below the server's `backup_directory`.
pub const QUEUE_DIR: &str = "archive-queue";

const ACK_SUFFIX: &str = ".ok";

/// Archives the WAL file at `src` as `archive_command` does: with the server's archive hooks,
/// and, when `parallel` (default: the server's `cloud_wal_archive_parallel`) is 2 or more, with
/// the ready segments after it (see the module documentation).
pub fn archive_wal(server: &Server, src: &Path, parallel: Option<u32>) -> Result<ArchiveOutcome> {
    let archive = server.wal_archive()?;
    let parallel = parallel.unwrap_or(server.config.wal_archive_parallel);
    if parallel < 2 {
        return archive_file(server, &archive, src);
    }
    let name = file_name(src)?;
    let queue = Queue::open(server);
    if let Some(outcome) = queue.take(&name, src)? {
        return Ok(outcome);
    }
    let acknowledged = queue.drop_older_than(&name);
    let followers = ready_after(src, &name, parallel as usize - 1, &acknowledged);
    archive_batch(
        server,
        &archive,
        &queue,
        src,
        &name,
        followers,
        parallel as usize,
    )
}

fn file_name(src: &Path) -> Result<String> {
    src.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Usage(format!("{} does not name a WAL file", src.display())))
}

/// Whether `name` is a WAL segment's name (24 upper-case hexadecimal digits).
fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// Up to `max` segments after `name` that PostgreSQL has marked ready next to `src`, oldest
/// first, leaving out those `acknowledged`.
fn ready_after(
    src: &Path,
    name: &str,
    max: usize,
    acknowledged: &BTreeSet<String>,
) -> Vec<(String, PathBuf)> {
    let dir = src.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir.join("archive_status")) else {
        return Vec::new();
    };
    let mut ready: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".ready")?.to_string();
            (is_segment(&n) && n.as_str() > name && !acknowledged.contains(&n)).then_some(n)
        })
        .collect();
    ready.sort();
    ready.truncate(max);
    ready
        .into_iter()
        .map(|n| {
            let path = dir.join(&n);
            (n, path)
        })
        .collect()
}

/// Archives `src` (named `name`) and `followers`, `workers` at a time; acknowledges each
/// follower that became durable; returns the outcome of `src`.
fn archive_batch(
    server: &Server,
    archive: &WalArchive,
    queue: &Queue,
    src: &Path,
    name: &str,
    followers: Vec<(String, PathBuf)>,
    workers: usize,
) -> Result<ArchiveOutcome> {
    let count = followers.len();
    let mut jobs: VecDeque<(String, PathBuf, bool)> = VecDeque::with_capacity(count + 1);
    jobs.push_back((name.to_string(), src.to_path_buf(), true));
    jobs.extend(followers.into_iter().map(|(n, p)| (n, p, false)));
    let jobs = Mutex::new(jobs);
    let own: Mutex<Option<Result<ArchiveOutcome>>> = Mutex::new(None);
    let next = || jobs.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(count + 1) {
            scope.spawn(|| {
                while let Some((n, path, is_own)) = next() {
                    let result = archive_file(server, archive, &path);
                    if is_own {
                        *own.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                        continue;
                    }
                    match result {
                        Ok(outcome) => {
                            if let Err(e) = queue.acknowledge(&n, &path, &outcome) {
                                tracing::warn!("{n} is archived but cannot be acknowledged: {e}");
                            }
                            crate::fault_points::pause_point("archive-wal:after-ack");
                        }
                        // PostgreSQL will ask for it in turn, and that call reports the failure.
                        Err(e) => tracing::warn!("archiving {n} ahead of PostgreSQL failed: {e}"),
                    }
                }
            });
        }
    });
    if count > 0 {
        tracing::info!("{name}: archived with {count} following segments");
    }
    own.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(|| Err(Error::Other(format!("{name} was not archived"))))
}

/// The acknowledgements of segments archived ahead of PostgreSQL's call: `<name>.ok` objects in
/// the server's local queue folder, written durably like every local object.
struct Queue {
    store: LocalStorage,
}

/// What an acknowledgement records: the archived file's size and CRC-32C, and what it takes in
/// the archive.
#[derive(Debug, PartialEq, Eq)]
struct Ack {
    size: u64,
    crc32c: u32,
    stored_size: u64,
}

impl Ack {
    fn parse(text: &str) -> Option<Ack> {
        let mut it = text.split_ascii_whitespace();
        let ack = Ack {
            size: it.next()?.parse().ok()?,
            crc32c: u32::from_str_radix(it.next()?, 16).ok()?,
            stored_size: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(ack)
    }

    fn line(&self) -> String {
        format!("{} {:08x} {}\n", self.size, self.crc32c, self.stored_size)
    }
}

impl Queue {
    fn open(server: &Server) -> Queue {
        Queue {
            store: LocalStorage::new(server.config.backup_directory.join(QUEUE_DIR)),
        }
    }

    fn key(name: &str) -> String {
        format!("{name}{ACK_SUFFIX}")
    }

    /// The acknowledgement of `name`, if there is one for the bytes at `src`; it is used up.
    /// One for other bytes is dropped, and the file is archived as usual.
    fn take(&self, name: &str, src: &Path) -> Result<Option<ArchiveOutcome>> {
        let key = Self::key(name);
        let mut text = String::new();
        match self.store.get(&key) {
            Ok(mut r) => r
                .read_to_string(&mut text)
                .map_err(|e| Error::io("read", self.store.root().join(&key), e))?,
            Err(pgbak_storage::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (size, crc32c) = file_crc32c(src).map_err(|e| Error::io("read", src, e))?;
        let _ = self.store.delete(&key);
        match Ack::parse(&text) {
            Some(a) if a.size == size && a.crc32c == crc32c => Ok(Some(ArchiveOutcome::Stored {
                name: name.to_string(),
                size,
                stored_size: a.stored_size,
                crc32c,
            })),
            _ => {
                tracing::warn!(
                    "{name}: the acknowledgement in {} is not for this file; archiving it again",
                    self.store.describe()
                );
                Ok(None)
            }
        }
    }

    /// Records that `name`, read from `src`, is durable in the archive.
    fn acknowledge(&self, name: &str, src: &Path, outcome: &ArchiveOutcome) -> Result<()> {
        let ack = match outcome {
            // What the archive measured while it stored the file.
            ArchiveOutcome::Stored {
                size,
                stored_size,
                crc32c,
                ..
            } => Ack {
                size: *size,
                crc32c: *crc32c,
                stored_size: *stored_size,
            },
            ArchiveOutcome::AlreadyArchived { .. } => {
                let (size, crc32c) = file_crc32c(src).map_err(|e| Error::io("read", src, e))?;
                Ack {
                    size,
                    crc32c,
                    stored_size: 0,
                }
            }
        };
        let key = Self::key(name);
        let mut w = self.store.put(&key)?;
        w.write_all(ack.line().as_bytes())
            .map_err(|e| Error::io("write", self.store.root().join(&key), e))?;
        w.commit(CommitMode::Replace)?;
        Ok(())
    }

    /// Drops acknowledgements of segments before `name` (PostgreSQL, which archives in order,
    /// has moved past them: a call it retried took the ordinary path); returns the names of
    /// those left.
    fn drop_older_than(&self, name: &str) -> BTreeSet<String> {
        let mut left = BTreeSet::new();
        for object in self.store.list("").unwrap_or_default() {
            let Some(seg) = object
                .key
                .strip_suffix(ACK_SUFFIX)
                .filter(|s| is_segment(s))
            else {
                continue;
            };
            if seg < name {
                let _ = self.store.delete(&object.key);
            } else {
                left.insert(seg.to_string());
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_read_back_and_refuse_anything_else() {
        let a = Ack {
            size: 16 << 20,
            crc32c: 0xdead_beef,
            stored_size: 12345,
        };
        assert_eq!(Ack::parse(&a.line()), Some(a));
        for bad in ["", "1 2", "x deadbeef 3", "1 nothex 3", "1 2 3 4", "-1 2 3"] {
            assert_eq!(Ack::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn segment_names() {
        assert!(is_segment("000000010000000000000003"));
        assert!(!is_segment("000000010000000000000003.partial"));
        assert!(!is_segment("00000002.history"));
        assert!(!is_segment("00000001000000000000000g"));
    }
}
