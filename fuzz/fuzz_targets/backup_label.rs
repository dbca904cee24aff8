//! The `backup_label` file of a base backup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::segment::WalFileName;
use pgbak_wal::BackupLabel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(label) = BackupLabel::parse(text) else {
        return;
    };
    // What a successful parse promises: the named file is a WAL segment of the start timeline.
    match WalFileName::parse(&label.start_wal_file) {
        Ok(f @ WalFileName::Segment { .. }) => assert_eq!(f.tli(), label.start_timeline),
        other => panic!("start file {:?} parsed as {other:?}", label.start_wal_file),
    }
    // Written back in PostgreSQL's layout, it parses to the same label. The label keeps its
    // spaces, and the reader drops one '\r' before a line's '\n' (files with CRLF line ends are
    // read), so the lines end with "\r\n" to keep a label that ends with '\r' whole.
    let written = format!(
        "START WAL LOCATION: {} (file {})\r\nCHECKPOINT LOCATION: {}\r\nBACKUP METHOD: {}\r\n\
         BACKUP FROM: {}\r\nSTART TIME: {}\r\nLABEL: {}\r\nSTART TIMELINE: {}\r\n",
        label.start_lsn,
        label.start_wal_file,
        label.checkpoint_lsn,
        label.backup_method,
        label.backup_from,
        label.start_time,
        label.label,
        label.start_timeline
    );
    let back = BackupLabel::parse(&written)
        .unwrap_or_else(|e| panic!("{written:?} (from {text:?}) does not parse: {e}"));
    assert_eq!(back, label);
});
