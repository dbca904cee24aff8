//! The pipeline's promises, checked for every codec: bytes and figures come back as they went in,
//! damage is an error, the encryption slot sits between compression and the stored-side measure,
//! and plain bytes pass through without a copy.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use proptest::prelude::*;

use super::*;
use crate::{detect, Codec, CompressError, Compression, Encryptor, FinishWrite, Level};

/// Deterministic data: runs of zeros, counters and noise, like table pages with free space.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let run = (next() % 3000) as usize + 1;
        let kind = next() % 3;
        for i in 0..run {
            data.push(match kind {
                0 => 0,
                1 => (i as u8).wrapping_mul(7),
                _ => next() as u8,
            });
        }
    }
    data.truncate(len);
    data
}

fn codec(c: Compression) -> Codec {
    Codec::new(c, Some(Level::Low)).unwrap()
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The test-only encryptor: a header shaped like the symmetric-key session key packet GnuPG
/// writes, the bytes XORed with a constant, and a trailer written only by `finish`, so that an
/// abandoned stream does not decrypt.
struct XorEncryptor;

const XOR_HEADER: [u8; 15] = [
    0x8c, 0x0d, 0x04, 0x09, 0x03, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0xff,
];
const XOR_TRAILER: &[u8; 4] = b"XEND";
const XOR_KEY: u8 = 0x5a;

impl Encryptor for XorEncryptor {
    fn name(&self) -> &'static str {
        "xor-test"
    }

    fn encrypt<'a>(
        &self,
        inner: Box<dyn Write + Send + 'a>,
    ) -> io::Result<Box<dyn FinishWrite + 'a>> {
        Ok(Box::new(XorWriter {
            inner,
            started: false,
        }))
    }

    fn decrypt<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(Box::new(XorReader {
            inner,
            checked: false,
            held: Vec::new(),
            ended: false,
        }))
    }
}

struct XorWriter<'a> {
    inner: Box<dyn Write + Send + 'a>,
    started: bool,
}

impl XorWriter<'_> {
    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.inner.write_all(&XOR_HEADER)?;
            self.started = true;
        }
        Ok(())
    }
}

impl Write for XorWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.start()?;
        let x: Vec<u8> = buf.iter().map(|b| b ^ XOR_KEY).collect();
        self.inner.write_all(&x)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FinishWrite for XorWriter<'_> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.start()?;
        self.inner.write_all(XOR_TRAILER)?;
        self.inner.flush()
    }
}

struct XorReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    checked: bool,
    /// Bytes read but not yet handed out: the last four may be the trailer.
    held: Vec<u8>,
    ended: bool,
}

