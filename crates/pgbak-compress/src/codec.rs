//! The names operators write in configuration (`compression = zstd`, `compression_level = low`), the
//! numeric levels they stand for, and [`Codec`], which turns a chosen pair into encoders and decoders.

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::{decode, encode, CompressError, Compressor, FinishWrite};

/// A compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Bytes stored as they are.
    None,
    /// gzip (RFC 1952); concatenated members, as pigz writes them, are read as one stream.
    Gzip,
    /// bzip2; concatenated streams, as pbzip2 writes them, are read as one stream.
    Bzip2,
    /// xz (LZMA2 with a CRC-64 check); concatenated streams are read as one stream.
    Xz,
    /// Zstandard, written with a content checksum unless the caller checks the stored bytes
    /// itself ([`Codec::without_content_checksum`]).
    Zstd,
    /// LZ4 frame format, written with a content checksum unless the caller checks the stored
    /// bytes itself ([`Codec::without_content_checksum`]).
    Lz4,
    /// Snappy framing format (what python-snappy and Barman write), CRC-32C per chunk.
    Snappy,
}

impl Compression {
    /// Every format, `None` first.
    pub const ALL: [Compression; 7] = [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ];

    /// The name used in configuration and catalogues (`"zstd"`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
        }
    }

    /// What Barman appends to a tar file's name for this format (`".zst"`, empty for `None`).
    pub fn tar_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Lz4 => ".lz4",
            Compression::Snappy => ".snappy",
        }
    }

    /// The numeric levels the format accepts, or `None` when it has no levels (`None`, `Snappy`).
    ///
    /// The ranges are Barman's: gzip 0..=9, bzip2 1..=9, xz 0..=9, zstd -22..=22, lz4 0..=16.
    pub fn level_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip => Some(0..=9),
            Compression::Bzip2 => Some(1..=9),
            Compression::Xz => Some(0..=9),
            Compression::Zstd => Some(-22..=22),
            Compression::Lz4 => Some(0..=16),
        }
    }

    /// The numbers `low`, `medium` and `high` stand for, as Barman maps them; `[0; 3]` when the
    /// format has no levels.
    fn named_levels(self) -> [i32; 3] {
        match self {
            Compression::None | Compression::Snappy => [0, 0, 0],
            Compression::Gzip => [1, 6, 9],
            Compression::Bzip2 => [1, 5, 9],
            Compression::Xz => [1, 3, 5],
            Compression::Zstd => [1, 4, 9],
            Compression::Lz4 => [0, 6, 10],
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = CompressError;

    /// Accepts the names of [`Compression::name`] in any case, and Barman's aliases `pigz` and
    /// `pygzip` (gzip) and `pybzip2` (bzip2). Leading and trailing blanks are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let compression = match name.as_str() {
            "none" => Compression::None,
            "gzip" | "pigz" | "pygzip" => Compression::Gzip,
            "bzip2" | "pybzip2" => Compression::Bzip2,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            "lz4" => Compression::Lz4,
            "snappy" => Compression::Snappy,
            _ => {
                return Err(CompressError::UnknownCompression {
                    name: s.to_string(),
                })
            }
        };
        Ok(compression)
    }
}

/// How hard to compress: Barman's named levels or a number understood by the codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The fastest useful setting (gzip 1, bzip2 1, xz 1, zstd 1, lz4 0).
    Low,
    /// A balance of speed and size (gzip 6, bzip2 5, xz 3, zstd 4, lz4 6).
    Medium,
    /// The smallest output worth its time (gzip 9, bzip2 9, xz 5, zstd 9, lz4 10).
    High,
    /// A level as the codec numbers it; checked against [`Compression::level_range`].
    Value(i32),
}

impl Level {
    /// The numeric level for `compression`, or an error when a [`Level::Value`] is out of range.
    ///
    /// Formats without levels (`None`, `Snappy`) accept any level and ignore it, as Barman does, so
    /// that one `compression_level` setting can sit next to any `compression`; the result is 0.
    pub fn value_for(self, compression: Compression) -> Result<i32, CompressError> {
        let [low, medium, high] = compression.named_levels();
        match self {
            Level::Low => Ok(low),
            Level::Medium => Ok(medium),
            Level::High => Ok(high),
            Level::Value(level) => match compression.level_range() {
                None => Ok(0),
                Some(range) if range.contains(&level) => Ok(level),
                Some(range) => Err(CompressError::LevelOutOfRange {
                    compression,
                    level,
                    min: *range.start(),
                    max: *range.end(),
                }),
            },
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Low => f.write_str("low"),
            Level::Medium => f.write_str("medium"),
            Level::High => f.write_str("high"),
            Level::Value(level) => write!(f, "{level}"),
        }
    }
}

