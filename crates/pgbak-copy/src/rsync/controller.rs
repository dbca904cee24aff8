//! The parallel copy controller: a queue of rsync runs (directories first, then buckets of
//! files, then the files that must come last) worked off by `jobs` threads, each run retried on
//! failure after reconnecting SSH, with progress and a keepalive callback on the calling thread.

use super::buckets;
use super::command::{self, ReuseMode, RsyncRun, RsyncSettings, RsyncStats};
use super::filelist::{EntryKind, FileEntry};
use super::host::Host;
use crate::strategy::CopyProgress;
use crate::{Error, Result};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One side of a copy: a directory on a host.
#[derive(Clone, Debug)]
pub struct Side {
    /// Where the directory is.
    pub host: Host,
    /// The directory.
    pub root: String,
}

impl Side {
    /// A directory on this host.
    pub fn local(root: impl Into<PathBuf>) -> Side {
        Side {
            host: Host::Local,
            root: root.into().display().to_string(),
        }
    }

    fn rsync_name(&self) -> String {
        self.host.rsync_dir(&self.root)
    }
}

/// One rsync run of the plan.
#[derive(Clone, Debug)]
pub struct Task {
    /// What it copies, for messages ("PGDATA bucket 2/8").
    pub what: String,
    /// From.
    pub source: Side,
    /// To.
    pub dest: Side,
    /// Names relative to both roots.
    pub names: Vec<PathBuf>,
    /// Bytes of the regular files among `names`.
    pub bytes: u64,
    /// An earlier copy to take unchanged files from.
    pub reuse: Option<(ReuseMode, PathBuf)>,
    /// Compare contents, not size and time.
    pub checksum: bool,
    /// A bandwidth limit of its own (kB/s).
    pub bwlimit_kbps: Option<u64>,
}

impl Task {
    fn rsync_run(&self) -> RsyncRun {
        RsyncRun {
            source: self.source.rsync_name(),
            dest: self.dest.rsync_name(),
            rsh: self.source.host.rsh().or_else(|| self.dest.host.rsh()),
            list: command::file_list(self.names.iter().map(PathBuf::as_path)),
            reuse: self.reuse.clone(),
            checksum: self.checksum,
            bwlimit_kbps: self.bwlimit_kbps,
        }
    }

    fn remote(&self) -> &Host {
        if self.source.host.is_remote() {
            &self.source.host
        } else {
            &self.dest.host
        }
    }
}

/// How failed runs are retried (`basebackup_retry_times`, `basebackup_retry_sleep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub times: u32,
    /// Pause before each extra attempt.
    pub sleep: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            times: 0,
            sleep: Duration::from_secs(30),
        }
    }
}

/// What the controller did, summed over its runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerStats {
    /// rsync's own numbers.
    pub rsync: RsyncStats,
    /// Runs done.
    pub runs: u64,
    /// Runs that needed more than one attempt.
    pub retried_runs: u64,
}

/// Called on the controller's thread every `every` while runs are going (a keepalive of the
/// backup session); an error stops the copy.
pub struct Tick<'a> {
    /// How often.
    pub every: Duration,
    /// What to do.
    pub call: &'a mut dyn FnMut() -> Result<()>,
}

/// Runs copy plans.
#[derive(Clone, Debug)]
pub struct Controller {
    /// Settings of every rsync run.
    pub settings: RsyncSettings,
    /// Parallel runs.
    pub jobs: usize,
    /// Retries of a failed run.
    pub retry: RetryPolicy,
}

