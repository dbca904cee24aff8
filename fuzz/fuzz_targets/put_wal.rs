//! put-wal's input: a tar stream of WAL files and a sums file. Either raw bytes (header checksums
//! fixed) or, to get past the sums, a list of files the target packs itself with correct or
//! damaged sums, some compressed. Nothing may be archived unless it matched its sum, and the
//! spool folder must be empty afterwards whatever happened.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_compress::{Codec, Compression, Compressor};
use pgbak_core::fuzzing::put_wal_receive;
use pgbak_core::fuzzing::ArchiveOutcome;
use pgbak_core::fuzzing::{sums_line, write_end, write_entry, SumKind, Summer};
use pgbak_fuzz::{fix_tar_checksums, scratch_dir};
use pgbak_wal::WalFileName;
use std::io::Write;
use std::path::Path;
use std::sync::LazyLock;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(scratch_dir);

const NAMES: &[&str] = &[
    "000000010000000000000001",
    "000000010000000000000002",
    "000000020000000000000002.partial",
    "00000002.history",
    "000000010000000000000001.00000028.backup",
    "../000000010000000000000001",
    "pg_hba.conf",
    "SHA256SUMS",
];

fn compress(data: &[u8], how: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Codec::new(how, None)
        .expect("codec")
        .encoder(Box::new(&mut out))
        .expect("encoder");
    enc.write_all(data).expect("compress");
    enc.finish().expect("finish");
    out
}

/// Packs files described by `data`: per file a control byte (name in bits 0-2, compression in
/// bits 3-4, a wrong sum in bit 5, no sum line in bit 6), a length byte and the content.
fn pack(flags: u8, mut data: &[u8]) -> Vec<u8> {
    let kind = match flags >> 1 & 3 {
        0 => SumKind::Sha256,
        1 => SumKind::Md5,
        _ => SumKind::Crc32c,
    };
    let mut out = Vec::new();
    let mut sums = String::new();
    while let [control, len, rest @ ..] = data {
        let (content, after) =
            rest.split_at(usize::from(*len).min(rest.len()) * 4 % (rest.len() + 1));
        data = after;
        let name = NAMES[usize::from(control & 7)];
        let mut body = content.to_vec();
        match control >> 3 & 3 {
            1 => body = compress(&body, Compression::Gzip),
            2 => body = compress(&body, Compression::Zstd),
            3 => {
                // Cut in the middle: the magic is there, the stream is damaged.
                body = compress(&body, Compression::Zstd);
                body.truncate(body.len() / 2);
            }
            _ => {}
        }
        let mut s = Summer::new(kind);
        s.update(&body);
        let mut digest = s.hex();
        if control & 0x20 != 0 {
            digest.replace_range(0..1, if digest.starts_with('0') { "1" } else { "0" });
        }
        if control & 0x40 == 0 {
            sums.push_str(&sums_line(&digest, name));
        }
        let _ = write_entry(&mut out, name, &body, 0);
    }
    if flags & 8 == 0 {
        let _ = write_entry(&mut out, kind.file_name(), sums.as_bytes(), 0);
    }
    if flags & 16 == 0 {
        let _ = write_end(&mut out);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, body)) = input.split_first() else {
        return;
    };
    let stream = if flags & 1 == 1 {
        pack(flags, body)
    } else {
        let mut raw = body.to_vec();
        fix_tar_checksums(&mut raw);
        raw
    };
    let spool = DIR.path().join("incoming");
    let mut archived = Vec::new();
    let mut archive_one = |src: &Path, name: &str| {
        assert!(
            src.starts_with(&spool),
            "{} is outside the spool",
            src.display()
        );
        assert!(
            WalFileName::parse(name).is_ok(),
            "{name:?} is not a WAL name"
        );
        let size = std::fs::metadata(src)
            .expect("a received file exists")
            .len();
        archived.push(name.to_string());
        Ok(ArchiveOutcome::Stored {
            name: name.to_string(),
            size,
            stored_size: size,
            crc32c: 0,
        })
    };
    let result = put_wal_receive(&mut &stream[..], &spool, &mut archive_one);
    match &result {
        // Every file is received, verified and decompressed before the first one is archived:
        // bad input archives nothing (archiving itself never fails here).
        Err(e) => assert!(archived.is_empty(), "{archived:?} archived, then: {e}"),
        Ok(outcomes) => assert_eq!(outcomes.len(), archived.len()),
    }
    let left: Vec<_> = std::fs::read_dir(&spool)
        .expect("the spool exists")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left in the spool: {left:?}");
});