impl FromStr for Level {
    type Err = CompressError;

    /// Accepts `low`, `medium`, `high` in any case, or a decimal integer such as `3` or `-5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        match text.to_ascii_lowercase().as_str() {
            "low" => Ok(Level::Low),
            "medium" => Ok(Level::Medium),
            "high" => Ok(Level::High),
            _ => text
                .parse::<i32>()
                .map(Level::Value)
                .map_err(|_| CompressError::UnknownLevel {
                    text: s.to_string(),
                }),
        }
    }
}

/// A format with a resolved numeric level: the [`Compressor`] the rest of pgbak uses.
///
/// ```
/// use std::io::{Read, Write};
/// use pgbak_compress::{Codec, Compression, Compressor, Level};
///
/// let codec = Codec::new(Compression::Zstd, Some(Level::Low))?;
/// let mut stored = Vec::new();
/// let mut enc = codec.encoder(Box::new(&mut stored))?;
/// enc.write_all(b"base/16384/1259")?;
/// enc.finish()?;
///
/// let mut plain = Vec::new();
/// codec.decoder(Box::new(&stored[..]))?.read_to_end(&mut plain)?;
/// assert_eq!(plain, b"base/16384/1259");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Codec {
    compression: Compression,
    level: i32,
    workers: u32,
    /// Whether zstd and lz4 frames end with a checksum of their content.
    content_checksum: bool,
}

impl Codec {
    /// A codec for `compression` at `level` (default [`Level::Medium`], as Barman uses for WAL).
    ///
    /// Fails when a numeric level is outside the range of the format.
    pub fn new(compression: Compression, level: Option<Level>) -> Result<Codec, CompressError> {
        let level = level.unwrap_or(Level::Medium).value_for(compression)?;
        Ok(Codec {
            compression,
            level,
            workers: 0,
            content_checksum: true,
        })
    }

    /// The codec that stores bytes as they are (`Compression::None`).
    pub const fn none() -> Codec {
        Codec {
            compression: Compression::None,
            level: 0,
            workers: 0,
            content_checksum: true,
        }
    }

    /// The same codec compressing on `workers` background threads (0, the default, compresses on
    /// the caller's thread).
    ///
    /// Only zstd has a multithreaded encoder: it cuts the input into jobs compressed in parallel
    /// and still writes one standard frame that every zstd decoder reads. The bytes differ from a
    /// single-threaded run, the format does not. Other formats ignore this setting.
    pub fn with_workers(self, workers: u32) -> Codec {
        Codec { workers, ..self }
    }

    /// The same codec writing zstd and lz4 frames without a content checksum (XXH64 for zstd,
    /// XXH32 for lz4), for callers that record a checksum of the stored bytes themselves and
    /// check it on every read. The XXH32 of lz4 is a fifth of the CPU time of a backup at level 1;
    /// a CRC-32C of the (much smaller) compressed bytes costs a fraction of that. Other formats
    /// keep their integral checks (gzip's CRC-32, xz's CRC-64, bzip2's block CRCs, snappy's
    /// masked CRC-32C per chunk).
    pub fn without_content_checksum(self) -> Codec {
        Codec {
            content_checksum: false,
            ..self
        }
    }

    /// Whether zstd and lz4 frames carry a content checksum (see
    /// [`Codec::without_content_checksum`]).
    pub fn content_checksum(&self) -> bool {
        self.content_checksum
    }

    /// The format this codec writes and reads.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The numeric level the encoder uses (0 for formats without levels).
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Background compression threads (see [`Codec::with_workers`]).
    pub fn workers(&self) -> u32 {
        self.workers
    }
}

impl Compressor for Codec {
    fn compression(&self) -> Compression {
        self.compression
    }