impl Read for XorReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked {
            let mut header = [0u8; XOR_HEADER.len()];
            self.inner.read_exact(&mut header)?;
            if header != XOR_HEADER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not xor-test data",
                ));
            }
            self.checked = true;
        }
        loop {
            if self.held.len() > XOR_TRAILER.len() {
                let n = buf.len().min(self.held.len() - XOR_TRAILER.len());
                for (o, i) in buf.iter_mut().zip(self.held.drain(..n)) {
                    *o = i ^ XOR_KEY;
                }
                return Ok(n);
            }
            if self.ended {
                return if self.held == XOR_TRAILER {
                    Ok(0)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "xor-test data without its trailer",
                    ))
                };
            }
            let mut chunk = [0u8; 8192];
            match self.inner.read(&mut chunk)? {
                0 => self.ended = true,
                n => self.held.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Writes `data` through a pipeline in pieces of `piece` bytes.
fn store(
    c: Compression,
    encryptor: Option<Arc<dyn Encryptor>>,
    digests: Digests,
    data: &[u8],
    piece: usize,
) -> (Vec<u8>, PipelineStats) {
    let codec = codec(c);
    let mut w = WritePipeline::builder(&codec)
        .encryptor(encryptor)
        .measure_plain(digests)
        .measure_stored(digests)
        .build(Vec::new())
        .unwrap();
    for p in data.chunks(piece.max(1)) {
        w.write_all(p).unwrap();
    }
    assert_eq!(w.plain_bytes(), data.len() as u64);
    w.finish().unwrap()
}

fn load(
    stored: &[u8],
    builder: ReadPipelineBuilder,
) -> (io::Result<Vec<u8>>, Option<PipelineStats>) {
    let mut r = match builder.open(stored) {
        Ok(r) => r,
        Err(e) => return (Err(e), None),
    };
    let mut back = Vec::new();
    let result = r.read_to_end(&mut back).map(|_| back);
    (result, r.stats())
}

fn expected(data: &[u8], digests: Digests) -> Measured {
    Measured {
        bytes: data.len() as u64,
        crc32c: digests.crc32c.then(|| crc32c::crc32c(data)),
        md5: digests.md5.then(|| md5_of(data)),
    }
}

fn payload(e: &io::Error) -> Option<&CompressError> {
    e.get_ref()?.downcast_ref::<CompressError>()
}

#[test]
fn every_codec_round_trips_with_exact_figures() {
    let data = sample(700_000, 7);
    for c in Compression::ALL {
        for digests in [Digests::NONE, Digests::CRC32C, Digests::CRC32C_MD5] {
            let (stored, stats) = store(c, None, digests, &data, 65_537);
            assert_eq!(stats.plain, expected(&data, digests), "{c} {digests:?}");
            assert_eq!(stats.stored, expected(&stored, digests), "{c} {digests:?}");
            assert_eq!(detect(&stored), c);
            if c == Compression::None {
                assert_eq!(stored, data);
            } else {
                assert!(stored.len() < data.len(), "{c} must compress");
            }

            let builder = ReadPipeline::builder()
                .measure_plain(digests)
                .measure_stored(digests);
            let (back, read_stats) = load(&stored, builder);
            assert!(back.unwrap() == data, "{c} {digests:?}");
            assert_eq!(read_stats, Some(stats), "{c} {digests:?}");
        }
    }
}

#[test]
fn empty_streams_round_trip() {
    for c in Compression::ALL {
        let (stored, stats) = store(c, None, Digests::CRC32C, b"", 1);
        assert_eq!(stats.plain.bytes, 0);
        assert_eq!(stats.plain.crc32c, Some(0));
        let (back, read_stats) = load(&stored, ReadPipeline::builder().expect(0, 0));
        assert!(back.unwrap().is_empty(), "{c}");
        assert_eq!(read_stats.unwrap().stored.bytes, stored.len() as u64, "{c}");
    }
}

#[test]
fn truncation_is_detected() {
    let data = sample(300_000, 11);
    for c in Compression::ALL {
        let (stored, stats) = store(c, None, Digests::CRC32C, &data, 100_000);
        for cut in [stored.len() / 3, stored.len() - 1] {
            let cut_stream = &stored[..cut];
            // Compressed formats see it by themselves; plain bytes need the recorded figures.
            if c != Compression::None {
                let (back, read_stats) = load(cut_stream, ReadPipeline::builder());
                let err = back.expect_err(&format!("{c} cut at {cut}"));
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ),
                    "{c}: {err}"
                );
                assert_eq!(read_stats, None);
            }
            let builder =
                ReadPipeline::builder().expect(stats.plain.crc32c.unwrap(), stats.plain.bytes);
            let (back, _) = load(cut_stream, builder);
            assert!(back.is_err(), "{c} cut at {cut}");
        }
    }
}