impl Controller {
    /// Runs `tasks`, `jobs` at a time, heaviest first. Progress is reported as
    /// `done_before` plus the bytes of the runs finished. The first run that fails for good
    /// stops the others from starting and is the error returned.
    pub fn run(
        &self,
        mut tasks: Vec<Task>,
        progress: &mut dyn CopyProgress,
        done_before: u64,
        mut tick: Option<Tick<'_>>,
    ) -> Result<ControllerStats> {
        if tasks.is_empty() {
            return Ok(ControllerStats::default());
        }
        tasks.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        let workers = self.jobs.clamp(1, tasks.len());
        let queue = Mutex::new(tasks.into_iter().collect::<VecDeque<_>>());
        let abort = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(u64, Result<(RsyncStats, bool)>)>();
        let mut stats = ControllerStats::default();
        let mut first_error: Option<Error> = None;
        let mut done = done_before;
        std::thread::scope(|scope| {
            for n in 0..workers {
                let tx = tx.clone();
                let (queue, abort) = (&queue, &abort);
                let spawned = std::thread::Builder::new()
                    .name(format!("pgbak-rsync-{n}"))
                    .spawn_scoped(scope, move || loop {
                        if abort.load(Ordering::SeqCst) {
                            break;
                        }
                        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                        let Some(task) = next else { break };
                        let result = self.run_with_retries(&task, abort);
                        if tx.send((task.bytes, result)).is_err() {
                            break;
                        }
                    });
                if let Err(e) = spawned {
                    abort.store(true, Ordering::SeqCst);
                    first_error
                        .get_or_insert(Error::Aborted(format!("cannot start a copy worker: {e}")));
                    break;
                }
            }
            drop(tx);
            let mut last_tick = Instant::now();
            loop {
                let wait = tick
                    .as_ref()
                    .map(|t| t.every.saturating_sub(last_tick.elapsed()))
                    .unwrap_or(Duration::from_secs(3600));
                match rx.recv_timeout(wait) {
                    Ok((bytes, Ok((s, retried)))) => {
                        stats.rsync.add(&s);
                        stats.runs += 1;
                        stats.retried_runs += u64::from(retried);
                        done += bytes;
                        progress.set_done(done);
                        if progress.cancelled() {
                            abort.store(true, Ordering::SeqCst);
                        }
                    }
                    Ok((_, Err(e))) => {
                        abort.store(true, Ordering::SeqCst);
                        first_error.get_or_insert(e);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if let Some(t) = tick.as_mut() {
                    if last_tick.elapsed() >= t.every {
                        last_tick = Instant::now();
                        if let Err(e) = (t.call)() {
                            abort.store(true, Ordering::SeqCst);
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    /// One task with its retries. Returns its numbers and whether it needed a retry.
    fn run_with_retries(&self, task: &Task, abort: &AtomicBool) -> Result<(RsyncStats, bool)> {
        let run = task.rsync_run();
        let attempts = self.retry.times.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tracing::warn!(
                    "rsync of {} failed ({last}); attempt {attempt} of {attempts} in {}s",
                    task.what,
                    self.retry.sleep.as_secs()
                );
                if !sleep_unless(abort, self.retry.sleep) {
                    break;
                }
                if let Err(e) = task.remote().ensure_alive() {
                    last = e.to_string();
                    continue;
                }
            }
            match command::execute(&self.settings, &run) {
                Ok(s) => return Ok((s, attempt > 1)),
                Err(f) => last = f.to_string(),
            }
            if abort.load(Ordering::SeqCst) {
                break;
            }
        }
        let tries = if attempts == 1 {
            String::new()
        } else {
            format!(" (basebackup_retry_times = {} exhausted)", self.retry.times)
        };
        Err(Error::Rsync {
            what: task.what.clone(),
            message: format!("{last}{tries}"),
        })
    }
}

/// Sleeps `d`, waking early (and returning false) when `abort` is raised.
fn sleep_unless(abort: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if abort.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    !abort.load(Ordering::SeqCst)
}

/// What to copy of one tree and how.
#[derive(Clone, Debug)]
pub struct TreeCopy {
    /// For messages ("PGDATA", "tablespace tbs1").
    pub what: String,
    /// From.
    pub source: Side,
    /// To.
    pub dest: Side,
    /// An earlier copy of the same tree on the destination host.
    pub reuse: Option<(ReuseMode, PathBuf)>,
    /// When the earlier copy was made (source clock, whole seconds): from its start to its end,
    /// if known. A file modified in that window may differ from the earlier copy without a
    /// visible change of size and time, so it is compared by content; one modified before has
    /// not changed since, and one modified after has a time no earlier copy can have. `None`
    /// compares every file by content.
    pub reuse_window: Option<(i64, Option<i64>)>,
    /// The tree's own bandwidth limit (kB/s).
    pub bwlimit_kbps: Option<u64>,
}

impl TreeCopy {
    fn task(&self, what: String, entries: &[&FileEntry], checksum: bool) -> Task {
        Task {
            what,
            source: self.source.clone(),
            dest: self.dest.clone(),
            names: entries.iter().map(|e| e.path.clone()).collect(),
            bytes: entries
                .iter()
                .filter(|e| e.kind == EntryKind::File)
                .map(|e| e.size)
                .sum(),
            reuse: self.reuse.clone(),
            checksum,
            bwlimit_kbps: self.bwlimit_kbps,
        }
    }

    /// Whether a file modified at `mtime` could differ from the earlier copy with the same size
    /// and time (one second of margin on each side: rsync compares whole seconds).
    pub fn may_hide_a_change(&self, mtime: i64) -> bool {
        match self.reuse_window {
            None => true,
            Some((start, end)) => {
                mtime.saturating_add(1) >= start
                    && end.is_none_or(|end| mtime <= end.saturating_add(1))
            }
        }
    }

    /// One run creating every directory of `dirs` (with its mode), or none when empty.
    pub fn dir_task(&self, dirs: &[FileEntry]) -> Option<Task> {
        if dirs.is_empty() {
            return None;
        }
        let all: Vec<&FileEntry> = dirs.iter().collect();
        let mut t = self.task(format!("{} directories", self.what), &all, false);
        // Directories hold nothing to reuse.
        t.reuse = None;
        Some(t)
    }

    /// Buckets of similar size for `files`, sized for `jobs` workers. With reuse, files
    /// modified since the horizon go into buckets of their own compared by content.
    pub fn file_tasks(&self, files: &[FileEntry], jobs: usize) -> Vec<Task> {
        let (check, safe): (Vec<&FileEntry>, Vec<&FileEntry>) = files.iter().partition(|e| {
            self.reuse.is_some() && e.kind == EntryKind::File && self.may_hide_a_change(e.mtime)
        });
        let mut out = Vec::new();
        for (group, checksum) in [(safe, false), (check, true)] {
            if group.is_empty() {
                continue;
            }
            let sizes: Vec<u64> = group.iter().map(|e| e.size).collect();
            let total: u64 = sizes.iter().sum();
            let n = buckets::bucket_count(total, group.len(), jobs);
            let split = buckets::split(&sizes, n);
            let count = split.len();
            for (i, items) in split.into_iter().enumerate() {
                let mut entries: Vec<&FileEntry> = items.iter().map(|&j| group[j]).collect();
                entries.sort_by(|a, b| a.path.cmp(&b.path));
                let kind = if checksum { " (by content)" } else { "" };
                out.push(self.task(
                    format!("{} bucket {}/{count}{kind}", self.what, i + 1),
                    &entries,
                    checksum,
                ));
            }
        }
        out
    }

    /// One run for `files`, copied as they are (the files that must come last).
    pub fn last_task(&self, files: &[FileEntry]) -> Option<Task> {
        if files.is_empty() {
            return None;
        }
        let all: Vec<&FileEntry> = files.iter().collect();
        let mut t = self.task(format!("{} control file", self.what), &all, false);
        // The control file always changes; reuse would only cost a comparison.
        t.reuse = None;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    fn entry(path: &str, kind: EntryKind, size: u64, mtime: i64) -> FileEntry {
        FileEntry {
            path: PathBuf::from(path),
            kind,
            size,
            mtime,
        }
    }

    #[test]
    fn reuse_splits_by_horizon() {
        let tree = TreeCopy {
            what: "PGDATA".into(),
            source: Side::local("/src"),
            dest: Side::local("/dst"),
            reuse: Some((ReuseMode::Link, PathBuf::from("/prev"))),
            reuse_window: Some((1000, Some(1500))),
            bwlimit_kbps: None,
        };
        let files = vec![
            entry("old", EntryKind::File, 10, 500),
            entry("edge", EntryKind::File, 10, 999),
            entry("new", EntryKind::File, 10, 1200),
            entry("end", EntryKind::File, 10, 1501),
            entry("later", EntryKind::File, 10, 2000),
            entry("link", EntryKind::Symlink, 3, 1200),
        ];
        let tasks = tree.file_tasks(&files, 1);
        let by_content: Vec<_> = tasks
            .iter()
            .filter(|t| t.checksum)
            .flat_map(|t| t.names.clone())
            .collect();
        assert_eq!(
            by_content,
            vec![
                PathBuf::from("edge"),
                PathBuf::from("end"),
                PathBuf::from("new")
            ]
        );
        let plain: usize = tasks
            .iter()
            .filter(|t| !t.checksum)
            .map(|t| t.names.len())
            .sum();
        assert_eq!(plain, 3);
        let open_ended = TreeCopy {
            reuse_window: Some((1000, None)),
            ..tree.clone()
        };
        assert!(open_ended.may_hide_a_change(2000));
        assert!(!open_ended.may_hide_a_change(998));
        let unknown = TreeCopy {
            reuse_window: None,
            ..tree.clone()
        };
        assert!(unknown.may_hide_a_change(0));

        let no_reuse = TreeCopy {
            reuse: None,
            ..tree
        };
        assert!(no_reuse.file_tasks(&files, 4).iter().all(|t| !t.checksum));
    }

    #[test]
    fn copies_in_parallel_and_reports_failures() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..20 {
            let dir = format!("d{}", i % 3);
            std::fs::create_dir_all(src.join(&dir)).unwrap();
            let name = format!("{dir}/f{i}");
            std::fs::write(src.join(&name), vec![i as u8; 1000 * (i + 1)]).unwrap();
            files.push(entry(&name, EntryKind::File, 1000 * (i as u64 + 1), 0));
        }
        for i in 0..3 {
            dirs.push(entry(&format!("d{i}"), EntryKind::Dir, 0, 0));
        }
        let tree = TreeCopy {
            what: "test".into(),
            source: Side::local(&src),
            dest: Side::local(d.path().join("dst")),
            reuse: None,
            reuse_window: None,
            bwlimit_kbps: None,
        };
        let c = Controller {
            settings: RsyncSettings::default(),
            jobs: 3,
            retry: RetryPolicy::default(),
        };
        c.run(
            vec![tree.dir_task(&dirs).unwrap()],
            &mut NoProgress,
            0,
            None,
        )
        .unwrap();
        let mut ticks = 0;
        let mut tick = || {
            ticks += 1;
            Ok(())
        };
        let s = c
            .run(
                tree.file_tasks(&files, 3),
                &mut NoProgress,
                0,
                Some(Tick {
                    every: Duration::from_millis(1),
                    call: &mut tick,
                }),
            )
            .unwrap();
        assert!(ticks > 0, "the tick ran while the copy went on");
        assert_eq!(s.rsync.files_transferred, 20);
        assert_eq!(
            s.rsync.transferred_size,
            (1..=20).map(|i| 1000 * i).sum::<u64>()
        );
        assert!(s.runs >= 3);
        for f in &files {
            assert_eq!(
                std::fs::read(d.path().join("dst").join(&f.path))
                    .unwrap()
                    .len() as u64,
                f.size
            );
        }

        let broken = Controller {
            settings: RsyncSettings {
                program: PathBuf::from("/nonexistent/rsync"),
                ..Default::default()
            },
            jobs: 2,
            retry: RetryPolicy {
                times: 2,
                sleep: Duration::from_millis(10),
            },
        };
        let e = broken
            .run(tree.file_tasks(&files, 2), &mut NoProgress, 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("basebackup_retry_times = 2 exhausted"), "{e}");
    }
}
