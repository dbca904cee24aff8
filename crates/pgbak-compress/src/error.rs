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
}
