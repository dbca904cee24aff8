//! Which format a stored file is in, told from its first bytes, so that readers never need to be
//! told (Barman's `Compressor.MAGIC` numbers, see `barman/compression.py`).

use std::io::{self, Read};

use crate::decode::{self, read_up_to};
use crate::Compression;

/// How many leading bytes [`detect`] needs to tell every format apart (the snappy stream identifier
/// is the longest magic).
pub const MAGIC_PROBE_LEN: usize = 10;

/// The first chunk of every snappy framed stream: the stream identifier `sNaPpY`.
pub(crate) const SNAPPY_STREAM_IDENTIFIER: [u8; MAGIC_PROBE_LEN] =
    [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];

/// Leading bytes of each compressed format.
const MAGICS: [(Compression, &[u8]); 6] = [
    // ID1 ID2 and CM = deflate, as gzip and pigz write them.
    (Compression::Gzip, &[0x1f, 0x8b, 0x08]),
    // "BZh", followed by the block size digit.
    (Compression::Bzip2, &[0x42, 0x5a, 0x68]),
    (Compression::Xz, &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
    (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
    (Compression::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
    (Compression::Snappy, &SNAPPY_STREAM_IDENTIFIER),
];

/// The format whose magic number `prefix` starts with, or [`Compression::None`].
///
/// Give it the first [`MAGIC_PROBE_LEN`] bytes of a file (fewer if the file is shorter). Plain
/// PostgreSQL files (WAL starts with a page magic such as `0xD110`, heap pages with an LSN) match
/// no magic and come back as `None`.
///
/// ```
/// use pgbak_compress::{detect, Compression};
///
/// assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0x04]), Compression::Zstd);
/// assert_eq!(detect(&[0x10, 0xd1, 0x01, 0x00]), Compression::None);
/// ```
pub fn detect(prefix: &[u8]) -> Compression {
    MAGICS
        .iter()
        .find(|(_, magic)| prefix.starts_with(magic))
        .map_or(Compression::None, |(compression, _)| *compression)
}

/// Reads the first bytes of `r`, detects the format, and returns it with a reader of the
/// decompressed bytes (the probed bytes are not lost).
///
/// Errors of `r` while probing are returned as they are.
pub fn auto_decoder<'a>(
    mut r: Box<dyn Read + Send + 'a>,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut probe = [0u8; MAGIC_PROBE_LEN];
    let n = read_up_to(&mut r, &mut probe)?;
    let compression = detect(&probe[..n]);
    let whole: Box<dyn Read + Send + 'a> = Box::new(io::Cursor::new(probe[..n].to_vec()).chain(r));
    Ok((compression, decode::decoder(compression, whole)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Compressor, Level};
    use std::io::Write;

    /// A reader that hands out one byte per call, as a slow pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn every_magic_is_recognised_and_none_is_a_prefix_of_another() {
        for (c, magic) in MAGICS {
            assert_eq!(detect(magic), c);
            assert!(magic.len() <= MAGIC_PROBE_LEN);
            assert_eq!(detect(&magic[..magic.len() - 1]), Compression::None, "{c}");
        }
    }

    #[test]
    fn plain_postgres_bytes_are_not_compressed() {
        // A PG15 WAL page header: xlp_magic 0xD110, xlp_info, timeline 1.
        assert_eq!(
            detect(&[0x10, 0xd1, 0x06, 0x00, 0x01, 0, 0, 0, 0, 0]),
            Compression::None
        );
        // A heap page starts with its LSN.
        assert_eq!(
            detect(&[0, 0, 0, 0, 0x28, 0x4e, 0x5a, 0x01, 0, 0]),
            Compression::None
        );
        assert_eq!(detect(b""), Compression::None);
        assert_eq!(detect(b"backup_label"), Compression::None);
    }

    #[test]
    fn auto_decoder_reads_every_format_even_one_byte_at_a_time() {
        let data = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".repeat(50);
        for c in Compression::ALL {
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let mut stored = Vec::new();
            let mut enc = codec.encoder(Box::new(&mut stored)).unwrap();
            enc.write_all(&data).unwrap();
            enc.finish().unwrap();

            let (found, mut dec) = auto_decoder(Box::new(Trickle(&stored))).unwrap();
            assert_eq!(found, c);
            let mut back = Vec::new();
            dec.read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c}");
        }
    }

    #[test]
    fn auto_decoder_passes_short_plain_files_through() {
        for data in [&b""[..], b"x", b"\x1f\x8b"] {
            let (found, mut dec) = auto_decoder(Box::new(data)).unwrap();
            assert_eq!(found, Compression::None);
            let mut back = Vec::new();
            dec.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn auto_decoder_returns_probe_errors_unchanged() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, "no access"))
            }
        }
        let err = auto_decoder(Box::new(Broken)).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::PermissionDenied));
    }
}
