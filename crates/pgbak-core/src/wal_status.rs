//! Looking at WAL from the server's side: `check-wal-archive` (is this archive empty, or does it
//! hold WAL of the system about to write into it?) and `replication-status` (the clients of
//! `pg_stat_replication` and the lag of every replication slot in bytes).

use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_wal::WalFileName;
use serde::Serialize;

/// What `check-wal-archive` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalArchiveCheck {
    /// Segments considered (on timelines at or above the one asked for).
    pub segments: usize,
    /// The system identifier found in the newest considered segment, if any.
    pub archive_system_id: Option<String>,
    /// The system identifier of the server.
    pub server_system_id: Option<String>,
}

/// Checks that the archive of `server` is empty, or that its WAL (on timelines `>= timeline`)
/// belongs to the system `system_id` (asked from the server when `None`). An archive of another
/// system is an error: a new server must not write into it.
pub fn check_wal_archive(
    server: &Server,
    timeline: Option<u32>,
    system_id: Option<u64>,
) -> Result<WalArchiveCheck> {
    let archive = server.wal_archive()?;
    let segments: Vec<String> = archive
        .segment_names()?
        .into_iter()
        .filter(|n| {
            let tli = WalFileName::parse(n).map(|p| p.tli()).unwrap_or(0);
            timeline.is_none_or(|t| tli >= t)
        })
        .collect();
    let Some(newest) = segments.iter().max_by_key(|n| (&n[8..], &n[..8])) else {
        return Ok(WalArchiveCheck {
            segments: 0,
            archive_system_id: None,
            server_system_id: system_id.map(|s| s.to_string()),
        });
    };
    let found = archive.segment_system_id(newest)?;
    let expected = match system_id {
        Some(s) => s,
        None => {
            let conn = server.connect()?;
            let v = conn
                .query_value("SELECT system_identifier::text FROM pg_control_system()")?
                .unwrap_or_default();
            v.parse().map_err(|_| Error::Sql {
                server: server.name().to_string(),
                message: format!("unexpected system identifier '{v}'"),
            })?
        }
    };
    if found != expected {
        return Err(Error::kind_of(ErrorKind::Refused, format!(
            "the WAL archive of server '{}' holds {} segments of another system (system identifier {found} in {newest}); this server is {expected}. Point the server at an empty archive, or move the old WAL away",
            server.name(),
            segments.len()
        )));
    }
    Ok(WalArchiveCheck {
        segments: segments.len(),
        archive_system_id: Some(found.to_string()),
        server_system_id: Some(expected.to_string()),
    })
}

/// One client of `pg_stat_replication`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicationClient {
    pub pid: String,
    pub user: String,
    pub application_name: String,
    pub client_addr: String,
    pub state: String,
    pub sync_state: String,
    pub sent_lsn: String,
    pub write_lsn: String,
    pub flush_lsn: String,
    pub replay_lsn: String,
    /// Bytes between the server's current position and what the client has flushed.
    pub flush_lag_bytes: Option<i64>,
    /// Bytes between the server's current position and what the client has replayed.
    pub replay_lag_bytes: Option<i64>,
    pub slot_name: String,
}

/// One replication slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SlotStatus {
    pub slot_name: String,
    pub slot_type: String,
    pub active: bool,
    pub restart_lsn: String,
    /// Bytes of WAL the slot holds back (current position minus `restart_lsn`).
    pub lag_bytes: Option<i64>,
    /// `pg_replication_slots.wal_status` (reserved, extended, unreserved, lost).
    pub wal_status: String,
}

/// What `replication-status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplicationStatus {
    pub server: String,
    pub in_recovery: bool,
    pub current_lsn: String,
    pub clients: Vec<ReplicationClient>,
    pub slots: Vec<SlotStatus>,
}

/// Reads `pg_stat_replication` and `pg_replication_slots` of `server`.
pub fn replication_status(server: &Server) -> Result<ReplicationStatus> {
    let conn = server.connect()?;
    let in_recovery = conn.is_in_recovery()?;
    // On a standby the position that matters is what it has received.
    let here = if in_recovery {
        "pg_last_wal_receive_lsn()"
    } else {
        "pg_current_wal_lsn()"
    };
    let current = conn
        .query_value(&format!("SELECT {here}::text"))?
        .unwrap_or_default();
    let rows = conn.query_text(&format!(
        "SELECT r.pid::text, coalesce(r.usename::text, ''), coalesce(r.application_name, ''), \
         coalesce(host(r.client_addr), 'socket'), coalesce(r.state, ''), coalesce(r.sync_state, ''), \
         coalesce(r.sent_lsn::text, ''), coalesce(r.write_lsn::text, ''), coalesce(r.flush_lsn::text, ''), \
         coalesce(r.replay_lsn::text, ''), pg_wal_lsn_diff({here}, r.flush_lsn)::bigint::text, \
         pg_wal_lsn_diff({here}, r.replay_lsn)::bigint::text, coalesce(s.slot_name::text, '') \
         FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid ORDER BY r.pid"
    ))?;
    let g = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let clients = rows
        .iter()
        .map(|r| ReplicationClient {
            pid: g(r, 0),
            user: g(r, 1),
            application_name: g(r, 2),
            client_addr: g(r, 3),
            state: g(r, 4),
            sync_state: g(r, 5),
            sent_lsn: g(r, 6),
            write_lsn: g(r, 7),
            flush_lsn: g(r, 8),
            replay_lsn: g(r, 9),
            flush_lag_bytes: g(r, 10).parse().ok(),
            replay_lag_bytes: g(r, 11).parse().ok(),
            slot_name: g(r, 12),
        })
        .collect();
    let rows = conn.query_text(&format!(
        "SELECT slot_name::text, slot_type, active::text, coalesce(restart_lsn::text, ''), \
         pg_wal_lsn_diff({here}, restart_lsn)::bigint::text, coalesce(wal_status, '') \
         FROM pg_replication_slots ORDER BY slot_name"
    ))?;
    let slots = rows
        .iter()
        .map(|r| SlotStatus {
            slot_name: g(r, 0),
            slot_type: g(r, 1),
            active: g(r, 2) == "true",
            restart_lsn: g(r, 3),
            lag_bytes: g(r, 4).parse().ok(),
            wal_status: g(r, 5),
        })
        .collect();
    Ok(ReplicationStatus {
        server: server.name().to_string(),
        in_recovery,
        current_lsn: current,
        clients,
        slots,
    })
}
