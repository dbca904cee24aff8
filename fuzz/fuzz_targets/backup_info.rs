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
    assert!(info.format_version <= pgbak_core::catalogue::FORMAT_VERSION);
    // A record is only read from the folder of the backup it describes: ids become paths.
    assert_eq!(info.backup_id, ID);
    // Written as the catalogue writes it, it reads back the same (seconds compared as text:
    // JSON numbers are decimal).
    let text = serde_json::to_vec_pretty(&info).expect("backup.json serialises");
    let back = parse_backup_info(&text, ID).unwrap_or_else(|e| {
        panic!(
            "written metadata does not read back: {e}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(
        serde_json::to_vec_pretty(&back).expect("backup.json serialises"),
        text
    );
});
