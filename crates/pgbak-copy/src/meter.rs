//! A progress meter that worker threads add to and a front end reads: bytes (or items) done and
//! the expected total. Cheap to clone (one shared counter); adding is one atomic operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Progress of a long workflow, shared by its workers and whoever shows it.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    /// The expected total plus one; 0 while it is not known.
    total: AtomicU64,
    cancelled: std::sync::atomic::AtomicBool,
}

impl Meter {
    /// A meter at zero with no total.
    pub fn new() -> Meter {
        Meter::default()
    }

    /// Sets the expected total.
    pub fn set_total(&self, total: u64) {
        self.inner
            .total
            .store(total.saturating_add(1), Ordering::Relaxed);
    }

    /// Adds `n` to what is done.
    pub fn add(&self, n: u64) {
        self.inner.done.fetch_add(n, Ordering::Relaxed);
    }

    /// What is done so far.
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Asks the work counted here to stop: its next count fails.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Meter::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// The expected total, when known.
    pub fn total(&self) -> Option<u64> {
        match self.inner.total.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t - 1),
        }
    }
}

/// Adds to `meter`, if any; fails once the meter is cancelled (naming `path`, the file being
/// written).
pub fn tick(meter: &Option<Meter>, n: usize, path: &std::path::Path) -> crate::Result<()> {
    if let Some(m) = meter {
        m.add(n as u64);
        if m.is_cancelled() {
            return Err(cancelled(path));
        }
    }
    Ok(())
}

/// The error of work stopped by [`Meter::cancel`].
fn cancelled(path: &std::path::Path) -> crate::Error {
    crate::Error::io(
        "stop at",
        path,
        std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled by the caller"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_count_from_many_threads() {
        let m = Meter::new();
        assert_eq!(m.total(), None);
        m.set_total(0);
        assert_eq!(m.total(), Some(0));
        m.set_total(4000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let m = m.clone();
                s.spawn(move || (0..1000).for_each(|_| m.add(1)));
            }
        });
        assert_eq!(m.done(), 4000);
        assert_eq!(m.total(), Some(4000));
        let p = std::path::Path::new("f");
        assert!(tick(&Some(m.clone()), 1, p).is_ok());
        m.clone().cancel();
        assert!(m.is_cancelled());
        assert!(tick(&Some(m), 1, p).is_err());
    }
}
