//! Properties every codec must keep, whatever the data: bytes come back unchanged, a cut or damaged
//! stream is an error rather than wrong data, and the format is recognised from its first bytes.

use std::io::{self, Read, Write};

use pgbak_compress::{
    auto_decoder, detect, Codec, Compression, Compressor, Level, MAGIC_PROBE_LEN,
};
use proptest::prelude::*;

const COMPRESSED: [Compression; 6] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
    Compression::Lz4,
    Compression::Snappy,
];

/// What the generated data looks like; compressors behave differently on each.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Incompressible.
    Random,
    /// Compresses to almost nothing.
    Zeros,
    /// Short repeated text, as in logs and config files.
    Text,
    /// Runs of zeros, counters and random bytes, like table pages with free space.
    Mixed,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Random),
        Just(Shape::Zeros),
        Just(Shape::Text),
        Just(Shape::Mixed)
    ]
}

/// A small deterministic generator, so that 256 KiB of data costs one seed, not 256 Ki strategies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn make_data(shape: Shape, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    let mut data = Vec::with_capacity(len);
    match shape {
        Shape::Random => data.extend((0..len).map(|_| rng.next() as u8)),
        Shape::Zeros => data.resize(len, 0),
        Shape::Text => {
            let line = format!(
                "2026-11-03 12:00:{:02} UTC [{}] LOG:  checkpoint complete\n",
                seed % 60,
                seed
            );
            data.extend(line.bytes().cycle().take(len));
        }
        Shape::Mixed => {
            while data.len() < len {
                let run = (rng.next() % 2048) as usize + 1;
                let kind = rng.next() % 3;
                for i in 0..run {
                    data.push(match kind {
                        0 => 0,
                        1 => (i as u8).wrapping_mul(3),
                        _ => rng.next() as u8,
                    });
                }
            }
            data.truncate(len);
        }
    }
    data
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    (shape(), 0usize..=256 << 10, any::<u64>())
        .prop_map(|(shape, len, seed)| make_data(shape, len, seed))
}

/// `named` if given, else a number picked inside the range of `compression` by `pick`.
fn level_for(compression: Compression, named: Option<Level>, pick: u32) -> Level {
    match (named, compression.level_range()) {
        (Some(level), _) => level,
        (None, None) => Level::Medium,
        (None, Some(range)) => {
            // Levels above 19 make zstd slow and memory-hungry; they add nothing to the property.
            let end = (*range.end()).min(19);
            let width = (end - range.start() + 1) as u32;
            Level::Value(range.start() + (pick % width) as i32)
        }
    }
}

fn named_level() -> impl Strategy<Value = Option<Level>> {
    prop_oneof![
        Just(Some(Level::Low)),
        Just(Some(Level::Medium)),
        Just(Some(Level::High)),
        Just(None)
    ]
}

fn compress(codec: &Codec, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = codec.encoder(Box::new(&mut out)).expect("encoder");
    enc.write_all(data).expect("write");
    enc.finish().expect("finish");
    out
}

fn decompress(codec: &Codec, stored: &[u8]) -> io::Result<Vec<u8>> {
    let mut back = Vec::new();
    codec.decoder(Box::new(stored))?.read_to_end(&mut back)?;
    Ok(back)
}

/// Offsets in a snappy framed stream where one chunk ends and the next begins.
fn snappy_chunk_ends(stored: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 4 <= stored.len() {
        let len = u32::from_le_bytes([stored[at + 1], stored[at + 2], stored[at + 3], 0]) as usize;
        at += 4 + len;
        ends.push(at);
    }
    ends
}

