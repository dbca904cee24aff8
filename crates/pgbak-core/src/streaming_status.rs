//! The rows `pgbak status` adds for WAL streaming: whether `receive-wal` runs (and its PID), and
//! the replication slot's state and how much WAL it holds back when `slot_name` is set.
//!
//! Nothing here fails the command: a server that cannot be reached or a lock that cannot be read
//! becomes a row that says so, because `status` is what an operator runs when something is wrong.

use crate::receive_wal::running_receiver;
use crate::server::Server;
use crate::units::human_size;
use crate::wal_status::{replication_status, SlotStatus};

/// What is known of the configured slot.
#[derive(Debug)]
enum SlotState {
    /// The slot exists on the server.
    Found(SlotStatus),
    /// The server answered and has no slot of that name.
    Missing,
    /// The server could not be asked.
    Unknown(String),
}

/// The streaming rows of `server`, in display order.
pub fn status_rows(server: &Server) -> Vec<(String, String)> {
    let cfg = &server.config;
    let receiver = running_receiver(server).map_err(|e| e.to_string());
    let slot = cfg.slot_name.as_deref().map(|name| {
        let state = match replication_status(server) {
            Ok(status) => status
                .slots
                .into_iter()
                .find(|s| s.slot_name == name)
                .map_or(SlotState::Missing, SlotState::Found),
            Err(e) => SlotState::Unknown(e.to_string()),
        };
        (name, state)
    });
    rows(cfg.streaming_archiver, receiver, slot)
}

/// The rows for what was found; kept apart from the lookups so it can be tested without a
/// server.
fn rows(
    streaming_archiver: bool,
    receiver: Result<Option<u32>, String>,
    slot: Option<(&str, SlotState)>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let on_off = if streaming_archiver { "on" } else { "off" };
    out.push(("streaming_archiver".to_string(), on_off.to_string()));
    let receive_wal = match receiver {
        Ok(Some(pid)) => format!("running (pid {pid})"),
        // A stopped receiver only matters when WAL is expected from it.
        Ok(None) if streaming_archiver => {
            "FAILED (not running: start it with `pgbak receive-wal` or `pgbak cron`)".to_string()
        }
        Ok(None) => "not running".to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    out.push(("receive_wal".to_string(), receive_wal));
    if let Some((name, state)) = slot {
        let (state, lag) = match state {
            SlotState::Found(s) => {
                let active = if s.active { "active" } else { "inactive" };
                let wal_status = if s.wal_status.is_empty() {
                    String::new()
                } else {
                    format!(", wal_status {}", s.wal_status)
                };
                let lag = match s.lag_bytes {
                    Some(b) => human_size(u64::try_from(b).unwrap_or(0)),
                    None => "-".to_string(),
                };
                (
                    format!(
                        "{name} ({active}{wal_status}, restart_lsn {})",
                        if s.restart_lsn.is_empty() {
                            "-"
                        } else {
                            &s.restart_lsn
                        }
                    ),
                    lag,
                )
            }
            SlotState::Missing => (
                format!("FAILED ({name} does not exist: create it with `pgbak receive-wal --create-slot`)"),
                "-".to_string(),
            ),
            SlotState::Unknown(e) => (format!("{name} (unknown: {e})"), "-".to_string()),
        };
        out.push(("replication_slot".to_string(), state));
        out.push(("replication_slot_lag".to_string(), lag));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(rows: &'a [(String, String)], key: &str) -> &'a str {
        rows.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {rows:?}"))
    }

    #[test]
    fn a_running_receiver_and_its_slot() {
        let slot = SlotStatus {
            slot_name: "pgbak".into(),
            slot_type: "physical".into(),
            active: true,
            restart_lsn: "0/3000000".into(),
            lag_bytes: Some(3 * 1024 * 1024),
            wal_status: "reserved".into(),
        };
        let r = rows(
            true,
            Ok(Some(4242)),
            Some(("pgbak", SlotState::Found(slot))),
        );
        assert_eq!(value(&r, "streaming_archiver"), "on");
        assert_eq!(value(&r, "receive_wal"), "running (pid 4242)");
        assert_eq!(
            value(&r, "replication_slot"),
            "pgbak (active, wal_status reserved, restart_lsn 0/3000000)"
        );
        assert_eq!(value(&r, "replication_slot_lag"), "3.0 MiB");
    }

    #[test]
    fn a_stopped_receiver_fails_only_when_streaming_is_on() {
        let r = rows(true, Ok(None), None);
        assert!(value(&r, "receive_wal").starts_with("FAILED"), "{r:?}");
        assert!(!r.iter().any(|(k, _)| k == "replication_slot"));
        let r = rows(false, Ok(None), None);
        assert_eq!(value(&r, "streaming_archiver"), "off");
        assert_eq!(value(&r, "receive_wal"), "not running");
    }

    #[test]
    fn a_missing_or_unreachable_slot_is_said() {
        let r = rows(true, Ok(Some(1)), Some(("pgbak", SlotState::Missing)));
        assert!(value(&r, "replication_slot").starts_with("FAILED (pgbak does not exist"));
        assert_eq!(value(&r, "replication_slot_lag"), "-");
        let r = rows(
            true,
            Err("lock unreadable".into()),
            Some(("pgbak", SlotState::Unknown("connection refused".into()))),
        );
        assert_eq!(value(&r, "receive_wal"), "unknown (lock unreadable)");
        assert_eq!(
            value(&r, "replication_slot"),
            "pgbak (unknown: connection refused)"
        );
    }
}
