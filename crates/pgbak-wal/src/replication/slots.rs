//! Replication slots and timeline histories over a replication connection: CREATE_REPLICATION_SLOT,
//! DROP_REPLICATION_SLOT, READ_REPLICATION_SLOT and TIMELINE_HISTORY.

use super::{decode_row_bytes, ReplicationClient};
use crate::protocol::stream::{
    check_timeline_history, create_physical_slot_command, drop_slot_command,
    parse_read_replication_slot, read_replication_slot_command, timeline_history_command, SlotInfo,
    READ_REPLICATION_SLOT_VERSION_NUM,
};
use crate::{Error, Result};

impl ReplicationClient {
    /// Creates a physical replication slot. With `reserve_wal` the slot keeps WAL from the current
    /// position at once (as `pg_receivewal --create-slot` does), instead of from the first
    /// START_REPLICATION that uses it.
    ///
    /// A slot that already exists is a server error with SQLSTATE `42710`.
    pub async fn create_physical_slot(&mut self, name: &str, reserve_wal: bool) -> Result<()> {
        let command = create_physical_slot_command(name, reserve_wal, self.server_version_num)?;
        self.simple_query(&command).await?;
        Ok(())
    }

    /// Drops a replication slot; with `wait`, waits until no process uses it instead of failing.
    ///
    /// A slot that does not exist is a server error with SQLSTATE `42704`.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<()> {
        let command = drop_slot_command(name, wait)?;
        self.simple_query(&command).await?;
        Ok(())
    }

    /// READ_REPLICATION_SLOT: the type, restart LSN and restart timeline of a slot, or `None` when
    /// it does not exist (a logical slot, which the server refuses to read, comes back with type
    /// `logical` and nothing else). Needs PostgreSQL 15 or later (older servers answer
    /// [`Error::UnsupportedServerVersion`]; read `pg_replication_slots` over SQL instead).
    pub async fn read_replication_slot(&mut self, name: &str) -> Result<Option<SlotInfo>> {
        if self.server_version_num < READ_REPLICATION_SLOT_VERSION_NUM {
            return Err(Error::UnsupportedServerVersion {
                version: self.server_version_num.to_string(),
                reason: "READ_REPLICATION_SLOT needs PostgreSQL 15 or later".to_string(),
            });
        }
        let command = read_replication_slot_command(name)?;
        let rows = match self.simple_query(&command).await {
            Ok(rows) => rows,
            // The server refuses to read a logical slot (FEATURE_NOT_SUPPORTED): it exists, and
            // is logical, which is what the caller needs to know.
            Err(e) if e.sqlstate() == Some("0A000") => {
                return Ok(Some(SlotInfo {
                    slot_type: "logical".to_string(),
                    restart_lsn: None,
                    restart_tli: None,
                }))
            }
            Err(e) => return Err(e),
        };
        parse_read_replication_slot(&rows).map_err(|e| self.violation(e))
    }

    /// TIMELINE_HISTORY: the history file of timeline `tli` (2 or later) as (file name, content).
    /// The name is checked to be exactly `<tli as 8 hex digits>.history` and the content to parse
    /// as a history file, so both can be written to disk as they are.
    pub async fn timeline_history(&mut self, tli: u32) -> Result<(String, Vec<u8>)> {
        let command = timeline_history_command(tli)?;
        let rows = self.query_rows(&command, decode_row_bytes).await?;
        let bad = |why: String| {
            Error::protocol(format!("TIMELINE_HISTORY {tli}: {why}")).at_server(&self.server)
        };
        let [row] = rows.as_slice() else {
            return Err(bad(format!("expected 1 row, got {}", rows.len())));
        };
        let [Some(name), Some(content)] = row.as_slice() else {
            return Err(bad("expected 2 non-NULL columns".to_string()));
        };
        let name =
            String::from_utf8(name.clone()).map_err(|_| bad("file name is not UTF-8".into()))?;
        check_timeline_history(tli, &name, content).map_err(|e| self.violation(e))?;
        Ok((name, content.clone()))
    }
}
