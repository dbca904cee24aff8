//! Pure pieces of physical WAL streaming: the CopyData messages a walsender sends during
//! START_REPLICATION (XLogData `'w'`, primary keepalive `'k'`), the standby status update `'r'` the
//! client sends back, the replication commands about slots and timelines, the result rows they
//! return, and PostgreSQL's clock (microseconds since 2000-01-01 00:00:00 UTC).
//!
//! Everything here is fed with bytes and strings so that unit tests pin the wire format; the
//! async layer in [`crate::replication`] only moves these over a socket.

use crate::{Error, Lsn, Result, TimelineHistory};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Type byte of an XLogData message (WAL bytes).
pub const XLOG_DATA_TAG: u8 = b'w';
/// Type byte of a primary keepalive message.
pub const KEEPALIVE_TAG: u8 = b'k';
/// Type byte of a standby status update (sent by the client).
pub const STANDBY_STATUS_TAG: u8 = b'r';
/// Bytes before the WAL payload of an XLogData message: type, start, end, send time.
pub const XLOG_DATA_HEADER_LEN: usize = 1 + 8 + 8 + 8;
/// Exact length of a primary keepalive message.
pub const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;
/// Exact length of a standby status update.
pub const STANDBY_STATUS_LEN: usize = 1 + 8 + 8 + 8 + 8 + 1;
/// Seconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 00:00:00 UTC).
pub const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;
/// Longest replication slot name PostgreSQL accepts (`NAMEDATALEN - 1`).
pub const MAX_SLOT_NAME_LEN: usize = 63;
/// First server version with READ_REPLICATION_SLOT and the parenthesised CREATE_REPLICATION_SLOT
/// options.
pub const READ_REPLICATION_SLOT_VERSION_NUM: u32 = 150000;

/// The header of an XLogData message; the WAL bytes follow at [`XLOG_DATA_HEADER_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XLogDataHeader {
    /// WAL position of the first byte of the payload.
    pub start: Lsn,
    /// The server's current end of WAL (not the end of this payload).
    pub wal_end: Lsn,
    /// The server's clock when it sent the message (microseconds since 2000-01-01 UTC).
    pub server_time: i64,
}

/// A primary keepalive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when it sent the message (microseconds since 2000-01-01 UTC).
    pub server_time: i64,
    /// The server asks for a status update at once (it would otherwise time the client out, or it
    /// is shutting down and waits for the client to confirm what it has flushed).
    pub reply_requested: bool,
}

/// One CopyData payload of a physical replication stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMessage<'a> {
    /// WAL bytes.
    XLogData {
        /// Where they start and what the server knows.
        header: XLogDataHeader,
        /// The WAL bytes themselves.
        data: &'a [u8],
    },
    /// A keepalive.
    Keepalive(PrimaryKeepalive),
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Decodes one CopyData payload of a physical replication stream.
///
/// ```
/// use pgbak_wal::protocol::stream::{parse_stream_message, StreamMessage};
/// let mut msg = vec![b'k'];
/// msg.extend_from_slice(&0x0100_0000u64.to_be_bytes());
/// msg.extend_from_slice(&5i64.to_be_bytes());
/// msg.push(1);
/// let StreamMessage::Keepalive(k) = parse_stream_message(&msg).unwrap() else { panic!() };
/// assert_eq!(k.wal_end.to_string(), "0/1000000");
/// assert!(k.reply_requested);
/// ```
pub fn parse_stream_message(payload: &[u8]) -> Result<StreamMessage<'_>> {
    let Some(&kind) = payload.first() else {
        return Err(Error::protocol("empty message in the replication stream"));
    };
    match kind {
        XLOG_DATA_TAG => {
            if payload.len() < XLOG_DATA_HEADER_LEN {
                return Err(Error::protocol(format!(
                    "XLogData message of {} bytes is shorter than its {XLOG_DATA_HEADER_LEN}-byte header",
                    payload.len()
                )));
            }
            let header = XLogDataHeader {
                start: Lsn(be_u64(&payload[1..])),
                wal_end: Lsn(be_u64(&payload[9..])),
                server_time: be_u64(&payload[17..]) as i64,
            };
            let data = &payload[XLOG_DATA_HEADER_LEN..];
            if header.start.0.checked_add(data.len() as u64).is_none() {
                return Err(Error::protocol(format!(
                    "XLogData at {} with {} bytes runs past the end of the WAL address space",
                    header.start,
                    data.len()
                )));
            }
            Ok(StreamMessage::XLogData { header, data })
        }
        KEEPALIVE_TAG => {
            if payload.len() != KEEPALIVE_LEN {
                return Err(Error::protocol(format!(
                    "keepalive message of {} bytes (expected {KEEPALIVE_LEN})",
                    payload.len()
                )));
            }
            let reply = payload[17];
            if reply > 1 {
                return Err(Error::protocol(format!(
                    "keepalive reply-requested flag is {reply} (expected 0 or 1)"
                )));
            }
            Ok(StreamMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn(be_u64(&payload[1..])),
                server_time: be_u64(&payload[9..]) as i64,
                reply_requested: reply == 1,
            }))
        }
        other => Err(Error::protocol(format!(
            "unknown message type '{}' in the replication stream",
            char::from(other).escape_default()
        ))),
    }
}

