//! How bytes change on their way to storage: streaming compression with every codec PostgreSQL
//! operators meet (gzip, bzip2, xz, zstd, lz4, snappy), detection of the codec from the first bytes
//! so readers never need to be told, the [`Encryptor`] seam, and the [`pipeline`] that chains
//! compression, encryption, checksums and byte counts on one stream.

mod codec;
mod decode;
mod detect;
mod encode;
mod encrypt;
mod error;
#[cfg(feature = "gpg")]
pub mod gpg;
mod lz4_frames;
pub mod pipeline;

pub use codec::{Codec, Compression, Level};
pub use decode::read_up_to;
pub use detect::{auto_decoder, detect, MAGIC_PROBE_LEN};
pub use encrypt::Encryptor;
pub use error::CompressError;

use std::io::{self, Read, Write};

/// A writer that must be told when the stream ends, so it can write its trailer.
///
/// Dropping it without calling [`FinishWrite::finish`] leaves a truncated stream.
pub trait FinishWrite: Write + Send {
    /// Writes any trailer and flushes everything into the inner writer.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A streaming compressor and decompressor for one format.
pub trait Compressor: Send + Sync {
    /// The format this compressor writes.
    fn compression(&self) -> Compression;

    /// Wraps `inner` so that whatever is written comes out compressed.
    fn encoder<'a>(
        &self,
        inner: Box<dyn Write + Send + 'a>,
    ) -> io::Result<Box<dyn FinishWrite + 'a>>;

    /// Wraps `inner` so that reading yields the decompressed bytes. Truncated or corrupt input is an
    /// error (`io::ErrorKind::InvalidData` or `UnexpectedEof`), never a silent short read where the
    /// format can tell.
    fn decoder<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>>;
}
