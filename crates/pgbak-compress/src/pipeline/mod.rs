//! One stream pipeline for every stored byte: compress, then encrypt, then measure on the way to
//! storage, and the reverse on the way back, so that a file is read once and every transformation
//! and check rides along (pgBackRest's filter group, Barman's compress-then-encrypt order).
//!
//! ```text
//! write:  caller -> [plain measure] -> compress -> [encrypt] -> [stored measure] -> sink
//! read:   source -> [stored measure] -> [decrypt] -> [decompress] -> [plain measure] -> caller
//! ```
//!
//! - [`WritePipeline`] is a [`Write`](std::io::Write) that hands back its sink (a storage
//!   `ObjectWriter`, a file) with the [`PipelineStats`] when [`WritePipeline::finish`] has written
//!   every stage's trailer. Dropped unfinished, it leaves an incomplete stream and drops the sink
//!   uncommitted.
//! - [`ReadPipeline`] is a [`Read`](std::io::Read) that finds what was done to the bytes from the
//!   bytes themselves: an OpenPGP packet means encrypted (as Barman detects it), a magic number
//!   names the compression ([`crate::detect`]). [`ReadPipelineBuilder::expect`] turns the end of
//!   the stream into an error when the plain bytes are not the ones recorded when they were
//!   stored, so a caller streaming into place sees corruption before it commits.
//! - Plain bytes stored without compression or encryption pass straight through: no stage copies
//!   them, and one CRC-32C serves both sides.
//!
//! ```
//! use std::io::{Read, Write};
//! use pgbak_compress::pipeline::{Digests, ReadPipeline, WritePipeline};
//! use pgbak_compress::{Codec, Compression, Level};
//!
//! let codec = Codec::new(Compression::Zstd, Some(Level::Low))?;
//! let mut w = WritePipeline::builder(&codec)
//!     .measure_plain(Digests::CRC32C)
//!     .measure_stored(Digests::CRC32C_MD5)
//!     .build(Vec::new())?;
//! w.write_all(b"000000010000000000000001")?;
//! let (stored, stats) = w.finish()?;
//! assert_eq!(stats.plain.bytes, 24);
//! assert_eq!(stats.stored.bytes, stored.len() as u64);
//!
//! let mut r = ReadPipeline::builder()
//!     .expect(stats.plain.crc32c.unwrap(), stats.plain.bytes)
//!     .open(&stored[..])?;
//! let mut plain = Vec::new();
//! r.read_to_end(&mut plain)?;
//! assert_eq!(r.compression(), Compression::Zstd);
//! assert_eq!(r.stats().unwrap().stored.bytes, stored.len() as u64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod meter;
mod openpgp;
mod read;
mod shared;
mod write;

#[cfg(test)]
mod tests;

pub use meter::Meter;
pub use openpgp::{looks_encrypted, recipient_key_id};
pub use read::{ReadPipeline, ReadPipelineBuilder};
pub use write::{WritePipeline, WritePipelineBuilder};

/// Which digests a measure stage computes; bytes are counted whatever is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Digests {
    /// CRC-32C (Castagnoli), what the WAL index records and get-wal bundles carry.
    pub crc32c: bool,
    /// MD5, what object stores take to verify an upload (`Content-MD5`).
    pub md5: bool,
}

impl Digests {
    /// Bytes only.
    pub const NONE: Digests = Digests {
        crc32c: false,
        md5: false,
    };
    /// Bytes and CRC-32C.
    pub const CRC32C: Digests = Digests {
        crc32c: true,
        md5: false,
    };
    /// Bytes, CRC-32C and MD5.
    pub const CRC32C_MD5: Digests = Digests {
        crc32c: true,
        md5: true,
    };

    /// Every digest either asks for.
    pub fn union(self, other: Digests) -> Digests {
        Digests {
            crc32c: self.crc32c || other.crc32c,
            md5: self.md5 || other.md5,
        }
    }
}

/// What one side of a pipeline saw: always the byte count, and the digests that were asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Measured {
    /// Bytes that passed.
    pub bytes: u64,
    /// Their CRC-32C, when [`Digests::crc32c`] was asked for.
    pub crc32c: Option<u32>,
    /// Their MD5, when [`Digests::md5`] was asked for.
    pub md5: Option<[u8; 16]>,
}

impl Measured {
    /// The same figures without the digests `digests` does not ask for.
    fn only(self, digests: Digests) -> Measured {
        Measured {
            bytes: self.bytes,
            crc32c: self.crc32c.filter(|_| digests.crc32c),
            md5: self.md5.filter(|_| digests.md5),
        }
    }
}

/// The figures of a whole stream: the original bytes and the bytes as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PipelineStats {
    /// The caller's bytes: before compression when writing, after decompression when reading.
    pub plain: Measured,
    /// The bytes in storage: after compression and encryption when writing, as read when reading.
    pub stored: Measured,
}
