//! The writing half: the caller's bytes go through [plain measure] -> compress -> [encrypt] ->
//! [stored measure] into the sink, and [`WritePipeline::finish`] hands the sink back with the
//! figures of both sides.

use std::io::{self, Write};
use std::sync::Arc;

use super::meter::Meter;
use super::shared::{shared, take, Handle, Shared};
use super::{Digests, PipelineStats};
use crate::{Compression, Compressor, Encryptor, FinishWrite};

/// How to build a [`WritePipeline`]; start with [`WritePipeline::builder`].
#[must_use]
pub struct WritePipelineBuilder<'c> {
    compressor: &'c dyn Compressor,
    encryptor: Option<Arc<dyn Encryptor>>,
    plain: Digests,
    stored: Digests,
}

impl<'c> WritePipelineBuilder<'c> {
    /// Encrypts after compressing, with `encryptor` when it is `Some`.
    pub fn encryptor(mut self, encryptor: Option<Arc<dyn Encryptor>>) -> Self {
        self.encryptor = encryptor;
        self
    }

    /// Computes `digests` of the caller's bytes, before compression (bytes are always counted).
    pub fn measure_plain(mut self, digests: Digests) -> Self {
        self.plain = digests;
        self
    }

    /// Computes `digests` of the bytes that reach the sink (bytes are always counted).
    pub fn measure_stored(mut self, digests: Digests) -> Self {
        self.stored = digests;
        self
    }

    /// The pipeline writing into `sink`.
    ///
    /// Fails only when a stage cannot start (an encryptor without a usable key, say).
    pub fn build<'a, W: Write + Send + 'a>(self, sink: W) -> io::Result<WritePipeline<'a, W>> {
        let compress = self.compressor.compression() != Compression::None;
        let chain = match (&self.encryptor, compress) {
            (None, false) => Chain::Direct {
                sink,
                // One meter serves both sides: the bytes are the same.
                meter: Meter::new(self.plain.union(self.stored)),
            },
            (encryptor, _) => {
                let bottom = shared(Bottom {
                    sink,
                    meter: Meter::new(self.stored),
                });
                let below: Box<dyn Write + Send + 'a> = Box::new(Handle(Arc::clone(&bottom)));
                let (top, encrypt) = match encryptor {
                    None => (self.compressor.encoder(below)?, None),
                    // Plain bytes need no codec, and the `None` codec would copy them.
                    Some(e) if !compress => (e.encrypt(below)?, None),
                    Some(e) => {
                        let encrypt = shared(e.encrypt(below)?);
                        let top = self
                            .compressor
                            .encoder(Box::new(Handle(Arc::clone(&encrypt))))?;
                        (top, Some(encrypt))
                    }
                };
                Chain::Staged {
                    top,
                    encrypt,
                    bottom,
                }
            }
        };
        let direct = matches!(chain, Chain::Direct { .. });
        Ok(WritePipeline {
            plain: Meter::new(if direct { Digests::NONE } else { self.plain }),
            plain_digests: self.plain,
            stored_digests: self.stored,
            chain,
        })
    }
}

/// A [`Write`] that compresses, encrypts and measures on the way to `W`.
///
/// Call [`WritePipeline::finish`] at the end of the stream: it writes every stage's trailer, in
/// order, and returns the sink (so that the caller can commit it) with the [`PipelineStats`].
/// Dropped without `finish`, the pipeline leaves an incomplete stream (no codec trailer, no
/// encryption trailer) and drops the sink, which for a storage `ObjectWriter` means that nothing
/// becomes visible.
///
/// Errors of the sink reach the caller unchanged (same kind and message), so that a full disk
/// stays a full disk.
pub struct WritePipeline<'a, W> {
    /// Plain-side meter of a staged chain; a direct chain measures both sides in its own meter.
    plain: Meter,
    plain_digests: Digests,
    stored_digests: Digests,
    chain: Chain<'a, W>,
}

enum Chain<'a, W> {
    /// No compression and no encryption: the caller's buffers reach the sink as they are.
    Direct { sink: W, meter: Meter },
    Staged {
        /// Where the caller's bytes enter: the encoder, or the encryptor when nothing compresses.
        top: Box<dyn FinishWrite + 'a>,
        /// The encryptor under an encoder: finished after it.
        encrypt: Option<Shared<Box<dyn FinishWrite + 'a>>>,
        bottom: Shared<Bottom<W>>,
    },
}

/// The stored-side measure and the sink.
struct Bottom<W> {
    sink: W,
    meter: Meter,
}

impl<W: Write> Write for Bottom<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sink.write(buf)?;
        self.meter.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.sink.write_all(buf)?;
        self.meter.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl WritePipeline<'static, io::Sink> {
    /// A builder for a pipeline that compresses with `compressor` (`Compression::None` stores the
    /// bytes as they are), without encryption or digests until told otherwise.
    pub fn builder(compressor: &dyn Compressor) -> WritePipelineBuilder<'_> {
        WritePipelineBuilder {
            compressor,
            encryptor: None,
            plain: Digests::NONE,
            stored: Digests::NONE,
        }
    }
}

impl<'a, W: Write + Send + 'a> WritePipeline<'a, W> {
    /// Plain bytes written so far.
    pub fn plain_bytes(&self) -> u64 {
        match &self.chain {
            Chain::Direct { meter, .. } => meter.bytes(),
            Chain::Staged { .. } => self.plain.bytes(),
        }
    }

    /// Ends the stream: the encoder's trailer, then the encryptor's, then a flush of the sink.
    /// Returns the sink, not yet committed, and the figures of both sides.
    pub fn finish(self) -> io::Result<(W, PipelineStats)> {
        let (mut sink, plain, stored) = match self.chain {
            Chain::Direct { sink, meter } => {
                let m = meter.measured();
                (sink, m, m)
            }
            Chain::Staged {
                top,
                encrypt,
                bottom,
            } => {
                top.finish()?;
                if let Some(encrypt) = encrypt {
                    take(&encrypt)?.finish()?;
                }
                let Bottom { sink, meter } = take(&bottom)?;
                (sink, self.plain.measured(), meter.measured())
            }
        };
        sink.flush()?;
        Ok((
            sink,
            PipelineStats {
                plain: plain.only(self.plain_digests),
                stored: stored.only(self.stored_digests),
            },
        ))
    }
}

impl<'a, W: Write + Send + 'a> Write for WritePipeline<'a, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.chain {
            Chain::Direct { sink, meter } => {
                let n = sink.write(buf)?;
                meter.update(&buf[..n]);
                Ok(n)
            }
            Chain::Staged { top, .. } => {
                let n = top.write(buf)?;
                self.plain.update(&buf[..n]);
                Ok(n)
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.chain {
            Chain::Direct { sink, meter } => {
                sink.write_all(buf)?;
                meter.update(buf);
            }
            Chain::Staged { top, .. } => {
                top.write_all(buf)?;
                self.plain.update(buf);
            }
        }
        Ok(())
    }

    /// Pushes everything written so far down to the sink. Compressed formats end a block or force
    /// a sync point to do so, so calling it often costs ratio.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.chain {
            Chain::Direct { sink, .. } => sink.flush(),
            Chain::Staged { top, .. } => top.flush(),
        }
    }
}

impl<W> std::fmt::Debug for WritePipeline<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritePipeline")
            .field(
                "chain",
                &match self.chain {
                    Chain::Direct { .. } => "direct",
                    Chain::Staged { .. } => "staged",
                },
            )
            .field("plain_digests", &self.plain_digests)
            .field("stored_digests", &self.stored_digests)
            .finish_non_exhaustive()
    }
}
