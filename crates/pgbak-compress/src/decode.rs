//! The reading half of every codec, held to one rule: a damaged stream is an error, never a short
//! read that looks like the end of the data.
//!
//! Each decoder reads through a [`Source`], which tags the errors of the caller's reader so that
//! [`Checked`] can hand them back unchanged (a dropped connection stays a dropped connection) while
//! everything the decoder itself complains about becomes [`CompressError::Corrupt`] with kind
//! `InvalidData` or `UnexpectedEof`. An empty input is refused: every format writes a header even
//! for empty data.
//!
//! What each format can tell, as checked by this crate's tests:
//! - gzip, bzip2, xz, zstd: truncation anywhere, corruption (CRC-32, CRC-32, CRC-64, XXH64), and
//!   bytes after the last complete frame or member.
//! - lz4: the `lz4` crate's decoder stops quietly at end of input, so [`Lz4Frames`] walks the frame
//!   structure itself: truncation and trailing bytes are errors, concatenated and skippable frames
//!   are read. Corruption is caught by the content checksum this crate writes.
//! - snappy: the framing format has no end mark. Truncation inside a chunk is caught; truncation
//!   exactly between two chunks cannot be told from a shorter stream and reads as a complete one.
//!   Every chunk carries a CRC-32C of its data.

use std::io::{self, BufReader, Read};

use crate::lz4_frames::Lz4Frames;
use crate::{CompressError, Compression};

/// Read buffer between the caller's reader and a decoder: large reads from storage, and lz4 and
/// snappy, which ask for a few bytes at a time, are served from memory.
const INPUT_BUFFER: usize = 256 << 10;

/// Builds the decoder for `compression` over `inner`.
pub(crate) fn decoder<'a>(
    compression: Compression,
    inner: Box<dyn Read + Send + 'a>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let decoder: Box<dyn Read + Send + 'a> = match compression {
        // Plain bytes need neither buffering nor checks.
        Compression::None => return Ok(inner),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered(inner))),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered(inner))),
        Compression::Xz => {
            // A stream decoder, not liblzma's auto decoder: only .xz is accepted, not .lzma or .lz.
            let stream = liblzma::stream::Stream::new_stream_decoder(
                u64::MAX,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::from)?;
            Box::new(liblzma::bufread::XzDecoder::new_stream(
                buffered(inner),
                stream,
            ))
        }
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered(inner))?),
        Compression::Lz4 => Box::new(Lz4Frames::new(buffered(inner))),
        Compression::Snappy => Box::new(snap::read::FrameDecoder::new(buffered(inner))),
    };
    Ok(Box::new(Checked {
        inner: decoder,
        compression,
        failed: None,
    }))
}

/// The caller's reader behind a [`Source`] and a large buffer.
fn buffered<'a>(inner: Box<dyn Read + Send + 'a>) -> BufReader<Source<'a>> {
    BufReader::with_capacity(
        INPUT_BUFFER,
        Source {
            inner,
            started: false,
        },
    )
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub fn read_up_to(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An error of the caller's reader, wrapped so that it survives the trip through a decoder and
/// can be told apart from the decoder's own complaints.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct SourceError(io::Error);

/// The caller's reader as a decoder sees it.
struct Source<'a> {
    inner: Box<dyn Read + Send + 'a>,
    /// Whether any byte has been read; an input without one is not a compressed stream.
    started: bool,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(0) if !self.started => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the input is empty",
            )),
            Ok(n) => {
                self.started = true;
                Ok(n)
            }
            // Left as is: decoders and callers retry it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(io::Error::new(e.kind(), SourceError(e))),
        }
    }
}

/// Sorts a decoder's errors into the caller's own and [`CompressError::Corrupt`], and keeps
/// failing once it has failed: a decoder that has reported damage may otherwise answer the next
/// read with a clean end of data.
struct Checked<R> {
    inner: R,
    compression: Compression,
    failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let e = classify(self.compression, e);
                self.failed = Some((e.kind(), e.to_string()));
                Err(e)
            }
        }
    }
}