/// A standby status update: what the client has received, made durable and applied.
///
/// The server moves a physical slot's `restart_lsn` to `flush`, so `flush` must never name WAL
/// that is not durable on the client yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// End of the WAL received and written (not necessarily durable).
    pub write: Lsn,
    /// End of the WAL that is durable ([`Lsn::INVALID`] reports nothing).
    pub flush: Lsn,
    /// End of the WAL applied ([`Lsn::INVALID`]: an archiver applies nothing).
    pub apply: Lsn,
    /// The client's clock (microseconds since 2000-01-01 UTC).
    pub client_time: i64,
    /// Ask the server to answer with a keepalive at once.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// The CopyData payload of this update.
    ///
    /// ```
    /// use pgbak_wal::{Lsn, protocol::stream::StandbyStatusUpdate};
    /// let u = StandbyStatusUpdate {
    ///     write: Lsn(0x300), flush: Lsn(0x200), apply: Lsn::INVALID, client_time: 7, reply_requested: false,
    /// };
    /// let bytes = u.encode();
    /// assert_eq!(bytes[0], b'r');
    /// assert_eq!(bytes.len(), 34);
    /// assert_eq!(&bytes[9..17], &0x200u64.to_be_bytes());
    /// ```
    pub fn encode(&self) -> [u8; STANDBY_STATUS_LEN] {
        let mut out = [0u8; STANDBY_STATUS_LEN];
        out[0] = STANDBY_STATUS_TAG;
        out[1..9].copy_from_slice(&self.write.0.to_be_bytes());
        out[9..17].copy_from_slice(&self.flush.0.to_be_bytes());
        out[17..25].copy_from_slice(&self.apply.0.to_be_bytes());
        out[25..33].copy_from_slice(&self.client_time.to_be_bytes());
        out[33] = u8::from(self.reply_requested);
        out
    }

    /// Decodes an update (what a server reads); used to check the encoding.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        if payload.len() != STANDBY_STATUS_LEN || payload[0] != STANDBY_STATUS_TAG {
            return Err(Error::protocol("not a standby status update"));
        }
        Ok(StandbyStatusUpdate {
            write: Lsn(be_u64(&payload[1..])),
            flush: Lsn(be_u64(&payload[9..])),
            apply: Lsn(be_u64(&payload[17..])),
            client_time: be_u64(&payload[25..]) as i64,
            reply_requested: payload[33] != 0,
        })
    }
}

/// `t` on PostgreSQL's clock: microseconds since 2000-01-01 00:00:00 UTC (negative before).
pub fn pg_timestamp(t: SystemTime) -> i64 {
    let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
    match t.duration_since(epoch) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros())
            .map(|m| -m)
            .unwrap_or(i64::MIN),
    }
}

