//! The decoders behind format detection (gzip, bzip2, xz, zstd, lz4, snappy, none), as restore
//! and put-wal use them on stored or received files; a damaged stream is an error, never a panic
//! or a hang. Readers bound what they take (as put-wal does), so the target reads at most
//! `LIMIT` bytes. Flag bit 0 compresses the input first, to reach deep into each decoder and
//! check the round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_compress::{auto_decoder, Codec, Compression, Compressor};
use std::io::{Read, Write};

const LIMIT: u64 = 64 << 20;

const CODECS: [Compression; 6] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
    Compression::Lz4,
    Compression::Snappy,
];

fuzz_target!(|input: &[u8]| {
    let Some((&flags, body)) = input.split_first() else {
        return;
    };
    let mut stream = body.to_vec();
    let mut expected = None;
    if flags & 1 == 1 {
        let how = CODECS[usize::from(flags >> 1) % CODECS.len()];
        let mut out = Vec::new();
        let mut enc = Codec::new(how, None)
            .expect("codec")
            .encoder(Box::new(&mut out))
            .expect("encoder");
        enc.write_all(body).expect("compress");
        enc.finish().expect("finish");
        // Flag bit 4 damages one byte of the compressed stream, chosen by the high bits.
        if flags & 0x10 != 0 && !out.is_empty() {
            let at = usize::from(flags >> 5) * out.len() / 8;
            out[at] ^= 0x55;
        } else {
            expected = Some((how, body.to_vec()));
        }
        stream = out;
    }
    let Ok((found, mut reader)) = auto_decoder(Box::new(std::io::Cursor::new(stream))) else {
        return;
    };
    let mut plain = Vec::new();
    let result = reader.by_ref().take(LIMIT).read_to_end(&mut plain);
    if let Some((how, body)) = expected {
        assert_eq!(found, how);
        result.expect("a stream just compressed decodes");
        assert_eq!(plain, body);
    }
});