#[test]
fn corruption_is_detected() {
    let data = sample(300_000, 12);
    for c in Compression::ALL {
        let (mut stored, stats) = store(c, None, Digests::CRC32C, &data, 100_000);
        let at = stored.len() / 2;
        stored[at] ^= 0x20;
        let builder =
            ReadPipeline::builder().expect(stats.plain.crc32c.unwrap(), stats.plain.bytes);
        let (back, read_stats) = load(&stored, builder);
        let err = back.expect_err(c.name());
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{c}: {err}");
        assert_eq!(read_stats, None);
        if c == Compression::None {
            match payload(&err) {
                Some(CompressError::ChecksumMismatch {
                    expected_bytes,
                    found_bytes,
                    found_crc32c,
                    ..
                }) => {
                    assert_eq!((*expected_bytes, *found_bytes), (300_000, 300_000));
                    assert_eq!(*found_crc32c, Some(crc32c::crc32c(&stored)));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn expect_mismatch_fails_at_the_end_or_as_soon_as_the_data_is_too_long() {
    let data = sample(50_000, 13);
    let crc = crc32c::crc32c(&data);
    for c in [Compression::None, Compression::Zstd] {
        let (stored, _) = store(c, None, Digests::NONE, &data, 4096);
        // Right figures: success.
        let (back, stats) = load(&stored, ReadPipeline::builder().expect(crc, 50_000));
        assert!(back.is_ok(), "{c}");
        assert_eq!(stats.unwrap().plain.crc32c, Some(crc));
        // Wrong checksum: the data is read whole, the end is refused.
        let (back, stats) = load(&stored, ReadPipeline::builder().expect(crc ^ 1, 50_000));
        let err = back.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains(&format!("{:08x}", crc ^ 1)),
            "{err}"
        );
        assert_eq!(stats, None);
        // Longer than recorded: refused before the end.
        let mut r = ReadPipeline::builder()
            .expect(crc, 10_000)
            .open(&stored[..])
            .unwrap();
        let mut buf = vec![0u8; 8192];
        let mut got = 0u64;
        let err = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("{c}: reached the end"),
                Ok(n) => got += n as u64,
                Err(e) => break e,
            }
        };
        assert!(got <= 10_000, "{c}: {got}");
        assert!(err.to_string().contains("more than 10000 bytes"), "{err}");
        // A failed pipeline keeps failing.
        let again = r.read(&mut buf).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
        // Shorter than recorded.
        let (back, _) = load(&stored, ReadPipeline::builder().expect(crc, 50_001));
        assert!(back.unwrap_err().to_string().contains("found 50000 bytes"));
    }
}

#[test]
fn without_frame_checksums_the_stored_crc_catches_what_the_decoder_cannot() {
    // Incompressible bytes: lz4 and zstd store them as literals, so a flipped byte in the middle
    // of the frame decodes silently into a different byte when the frame has no checksum.
    let mut data = Vec::with_capacity(200_000);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while data.len() < 200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    for c in [Compression::Lz4, Compression::Zstd] {
        let with = codec(c);
        let without = codec(c).without_content_checksum();
        assert!(with.content_checksum() && !without.content_checksum());
        let write = |codec: &Codec| {
            let mut w = WritePipeline::builder(codec)
                .measure_stored(Digests::CRC32C)
                .build(Vec::new())
                .unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap()
        };
        let (checked, _) = write(&with);
        let (stored, stats) = write(&without);
        // The frame checksum is 4 bytes at the end of the frame.
        assert_eq!(checked.len(), stored.len() + 4, "{c}");
        let crc = stats.stored.crc32c.unwrap();
        assert_eq!(crc, crc32c::crc32c(&stored), "{c}");
        let size = stored.len() as u64;

        // Whole: read back, and the expectation holds.
        let (back, got) = load(&stored, ReadPipeline::builder().expect_stored(crc, size));
        assert_eq!(back.unwrap(), data, "{c}");
        assert_eq!(got.unwrap().stored.crc32c, Some(crc), "{c}");

        // One byte flipped in the middle: the decoder alone hands back other bytes...
        let mut bad = stored.clone();
        bad[stored.len() / 2] ^= 0x20;
        let (back, _) = load(&bad, ReadPipeline::builder());
        let back = back.unwrap();
        assert_ne!(back, data, "{c}: the flip must land in a literal");
        // ...which the frame checksum of the default codec refuses...
        let mut bad_checked = checked.clone();
        bad_checked[stored.len() / 2] ^= 0x20;
        assert!(
            load(&bad_checked, ReadPipeline::builder()).0.is_err(),
            "{c}"
        );
        // ...and the recorded CRC-32C refuses without it.
        let (back, got) = load(&bad, ReadPipeline::builder().expect_stored(crc, size));
        let err = back.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{c}");
        assert!(
            matches!(
                payload(&err),
                Some(CompressError::StoredChecksumMismatch { expected_crc32c, found_crc32c: Some(found), .. })
                    if *expected_crc32c == crc && *found == crc32c::crc32c(&bad)
            ),
            "{c}: {err}"
        );
        assert!(
            err.to_string().contains("stored bytes do not match"),
            "{err}"
        );
        assert_eq!(got, None);
        // A truncated stream is refused too (by the decoder or the recorded size).
        assert!(load(
            &stored[..stored.len() - 1],
            ReadPipeline::builder().expect_stored(crc, size)
        )
        .0
        .is_err());
    }
}

#[test]
fn the_encryption_slot_sits_between_compression_and_the_stored_measure() {
    let data = sample(400_000, 14);
    let encryptor: Arc<dyn Encryptor> = Arc::new(XorEncryptor);
    for c in Compression::ALL {
        let (stored, stats) = store(
            c,
            Some(encryptor.clone()),
            Digests::CRC32C_MD5,
            &data,
            30_000,
        );
        // The stored side measured the encrypted bytes.
        assert_eq!(stats.stored, expected(&stored, Digests::CRC32C_MD5), "{c}");
        assert_eq!(stats.plain, expected(&data, Digests::CRC32C_MD5), "{c}");
        // They are the XOR of the compressed stream, between the header and the trailer.
        assert!(stored.starts_with(&XOR_HEADER) && stored.ends_with(XOR_TRAILER));
        let inner: Vec<u8> = stored[XOR_HEADER.len()..stored.len() - XOR_TRAILER.len()]
            .iter()
            .map(|b| b ^ XOR_KEY)
            .collect();
        assert_eq!(detect(&inner), c, "compression happened before encryption");
        assert!(super::looks_encrypted(&stored));

        // The read side finds the encryption, then the compression inside it.
        let mut r = ReadPipeline::builder()
            .encryptor(Some(encryptor.clone()))
            .measure_plain(Digests::CRC32C_MD5)
            .measure_stored(Digests::CRC32C_MD5)
            .expect(stats.plain.crc32c.unwrap(), stats.plain.bytes)
            .open(&stored[..])
            .unwrap();
        assert!(r.encrypted());
        assert_eq!(r.compression(), c);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == data, "{c}");
        assert_eq!(r.stats(), Some(stats), "{c}");
    }
}

#[test]
fn an_encrypted_stream_without_an_encryptor_is_refused() {
    let (stored, _) = store(
        Compression::Zstd,
        Some(Arc::new(XorEncryptor)),
        Digests::NONE,
        b"secret WAL",
        10,
    );
    let err = ReadPipeline::builder().open(&stored[..]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(matches!(
        payload(&err),
        Some(CompressError::EncryptedNoEncryptor)
    ));
    assert!(err.to_string().contains("encrypted"), "{err}");
    // Unencrypted streams do not need one, with or without an encryptor configured.
    let (plain, _) = store(Compression::Zstd, None, Digests::NONE, b"WAL", 10);
    let (back, _) = load(
        &plain,
        ReadPipeline::builder().encryptor(Some(Arc::new(XorEncryptor))),
    );
    assert_eq!(back.unwrap(), b"WAL");
}

/// A sink that shares what it received, so a test can look after the pipeline dropped it.
#[derive(Clone, Default)]
struct Spy(Arc<Mutex<Vec<u8>>>);

impl Write for Spy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_abandoned_pipeline_leaves_an_incomplete_stream() {
    let data = sample(6 << 20, 15);
    let encryptors: [Option<Arc<dyn Encryptor>>; 2] = [None, Some(Arc::new(XorEncryptor))];
    for c in Compression::ALL {
        for encryptor in encryptors.clone() {
            let spy = Spy::default();
            let codec = codec(c);
            let mut w = WritePipeline::builder(&codec)
                .encryptor(encryptor.clone())
                .build(spy.clone())
                .unwrap();
            w.write_all(&data).unwrap();
            drop(w);
            let stored = spy.0.lock().unwrap().clone();
            if c == Compression::None && encryptor.is_none() {
                // Nothing to withhold: only the recorded figures tell (see truncation test).
                continue;
            }
            assert!(!stored.is_empty(), "{c}: nothing reached the sink");
            let (back, _) = load(&stored, ReadPipeline::builder().encryptor(encryptor));
            assert!(back.is_err(), "{c}: abandoned stream read as complete");
        }
    }
}

#[test]
fn plain_bytes_pass_through_without_a_copy() {
    /// Records where each buffer it is given lives.
    struct Addresses(Vec<(usize, usize)>);
    impl Write for Addresses {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push((buf.as_ptr() as usize, buf.len()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let data = sample(1 << 20, 16);
    let none = codec(Compression::None);
    let mut w = WritePipeline::builder(&none)
        .measure_plain(Digests::CRC32C)
        .measure_stored(Digests::CRC32C_MD5)
        .build(Addresses(Vec::new()))
        .unwrap();
    let pieces: Vec<&[u8]> = data.chunks(1000).collect();
    for p in &pieces {
        w.write_all(p).unwrap();
    }
    let (sink, stats) = w.finish().unwrap();
    // One write reached the sink per write made, each with the caller's own buffer.
    let given: Vec<(usize, usize)> = pieces
        .iter()
        .map(|p| (p.as_ptr() as usize, p.len()))
        .collect();
    assert_eq!(sink.0, given);
    assert_eq!(stats.plain.crc32c, stats.stored.crc32c);
    assert_eq!(stats.stored.md5, Some(md5_of(&data)));
    assert_eq!(stats.plain.md5, None);

    /// Records where each buffer it is asked to fill lives.
    struct Source<'d> {
        data: &'d [u8],
        asked: Vec<usize>,
    }
    impl Read for Source<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.asked.push(buf.as_ptr() as usize);
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
    let mut source = Source {
        data: &data,
        asked: Vec::new(),
    };
    let mut r = ReadPipeline::builder()
        .measure_stored(Digests::CRC32C)
        .open(&mut source)
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut first = true;
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if first {
            // The probed bytes come back first, from the pipeline's own small buffer.
            assert_eq!(n, 32);
            first = false;
        }
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, data.len());
    let stats = r.stats().unwrap();
    assert_eq!(stats.stored.crc32c, Some(crc32c::crc32c(&data)));
    drop(r);
    // After the probe, every read of the source filled the caller's buffer directly.
    let after_probe = &source.asked[1..];
    assert!(!after_probe.is_empty());
    assert!(after_probe.iter().all(|&p| p == buf.as_ptr() as usize));
}

#[test]
fn errors_of_the_sink_and_the_source_pass_through_unchanged() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let encryptors: [Option<Arc<dyn Encryptor>>; 2] = [None, Some(Arc::new(XorEncryptor))];
    for c in Compression::ALL {
        for encryptor in encryptors.clone() {
            let codec = codec(c);
            let result = WritePipeline::builder(&codec)
                .encryptor(encryptor)
                .build(Full)
                .and_then(|mut w| {
                    w.write_all(&[1u8; 10_000])?;
                    w.finish().map(|_| ())
                });
            let err = result.expect_err(c.name());
            assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{c}: {err}");
            assert_eq!(err.to_string(), "disk full");
        }
    }

    struct Reset<'d>(&'d [u8]);
    impl Read for Reset<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data = sample(200_000, 17);
    for c in Compression::ALL {
        let (stored, _) = store(c, None, Digests::NONE, &data, 50_000);
        let mut r = ReadPipeline::builder()
            .open(Reset(&stored[..stored.len() / 2]))
            .unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(r.stored_bytes(), (stored.len() / 2) as u64, "{c}");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{c}: {err}");
        assert_eq!(err.to_string(), "peer went away", "{c}");
        assert_eq!(r.stats(), None);
    }
}

#[test]
fn decode_as_refuses_another_format() {
    let data = sample(10_000, 18);
    let (gzip, _) = store(Compression::Gzip, None, Digests::NONE, &data, 10_000);
    let (back, _) = load(&gzip, ReadPipeline::builder().decode_as(Compression::Gzip));
    assert!(back.unwrap() == data);
    let (back, _) = load(&gzip, ReadPipeline::builder().decode_as(Compression::Zstd));
    let err = back.unwrap_err();
    assert!(
        matches!(
            payload(&err),
            Some(CompressError::Corrupt {
                compression: Compression::Zstd,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn pipelines_can_move_to_another_thread() {
    fn is_send<T: Send>(_: &T) {}
    let zstd = codec(Compression::Zstd);
    let w = WritePipeline::builder(&zstd).build(Vec::new()).unwrap();
    is_send(&w);
    let stored = w.finish().unwrap().0;
    let r = ReadPipeline::builder()
        .open(io::Cursor::new(stored))
        .unwrap();
    let handle = std::thread::spawn(move || {
        let mut r = r;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map(|_| out.len())
    });
    assert_eq!(handle.join().unwrap().unwrap(), 0);
}

fn any_compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the data, the pieces and the stages, the read side gives back the bytes and the
    /// figures the write side reported.
    #[test]
    fn write_then_read_is_identity(
        c in any_compression(),
        encrypt in any::<bool>(),
        len in 0usize..200_000,
        piece in 1usize..70_000,
        seed in any::<u64>(),
    ) {
        let data = sample(len, seed);
        let encryptor: Option<Arc<dyn Encryptor>> = encrypt.then(|| Arc::new(XorEncryptor) as _);
        let (stored, stats) = store(c, encryptor.clone(), Digests::CRC32C_MD5, &data, piece);
        prop_assert_eq!(stats.plain, expected(&data, Digests::CRC32C_MD5));
        prop_assert_eq!(stats.stored, expected(&stored, Digests::CRC32C_MD5));
        let builder = ReadPipeline::builder()
            .encryptor(encryptor)
            .measure_plain(Digests::CRC32C_MD5)
            .measure_stored(Digests::CRC32C_MD5)
            .expect(stats.plain.crc32c.unwrap(), stats.plain.bytes);
        let (back, read_stats) = load(&stored, builder);
        prop_assert!(back.unwrap() == data);
        prop_assert_eq!(read_stats, Some(stats));
    }

    /// A stream cut anywhere never reads back as the whole data with its recorded figures.
    #[test]
    fn a_cut_stream_never_passes_expect(
        c in any_compression(),
        encrypt in any::<bool>(),
        len in 1usize..100_000,
        cut_at in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let data = sample(len, seed);
        let encryptor: Option<Arc<dyn Encryptor>> = encrypt.then(|| Arc::new(XorEncryptor) as _);
        let (stored, stats) = store(c, encryptor.clone(), Digests::CRC32C, &data, 8192);
        let cut = cut_at.index(stored.len());
        let builder = ReadPipeline::builder()
            .encryptor(encryptor)
            .expect(stats.plain.crc32c.unwrap(), stats.plain.bytes);
        let (back, read_stats) = load(&stored[..cut], builder);
        prop_assert!(back.is_err());
        prop_assert_eq!(read_stats, None);
    }
}
