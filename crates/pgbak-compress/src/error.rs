//! The one error type of this crate: bad names and levels from configuration, and the reason a
//! compressed stream could not be read (carried inside `io::Error`, which is what readers return).

use std::io;

use crate::Compression;

/// Why a compression setting was refused or a compressed stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The name is not a compression this crate knows.
    #[error(
        "unknown compression {name:?} (expected one of none, gzip, pigz, bzip2, xz, zstd, lz4, snappy)"
    )]
    UnknownCompression {
        /// The name as given.
        name: String,
    },

    /// The text is neither `low`, `medium`, `high` nor an integer.
    #[error("unknown compression level {text:?} (expected low, medium, high or an integer)")]
    UnknownLevel {
        /// The level as given.
        text: String,
    },

    /// The numeric level is outside what the codec accepts.
    #[error(
        "compression level {level} is out of range for {compression} (allowed: {min} to {max})"
    )]
    LevelOutOfRange {
        /// The codec the level was meant for.
        compression: Compression,
        /// The level as given.
        level: i32,
        /// Lowest accepted level.
        min: i32,
        /// Highest accepted level.
        max: i32,
    },

    /// A compressed stream is damaged: corrupt, truncated, or followed by bytes that belong to no
    /// frame. Readers return it inside an `io::Error` of kind `InvalidData` or `UnexpectedEof`;
    /// `io::Error::get_ref` and a downcast recover it.
    #[error("{compression} data is corrupt or truncated: {source}")]
    Corrupt {
        /// The format being decoded.
        compression: Compression,
        /// What the decoder reported.
        #[source]
        source: io::Error,
    },

    /// The stream is encrypted (it starts with an OpenPGP session key packet) and no encryptor
    /// was given to decrypt it. Returned inside an `io::Error` of kind `Unsupported`.
    #[error("the data is encrypted (OpenPGP) and no encryption is configured to decrypt it")]
    EncryptedNoEncryptor,

    /// The plain bytes are not those recorded when they were stored. Returned inside an
    /// `io::Error` of kind `InvalidData`.
    #[error(
        "content does not match the checksum recorded when it was stored: expected {expected_bytes} bytes with CRC-32C {expected_crc32c:08x}, found {}",
        found_text(*.found_crc32c, *.found_bytes, *.expected_bytes)
    )]
    ChecksumMismatch {
        /// The CRC-32C recorded.
        expected_crc32c: u32,
        /// The size recorded.
        expected_bytes: u64,
        /// The CRC-32C of what was read, or `None` when reading stopped as soon as the data
        /// outgrew the recorded size.
        found_crc32c: Option<u32>,
        /// How many bytes were read.
        found_bytes: u64,
    },

    /// The stored (compressed, encrypted) bytes are not those recorded when they were written.
    /// Returned inside an `io::Error` of kind `InvalidData`.
    #[error(
        "the stored bytes do not match the checksum recorded when they were written: expected {expected_bytes} bytes with CRC-32C {expected_crc32c:08x}, found {}",
        found_text(*.found_crc32c, *.found_bytes, *.expected_bytes)
    )]
    StoredChecksumMismatch {
        /// The CRC-32C recorded.
        expected_crc32c: u32,
        /// The size recorded.
        expected_bytes: u64,
        /// The CRC-32C of what was read, or `None` when reading stopped as soon as the stored
        /// bytes outgrew the recorded size.
        found_crc32c: Option<u32>,
        /// How many bytes were read.
        found_bytes: u64,
    },

    /// A complete compressed (or encrypted) stream is followed by bytes that belong to none.
    /// Returned inside an `io::Error` of kind `InvalidData`.
    #[error("{bytes} bytes follow the end of the {}{} stream", compression, if *.encrypted { " encrypted" } else { "" })]
    TrailingData {
        /// The format of the stream.
        compression: Compression,
        /// Whether it was encrypted.
        encrypted: bool,
        /// How many bytes follow it.
        bytes: u64,
    },
}

fn found_text(crc: Option<u32>, bytes: u64, expected: u64) -> String {
    match crc {
        Some(crc) => format!("{bytes} bytes with CRC-32C {crc:08x}"),
        None => format!("more than {expected} bytes"),
    }
}
