//! The serving side of recovery: `get-wal --peek N` (which archived segments follow a name) and
//! `get-wal --bundle N` (the requested file and up to N-1 following segments in one tar stream,
//! each decompressed and checked before a byte of it is sent), so that `wal-restore --parallel`
//! fills its spool with one SSH round trip instead of one per segment.

use super::index::IndexEntry;
use super::tar_stream::{sums_line, write_end, write_entry, write_header, write_padding, SumKind};
use super::WalArchive;
use crate::{Error, Result};
use pgbak_wal::WalFileName;
use std::io::{Read, Write};
use std::sync::mpsc::SyncSender;

/// The next segment names to try after `name`: the following segment in the same "log", then the
/// first of the next log (which of the two exists depends on the segment size, which get-wal does
/// not need to know).
fn successors(name: &str) -> Vec<String> {
    let Ok(WalFileName::Segment { tli, log, seg }) = WalFileName::parse(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(s) = seg.checked_add(1) {
        out.push(format!("{tli:08X}{log:08X}{s:08X}"));
    }
    if let Some(l) = log.checked_add(1) {
        out.push(format!("{tli:08X}{l:08X}{:08X}", 0));
    }
    out
}

impl WalArchive {
    /// `name` and the archived segments that follow it on its timeline without a gap, at most `n`
    /// names in all; empty when `name` is not archived. For a file that is not a segment (a
    /// history file), only the file itself.
    pub fn peek(&self, name: &str, n: usize) -> Result<Vec<String>> {
        if n == 0 || !self.contains(name)? {
            return Ok(Vec::new());
        }
        let mut out = vec![name.to_string()];
        while out.len() < n {
            let last = out.last().cloned().unwrap_or_default();
            let mut found = None;
            for next in successors(&last) {
                if self.contains(&next)? {
                    found = Some(next);
                    break;
                }
            }
            match found {
                Some(next) => out.push(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// Writes a tar stream to `out` with `name` and up to `n - 1` following segments (see
    /// [`WalArchive::peek`]), each checked against the index, and a last `CRC32CSUMS` entry with
    /// the CRC-32C of each file that passed. Segments are streamed as they are decoded, so memory
    /// holds a few buffers, not segments (a first file whose index line has no size is decoded
    /// whole first: its tar header needs the size). A problem with `name` itself is an error: the
    /// stream then ends without its sums entry, so a receiver hands nothing over. A following
    /// segment that fails its check is padded to its announced size, left out of the sums (so the
    /// receiver drops it) and ends the stream; it will be fetched, and its error reported, on its
    /// own. Returns the names whose checksums were sent.
    pub fn write_bundle(&self, name: &str, n: usize, out: &mut dyn Write) -> Result<Vec<String>> {
        let names = self.peek(name, n.max(1))?;
        let Some((first_name, following)) = names.split_first() else {
            // Let fetch_to produce the precise error (not found, bad name).
            WalArchive::key_of(name)?;
            return Err(Error::WalNotFound {
                server: self.server_name().to_string(),
                name: name.to_string(),
            });
        };
        let label = "standard output";
        let write_err = |e| Error::io("write", label, e);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut sent = Vec::new();
        let mut sums = String::new();
        let first_entry = self.index_entry_of(first_name)?;
        // What is streamed, the index line of its first name when already read, and the size of
        // a streamed segment without an index line of its own.
        let (streamed, known, segment_size) = match first_entry.as_ref().and_then(|e| e.size) {
            Some(size) => (names.as_slice(), first_entry, size),
            None => {
                let mut first = Vec::with_capacity(16 << 20);
                self.fetch_recorded_to(first_name, first_entry.as_ref(), &mut first, label)?;
                write_entry(out, first_name, &first, mtime).map_err(write_err)?;
                sums.push_str(&sums_line(
                    &format!("{:08x}", crc32c::crc32c(&first)),
                    first_name,
                ));
                sent.push(first_name.clone());
                (following, None, first.len() as u64)
            }
        };
        // Decoding overlaps with writing (and the SSH encryption of) what was decoded before.
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(PIECES_QUEUED);
            scope.spawn(move || self.decode_pieces(streamed, known, segment_size, tx));
            let mut current: Option<Streamed> = None;
            for piece in rx {
                match piece {
                    Piece::Begin { name, size } => {
                        write_header(out, &name, size, mtime).map_err(write_err)?;
                        current = Some(Streamed {
                            name,
                            size,
                            written: 0,
                            crc: 0,
                        });
                    }
                    Piece::Data(data) => {
                        let Some(c) = current.as_mut() else { break };
                        // Never more than the header announced.
                        let room = (c.size - c.written).min(data.len() as u64) as usize;
                        out.write_all(&data[..room]).map_err(write_err)?;
                        c.crc = crc32c::crc32c_append(c.crc, &data[..room]);
                        c.written += room as u64;
                    }
                    Piece::End(result) => {
                        let entry = current.take();
                        let problem = match (result, &entry) {
                            (Err(e), _) => Some(e),
                            (Ok(size), Some(c)) if size != c.size => Some(Error::Corrupt {
                                what: format!("archived WAL file {}", c.name),
                                detail: format!(
                                    "it holds {size} bytes where its index line says {}",
                                    c.size
                                ),
                            }),
                            _ => None,
                        };
                        if let Some(c) = &entry {
                            // What a failed segment lacks is sent as zeros.
                            let short = c.size - c.written;
                            std::io::copy(&mut std::io::repeat(0).take(short), out)
                                .map_err(write_err)?;
                            write_padding(out, c.size).map_err(write_err)?;
                        }
                        match (problem, entry) {
                            (Some(e), _) if sent.is_empty() => return Err(e),
                            (Some(e), c) => {
                                let what = c.map(|c| c.name).unwrap_or_default();
                                tracing::warn!("get-wal bundle stops at {what}: {e}");
                                break;
                            }
                            (None, Some(c)) => {
                                sums.push_str(&sums_line(&format!("{:08x}", c.crc), &c.name));
                                sent.push(c.name);
                            }
                            (None, None) => break,
                        }
                    }
                }
            }
            Ok(())
        })?;
        if sent.is_empty() {
            // The decoding side stopped before the first file's end without saying why.
            return Err(Error::io(
                "read",
                first_name,
                std::io::Error::other("the decoding thread stopped"),
            ));
        }
        write_entry(out, SumKind::Crc32c.file_name(), sums.as_bytes(), 0)
            .and_then(|()| write_end(out))
            .and_then(|()| out.flush())
            .map_err(write_err)?;
        Ok(sent)
    }

    /// The decoding side of a bundle: each of `names` as a `Begin`, its bytes in pieces, and an
    /// `End` with its check's result; stops after the first that fails, or when the writing side
    /// is gone. `known`: the index line of the first name, when the caller already read it.
    fn decode_pieces(
        &self,
        names: &[String],
        mut known: Option<IndexEntry>,
        segment_size: u64,
        tx: SyncSender<Piece>,
    ) {
        for name in names {
            let looked_up = match known.take() {
                Some(entry) => Ok(Some(entry)),
                None => self.index_entry_of(name),
            };
            let expected = match looked_up {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Piece::End(Err(e)));
                    return;
                }
            };
            let size = expected
                .as_ref()
                .and_then(|e| e.size)
                .unwrap_or(segment_size);
            let begin = Piece::Begin {
                name: name.clone(),
                size,
            };
            if tx.send(begin).is_err() {
                return;
            }
            let mut pieces = Pieces {
                tx: &tx,
                buf: Vec::with_capacity(PIECE),
                gone: false,
            };
            let mut result =
                self.fetch_recorded_to(name, expected.as_ref(), &mut pieces, "the bundle");
            if let Err(e) = pieces.hand_over() {
                result = result.and(Err(Error::io("write", "the bundle", e)));
            }
            let failed = result.is_err();
            if pieces.gone || tx.send(Piece::End(result)).is_err() || failed {
                return;
            }
        }
    }
}

/// Size of the pieces a streamed segment is sent in.
const PIECE: usize = 1 << 20;

/// Pieces queued between decoding and writing, beyond the one being written.
const PIECES_QUEUED: usize = 1;

/// What the decoding side of a bundle sends the writing side.
enum Piece {
    /// A segment of `size` bytes begins.
    Begin {
        name: String,
        size: u64,
    },
    Data(Vec<u8>),
    /// The segment is complete: its decoded size, or why it failed its check.
    End(Result<u64>),
}

/// The segment being written.
struct Streamed {
    name: String,
    size: u64,
    written: u64,
    crc: u32,
}

/// Bytes of a segment gathered into pieces for the writing side.
struct Pieces<'a> {
    tx: &'a SyncSender<Piece>,
    buf: Vec<u8>,
    /// The writing side stopped listening.
    gone: bool,
}