/// A PostgreSQL timestamp (microseconds since 2000-01-01 UTC) as a `SystemTime`.
pub fn system_time_from_pg(ts: i64) -> SystemTime {
    let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
    let magnitude = Duration::from_micros(ts.unsigned_abs());
    if ts >= 0 {
        epoch + magnitude
    } else {
        epoch - magnitude
    }
}

/// Checks a replication slot name the way PostgreSQL does (`ReplicationSlotValidateName`): 1 to
/// 63 characters, lower-case letters, digits and underscores only. The name is put into commands,
/// so nothing else may pass.
pub fn validate_slot_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_SLOT_NAME_LEN {
        Some(format!("it is longer than {MAX_SLOT_NAME_LEN} characters"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("only lower-case letters, digits and underscores are allowed".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidOption {
            option: format!("replication slot name {name:?}"),
            reason,
        }),
        None => Ok(()),
    }
}

/// `START_REPLICATION [SLOT "name"] PHYSICAL X/X TIMELINE n`, as pg_receivewal sends it.
pub fn start_replication_command(slot: Option<&str>, start: Lsn, tli: u32) -> Result<String> {
    if tli == 0 {
        return Err(Error::InvalidOption {
            option: "START_REPLICATION timeline".to_string(),
            reason: "timeline 0 does not exist".to_string(),
        });
    }
    let slot_part = match slot {
        Some(name) => {
            validate_slot_name(name)?;
            format!("SLOT \"{name}\" ")
        }
        None => String::new(),
    };
    Ok(format!(
        "START_REPLICATION {slot_part}PHYSICAL {start} TIMELINE {tli}"
    ))
}

/// `CREATE_REPLICATION_SLOT "name" PHYSICAL` with `RESERVE_WAL` in the syntax of the server's
/// generation (parenthesised options from PostgreSQL 15).
pub fn create_physical_slot_command(
    name: &str,
    reserve_wal: bool,
    server_version_num: u32,
) -> Result<String> {
    validate_slot_name(name)?;
    let options = match (
        reserve_wal,
        server_version_num >= READ_REPLICATION_SLOT_VERSION_NUM,
    ) {
        (false, _) => "",
        (true, true) => " (RESERVE_WAL)",
        (true, false) => " RESERVE_WAL",
    };
    Ok(format!(
        "CREATE_REPLICATION_SLOT \"{name}\" PHYSICAL{options}"
    ))
}

/// `DROP_REPLICATION_SLOT "name" [WAIT]`.
pub fn drop_slot_command(name: &str, wait: bool) -> Result<String> {
    validate_slot_name(name)?;
    Ok(format!(
        "DROP_REPLICATION_SLOT \"{name}\"{}",
        if wait { " WAIT" } else { "" }
    ))
}

/// `READ_REPLICATION_SLOT "name"` (PostgreSQL 15 and later).
pub fn read_replication_slot_command(name: &str) -> Result<String> {
    validate_slot_name(name)?;
    Ok(format!("READ_REPLICATION_SLOT \"{name}\""))
}

/// `TIMELINE_HISTORY n`.
pub fn timeline_history_command(tli: u32) -> Result<String> {
    if tli < 2 {
        return Err(Error::InvalidOption {
            option: "TIMELINE_HISTORY timeline".to_string(),
            reason: format!("timeline {tli} has no history file (only timelines from 2 do)"),
        });
    }
    Ok(format!("TIMELINE_HISTORY {tli}"))
}

/// What READ_REPLICATION_SLOT (or `pg_replication_slots`) says about a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// `physical` or `logical`.
    pub slot_type: String,
    /// Oldest WAL position the slot keeps on the server (`None`: no WAL reserved, or the slot was
    /// invalidated).
    pub restart_lsn: Option<Lsn>,
    /// Timeline of `restart_lsn` (`None` when unknown).
    pub restart_tli: Option<u32>,
}

impl SlotInfo {
    /// Whether this is a physical slot (the only kind WAL can be streamed from).
    pub fn is_physical(&self) -> bool {
        self.slot_type == "physical"
    }
}

