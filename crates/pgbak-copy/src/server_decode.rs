//! Archives the server compressed (BASE_BACKUP's `COMPRESSION`): the bytes are kept exactly as
//! they arrive, while the tar parser (which captures `backup_label` and `tablespace_map`, and
//! extracts plain backups) reads them decompressed. Decoding is streaming on the writer thread,
//! so memory stays bounded by the channel depth and the decoder's window whatever the archive size.
//!
//! A tar backup needs only `backup_label` and `tablespace_map` from inside the stream, which
//! PostgreSQL sends first in `base.tar`: decoding stops once they have passed, and the rest is
//! stored as it arrives without being decompressed ([`Decode::UntilCaptured`]), so the server's
//! compression costs the writer nothing more than `pg_basebackup -Ft` pays. Tablespace archives
//! of a tar backup are not decoded at all; a plain backup decodes everything to extract it.

use crate::tar::TarStreamParser;
use crate::writer::{Job, Observer};
use crate::{Error, Result};
use pgbak_compress::pipeline::ReadPipeline;
use pgbak_compress::Compression;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

/// Decompressed bytes handed to the tar parser at a time.
const DECODED_CHUNK: usize = 256 << 10;

/// Why the channel reader stopped giving bytes.
#[derive(Debug)]
enum Stop {
    /// The archive's end arrived.
    End,
    /// The receiving side gave up: the channel closed before the end.
    Closed,
    /// Storing the raw bytes failed, or a message arrived that has no place inside an archive.
    Failed(Error),
}

/// Reads an archive's chunks from the channel as one byte stream, writing each chunk unchanged to
/// `raw` (the stored object) as it passes.
struct ChannelReader<'a> {
    rx: Receiver<Job>,
    recycle: SyncSender<Vec<u8>>,
    raw: Option<&'a mut (dyn Write + Send)>,
    what: &'a str,
    current: Vec<u8>,
    pos: usize,
    stop: Option<Stop>,
}

impl ChannelReader<'_> {
    fn fail(&mut self, stop: Stop) {
        self.stop = Some(stop);
    }

    /// The next chunk of the archive, already stored; `None` once the archive ended or the
    /// stream stopped (`stop` says why).
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.stop.is_some() {
            return None;
        }
        match self.rx.recv() {
            Err(_) => self.fail(Stop::Closed),
            Ok(Job::Data(buf)) => match self.raw.as_deref_mut().map(|raw| raw.write_all(&buf)) {
                Some(Err(e)) => {
                    let error = Error::stream("write", self.what, e);
                    self.fail(Stop::Failed(error));
                }
                _ => return Some(buf),
            },
            Ok(Job::End) => self.stop = Some(Stop::End),
            Ok(other) => {
                let error =
                    Error::Aborted(format!("internal: {} inside an archive", other.describe()));
                self.fail(Stop::Failed(error));
            }
        }
        None
    }

    /// Stores the rest of the archive as it arrives, up to its end.
    fn drain(&mut self) {
        while let Some(buf) = self.next_chunk() {
            let _ = self.recycle.try_send(buf);
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = out.len().min(self.current.len() - self.pos);
                out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            let Some(buf) = self.next_chunk() else {
                return match self.stop {
                    Some(Stop::End) => Ok(0),
                    Some(Stop::Closed) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream was cut",
                    )),
                    _ => Err(io::Error::other("the archive could not be stored")),
                };
            };
            let used = std::mem::replace(&mut self.current, buf);
            self.pos = 0;
            // Hand the buffer back for reuse; if the pool is full it is simply freed.
            let _ = self.recycle.try_send(used);
        }
    }
}

/// How much of a server-compressed archive the tar parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decode {
    /// All of it (a plain backup extracts every file): the stream's end is checked too.
    Whole,
    /// Until the label capture has what it needs (nothing, without a capture); the rest is only
    /// stored.
    UntilCaptured,
}