/// Offsets of the chunk type bytes of a snappy framed stream.
fn snappy_chunk_starts(stored: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(snappy_chunk_ends(stored));
    starts.pop();
    starts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_codec_gives_the_bytes_back(data in data(), named in named_level(), pick in any::<u32>()) {
        for compression in Compression::ALL {
            let codec = Codec::new(compression, Some(level_for(compression, named, pick))).unwrap();
            let stored = compress(&codec, &data);
            prop_assert_eq!(&decompress(&codec, &stored).unwrap(), &data, "{} at {}", compression, codec.level());

            let (found, mut dec) = auto_decoder(Box::new(&stored[..])).unwrap();
            prop_assert_eq!(found, compression);
            let mut back = Vec::new();
            dec.read_to_end(&mut back).unwrap();
            prop_assert_eq!(&back, &data);
        }
    }

    #[test]
    fn a_cut_stream_is_an_error(data in data(), cut in any::<prop::sample::Index>()) {
        for compression in COMPRESSED {
            let codec = Codec::new(compression, Some(Level::Low)).unwrap();
            let stored = compress(&codec, &data);
            let cut = cut.index(stored.len());
            let result = decompress(&codec, &stored[..cut]);
            if compression == Compression::Snappy && cut > 0 && snappy_chunk_ends(&stored).contains(&cut) {
                // The framing format has no end mark: a stream cut between chunks is a valid,
                // shorter stream. What it yields must still be a true prefix of the data.
                let back = result.unwrap();
                prop_assert!(data.starts_with(&back), "snappy cut at {} gave bytes that are not a prefix", cut);
                continue;
            }
            match result {
                Err(e) => prop_assert!(
                    matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData),
                    "{} cut at {}/{}: {:?}", compression, cut, stored.len(), e
                ),
                Ok(back) => prop_assert!(
                    false, "{} cut at {}/{} read as complete ({} of {} bytes)",
                    compression, cut, stored.len(), back.len(), data.len()
                ),
            }
        }
    }

    #[test]
    fn a_damaged_stream_never_yields_wrong_bytes(
        data in data(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        for compression in COMPRESSED {
            let codec = Codec::new(compression, Some(Level::Low)).unwrap();
            let mut stored = compress(&codec, &data);
            let at = at.index(stored.len());
            stored[at] ^= mask;
            let result = decompress(&codec, &stored);
            if compression == Compression::Snappy
                && at > 0
                && snappy_chunk_starts(&stored).contains(&at)
                && (0x80..=0xfe).contains(&stored[at])
            {
                // A chunk whose type byte turns into "skippable" or "padding" is skipped by design
                // of the framing format: its data goes missing without any checksum to notice.
                continue;
            }
            // Bytes outside every checksum (gzip's MTIME and OS fields, for instance) may change
            // without harm; what must never happen is different data reported as good.
            if let Ok(back) = result {
                prop_assert!(back == data, "{} with byte {} ^ {:#04x} returned wrong data", compression, at, mask);
            }
        }
    }

    #[test]
    fn output_is_recognised_and_plain_pages_are_not(data in data(), lsn_hi in 0u32..0x1_0000, seed in any::<u64>()) {
        for compression in Compression::ALL {
            let codec = Codec::new(compression, Some(Level::Low)).unwrap();
            let stored = compress(&codec, &data);
            let probe = &stored[..stored.len().min(MAGIC_PROBE_LEN)];
            let expected = if compression == Compression::None { detect(&data) } else { compression };
            prop_assert_eq!(detect(probe), expected);
        }

        // A heap page starts with its LSN, a WAL page with its magic (PG 13 to 17).
        let mut rng = XorShift(seed | 1);
        let mut page = make_data(Shape::Mixed, 8192, seed);
        page[..4].copy_from_slice(&lsn_hi.to_le_bytes());
        page[4..8].copy_from_slice(&(rng.next() as u32).to_le_bytes());
        prop_assert_eq!(detect(&page[..MAGIC_PROBE_LEN]), Compression::None);
        for magic in [0xD106u16, 0xD10D, 0xD110, 0xD113, 0xD116] {
            page[..2].copy_from_slice(&magic.to_le_bytes());
            page[2..4].copy_from_slice(&(rng.next() as u16 & 0x7).to_le_bytes());
            prop_assert_eq!(detect(&page[..MAGIC_PROBE_LEN]), Compression::None);
        }
    }
}