/// Reads the answer of READ_REPLICATION_SLOT: one row of (slot_type, restart_lsn, restart_tli),
/// all NULL when the slot does not exist.
pub fn parse_read_replication_slot(rows: &[Vec<Option<String>>]) -> Result<Option<SlotInfo>> {
    let bad = |why: String| Error::protocol(format!("READ_REPLICATION_SLOT: {why}"));
    let [row] = rows else {
        return Err(bad(format!("expected 1 row, got {}", rows.len())));
    };
    if row.len() != 3 {
        return Err(bad(format!("expected 3 columns, got {}", row.len())));
    }
    let Some(slot_type) = row[0].clone() else {
        return Ok(None);
    };
    if slot_type != "physical" && slot_type != "logical" {
        return Err(bad(format!("unknown slot type {slot_type:?}")));
    }
    let restart_lsn = match row[1].as_deref() {
        None => None,
        Some(t) => Some(
            t.parse::<Lsn>()
                .map_err(|_| bad(format!("restart_lsn {t:?} is not an LSN")))?,
        )
        .filter(|l| l.is_valid()),
    };
    let restart_tli = match row[2].as_deref() {
        None => None,
        Some(t) => Some(
            t.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("restart_tli {t:?} is not a timeline")))?,
        ),
    };
    Ok(Some(SlotInfo {
        slot_type,
        restart_lsn,
        restart_tli,
    }))
}

/// Reads the row the server sends when it stops streaming a timeline that is not its latest:
/// (next timeline, LSN where it begins).
pub fn parse_end_of_timeline(rows: &[Vec<Option<String>>]) -> Result<(u32, Lsn)> {
    let bad = |why: String| Error::protocol(format!("end-of-timeline result: {why}"));
    let [row] = rows else {
        return Err(bad(format!("expected 1 row, got {}", rows.len())));
    };
    if row.len() != 2 {
        return Err(bad(format!("expected 2 columns, got {}", row.len())));
    }
    let tli = row[0]
        .as_deref()
        .and_then(|t| t.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| bad(format!("next timeline {:?} is not a timeline", row[0])))?;
    let lsn = row[1]
        .as_deref()
        .and_then(|t| t.parse::<Lsn>().ok())
        .ok_or_else(|| bad(format!("next timeline start {:?} is not an LSN", row[1])))?;
    Ok((tli, lsn))
}

