//! `backup.json`, the metadata of one backup in the catalogue.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::parse_backup_info;

/// The folder the record is read from (the seeds' backup id).
const ID: &str = "20250101T100000";

fuzz_target!(|data: &[u8]| {
    let Ok(info) = parse_backup_info(data, ID) else {
        return;
    };
    assert!(info.format_version <= pgbak_core::fuzzing::FORMAT_VERSION);
    // A record is only read from the folder of the backup it describes: ids become paths.
    assert_eq!(info.backup_id, ID);
    // Written as the catalogue writes it, it reads back the same. Seconds are compared with a
    // tolerance: serde_json's float parsing may differ from the written value in the last bit.
    let text = serde_json::to_vec_pretty(&info).expect("backup.json serialises");
    let mut back = parse_backup_info(&text, ID).unwrap_or_else(|e| {
        panic!(
            "written metadata does not read back: {e}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    let mut info = info;
    match (info.copy_seconds.take(), back.copy_seconds.take()) {
        (Some(a), Some(b)) => assert!(a == b || (a - b).abs() <= a.abs() * 1e-15, "{a} vs {b}"),
        (a, b) => assert_eq!(a.is_some(), b.is_some()),
    }
    assert_eq!(back, info);
});
