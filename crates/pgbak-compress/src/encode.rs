//! The writing half of every codec: one [`FinishWrite`] that compresses into a caller's writer and
//! writes the format's trailer only when told the stream is complete.
//!
//! An abandoned encoder must not leave a file that looks whole. Several encoders (flate2, liblzma,
//! bzip2, snap) finish their stream when dropped; a [`Gate`] under them closes when the encoder is
//! dropped without [`FinishWrite::finish`], so those last writes fail and the output stays visibly
//! truncated.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::detect::SNAPPY_STREAM_IDENTIFIER;
use crate::{Compression, FinishWrite};

/// Size of the buffer between an encoder and the caller's writer: compressed output reaches it in
/// large writes whatever the codec's own block size (snappy writes 8-byte chunk headers).
const OUTPUT_BUFFER: usize = 1 << 20;

/// Builds the encoder for `compression` at the already validated `level`, on `workers` threads
/// where the format can; zstd and lz4 frames end with a content checksum when `checksum` is set.
pub(crate) fn encoder<'a>(
    compression: Compression,
    level: i32,
    workers: u32,
    checksum: bool,
    inner: Box<dyn Write + Send + 'a>,
) -> io::Result<Box<dyn FinishWrite + 'a>> {
    let open = Arc::new(AtomicBool::new(true));
    let out = BufWriter::with_capacity(
        OUTPUT_BUFFER,
        Gate {
            inner,
            open: Arc::clone(&open),
        },
    );
    // Only zstd has negative levels, and it takes the signed value.
    let unsigned = level.max(0) as u32;
    let kind = match compression {
        Compression::None => Kind::None(out),
        Compression::Gzip => Kind::Gzip(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::new(unsigned),
        )),
        Compression::Bzip2 => Kind::Bzip2(bzip2::write::BzEncoder::new(
            out,
            bzip2::Compression::new(unsigned),
        )),
        Compression::Xz => {
            let stream =
                liblzma::stream::Stream::new_easy_encoder(unsigned, liblzma::stream::Check::Crc64)
                    .map_err(io::Error::from)?;
            Kind::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, level)?;
            enc.include_checksum(checksum)?;
            if workers > 0 {
                enc.multithread(workers)?;
                // Each worker holds a job's input and output: 512 KiB jobs (zstd's smallest) keep
                // a backup with 2 workers near 30 MB of peak memory, against 45 MB with zstd's
                // default jobs at level 1, for the same speed (issue 13).
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            }
            Kind::Zstd(enc)
        }
        Compression::Lz4 => {
            // A content checksum catches any corruption at the end of the frame; per-block
            // checksums would only report it earlier, for a second pass over every block.
            // Callers that check a CRC-32C of the stored bytes go without it.
            // Independent blocks compress faster than linked ones for the same ratio at this
            // size; 1 MiB blocks rather than the lz4 tool's 4 MiB hold a quarter of the memory
            // (the encoder buffers a block in and a block out) for the same speed (issue 13).
            let enc = lz4::EncoderBuilder::new()
                .level(unsigned)
                .block_size(lz4::BlockSize::Max1MB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(if checksum {
                    lz4::ContentChecksum::ChecksumEnabled
                } else {
                    lz4::ContentChecksum::NoChecksum
                })
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .build(out)?;
            Kind::Lz4(enc)
        }
        Compression::Snappy => Kind::Snappy {
            enc: Box::new(snap::write::FrameEncoder::new(out)),
            wrote: false,
        },
    };
    Ok(Box::new(Encoder {
        kind: Some(kind),
        open,
    }))
}

/// The job size of multi-threaded zstd (its minimum).
const ZSTD_JOB_SIZE: u32 = 512 << 10;
/// The buffered writer every encoder writes into.
type Out<'a> = BufWriter<Gate<'a>>;

