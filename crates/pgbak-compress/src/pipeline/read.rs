//! The reading half: source -> [stored measure] -> [decrypt] -> [decompress] -> [plain measure],
//! with encryption and compression found from the bytes themselves.

use std::io::{self, Read};
use std::sync::Arc;

use super::meter::Meter;
use super::openpgp::{self, PROBE_LEN};
use super::shared::{lock, shared, Handle, Shared};
use super::{Digests, PipelineStats};
use crate::decode::{self, read_up_to};
use crate::{detect, CompressError, Compression, Encryptor};

/// How to open a [`ReadPipeline`]; start with [`ReadPipeline::builder`].
#[must_use]
#[derive(Clone, Default)]
pub struct ReadPipelineBuilder {
    encryptor: Option<Arc<dyn Encryptor>>,
    plain: Digests,
    stored: Digests,
    expect: Option<(u32, u64)>,
    expect_stored: Option<(u32, u64)>,
    decode_as: Option<Compression>,
}

impl ReadPipelineBuilder {
    /// Decrypts encrypted streams with `encryptor`. Without one, an encrypted stream is refused
    /// when the pipeline opens.
    pub fn encryptor(mut self, encryptor: Option<Arc<dyn Encryptor>>) -> Self {
        self.encryptor = encryptor;
        self
    }

    /// Computes `digests` of the plain bytes handed to the caller (bytes are always counted).
    pub fn measure_plain(mut self, digests: Digests) -> Self {
        self.plain = digests;
        self
    }

    /// Computes `digests` of the bytes read from the source (bytes are always counted).
    pub fn measure_stored(mut self, digests: Digests) -> Self {
        self.stored = digests;
        self
    }

    /// Fails the read that reaches the end of the stream (or goes past `size` bytes) with
    /// `InvalidData` carrying [`CompressError::ChecksumMismatch`] unless the plain bytes are exactly
    /// `size` bytes with CRC-32C `crc32c`. Implies a CRC-32C of the plain side.
    pub fn expect(mut self, crc32c: u32, size: u64) -> Self {
        self.expect = Some((crc32c, size));
        self.plain.crc32c = true;
        self
    }

    /// Fails the read that reaches the end of the stream with `InvalidData` carrying
    /// [`CompressError::StoredChecksumMismatch`] unless the bytes read from the source (before
    /// decryption and decompression) are exactly `size` bytes with CRC-32C `crc32c`: what a
    /// writer measured with `measure_stored(Digests::CRC32C)`. Implies a CRC-32C of the stored
    /// side. With a codec written without its content checksum, this is what catches damage.
    pub fn expect_stored(mut self, crc32c: u32, size: u64) -> Self {
        self.expect_stored = Some((crc32c, size));
        self.stored.crc32c = true;
        self
    }

    /// Decodes as `compression` instead of detecting it, for streams whose producer said what it
    /// wrote (a server compressing BASE_BACKUP): a stream in another format fails as corrupt.
    pub fn decode_as(mut self, compression: Compression) -> Self {
        self.decode_as = Some(compression);
        self
    }

    /// Reads the first bytes of `source` to find what was done to them, and returns the pipeline
    /// that undoes it. Errors of `source` are returned as they are; an encrypted stream without an
    /// encryptor is an error of kind `Unsupported` carrying [`CompressError::EncryptedNoEncryptor`].
    pub fn open<'a, R: Read + Send + 'a>(self, mut source: R) -> io::Result<ReadPipeline<'a>> {
        let mut probe = [0u8; PROBE_LEN];
        let n = read_up_to(&mut source, &mut probe)?;
        let prefix = &probe[..n];
        let encrypted = openpgp::looks_encrypted(prefix);
        if encrypted && self.encryptor.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                CompressError::EncryptedNoEncryptor,
            ));
        }
        let whole = io::Cursor::new(prefix.to_vec()).chain(source);
        let outer = self.decode_as.unwrap_or_else(|| detect(prefix));
        let mut pipeline = ReadPipeline {
            top: Box::new(io::empty()),
            plain: Meter::new(self.plain),
            plain_digests: self.plain,
            stored_digests: self.stored,
            bottom: None,
            compression: outer,
            encrypted,
            expect: self.expect,
            expect_stored: self.expect_stored,
            state: State::Reading,
        };
        if !encrypted && outer == Compression::None {
            // Stored as they are: one meter serves both sides, and no stage touches the bytes.
            pipeline.top = Box::new(whole);
            pipeline.plain = Meter::new(self.plain.union(self.stored));
            return Ok(pipeline);
        }
        let bottom = shared(Source {
            inner: Box::new(whole),
            meter: Meter::new(self.stored),
        });
        let stored: Box<dyn Read + Send + 'a> = Box::new(Handle(Arc::clone(&bottom)));
        pipeline.top = match (&self.encryptor, encrypted) {
            (Some(e), true) => {
                let decrypted = e.decrypt(stored)?;
                match self.decode_as {
                    Some(c) => decode::decoder(c, decrypted)?,
                    None => {
                        let (c, top) = crate::auto_decoder(decrypted)?;
                        pipeline.compression = c;
                        top
                    }
                }
            }
            _ => decode::decoder(outer, stored)?,
        };
        pipeline.bottom = Some(bottom);
        Ok(pipeline)
    }
}

