//! The sums file of a put-wal stream (`SHA256SUMS`, `MD5SUMS`, `CRC32CSUMS`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::fuzzing::{parse_sums, sums_line};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sums) = parse_sums(text) else {
        return;
    };
    // Written back as wal-archive writes them, the lines parse to the same pairs.
    let written: String = sums
        .iter()
        .map(|(name, digest)| sums_line(digest, name))
        .collect();
    assert_eq!(parse_sums(&written).as_ref(), Ok(&sums), "{written:?}");
    for (name, digest) in &sums {
        assert!(!name.is_empty());
        assert!(digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
});