/// Feeds one server-compressed archive to `raw` as received and, decompressed with `compression`,
/// to the tar parser, as far as `decode` says. Returns the receiver (taken by value because
/// decoders must be `Send`) and false when the channel closed first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pump_compressed<'a>(
    rx: Receiver<Job>,
    recycle: &SyncSender<Vec<u8>>,
    compression: Compression,
    what: &'a str,
    parser: &mut TarStreamParser,
    visitor: &mut Observer<'_>,
    raw: Option<&'a mut (dyn Write + Send)>,
    decode: Decode,
) -> (Receiver<Job>, Result<bool>) {
    let mut reader = ChannelReader {
        rx,
        recycle: recycle.clone(),
        raw,
        what,
        current: Vec::new(),
        pos: 0,
        stop: None,
    };
    let wanted = |v: &Observer<'_>| match decode {
        Decode::Whole => true,
        Decode::UntilCaptured => v.capture.as_deref().is_some_and(|c| !c.complete()),
    };
    let result = match wanted(visitor) {
        true => decode_into(&mut reader, compression, what, parser, visitor, &wanted),
        false => Ok(false),
    };
    // Stopped early: the rest of the archive is only stored.
    let result = match result {
        Ok(false) => {
            reader.drain();
            Ok(())
        }
        other => other.map(|_| ()),
    };
    let result = match (result, reader.stop.take()) {
        (_, Some(Stop::Closed)) => Ok(false),
        (_, Some(Stop::Failed(e))) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(()), Some(Stop::End)) if decode == Decode::Whole => parser.finish().map(|()| true),
        (Ok(()), Some(Stop::End)) => Ok(true),
        (Ok(()), None) => Err(Error::Aborted(format!(
            "internal: {what} decoded to its end before the archive ended"
        ))),
    };
    (reader.rx, result)
}

