//! Moves what the receiver finished in `streaming/` into the WAL archive, on a thread of its own
//! so that compression never holds up the replication connection.
//!
//! Each file goes through the same path as a file from `archive_command` (archive hooks,
//! compression, index): stored now, or already archived with identical content (the copy
//! `archive_command` delivered first; ours is dropped), or a clash (ours is kept in `errors/` by
//! the archive and dropped here). A file that cannot be archived stays in `streaming/` and is
//! tried again by the next sweep, so nothing is lost to a full disk or a failing hook.
//!
//! The last, incomplete segment of a timeline that ended (`.partial`) is archived under its
//! `.partial` name only when streaming is the only WAL source: with `archiver` on, PostgreSQL's
//! own `archive_command` delivers the `.partial` it writes at promotion, whose tail differs from
//! ours, and archiving ours first would make the server's copy clash forever.

use crate::server::Server;
use crate::wal_archive::{ArchiveOutcome, WalArchive};
use crate::Error;
use pgbak_wal::{ReceivedFile, WalFileName};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Longest list of error messages kept in [`ArchiverStats::errors`]; a process that runs for
/// months must not grow without bound.
const MAX_ERRORS_KEPT: usize = 100;

/// What the archiver did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiverStats {
    /// Files stored in the archive now.
    pub stored: u64,
    /// Files the archive already had with identical content.
    pub already_archived: u64,
    /// Files that clashed with the archived copy, as `name: where ours was kept`.
    pub conflicts: Vec<String>,
    /// Failures, one line each (the files stay in `streaming/`), the last [`MAX_ERRORS_KEPT`].
    pub errors: Vec<String>,
    /// Partial segments of ended timelines left for `archive_command` to deliver.
    pub partials_waiting: u64,
}

impl ArchiverStats {
    fn error(&mut self, message: String) {
        tracing::error!("{message}");
        if self.errors.len() == MAX_ERRORS_KEPT {
            self.errors.remove(0);
        }
        self.errors.push(message);
    }
}

/// Archives files as they are announced on `rx`, sweeps `dir` for leftovers every `sweep`, and
/// returns when the channel closes (after a last sweep).
pub(super) fn run(
    server: &Server,
    archive: &WalArchive,
    dir: &Path,
    rx: Receiver<ReceivedFile>,
    sweep: Duration,
) -> ArchiverStats {
    let mut a = Archiver {
        server,
        archive,
        dir,
        stats: ArchiverStats::default(),
    };
    a.sweep();
    loop {
        match rx.recv_timeout(sweep) {
            Ok(ReceivedFile::Segment(p)) | Ok(ReceivedFile::History(p)) => a.archive_one(&p),
            Ok(ReceivedFile::TimelinePartial(p)) => a.ended_partial(&p),
            Err(RecvTimeoutError::Timeout) => a.sweep(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    a.sweep();
    a.stats
}

/// Archives every complete file in `dir` and settles the partial segments of ended timelines;
/// used by `--reset` before it clears the directory. Returns what it did.
pub(super) fn sweep_now(server: &Server, archive: &WalArchive, dir: &Path) -> ArchiverStats {
    let mut a = Archiver {
        server,
        archive,
        dir,
        stats: ArchiverStats::default(),
    };
    a.sweep();
    a.stats
}

struct Archiver<'a> {
    server: &'a Server,
    archive: &'a WalArchive,
    dir: &'a Path,
    stats: ArchiverStats,
}

impl Archiver<'_> {
    /// Archives a complete segment or history file and removes it from `streaming/`.
    fn archive_one(&mut self, path: &Path) {
        if !path.exists() {
            // A sweep got to it first.
            return;
        }
        let name = file_name(path);
        match crate::hooks::archive_file(self.server, self.archive, path) {
            Ok(ArchiveOutcome::Stored { .. }) => {
                tracing::info!(
                    server = self.server.name(),
                    file = name,
                    "archived streamed WAL"
                );
                self.stats.stored += 1;
                self.remove(path);
            }
            Ok(ArchiveOutcome::AlreadyArchived { .. }) => {
                tracing::info!(
                    server = self.server.name(),
                    file = name,
                    "streamed WAL was already archived with identical content"
                );
                self.stats.already_archived += 1;
                self.remove(path);
            }
            Err(Error::WalConflict { kept, .. }) => {
                let line = format!(
                    "{name}: the streamed copy differs from the archived one; kept as {kept}"
                );
                self.stats
                    .error(format!("server '{}': {line}", self.server.name()));
                self.stats.conflicts.push(line);
                self.remove(path);
            }
            Err(e) => self.stats.error(format!(
                "server '{}': cannot archive {name} (kept in {}): {e}",
                self.server.name(),
                self.dir.display()
            )),
        }
    }

    /// Settles the `.partial` of a timeline that ended. See the module documentation.
    fn ended_partial(&mut self, path: &Path) {
        if !path.exists() {
            return;
        }
        let name = file_name(path);
        match self.archive.contains(&name) {
            Ok(true) => {
                // The server's own copy (or ours from an earlier run) is already there.
                self.remove(path);
            }
            Ok(false) if !self.server.config.archiver => self.archive_one(path),
            Ok(false) => {
                self.stats.partials_waiting += 1;
                tracing::info!(
                    server = self.server.name(),
                    file = name,
                    "partial segment of an ended timeline kept until archive_command delivers the server's copy"
                );
            }
            Err(e) => self.stats.error(format!(
                "server '{}': cannot look up {name} in the archive: {e}",
                self.server.name()
            )),
        }
    }

    /// Archives every complete file of `dir`, oldest first, and settles every `.partial` but the
    /// newest (the one the receiver resumes from or is writing).
    fn sweep(&mut self) {
        let rd = match std::fs::read_dir(self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.stats.error(format!(
                    "server '{}': cannot read {}: {e}",
                    self.server.name(),
                    self.dir.display()
                ));
                return;
            }
        };
        let mut complete: Vec<(String, PathBuf)> = Vec::new();
        let mut partials: Vec<(u64, u32, PathBuf)> = Vec::new();
        for entry in rd.filter_map(|e| e.ok()) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match WalFileName::parse(&name) {
                Ok(WalFileName::Segment { .. }) | Ok(WalFileName::History { .. }) => {
                    complete.push((name, entry.path()))
                }
                Ok(WalFileName::Partial { log, seg, tli }) => {
                    partials.push(((u64::from(log) << 32) | u64::from(seg), tli, entry.path()))
                }
                _ => tracing::warn!(
                    server = self.server.name(),
                    file = name,
                    "unexpected file in the streaming directory; left alone"
                ),
            }
        }
        // History files first (recovery needs them before the segments of their timeline), then
        // segments in WAL order: segment number, then timeline.
        complete.sort_by(|(a, _), (b, _)| {
            let key = |n: &str| {
                (
                    !n.ends_with(".history"),
                    n.get(8..).unwrap_or_default().to_string(),
                    n.to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        for (_, path) in complete {
            self.archive_one(&path);
        }
        partials.sort();
        partials.pop();
        for (_, _, path) in partials {
            self.ended_partial(&path);
        }
    }

    fn remove(&mut self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                self.stats.error(format!(
                    "server '{}': cannot remove {} after archiving it: {e}",
                    self.server.name(),
                    path.display()
                ));
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