impl Pieces<'_> {
    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        if self.tx.send(Piece::Data(full)).is_err() {
            self.gone = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the bundle's writing side stopped",
            ));
        }
        Ok(())
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::archive::tests::segment;
    use crate::wal::tar_stream::tests::read_back;
    use pgbak_compress::{Codec, Compression};

    fn archive(names: &[&str]) -> (tempfile::TempDir, WalArchive) {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("wals"))),
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("errors"))),
            Codec::new(Compression::Zstd, None).unwrap(),
        );
        for n in names {
            let p = d.path().join(n);
            std::fs::write(&p, segment(n, 3)).unwrap();
            a.archive_file(&p).unwrap();
        }
        (d, a)
    }

    #[test]
    fn fetch_all_writes_every_file_and_fails_on_a_missing_one() {
        let names: Vec<String> = (3..9)
            .map(|i| format!("0000000100000000000000{i:02X}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (d, a) = archive(&refs);
        for jobs in [1, 4] {
            let dir = d.path().join(format!("out-{jobs}"));
            std::fs::create_dir(&dir).unwrap();
            let bytes = a.fetch_all(&names, &dir, jobs).unwrap();
            assert_eq!(
                bytes,
                names
                    .iter()
                    .map(|n| segment(n, 3).len() as u64)
                    .sum::<u64>()
            );
            for n in &names {
                assert_eq!(std::fs::read(dir.join(n)).unwrap(), segment(n, 3), "{n}");
            }
            let mut with_gap = names.clone();
            with_gap.insert(2, "0000000100000000000000FE".into());
            let gap_dir = d.path().join(format!("gap-{jobs}"));
            std::fs::create_dir(&gap_dir).unwrap();
            let err = a.fetch_all(&with_gap, &gap_dir, jobs).unwrap_err();
            assert!(matches!(err, Error::WalNotFound { .. }), "{err}");
            assert!(!gap_dir.join("0000000100000000000000FE").exists());
        }
    }

    #[test]
    fn successors_cover_both_log_layouts() {
        assert_eq!(
            successors("0000000100000000000000FF"),
            vec!["000000010000000000000100", "000000010000000100000000"]
        );
        assert!(successors("00000002.history").is_empty());
    }

    #[test]
    fn peek_stops_at_a_gap_and_at_n() {
        // 1 MiB segments: 4096 per log, so the log part stays 0 here.
        let (_d, a) = archive(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000007",
            "000000020000000000000006",
        ]);
        assert_eq!(
            a.peek("000000010000000000000003", 10).unwrap(),
            vec![
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005"
            ]
        );
        assert_eq!(a.peek("000000010000000000000003", 2).unwrap().len(), 2);
        assert!(a.peek("000000010000000000000006", 4).unwrap().is_empty());
    }

    #[test]
    fn bundle_holds_checked_plain_segments_and_stops_at_damage() {
        let names = [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
        ];
        let (_d, a) = archive(&names);
        let mut out = Vec::new();
        assert_eq!(
            a.write_bundle(names[0], 8, &mut out).unwrap(),
            names.to_vec()
        );
        let c = read_back(&out);
        assert_eq!(c.0.len(), 4);
        let mut want_sums = String::new();
        for (i, (n, data)) in c.0[..3].iter().enumerate() {
            assert_eq!(n, names[i]);
            assert_eq!(data, &segment(n, 3));
            want_sums.push_str(&format!("{:08x} *{n}\n", crc32c::crc32c(data)));
        }
        assert_eq!(c.0[3].0, "CRC32CSUMS");
        assert_eq!(String::from_utf8(c.0[3].1.clone()).unwrap(), want_sums);

        // Damage the second: the bundle ends after it, and only the first has a checksum (the
        // second was streamed before its check failed: padded to its announced size, it is a
        // whole entry the receiver drops).
        let stored = _d
            .path()
            .join("wals")
            .join(WalArchive::key_of(names[1]).unwrap());
        let mut bytes = std::fs::read(&stored).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&stored, bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            a.write_bundle(names[0], 8, &mut out).unwrap(),
            vec![names[0]]
        );
        let (entries, ended) = read_back(&out);
        assert!(ended);
        let listed: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(listed, [names[0], names[1], "CRC32CSUMS"]);
        assert_eq!(entries[1].1.len(), segment(names[1], 3).len());
        assert_eq!(
            String::from_utf8(entries[2].1.clone()).unwrap(),
            format!("{:08x} *{}\n", crc32c::crc32c(&entries[0].1), names[0])
        );
        // Asking for the damaged one first is an error, and what was written has no sums: a
        // receiver hands nothing over.
        let mut out = Vec::new();
        let e = a.write_bundle(names[1], 8, &mut out).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        let (entries, _) = read_back(&out);
        assert!(entries.iter().all(|(n, _)| n != "CRC32CSUMS"), "sums sent");

        // Without index lines (an archive written by another tool) the first segment is read
        // whole for its size, and the following ones are announced at that size.
        std::fs::remove_dir_all(_d.path().join("wals").join("index")).unwrap();
        let names = ["000000010000000000000007", "000000010000000000000008"];
        for n in names {
            let p = _d.path().join(n);
            std::fs::write(&p, segment(n, 3)).unwrap();
            a.archive_file(&p).unwrap();
        }
        std::fs::remove_dir_all(_d.path().join("wals").join("index")).unwrap();
        assert!(a.index_entry_of(names[0]).unwrap().is_none());
        let mut out = Vec::new();
        assert_eq!(
            a.write_bundle(names[0], 8, &mut out).unwrap(),
            names.to_vec()
        );
        let (entries, ended) = read_back(&out);
        assert!(ended);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(entries[i].0, *n);
            assert_eq!(entries[i].1, segment(n, 3));
        }
        assert!(matches!(
            a.write_bundle("000000010000000000000009", 2, &mut Vec::new()),
            Err(Error::WalNotFound { .. })
        ));
        assert!(a.write_bundle("../etc/passwd", 2, &mut Vec::new()).is_err());
    }
}
