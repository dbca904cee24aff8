//! The one source of "now" for everything that ages: backup ids, backup begin and end times, and
//! the retention policies that compare them with the present.
//!
//! Tests need to take backups "in the past" and apply retention "in the future" without waiting
//! for days, so a build with the `test-hooks` feature (never a shipped one) honours a test-only
//! setting: when `PGBAK_TEST_NOW` holds an RFC 3339 time, the process starts at that instant and
//! its clock runs forward from there at the normal rate (so two backups taken by one process still
//! get distinct ids). An unset or empty variable means the real clock; an unparsable one is
//! ignored with a warning rather than trusted. Without the feature the variable is never read.

use chrono::{DateTime, Utc};
use std::time::Instant;

/// The environment variable that moves the clock (test-only; see the module documentation).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub const TEST_NOW_ENV: &str = "PGBAK_TEST_NOW";

/// The shifted start of this process: never, in a build without `test-hooks`.
#[cfg(not(feature = "test-hooks"))]
fn shifted_start() -> Option<(DateTime<Utc>, Instant)> {
    None
}

/// The shifted start of this process: the fake instant and the real moment it stands for.
#[cfg(feature = "test-hooks")]
fn shifted_start() -> Option<(DateTime<Utc>, Instant)> {
    static START: std::sync::OnceLock<Option<(DateTime<Utc>, Instant)>> =
        std::sync::OnceLock::new();
    *START.get_or_init(|| {
        let text = std::env::var(TEST_NOW_ENV).ok()?;
        if text.trim().is_empty() {
            return None;
        }
        match parse_test_now(&text) {
            Some(t) => Some((t, Instant::now())),
            None => {
                tracing::warn!("ignoring {TEST_NOW_ENV}={text:?}: not an RFC 3339 time");
                None
            }
        }
    })
}

/// Parses the value of [`TEST_NOW_ENV`].
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
fn parse_test_now(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The current time (UTC), shifted by [`TEST_NOW_ENV`] when it is set in a `test-hooks` build.
pub fn now() -> DateTime<Utc> {
    match shifted_start() {
        Some((fake, real)) => {
            let elapsed = chrono::Duration::from_std(real.elapsed()).unwrap_or_default();
            fake + elapsed
        }
        None => Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_only() {
        assert_eq!(
            parse_test_now("2024-03-01T12:00:00+02:00").unwrap(),
            DateTime::parse_from_rfc3339("2024-03-01T10:00:00Z").unwrap()
        );
        assert!(parse_test_now("yesterday").is_none());
        assert!(parse_test_now("2024-03-01 12:00").is_none());
    }

    #[test]
    fn real_clock_without_the_variable() {
        // The test process does not set the variable (and a default build never reads it).
        if cfg!(not(feature = "test-hooks")) || std::env::var_os(TEST_NOW_ENV).is_none() {
            let before = Utc::now();
            let n = now();
            assert!(n >= before && n <= Utc::now());
        }
    }
}