/// The caller's error unchanged, or the decoder's as [`CompressError::Corrupt`].
fn classify(compression: Compression, e: io::Error) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<SourceError>()) {
        let kind = e.kind();
        return match e.into_inner().map(|inner| inner.downcast::<SourceError>()) {
            Some(Ok(source)) => source.0,
            // Unreachable after the check above; keep the error rather than lose it.
            Some(Err(other)) => io::Error::new(kind, other),
            None => io::Error::from(kind),
        };
    }
    let kind = match e.kind() {
        io::ErrorKind::UnexpectedEof => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(
        kind,
        CompressError::Corrupt {
            compression,
            source: e,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Compressor, Level};
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> (i % 23)).to_le_bytes())
            .collect()
    }

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let codec = Codec::new(c, Some(Level::Low)).unwrap();
        let mut out = Vec::new();
        let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
        out
    }

    fn decompress(c: Compression, stored: &[u8]) -> io::Result<Vec<u8>> {
        let mut back = Vec::new();
        Codec::new(c, None)
            .unwrap()
            .decoder(Box::new(stored))?
            .read_to_end(&mut back)?;
        Ok(back)
    }

    fn corrupt_payload(e: &io::Error) -> Option<Compression> {
        match e.get_ref()?.downcast_ref::<CompressError>()? {
            CompressError::Corrupt { compression, .. } => Some(*compression),
            _ => None,
        }
    }

    const COMPRESSED: [Compression; 6] = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ];

    #[test]
    fn empty_input_is_an_error_except_for_plain_bytes() {
        assert!(decompress(Compression::None, b"").unwrap().is_empty());
        for c in COMPRESSED {
            let err = decompress(c, b"").expect_err(c.name());
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{c}: {err}");
            assert_eq!(corrupt_payload(&err), Some(c), "{c}: {err}");
        }
    }

    #[test]
    fn truncation_in_the_middle_is_an_error() {
        let data = sample();
        for c in COMPRESSED {
            let stored = compress(c, &data);
            for cut in [1, stored.len() / 3, stored.len() / 2, stored.len() - 1] {
                let err = decompress(c, &stored[..cut]).expect_err(&format!("{c} cut at {cut}"));
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ),
                    "{c} cut at {cut}: {err:?}"
                );
                assert_eq!(corrupt_payload(&err), Some(c), "{c}: {err}");
            }
        }
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let data = sample();
        for c in [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
        ] {
            let mut stored = compress(c, &data);
            stored.extend_from_slice(b"\x00garbage after the stream");
            let err = decompress(c, &stored).expect_err(c.name());
            assert_eq!(corrupt_payload(&err), Some(c), "{c}: {err}");
        }
    }

    #[test]
    fn concatenated_streams_read_as_one() {
        for c in COMPRESSED {
            let mut stored = compress(c, b"first part, ");
            stored.extend(compress(c, b"second part"));
            assert_eq!(
                decompress(c, &stored).unwrap(),
                b"first part, second part",
                "{c}"
            );
        }
    }

    #[test]
    fn errors_of_the_caller_reader_pass_through_unchanged() {
        struct Failing<'a> {
            data: &'a [u8],
        }
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.data.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "peer went away",
                    ));
                }
                let n = buf.len().min(self.data.len()).min(1000);
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let data = sample();
        for c in Compression::ALL {
            let stored = compress(c, &data);
            let half = &stored[..stored.len() / 2];
            let mut back = Vec::new();
            let mut dec = Codec::new(c, None)
                .unwrap()
                .decoder(Box::new(Failing { data: half }))
                .unwrap();
            let err = dec.read_to_end(&mut back).expect_err(c.name());
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{c}: {err:?}");
            assert_eq!(err.to_string(), "peer went away", "{c}");
            assert_eq!(corrupt_payload(&err), None, "{c}");
        }
    }

    #[test]
    fn a_failed_decoder_keeps_failing() {
        let stored = compress(Compression::Lz4, &sample());
        let mut dec = Codec::new(Compression::Lz4, None)
            .unwrap()
            .decoder(Box::new(&stored[..stored.len() / 2]))
            .unwrap();
        let mut sink = Vec::new();
        let first = dec.read_to_end(&mut sink).unwrap_err();
        let again = dec.read(&mut [0u8; 64]).unwrap_err();
        assert_eq!(first.kind(), again.kind());
        assert_eq!(first.to_string(), again.to_string());
    }
}
