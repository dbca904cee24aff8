//! The WAL index (`xlog.db`): its lines, and the backward search `get-wal` uses, checked against
//! a plain forward reading of the same file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::{index_line, last_index_entry, parse_index_line};
use pgbak_fuzz::scratch_dir;
use std::sync::LazyLock;

/// The search reads the file backwards in chunks of this size; the target cuts the input at
/// chosen places by padding the file to put the chunk boundary there.
const TAIL_CHUNK: usize = 1 << 20;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(scratch_dir);

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
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
    // The name searched for is the first field of the first line.
    let name = data
        .split(|&b| b == b'\n' || b == b'\t')
        .next()
        .unwrap_or_default();
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if name.is_empty() {
        return;
    }
    let mut file = data.to_vec();
    if flags & 1 == 1 {
        // Padding after the input puts the first chunk boundary inside it.
        let cut = usize::from(flags >> 1) * data.len() / 128;
        file.resize(TAIL_CHUNK + cut, b'\n');
    }
    let path = DIR.path().join("xlog.db");
    std::fs::write(&path, &file).expect("write the index");
    let found = last_index_entry(&path, name).expect("search the index");
    std::fs::remove_file(&path).expect("remove the index");
    let expected = file
        .split(|&b| b == b'\n')
        .rev()
        .filter(|line| line.starts_with(name.as_bytes()) && line.get(name.len()) == Some(&b'\t'))
        .find_map(|line| parse_index_line(&String::from_utf8_lossy(line)));
    assert_eq!(
        found.as_ref().map(index_line),
        expected.as_ref().map(index_line),
        "search for {name:?}"
    );
});