/// One live encoder per format; `Option` in [`Encoder`] lets `finish` move it out.
enum Kind<'a> {
    None(Out<'a>),
    Gzip(flate2::write::GzEncoder<Out<'a>>),
    Bzip2(bzip2::write::BzEncoder<Out<'a>>),
    Xz(liblzma::write::XzEncoder<Out<'a>>),
    Zstd(zstd::stream::write::Encoder<'static, Out<'a>>),
    Lz4(lz4::Encoder<Out<'a>>),
    /// `wrote` records whether any byte went in: snap writes its stream identifier lazily, and an
    /// empty stream must still be a valid (and detectable) snappy stream.
    Snappy {
        enc: Box<snap::write::FrameEncoder<Out<'a>>>,
        wrote: bool,
    },
}

/// The [`FinishWrite`] handed to callers.
struct Encoder<'a> {
    kind: Option<Kind<'a>>,
    /// Shared with the [`Gate`] at the bottom of the chain.
    open: Arc<AtomicBool>,
}

impl<'a> Encoder<'a> {
    fn kind(&mut self) -> io::Result<&mut Kind<'a>> {
        // `finish` consumes the box, so a missing kind would mean a bug, not bad input.
        self.kind
            .as_mut()
            .ok_or_else(|| io::Error::other("compressed stream already finished"))
    }
}

impl Write for Encoder<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.kind()? {
            Kind::None(w) => w.write(buf),
            Kind::Gzip(w) => w.write(buf),
            Kind::Bzip2(w) => w.write(buf),
            Kind::Xz(w) => w.write(buf),
            Kind::Zstd(w) => w.write(buf),
            Kind::Lz4(w) => w.write(buf),
            Kind::Snappy { enc, wrote } => {
                *wrote |= !buf.is_empty();
                enc.write(buf)
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Forwarded so that each codec's own write_all (which loops over whole blocks) is used.
        match self.kind()? {
            Kind::None(w) => w.write_all(buf),
            Kind::Gzip(w) => w.write_all(buf),
            Kind::Bzip2(w) => w.write_all(buf),
            Kind::Xz(w) => w.write_all(buf),
            Kind::Zstd(w) => w.write_all(buf),
            Kind::Lz4(w) => w.write_all(buf),
            Kind::Snappy { enc, wrote } => {
                *wrote |= !buf.is_empty();
                enc.write_all(buf)
            }
        }
    }

    /// Pushes everything written so far down to the caller's writer. This ends the current block
    /// (lz4, snappy) or forces a sync point (gzip, zstd), so calling it often costs ratio.
    fn flush(&mut self) -> io::Result<()> {
        match self.kind()? {
            Kind::None(w) => w.flush(),
            Kind::Gzip(w) => w.flush(),
            Kind::Bzip2(w) => w.flush(),
            Kind::Xz(w) => w.flush(),
            Kind::Zstd(w) => w.flush(),
            Kind::Lz4(w) => w.flush(),
            Kind::Snappy { enc, .. } => enc.flush(),
        }
    }
}

impl FinishWrite for Encoder<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let out = match self.kind.take() {
            None => return Err(io::Error::other("compressed stream already finished")),
            Some(Kind::None(w)) => w,
            Some(Kind::Gzip(w)) => w.finish()?,
            Some(Kind::Bzip2(w)) => w.finish()?,
            Some(Kind::Xz(w)) => w.finish()?,
            Some(Kind::Zstd(w)) => w.finish()?,
            Some(Kind::Lz4(w)) => {
                let (out, result) = w.finish();
                result?;
                out
            }
            Some(Kind::Snappy { enc, wrote }) => {
                let mut out = enc.into_inner().map_err(|e| e.into_error())?;
                if !wrote {
                    out.write_all(&SNAPPY_STREAM_IDENTIFIER)?;
                }
                out
            }
        };
        let mut gate = out.into_inner().map_err(|e| e.into_error())?;
        gate.inner.flush()
    }
}

impl Drop for Encoder<'_> {
    fn drop(&mut self) {
        if self.kind.is_some() {
            self.open.store(false, Ordering::Release);
        }
    }
}

/// The caller's writer, closed for good once the encoder above it has been abandoned.
struct Gate<'a> {
    inner: Box<dyn Write + Send + 'a>,
    open: Arc<AtomicBool>,
}

impl Gate<'_> {
    fn check(&self) -> io::Result<()> {
        if self.open.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(io::Error::other(
                "compressed stream abandoned before finish",
            ))
        }
    }
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Compressor, Level};
    use std::io::Read;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let codec = Codec::new(c, Some(Level::Low)).unwrap();
        let mut out = Vec::new();
        let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
        out
    }

    #[test]
    fn empty_input_gives_a_complete_stream_for_every_codec() {
        for c in Compression::ALL {
            let out = compress(c, b"");
            assert_eq!(out.is_empty(), c == Compression::None, "{c}");
            let codec = Codec::new(c, None).unwrap();
            let mut back = Vec::new();
            codec
                .decoder(Box::new(&out[..]))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back.is_empty(), "{c}");
            assert_eq!(crate::detect(&out), c, "{c}");
        }
    }

    #[test]
    fn abandoned_encoder_leaves_no_trailer() {
        // Incompressible and larger than the output buffer and lz4's 4 MiB blocks, so that compressed bytes reach the
        // caller's writer before the encoder is dropped.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..5 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for c in Compression::ALL {
            let mut out = Vec::new();
            {
                let codec = Codec::new(c, Some(Level::Low)).unwrap();
                let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
                enc.write_all(&data).unwrap();
                drop(enc);
            }
            assert!(!out.is_empty(), "{c}: nothing reached the writer");
            if c == Compression::None {
                // Plain bytes have no trailer to withhold.
                continue;
            }
            let codec = Codec::new(c, None).unwrap();
            let mut back = Vec::new();
            let result = codec
                .decoder(Box::new(&out[..]))
                .unwrap()
                .read_to_end(&mut back);
            assert!(result.is_err(), "{c}: abandoned stream decoded as complete");
        }
    }

    #[test]
    fn small_writes_give_the_same_bytes_back() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in Compression::ALL {
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let mut out = Vec::new();
            let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
            for chunk in data.chunks(7) {
                enc.write_all(chunk).unwrap();
            }
            enc.flush().unwrap();
            enc.write_all(b"after flush").unwrap();
            enc.finish().unwrap();
            let mut back = Vec::new();
            codec
                .decoder(Box::new(&out[..]))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), data.len() + 11, "{c}");
            assert!(
                back.starts_with(&data) && back.ends_with(b"after flush"),
                "{c}"
            );
        }
    }

    #[test]
    fn errors_of_the_inner_writer_reach_the_caller() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for c in Compression::ALL {
            let codec = Codec::new(c, Some(Level::Low)).unwrap();
            let result = codec.encoder(Box::new(Full)).and_then(|mut enc| {
                enc.write_all(&[1u8; 10_000])?;
                enc.finish()
            });
            let err = result.expect_err(c.name());
            assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{c}: {err}");
        }
    }
}
