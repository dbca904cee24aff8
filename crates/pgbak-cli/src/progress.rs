//! Backup progress: a bar on a terminal, a log line every few seconds otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
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
            match self.total {
                Some(t) if t > 0 => eprintln!(
                    "progress: {mb:.0} MB of {:.0} MB ({:.0}%), {:.0} MB/s",
                    t as f64 / 1e6,
                    bytes as f64 * 100.0 / t as f64,
                    mb / secs
                ),
                _ => eprintln!("progress: {mb:.0} MB, {:.0} MB/s", mb / secs),
            }
        }
    }
}
