//! The pure decoders of the replication protocol: framing, CopyBothResponse, ErrorResponse
//! fields, the PostgreSQL 15+ BASE_BACKUP stream, XLogData and keepalives, standby status
//! updates, result rows, version strings and sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::protocol::stream::{
    parse_end_of_timeline, parse_read_replication_slot, parse_stream_message, StandbyStatusUpdate,
    StreamMessage,
};
use pgbak_wal::protocol::{
    parse_base_backup_message, parse_copy_both_response, parse_error_fields, parse_server_version,
    parse_size_setting, peek_frame, BaseBackupMessage, MAX_MESSAGE_LEN,
};

/// Rows of text columns: rows split by `\n`, columns by `\t`, `\\N` for NULL.
fn rows(text: &str) -> Vec<Vec<Option<String>>> {
    text.split('\n')
        .map(|r| {
            r.split('\t')
                .map(|c| (c != "\\N").then(|| c.to_string()))
                .collect()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, len))) = peek_frame(data) {
        assert!(len <= data.len() && (5..=MAX_MESSAGE_LEN + 1).contains(&len));
    }
    let _ = parse_copy_both_response(data);
    let _ = parse_error_fields(data);
    if let Ok(BaseBackupMessage::NewArchive { name, .. }) = parse_base_backup_message(data) {
        assert!(!name.is_empty() && name != "." && name != ".." && !name.contains('/'));
    }
    if let Ok(StreamMessage::XLogData { header, data }) = parse_stream_message(data) {
        assert!(header.start.0.checked_add(data.len() as u64).is_some());
    }
    if let Ok(update) = StandbyStatusUpdate::decode(data) {
        let mut again = update.encode();
        again[33] = data[33];
        assert_eq!(&again[..], data);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(num) = parse_server_version(&text) {
        let _ = num;
    }
    let _ = parse_size_setting(&text);
    let rows = rows(&text);
    if let Ok(Some(slot)) = parse_read_replication_slot(&rows) {
        assert!(slot.slot_type == "physical" || slot.slot_type == "logical");
    }
    if let Ok((tli, _)) = parse_end_of_timeline(&rows) {
        assert!(tli > 0);
    }
});