/// A [`Read`] of the plain bytes of a stored stream, decrypting and decompressing as needed and
/// measuring both sides.
///
/// Damage is an error, never a short read: a truncated or corrupt compressed stream, bytes after
/// its end, a mismatch with [`ReadPipelineBuilder::expect`]. Once a read has failed, every later
/// read fails the same way. Errors of the source pass through unchanged.
pub struct ReadPipeline<'a> {
    top: Box<dyn Read + Send + 'a>,
    /// The plain-side meter; when plain bytes pass straight through it measures both sides.
    plain: Meter,
    plain_digests: Digests,
    stored_digests: Digests,
    /// The source with its meter, under the decryptor and decoder; `None` when nothing decodes.
    bottom: Option<Shared<Source<'a>>>,
    compression: Compression,
    encrypted: bool,
    expect: Option<(u32, u64)>,
    expect_stored: Option<(u32, u64)>,
    state: State,
}

enum State {
    Reading,
    Done(PipelineStats),
    Failed(io::ErrorKind, String),
}

/// The caller's source and the stored-side meter.
struct Source<'a> {
    inner: Box<dyn Read + Send + 'a>,
    meter: Meter,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.update(&buf[..n]);
        Ok(n)
    }
}

impl ReadPipeline<'static> {
    /// A builder for a pipeline with no encryptor, no digests and no expectation.
    pub fn builder() -> ReadPipelineBuilder {
        ReadPipelineBuilder::default()
    }
}

impl ReadPipeline<'_> {
    /// The compression of the plain bytes (found inside the encryption when encrypted).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the stream was encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The figures of both sides once a read has returned the end of the stream (0 bytes); `None`
    /// before that or after an error.
    pub fn stats(&self) -> Option<PipelineStats> {
        match &self.state {
            State::Done(stats) => Some(*stats),
            _ => None,
        }
    }

    /// Plain bytes read so far.
    pub fn plain_bytes(&self) -> u64 {
        self.plain.bytes()
    }

    /// Bytes read from the source so far, including those read ahead by the decoders (what a
    /// report of a failed read says was read).
    pub fn stored_bytes(&self) -> u64 {
        match &self.bottom {
            None => self.plain.bytes(),
            Some(bottom) => lock(bottom)
                .ok()
                .and_then(|g| g.as_ref().map(|s| s.meter.bytes()))
                .unwrap_or(0),
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.state = State::Failed(e.kind(), e.to_string());
        e
    }

    fn mismatch(&self, expected_crc32c: u32, expected_bytes: u64, at_end: bool) -> io::Error {
        let found = self.plain.measured();
        io::Error::new(
            io::ErrorKind::InvalidData,
            CompressError::ChecksumMismatch {
                expected_crc32c,
                expected_bytes,
                found_crc32c: if at_end { found.crc32c } else { None },
                found_bytes: found.bytes,
            },
        )
    }

    /// At the end of the plain stream: reads what the decoders left of the source (anything is
    /// trailing garbage), settles the figures and checks the expectation.
    fn end(&mut self) -> io::Result<PipelineStats> {
        let plain = self.plain.measured();
        let stored = match &self.bottom {
            None => plain,
            Some(bottom) => {
                let mut guard = lock(bottom)?;
                let source = guard
                    .as_mut()
                    .ok_or_else(|| io::Error::other("pipeline stage already finished"))?;
                let mut rest = [0u8; 512];
                let before = source.meter.bytes();
                loop {
                    match source.read(&mut rest) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                let trailing = source.meter.bytes() - before;
                if trailing > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        CompressError::TrailingData {
                            compression: self.compression,
                            encrypted: self.encrypted,
                            bytes: trailing,
                        },
                    ));
                }
                source.meter.measured()
            }
        };
        if let Some((crc, size)) = self.expect_stored {
            if stored.crc32c != Some(crc) || stored.bytes != size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    CompressError::StoredChecksumMismatch {
                        expected_crc32c: crc,
                        expected_bytes: size,
                        found_crc32c: stored.crc32c,
                        found_bytes: stored.bytes,
                    },
                ));
            }
        }
        if let Some((crc, size)) = self.expect {
            if plain.crc32c != Some(crc) || plain.bytes != size {
                return Err(self.mismatch(crc, size, true));
            }
        }
        Ok(PipelineStats {
            plain: plain.only(self.plain_digests),
            stored: stored.only(self.stored_digests),
        })
    }
}

impl Read for ReadPipeline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.state {
            State::Reading => {}
            State::Done(_) => return Ok(0),
            State::Failed(kind, message) => return Err(io::Error::new(*kind, message.clone())),
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match self.top.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.fail(e)),
        };
        if n > 0 {
            self.plain.update(&buf[..n]);
            if let Some((crc, size)) = self.expect {
                if self.plain.bytes() > size {
                    let e = self.mismatch(crc, size, false);
                    return Err(self.fail(e));
                }
            }
            return Ok(n);
        }
        match self.end() {
            Ok(stats) => {
                self.state = State::Done(stats);
                Ok(0)
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl std::fmt::Debug for ReadPipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPipeline")
            .field("compression", &self.compression)
            .field("encrypted", &self.encrypted)
            .field("plain_bytes", &self.plain.bytes())
            .finish_non_exhaustive()
    }
}
