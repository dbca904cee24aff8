//! `pgbak check`: every check Barman runs that applies to pgbak, in Barman's order and with its
//! names, each one an OK or FAILED line with a hint. Any FAILED line of an active server is a
//! failure of the command; checks Barman calls non-critical are marked so that a caller such as
//! `backup` may choose to ignore them.
//!
//! The whole run is bounded by the server's `check_timeout`: checks that have not finished by then
//! are cut short with a `check timeout` failure.

mod remote;
mod report;
mod server_checks;

pub use report::{console_lines, human_duration, json_report, nagios_report, NagiosReport};

use crate::config::Config;
use crate::{Error, Result};
use serde::Serialize;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Checks whose failure does not stop a backup (Barman's `NON_CRITICAL_CHECKS`, plus pgbak's
/// catalogue check).
pub const NON_CRITICAL_CHECKS: &[&str] = &[
    "minimum redundancy requirements",
    "backup maximum age",
    "backup minimum size",
    "failed backups",
    "archiver errors",
    "empty incoming directory",
    "empty streaming directory",
    "incoming WALs directory",
    "streaming WALs directory",
    "wal maximum age",
    "PostgreSQL server is standby",
    // pgbak's own: an unreadable metadata file of an old backup must not stop new backups.
    "backup catalogue",
];

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Barman's name for it, e.g. `wal_level` or `backup maximum age`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What to look at, or a detail worth knowing when it passed.
    pub hint: Option<String>,
    /// Whether a failure should stop a backup.
    pub critical: bool,
}

impl Check {
    /// A check result; criticality follows [`NON_CRITICAL_CHECKS`]. The hint is shown by every
    /// front end (console, Nagios, JSON, log), so a password in it is masked here.
    pub fn new(name: &str, ok: bool, hint: Option<String>) -> Check {
        Check {
            name: name.to_string(),
            ok,
            hint: hint.map(|h| pgbak_wal::redact::redact(&h).into_owned()),
            critical: !NON_CRITICAL_CHECKS.contains(&name),
        }
    }
}

/// Every check of one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerChecks {
    /// The server's name.
    pub server: String,
    /// Whether the server is active: an inactive server's failures are shown but do not count.
    pub active: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl ServerChecks {
    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// Whether this server counts as healthy: active with no failure, or inactive.
    pub fn ok(&self) -> bool {
        !self.active || self.checks.iter().all(|c| c.ok)
    }

    /// Whether no critical check failed (what a backup needs).
    pub fn ready_for_backup(&self) -> bool {
        self.checks.iter().all(|c| c.ok || !c.critical)
    }
}

/// Options of a check run.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Bound on the whole run (zero: none); `None` uses the server's `check_timeout` (0 there
    /// = no bound).
    pub timeout: Option<Duration>,
    /// When the archive holds no WAL yet, ask PostgreSQL to switch WAL and wait (up to a third of
    /// the timeout) for the segment to arrive, as Barman does, so that a new server's first check
    /// proves archiving works end to end.
    pub switch_wal_if_empty: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            switch_wal_if_empty: true,
        }
    }
}

/// Runs every check of server `name`. Only an unknown server is an error: everything else is a
/// FAILED check, including a server disabled by its configuration (its `configuration` check
/// fails with the reason, as Barman reports an invalid section).
///
/// The checks run on their own thread so that the timeout holds whatever blocks; a run cut short
/// leaves that thread to finish on its own (its results are dropped).
pub fn check_server(config: &Config, name: &str, opts: &CheckOptions) -> Result<ServerChecks> {
    if let Some(disabled) = config.disabled.get(name) {
        return Ok(ServerChecks {
            server: name.to_string(),
            active: disabled.active,
            checks: vec![Check::new(
                "configuration",
                false,
                Some(format!("server disabled: {}", disabled.reason)),
            )],
        });
    }
    config.server(name)?;
    let server = crate::server::Server::new(config, name)?;
    check_loaded_server(&server, opts)
}

/// Runs every check of an already loaded `server` (what `backup` runs before it starts), bounded
/// like [`check_server`].
pub fn check_loaded_server(
    server: &crate::server::Server,
    opts: &CheckOptions,
) -> Result<ServerChecks> {
    let server_config = &server.config;
    let name = server_config.name.clone();
    let timeout = match opts.timeout {
        Some(t) if t.is_zero() => None,
        Some(t) => Some(t),
        None => (server_config.check_timeout > 0)
            .then(|| Duration::from_secs(server_config.check_timeout)),
    };
    let (tx, rx) = mpsc::channel::<Check>();
    let server_owned = server.clone();
    let name_owned = name.clone();
    let switch = opts.switch_wal_if_empty;
    std::thread::Builder::new()
        .name(format!("check {name}"))
        .spawn(move || {
            let mut emit = |c: Check| {
                if c.ok {
                    tracing::debug!(server = %name_owned, check = %c.name, "check passed");
                } else {
                    // Shown by the command itself; the log keeps it for later.
                    tracing::info!(server = %name_owned, check = %c.name, hint = c.hint.as_deref().unwrap_or(""), "check failed");
                }
                let _ = tx.send(c);
            };
            let lock_directory = server_owned.lock_directory().to_path_buf();
            server_checks::run(&server_owned, &lock_directory, timeout, switch, &mut emit);
        })
        .map_err(|e| Error::Other(format!("cannot start the checks of server '{name}': {e}")))?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut checks = Vec::new();
    loop {
        let next = match deadline {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(c) => checks.push(c),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                checks.push(Check::new(
                    "check timeout",
                    false,
                    Some("pgbak check command timed out".into()),
                ));
                break;
            }
        }
    }
    Ok(ServerChecks {
        server: name,
        active: server_config.active,
        checks,
    })
}