/// Decodes into the parser while `wanted`; true when the stream was decoded to its end, false
/// when decoding stopped before.
fn decode_into(
    reader: &mut ChannelReader<'_>,
    compression: Compression,
    what: &str,
    parser: &mut TarStreamParser,
    visitor: &mut Observer<'_>,
    wanted: &dyn Fn(&Observer<'_>) -> bool,
) -> Result<bool> {
    let decode_error = |e: io::Error| Error::stream("decompress", what, e);
    // The pipeline reads the source to its end once the decoder is done: bytes after the
    // compressed stream would be stored but never restored, so they are an error.
    let mut decoder = ReadPipeline::builder()
        .decode_as(compression)
        .open(&mut *reader)
        .map_err(decode_error)?;
    let mut buf = vec![0u8; DECODED_CHUNK];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decode_error(e)),
        };
        parser.feed(&buf[..n], visitor)?;
        if !wanted(visitor) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::LabelCapture;
    use pgbak_compress::{Codec, Compressor};
    use std::sync::mpsc::sync_channel;

    fn compressed(c: Compression, data: &[u8]) -> Vec<u8> {
        let codec = Codec::new(c, None).unwrap();
        let mut out = Vec::new();
        let mut enc = codec.encoder(Box::new(&mut out)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
        out
    }

    fn tar_of(len: usize) -> Vec<u8> {
        let mut t = Vec::new();
        crate::tar::testutil::file(&mut t, "backup_label", b"LABEL\n");
        crate::tar::testutil::file(&mut t, "big", &vec![7u8; len]);
        crate::tar::testutil::end(&mut t);
        t
    }

    fn run(c: Compression, stored: &[u8], end: bool) -> (Vec<u8>, Result<bool>, LabelCapture) {
        run_with(c, stored, end, Decode::Whole)
    }

    fn run_with(
        c: Compression,
        stored: &[u8],
        end: bool,
        decode: Decode,
    ) -> (Vec<u8>, Result<bool>, LabelCapture) {
        let (tx, rx) = sync_channel(100_000);
        for chunk in stored.chunks(333) {
            tx.send(Job::Data(chunk.to_vec())).unwrap();
        }
        if end {
            tx.send(Job::End).unwrap();
        }
        drop(tx);
        let (recycle, _keep) = sync_channel(4);
        let mut raw = Vec::new();
        let mut capture = LabelCapture::default();
        let mut parser = TarStreamParser::new();
        let mut visitor = Observer {
            capture: Some(&mut capture),
            extractor: None,
        };
        let (_, result) = pump_compressed(
            rx,
            &recycle,
            c,
            "base.tar",
            &mut parser,
            &mut visitor,
            Some(&mut raw),
            decode,
        );
        (raw, result, capture)
    }

    #[test]
    fn raw_bytes_are_kept_and_the_tar_is_parsed_decompressed() {
        for c in [Compression::Zstd, Compression::Lz4, Compression::Gzip] {
            let stored = compressed(c, &tar_of(3_000_000));
            let (raw, result, capture) = run(c, &stored, true);
            assert!(result.unwrap(), "{c:?}");
            assert_eq!(raw, stored, "{c:?}");
            assert_eq!(capture.label.as_deref(), Some(&b"LABEL\n"[..]), "{c:?}");
        }
    }

    #[test]
    fn a_tar_backup_decodes_only_until_the_label_has_passed() {
        for c in [Compression::Zstd, Compression::Lz4, Compression::Gzip] {
            let mut stored = compressed(c, &tar_of(3_000_000));
            // Damage far after the label: decoded, it would fail; stored, it is kept as is
            // (verify-backup and the restore read it whole).
            let at = stored.len() - 40;
            stored[at] ^= 0xff;
            let (raw, result, capture) = run_with(c, &stored, true, Decode::UntilCaptured);
            assert!(result.unwrap(), "{c:?}");
            assert_eq!(raw, stored, "{c:?}: every byte is stored");
            assert_eq!(capture.label.as_deref(), Some(&b"LABEL\n"[..]), "{c:?}");
            let (_, whole, _) = run(c, &stored, true);
            assert!(whole.is_err(), "{c:?}: the whole stream is damaged");
        }
        // A cut stream is still incomplete.
        let stored = compressed(Compression::Zstd, &tar_of(3_000_000));
        let (_, result, _) = run_with(
            Compression::Zstd,
            &stored[..stored.len() / 2],
            false,
            Decode::UntilCaptured,
        );
        assert!(!result.unwrap());
    }

    #[test]
    fn a_cut_stream_is_not_complete() {
        let stored = compressed(Compression::Zstd, &tar_of(100_000));
        let (_, result, _) = run(Compression::Zstd, &stored[..stored.len() / 2], false);
        assert!(!result.unwrap());
    }

    #[test]
    fn corrupt_or_truncated_streams_fail() {
        let mut stored = compressed(Compression::Lz4, &tar_of(100_000));
        let (_, result, _) = run(Compression::Lz4, &stored[..stored.len() - 10], true);
        assert!(result.is_err());
        // A tar that ends early inside a valid compressed stream.
        let short = compressed(Compression::Zstd, &tar_of(100_000)[..2048]);
        let (_, result, _) = run(Compression::Zstd, &short, true);
        assert!(
            matches!(result, Err(Error::TruncatedTar { .. })),
            "{result:?}"
        );
        // Garbage after a complete stream.
        stored.extend_from_slice(b"garbage");
        let (_, result, _) = run(Compression::Lz4, &stored, true);
        assert!(result.is_err());
    }

    #[test]
    fn a_storage_failure_is_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let stored = compressed(Compression::Zstd, &tar_of(1000));
        let (tx, rx) = sync_channel(1000);
        for chunk in stored.chunks(100) {
            tx.send(Job::Data(chunk.to_vec())).unwrap();
        }
        tx.send(Job::End).unwrap();
        let (recycle, _keep) = sync_channel(4);
        let mut parser = TarStreamParser::new();
        let mut visitor = Observer {
            capture: None,
            extractor: None,
        };
        let (_, result) = pump_compressed(
            rx,
            &recycle,
            Compression::Zstd,
            "b1/base.tar.zst",
            &mut parser,
            &mut visitor,
            Some(&mut Full),
            Decode::Whole,
        );
        let err = result.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(err.to_string().contains("b1/base.tar.zst"), "{err}");
    }
}
