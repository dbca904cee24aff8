//! Named points inside multi-step operations where a test can freeze the process, to kill it
//! there and prove that the half-done work leaves a usable catalogue.
//!
//! Test-only, and only in a build with the `test-hooks` feature (never a shipped one): when
//! `PGBAK_TEST_PAUSE_AT` lists a point's name (comma-separated, e.g. `delete:after-data`), the
//! process prints `PGBAK_TEST_PAUSED <name> <pid>` on stderr when it reaches that point and then
//! sleeps until it is killed. Unset, the points cost one environment lookup each; without the
//! feature they cost nothing and the variable is never read.
//!
//! The points of `delete` are, in order: `delete:after-marker`, `delete:after-metadata`,
//! `delete:after-data`, `delete:mid-wal` (after the first WAL file is removed) and
//! `delete:after-wal`. `archive-wal:before-commit` pauses an archive with the compressed copy
//! written under its temporary name.

/// The environment variable naming the points to pause at.
pub const PAUSE_ENV: &str = "PGBAK_TEST_PAUSE_AT";

/// The line printed on stderr when a pause begins (followed by the point's name and the PID).
pub const PAUSED_BANNER: &str = "PGBAK_TEST_PAUSED";

/// Whether `name` is listed in `setting`.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
fn listed(setting: &str, name: &str) -> bool {
    setting.split(',').any(|p| p.trim() == name)
}

/// Does nothing: this build has no `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn pause_point(_name: &str) {}

/// Pauses forever if the test settings ask for a pause at `name`.
#[cfg(feature = "test-hooks")]
pub fn pause_point(name: &str) {
    let Ok(setting) = std::env::var(PAUSE_ENV) else {
        return;
    };
    if !listed(&setting, name) {
        return;
    }
    use std::io::Write;
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{PAUSED_BANNER} {name} {}", std::process::id());
    let _ = err.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_matched_whole() {
        assert!(super::listed("delete:after-data", "delete:after-data"));
        assert!(super::listed("a, delete:after-data", "delete:after-data"));
        assert!(!super::listed("delete:after-data-x", "delete:after-data"));
        assert!(!super::listed("", "delete:after-data"));
    }
}
