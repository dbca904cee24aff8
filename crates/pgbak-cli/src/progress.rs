//! Progress: a bar with rate and ETA on a terminal (backup, recover, verify-backup, delete,
//! rebuild-xlogdb); nothing on stderr otherwise (a backup then logs its progress every few
//! seconds in pgbak's log at level debug).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reports copy progress to the user.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    last_line: Instant,
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            total: None,
            last_line: Instant::now(),
            started: Instant::now(),
            quiet,
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl pgbak_copy::CopyProgress for Progress {
    fn set_total(&mut self, bytes: Option<u64>) {
        self.total = bytes;
        if let (Some(b), Some(t)) = (&self.bar, bytes) {
            b.set_length(t);
        }
    }

    fn set_done(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
        } else if !self.quiet && self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let mb = bytes as f64 / 1e6;
            tracing::debug!(
                megabytes = mb.round(),
                total_megabytes = self.total.map(|t| (t as f64 / 1e6).round()),
                megabytes_per_second = (mb / secs).round(),
                "backup progress"
            );
        }
    }
}

/// A bar drawn from a [`pgbak_core::Meter`] that a workflow's threads add to: redrawn ten times a
/// second by a thread of its own while the command runs. Nothing at all when stderr is not a
/// terminal or with `-q`.
pub struct MeterBar {
    meter: Option<pgbak_core::Meter>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MeterBar {
    /// A bar in bytes, with rate and ETA.
    pub fn start(quiet: bool, what: &'static str) -> MeterBar {
        Self::with_template(
            quiet,
            what,
            "{prefix} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A bar in files, with rate and ETA.
    pub fn start_files(quiet: bool, what: &'static str) -> MeterBar {
        Self::with_template(
            quiet,
            what,
            "{prefix} [{elapsed_precise}] {bar:40} {pos}/{len} files {per_sec} eta {eta}",
        )
    }

    fn with_template(quiet: bool, what: &'static str, template: &'static str) -> MeterBar {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return MeterBar {
                meter: None,
                stop,
                thread: None,
            };
        }
        let meter = pgbak_core::Meter::new();
        let (m, halt) = (meter.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(what);
            while !halt.load(Ordering::Relaxed) {
                if let Some(t) = m.total() {
                    bar.set_length(t.max(m.done()));
                }
                bar.set_position(m.done());
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        MeterBar {
            meter: Some(meter),
            stop,
            thread: Some(thread),
        }
    }

    /// The meter for the workflow's options (none when nothing is shown).
    pub fn meter(&self) -> Option<pgbak_core::Meter> {
        self.meter.clone()
    }

    /// Removes the bar (before the command prints its result): what dropping it does.
    pub fn finish(self) {}
}

impl Drop for MeterBar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