    fn encoder<'a>(
        &self,
        inner: Box<dyn Write + Send + 'a>,
    ) -> io::Result<Box<dyn FinishWrite + 'a>> {
        encode::encoder(
            self.compression,
            self.level,
            self.workers,
            self.content_checksum,
            inner,
        )
    }

    fn decoder<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        decode::decoder(self.compression, inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_suffixes_round_trip_through_from_str() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(
                c.to_string().to_uppercase().parse::<Compression>().unwrap(),
                c
            );
            assert_eq!(c.tar_suffix().is_empty(), c == Compression::None);
        }
        assert_eq!(Compression::Zstd.tar_suffix(), ".zst");
        assert_eq!(Compression::Bzip2.tar_suffix(), ".bz2");
    }

    #[test]
    fn barman_aliases_are_accepted() {
        assert_eq!("pigz".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!("PyGzip".parse::<Compression>().unwrap(), Compression::Gzip);
        assert_eq!(
            "pybzip2".parse::<Compression>().unwrap(),
            Compression::Bzip2
        );
        assert_eq!(" xz ".parse::<Compression>().unwrap(), Compression::Xz);
    }

    #[test]
    fn unknown_or_empty_names_are_errors() {
        for bad in ["", "zip", "zstandard", "custom", "gz"] {
            match bad.parse::<Compression>() {
                Err(CompressError::UnknownCompression { name }) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn named_levels_follow_barman() {
        let table = [
            (Compression::Gzip, [1, 6, 9]),
            (Compression::Bzip2, [1, 5, 9]),
            (Compression::Xz, [1, 3, 5]),
            (Compression::Zstd, [1, 4, 9]),
            (Compression::Lz4, [0, 6, 10]),
        ];
        for (c, [low, medium, high]) in table {
            assert_eq!(Codec::new(c, Some(Level::Low)).unwrap().level(), low, "{c}");
            assert_eq!(
                Codec::new(c, Some(Level::Medium)).unwrap().level(),
                medium,
                "{c}"
            );
            assert_eq!(
                Codec::new(c, Some(Level::High)).unwrap().level(),
                high,
                "{c}"
            );
            assert_eq!(Codec::new(c, None).unwrap().level(), medium, "{c}");
        }
    }

    #[test]
    fn levels_parse_from_names_and_numbers() {
        assert_eq!("LOW".parse::<Level>().unwrap(), Level::Low);
        assert_eq!("medium".parse::<Level>().unwrap(), Level::Medium);
        assert_eq!(" high".parse::<Level>().unwrap(), Level::High);
        assert_eq!("-5".parse::<Level>().unwrap(), Level::Value(-5));
        assert_eq!("19".parse::<Level>().unwrap(), Level::Value(19));
        for bad in ["", "fast", "1.5", "99999999999"] {
            assert!(
                matches!(
                    bad.parse::<Level>(),
                    Err(CompressError::UnknownLevel { .. })
                ),
                "{bad:?}"
            );
        }
        for l in [Level::Low, Level::Medium, Level::High, Level::Value(-3)] {
            assert_eq!(l.to_string().parse::<Level>().unwrap(), l);
        }
    }

    #[test]
    fn numeric_levels_are_checked_per_codec() {
        let ok = [
            (Compression::Gzip, 0),
            (Compression::Gzip, 9),
            (Compression::Bzip2, 1),
            (Compression::Xz, 9),
            (Compression::Zstd, -22),
            (Compression::Zstd, 22),
            (Compression::Lz4, 16),
        ];
        for (c, l) in ok {
            assert_eq!(Codec::new(c, Some(Level::Value(l))).unwrap().level(), l);
        }
        let bad = [
            (Compression::Gzip, 10),
            (Compression::Gzip, -1),
            (Compression::Bzip2, 0),
            (Compression::Xz, 10),
            (Compression::Zstd, 23),
            (Compression::Zstd, -23),
            (Compression::Lz4, 17),
            (Compression::Lz4, -1),
        ];
        for (c, l) in bad {
            match Codec::new(c, Some(Level::Value(l))) {
                Err(CompressError::LevelOutOfRange {
                    compression, level, ..
                }) => {
                    assert_eq!((compression, level), (c, l))
                }
                other => panic!("{c} {l} gave {other:?}"),
            }
        }
    }

    #[test]
    fn zstd_on_workers_writes_an_ordinary_frame() {
        use std::io::{Read, Write};
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 253) as u8 ^ (i >> 12) as u8)
            .collect();
        let codec = Codec::new(Compression::Zstd, Some(Level::Low))
            .unwrap()
            .with_workers(2);
        assert_eq!(codec.workers(), 2);
        let mut stored = Vec::new();
        let mut enc = codec.encoder(Box::new(&mut stored)).unwrap();
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        assert!(stored.len() < data.len() / 4);
        let (found, mut dec) = crate::auto_decoder(Box::new(&stored[..])).unwrap();
        assert_eq!(found, Compression::Zstd);
        let mut back = Vec::new();
        dec.read_to_end(&mut back).unwrap();
        assert!(back == data);
        // Workers change nothing for formats that cannot use them.
        let gzip = Codec::new(Compression::Gzip, None).unwrap();
        assert_eq!(gzip.with_workers(4).level(), gzip.level());
    }

    #[test]
    fn formats_without_levels_ignore_them() {
        for c in [Compression::None, Compression::Snappy] {
            assert_eq!(Codec::new(c, Some(Level::Value(42))).unwrap().level(), 0);
            assert_eq!(Codec::new(c, Some(Level::High)).unwrap().level(), 0);
        }
    }
}
