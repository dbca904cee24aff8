//! The WAL index: its lines, and the lookup `get-wal` uses on an `xlog.db` of an earlier
//! version, checked against a plain forward reading of the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::{index_line, legacy_index_lookup, parse_index_line, parse_index_lines};
use pgbak_fuzz::scratch_dir;
use std::sync::LazyLock;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(scratch_dir);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(entry) = parse_index_line(line) {
            // A stored line reads back as the same entry (times are kept to the millisecond).
            let written = index_line(&entry);
            assert!(written.ends_with('\n'));
            let back = parse_index_line(written.trim_end_matches('\n'))
                .unwrap_or_else(|| panic!("{written:?} (from {line:?}) does not parse"));
            assert_eq!(index_line(&back), written);
        }
    }
    // Whole lines only: an unfinished last line never counts.
    let (lines, _) = parse_index_lines(data);
    if !data.ends_with(b"\n") {
        if let Some(last) = data.rsplit(|&b| b == b'\n').next() {
            if let Some(l) = parse_index_line(&String::from_utf8_lossy(last)) {
                assert!(lines.last() != Some(&l) || data.split(|&b| b == b'\n').filter(|x| x == &last).count() > 1);
            }
        }
    }
    // The name searched for is the first field of the first line.
    let name = data
        .split(|&b| b == b'\n' || b == b'\t')
        .next()
        .unwrap_or_default();
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let Ok(found) = legacy_index_lookup(DIR.path(), data, name) else {
        return; // not a WAL name: refused
    };
    let expected = lines.iter().rev().find(|e| e.name == name);
    assert_eq!(
        found.as_ref().map(index_line),
        expected.map(index_line),
        "lookup of {name:?}"
    );
});