/// Checks the answer of TIMELINE_HISTORY for timeline `tli`: the file name must be exactly the
/// history file of that timeline (the server never picks a path on this host) and the content must
/// parse as a history file.
pub fn check_timeline_history(tli: u32, filename: &str, content: &[u8]) -> Result<()> {
    let expected = format!("{tli:08X}.history");
    if filename != expected {
        return Err(Error::protocol(format!(
            "TIMELINE_HISTORY {tli} returned file name {filename:?} (expected {expected})"
        )));
    }
    // Reasons may hold any text a restore point name had; the structure is what matters here.
    TimelineHistory::parse(tli, &String::from_utf8_lossy(content))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xlog_data(start: u64, end: u64, time: i64, data: &[u8]) -> Vec<u8> {
        let mut v = vec![b'w'];
        v.extend_from_slice(&start.to_be_bytes());
        v.extend_from_slice(&end.to_be_bytes());
        v.extend_from_slice(&time.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn xlog_data_is_decoded() {
        let msg = xlog_data(0x1_0000_0000, 0x1_0000_0100, -5, b"walbytes");
        let StreamMessage::XLogData { header, data } = parse_stream_message(&msg).unwrap() else {
            panic!("not XLogData")
        };
        assert_eq!(header.start.to_string(), "1/0");
        assert_eq!(header.wal_end.to_string(), "1/100");
        assert_eq!(header.server_time, -5);
        assert_eq!(data, b"walbytes");
        // A header with no payload is legal (the server never sends one, but it is well formed).
        let empty = xlog_data(16, 16, 0, b"");
        assert!(matches!(
            parse_stream_message(&empty).unwrap(),
            StreamMessage::XLogData { data: b"", .. }
        ));
    }

    #[test]
    fn malformed_stream_messages_are_refused() {
        let mut wraps = xlog_data(u64::MAX - 2, 0, 0, b"abcd");
        let short = &xlog_data(1, 2, 3, b"")[..24];
        let mut keepalive = vec![b'k'];
        keepalive.extend_from_slice(&[0; 16]);
        keepalive.push(2);
        let mut long_keepalive = keepalive.clone();
        long_keepalive[17] = 0;
        long_keepalive.push(0);
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty"),
            (b"x123", "unknown message type 'x'"),
            (short, "shorter than its 25-byte header"),
            (&keepalive, "reply-requested flag is 2"),
            (&long_keepalive, "keepalive message of 19 bytes"),
            (b"k", "keepalive message of 1 bytes"),
        ];
        for (bytes, want) in cases {
            let err = parse_stream_message(bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{bytes:?}: {err}");
        }
        wraps.truncate(XLOG_DATA_HEADER_LEN + 4);
        let err = parse_stream_message(&wraps).unwrap_err().to_string();
        assert!(err.contains("past the end"), "{err}");
    }

    #[test]
    fn keepalive_is_decoded() {
        let mut msg = vec![b'k'];
        msg.extend_from_slice(&0x2_0000_0028u64.to_be_bytes());
        msg.extend_from_slice(&777i64.to_be_bytes());
        msg.push(0);
        assert_eq!(
            parse_stream_message(&msg).unwrap(),
            StreamMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn(0x2_0000_0028),
                server_time: 777,
                reply_requested: false
            })
        );
    }

    #[test]
    fn status_update_wire_format() {
        let u = StandbyStatusUpdate {
            write: Lsn(0x0102_0304_0506_0708),
            flush: Lsn(0x10),
            apply: Lsn::INVALID,
            client_time: 0x1122_3344_5566_7788,
            reply_requested: true,
        };
        let b = u.encode();
        let mut want = vec![b'r', 1, 2, 3, 4, 5, 6, 7, 8];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x10]);
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        want.push(1);
        assert_eq!(b.to_vec(), want);
        assert_eq!(StandbyStatusUpdate::decode(&b).unwrap(), u);
        assert!(StandbyStatusUpdate::decode(&b[..33]).is_err());
    }

    #[test]
    fn postgres_clock() {
        let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        assert_eq!(pg_timestamp(epoch), 0);
        assert_eq!(
            pg_timestamp(epoch + Duration::from_micros(1_500_000)),
            1_500_000
        );
        assert_eq!(pg_timestamp(UNIX_EPOCH), -946_684_800_000_000);
        for ts in [0i64, 1, -1, 789_123_456_789_012, -946_684_800_000_000] {
            assert_eq!(pg_timestamp(system_time_from_pg(ts)), ts);
        }
        // 2024-01-01T00:00:00Z is 24 years (6 leap days) after the epoch.
        let y2024 = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(pg_timestamp(y2024), (24 * 365 + 6) * 86_400 * 1_000_000);
    }

    #[test]
    fn slot_names() {
        for good in ["pgbak", "a", "slot_1", "1abc", &"x".repeat(63)] {
            validate_slot_name(good).unwrap();
        }
        for bad in [
            "",
            "Pgbak",
            "a-b",
            "a b",
            "a\"b",
            "é",
            &"x".repeat(64),
            "a;DROP",
        ] {
            assert!(
                matches!(validate_slot_name(bad), Err(Error::InvalidOption { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            start_replication_command(Some("pgbak"), Lsn(0x1_0200_0000), 3).unwrap(),
            "START_REPLICATION SLOT \"pgbak\" PHYSICAL 1/2000000 TIMELINE 3"
        );
        assert_eq!(
            start_replication_command(None, Lsn(0), 1).unwrap(),
            "START_REPLICATION PHYSICAL 0/0 TIMELINE 1"
        );
        assert!(start_replication_command(None, Lsn(0), 0).is_err());
        assert!(start_replication_command(Some("x\" y"), Lsn(0), 1).is_err());
        assert_eq!(
            create_physical_slot_command("s", true, 150004).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" PHYSICAL (RESERVE_WAL)"
        );
        assert_eq!(
            create_physical_slot_command("s", true, 140010).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" PHYSICAL RESERVE_WAL"
        );
        assert_eq!(
            create_physical_slot_command("s", false, 170000).unwrap(),
            "CREATE_REPLICATION_SLOT \"s\" PHYSICAL"
        );
        assert_eq!(
            drop_slot_command("s", true).unwrap(),
            "DROP_REPLICATION_SLOT \"s\" WAIT"
        );
        assert_eq!(
            drop_slot_command("s", false).unwrap(),
            "DROP_REPLICATION_SLOT \"s\""
        );
        assert_eq!(
            read_replication_slot_command("s").unwrap(),
            "READ_REPLICATION_SLOT \"s\""
        );
        assert_eq!(timeline_history_command(2).unwrap(), "TIMELINE_HISTORY 2");
        assert!(timeline_history_command(1).is_err());
        for bad in ["", "S"] {
            assert!(create_physical_slot_command(bad, true, 150000).is_err());
            assert!(drop_slot_command(bad, true).is_err());
            assert!(read_replication_slot_command(bad).is_err());
        }
    }

    fn row(cols: &[Option<&str>]) -> Vec<Option<String>> {
        cols.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn read_replication_slot_rows() {
        assert_eq!(
            parse_read_replication_slot(&[row(&[Some("physical"), Some("0/3000060"), Some("1")])])
                .unwrap(),
            Some(SlotInfo {
                slot_type: "physical".into(),
                restart_lsn: Some(Lsn(0x3000060)),
                restart_tli: Some(1)
            })
        );
        // A slot that reserves no WAL yet.
        let s = parse_read_replication_slot(&[row(&[Some("physical"), None, None])])
            .unwrap()
            .unwrap();
        assert!(s.is_physical());
        assert_eq!((s.restart_lsn, s.restart_tli), (None, None));
        assert_eq!(
            parse_read_replication_slot(&[row(&[None, None, None])]).unwrap(),
            None
        );
        let logical = parse_read_replication_slot(&[row(&[Some("logical"), None, None])])
            .unwrap()
            .unwrap();
        assert!(!logical.is_physical());
        for bad in [
            vec![],
            vec![row(&[None, None, None]), row(&[None, None, None])],
            vec![row(&[Some("physical"), None])],
            vec![row(&[Some("other"), None, None])],
            vec![row(&[Some("physical"), Some("zz"), None])],
            vec![row(&[Some("physical"), Some("0/1"), Some("0")])],
            vec![row(&[Some("physical"), Some("0/1"), Some("-1")])],
        ] {
            assert!(parse_read_replication_slot(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn end_of_timeline_rows() {
        assert_eq!(
            parse_end_of_timeline(&[row(&[Some("2"), Some("0/5000A0")])]).unwrap(),
            (2, Lsn(0x5000A0))
        );
        for bad in [
            vec![],
            vec![row(&[Some("2")])],
            vec![row(&[Some("0"), Some("0/1")])],
            vec![row(&[None, Some("0/1")])],
            vec![row(&[Some("2"), Some("x")])],
            vec![row(&[Some("2"), None])],
        ] {
            assert!(parse_end_of_timeline(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeline_history_answers() {
        let content = b"1\t0/3000158\tno recovery target specified\n";
        check_timeline_history(2, "00000002.history", content).unwrap();
        check_timeline_history(10, "0000000A.history", b"1\t0/1\tx\n9\t0/2\ty\n").unwrap();
        let err = check_timeline_history(2, "../../etc/passwd", content).unwrap_err();
        assert!(err.to_string().contains("file name"), "{err}");
        assert!(check_timeline_history(2, "00000003.history", content).is_err());
        assert!(check_timeline_history(2, "00000002.history", b"garbage\n").is_err());
        assert!(check_timeline_history(2, "00000002.history", b"2\t0/1\tself\n").is_err());
    }
}
