//! `pgbak put-wal SERVER`: the receiving end of `wal-archive` (and of Barman's
//! `barman-wal-archive` protocol). A tar stream on stdin holds one or more WAL files and a sums
//! file (`SHA256SUMS`, `MD5SUMS` or `CRC32CSUMS`) naming each of them. Every file is received into
//! a temporary name, every checksum is verified, and only then is each file archived (durably,
//! like `archive-wal`); so when put-wal exits 0 the files are safe, and bad input leaves nothing.
//!
//! A WAL file compressed by the sender (any format the archive detects by its magic bytes) is
//! decompressed before archiving, so the archive holds it with the server's own compression.

use crate::hooks::with_archive_hooks_named;
use crate::server::Server;
use crate::wal_archive::ArchiveOutcome;
use crate::wal_tar::{parse_sums, SumKind, Summer};
use crate::{Error, Result};
use pgbak_copy::{TarEntry, TarStreamParser, TarVisitor};
use pgbak_storage::staging;
use pgbak_wal::WalFileName;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Largest WAL file accepted (PostgreSQL's largest segment size).
const MAX_WAL_BYTES: u64 = 1 << 30;
/// Largest sums file accepted.
const MAX_SUMS_BYTES: u64 = 1 << 20;
/// Most WAL files in one stream.
const MAX_FILES: usize = 1024;

/// A received file waiting for verification.
struct Received {
    name: String,
    path: PathBuf,
    size: u64,
    /// The decompressed copy, when the sender compressed the file.
    plain: Option<PathBuf>,
}

/// Removes the temporary files when dropped, whatever happened.
struct Spool {
    files: Vec<Received>,
    current: Option<(BufWriter<File>, PathBuf, u64)>,
    sums: Option<(SumKind, Vec<u8>)>,
    in_sums: bool,
    dir: PathBuf,
    failure: Option<Error>,
    ended: bool,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((_, p, _)) = self.current.take() {
            let _ = std::fs::remove_file(p);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(&f.path);
            if let Some(p) = &f.plain {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Spool {
    fn fail(&mut self, e: Error) -> pgbak_copy::Error {
        let msg = e.to_string();
        self.failure.get_or_insert(e);
        pgbak_copy::Error::Aborted(msg)
    }

    fn bad(&mut self, detail: String) -> pgbak_copy::Error {
        self.fail(Error::Corrupt {
            what: "put-wal input".into(),
            detail,
        })
    }
}

impl TarVisitor for Spool {
    fn entry_start(&mut self, e: &TarEntry) -> pgbak_copy::Result<()> {
        let name = e.path.to_string_lossy().into_owned();
        if e.kind != pgbak_copy::EntryKind::File {
            return Err(self.bad(format!("entry {name:?} is not a regular file")));
        }
        if let Some(kind) = SumKind::from_file_name(&name) {
            if self.sums.is_some() {
                return Err(self.bad("more than one checksum file".into()));
            }
            if e.size > MAX_SUMS_BYTES {
                return Err(self.bad(format!("{name} is {} bytes", e.size)));
            }
            self.sums = Some((kind, Vec::new()));
            self.in_sums = true;
            return Ok(());
        }
        if let Err(err) = WalFileName::parse(&name) {
            return Err(self.fail(Error::Wal(err)));
        }
        if e.size > MAX_WAL_BYTES {
            return Err(self.bad(format!(
                "{name} is {} bytes, larger than any WAL file",
                e.size
            )));
        }
        if self.files.len() >= MAX_FILES || self.files.iter().any(|f| f.name == name) {
            return Err(self.bad(format!("{name}: too many or repeated files")));
        }
        let path = staging::temp_name(&self.dir.join(&name));
        let f = match staging::create_fresh(&path, staging::PRIVATE_FILE) {
            Ok(f) => f,
            Err(err) => return Err(self.fail(Error::io("create", &path, err))),
        };
        self.files.push(Received {
            name,
            path: path.clone(),
            size: e.size,
            plain: None,
        });
        self.current = Some((BufWriter::with_capacity(1 << 20, f), path, 0));
        Ok(())
    }

    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        if self.in_sums {
            if let Some((_, buf)) = &mut self.sums {
                buf.extend_from_slice(data);
            }
            return Ok(());
        }
        let r = match &mut self.current {
            Some((w, path, n)) => {
                *n += data.len() as u64;
                w.write_all(data).map_err(|e| Error::io("write", &*path, e))
            }
            None => Ok(()),
        };
        r.map_err(|e| self.fail(e))
    }

    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        self.in_sums = false;
        if let Some((w, path, _)) = self.current.take() {
            if let Err(e) = w.into_inner().map_err(|e| e.into_error()) {
                return Err(self.fail(Error::io("write", &path, e)));
            }
        }
        Ok(())
    }

    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        self.ended = true;
        Ok(())
    }
}

/// Reads a put-wal tar stream from `input`, verifies it, and archives every WAL file in it.
/// `spool_dir` (the server's `incoming/` folder: same filesystem as the archive) holds the files
/// while they are checked. No hook runs: see [`put_wal_with_hooks`].
#[cfg(test)]
pub fn put_wal(
    archive: &crate::wal_archive::WalArchive,
    input: &mut dyn Read,
    spool_dir: &Path,
) -> Result<Vec<ArchiveOutcome>> {
    receive(input, spool_dir, &mut |src, name| {
        Ok(archive.archive_file_as(src, name)?)
    })
}

/// A put-wal stream received into `server`'s archive through its `incoming/` folder, with the server's archive
/// hooks around each file, as `archive-wal` runs them: a WAL file that arrives through put-wal
/// must trigger the same scripts as one from `archive_command`.
pub fn put_wal_with_hooks(server: &Server, input: &mut dyn Read) -> Result<Vec<ArchiveOutcome>> {
    let archive = server.wal_archive()?;
    receive(
        input,
        &server.config.incoming_wals_directory,
        &mut |src, name| {
            with_archive_hooks_named(server, &archive, src, name, || {
                Ok(archive.archive_file_as(src, name)?)
            })
        },
    )
}

/// Receives and verifies the stream, then hands each file (its path, its WAL name) to
/// `archive_one`, in the order of the stream.
pub(crate) fn receive(
    input: &mut dyn Read,
    spool_dir: &Path,
    archive_one: &mut dyn FnMut(&Path, &str) -> Result<ArchiveOutcome>,
) -> Result<Vec<ArchiveOutcome>> {
    staging::create_dir_all_private(spool_dir).map_err(|e| Error::io("create", spool_dir, e))?;
    let mut spool = Spool {
        files: Vec::new(),
        current: None,
        sums: None,
        in_sums: false,
        dir: spool_dir.to_path_buf(),
        failure: None,
        ended: false,
    };
    let mut parser = TarStreamParser::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", "standard input", e)),
        };
        if let Err(e) = parser.feed(&buf[..n], &mut spool) {
            return Err(spool.failure.take().unwrap_or(Error::Copy(e)));
        }
    }
    if let Err(e) = parser.finish() {
        return Err(spool.failure.take().unwrap_or(Error::Copy(e)));
    }
    if !spool.ended {
        return Err(Error::Corrupt {
            what: "put-wal input".into(),
            detail: "the tar stream ended without its end blocks".into(),
        });
    }
    if spool.files.is_empty() {
        return Err(Error::Corrupt {
            what: "put-wal input".into(),
            detail: "no WAL file in the stream".into(),
        });
    }
    let Some((kind, sums)) = spool.sums.take() else {
        return Err(Error::Corrupt {
            what: "put-wal input".into(),
            detail: "no checksum file (SHA256SUMS, MD5SUMS or CRC32CSUMS) in the stream".into(),
        });
    };
    let sums = std::str::from_utf8(&sums)
        .map_err(|_| Error::Corrupt {
            what: format!("put-wal {}", kind.file_name()),
            detail: "not text".into(),
        })
        .and_then(|t| {
            parse_sums(t).map_err(|d| Error::Corrupt {
                what: format!("put-wal {}", kind.file_name()),
                detail: d,
            })
        })?;
    for f in &spool.files {
        let Some((_, want)) = sums.iter().find(|(n, _)| *n == f.name) else {
            return Err(Error::Corrupt {
                what: format!("put-wal file {}", f.name),
                detail: format!("it has no line in {}", kind.file_name()),
            });
        };
        let got = digest_file(&f.path, kind)?;
        if &got != want {
            return Err(Error::Corrupt {
                what: format!("put-wal file {}", f.name),
                detail: format!(
                    "{} checksum {got} does not match {want} sent with it ({} bytes received)",
                    kind.file_name(),
                    f.size
                ),
            });
        }
    }
    // Every file is decompressed before the first one is archived, so that a damaged one
    // archives nothing; the plain copies go with the spool.
    for f in &mut spool.files {
        f.plain = decompress_if_needed(&f.path, &f.name)?;
    }
    let mut out = Vec::new();
    for f in &spool.files {
        out.push(archive_one(f.plain.as_deref().unwrap_or(&f.path), &f.name)?);
    }
    Ok(out)
}

fn digest_file(path: &Path, kind: SumKind) -> Result<String> {
    let mut f = staging::open_regular(path).map_err(|e| Error::io("open", path, e))?;
    let mut s = Summer::new(kind);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => s.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(s.hex())
}

/// Largest file other than a segment (a history or backup history file) accepted.
const MAX_OTHER_BYTES: u64 = 16 << 20;

/// When the file starts with a compression magic, writes its plain bytes next to it and returns
/// that path. What is written is bounded by what the file can be: a segment by the size its own
/// header names (read before anything is written), any other WAL file by [`MAX_OTHER_BYTES`].
/// A small upload can never fill the disk.
fn decompress_if_needed(path: &Path, name: &str) -> Result<Option<PathBuf>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let (c, mut dec) = pgbak_compress::auto_decoder(Box::new(io::BufReader::new(f)))
        .map_err(|e| Error::io("read", path, e))?;
    if c == pgbak_compress::Compression::None {
        return Ok(None);
    }
    let bad = |detail: String| Error::Corrupt {
        what: format!("put-wal file {name} ({} compressed)", c.name()),
        detail,
    };
    let mut head = [0u8; 40];
    let got = pgbak_compress::read_up_to(&mut dec, &mut head).map_err(|e| bad(e.to_string()))?;
    let limit = match WalFileName::parse(name) {
        Ok(WalFileName::Segment { .. }) => {
            let hdr = crate::wal_archive::check_segment_header(name, &head[..got]).map_err(&bad)?;
            hdr.seg_size
        }
        _ => MAX_OTHER_BYTES,
    };
    let plain = staging::temp_name(path);
    let result = (|| -> Result<()> {
        let mut out = staging::create_fresh(&plain, staging::PRIVATE_FILE)
            .map_err(|e| Error::io("create", &plain, e))?;
        out.write_all(&head[..got])
            .map_err(|e| Error::io("write", &plain, e))?;
        // One byte more than allowed tells a file that is too large from one that fits.
        let rest = limit.saturating_sub(got as u64) + 1;
        let n = io::copy(&mut (&mut dec).take(rest), &mut out).map_err(|e| bad(e.to_string()))?;
        if n == rest {
            return Err(bad(format!("it decompresses to more than {limit} bytes")));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Some(plain)),
        Err(e) => {
            let _ = std::fs::remove_file(&plain);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal_archive::WalArchive;
    use crate::wal_tar::{sums_line, write_end, write_entry};
    use pgbak_compress::{Codec, Compression, Compressor};
    use pgbak_repo::wal::fake_segment as segment;
    use pgbak_storage::LocalStorage;
    use std::sync::Arc;

    const NAME: &str = "000000010000000000000003";

    fn setup() -> (tempfile::TempDir, WalArchive) {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            Arc::new(LocalStorage::new(d.path().join("wals"))),
            Arc::new(LocalStorage::new(d.path().join("errors"))),
            Codec::new(Compression::Zstd, None).unwrap(),
        );
        (d, a)
    }

    fn stream(files: &[(&str, Vec<u8>)], kind: Option<SumKind>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut sums = String::new();
        for (n, data) in files {
            write_entry(&mut out, n, data, 0).unwrap();
            if let Some(k) = kind {
                let mut s = Summer::new(k);
                s.update(data);
                sums.push_str(&sums_line(&s.hex(), n));
            }
        }
        if let Some(k) = kind {
            write_entry(&mut out, k.file_name(), sums.as_bytes(), 0).unwrap();
        }
        write_end(&mut out).unwrap();
        out
    }

    fn incoming_is_empty(d: &tempfile::TempDir) -> bool {
        std::fs::read_dir(d.path().join("incoming"))
            .map(|rd| rd.count() == 0)
            .unwrap_or(true)
    }

    #[test]
    fn every_checksum_kind_is_accepted() {
        for kind in [SumKind::Sha256, SumKind::Md5, SumKind::Crc32c] {
            let (d, a) = setup();
            let data = segment(NAME, 4);
            let input = stream(&[(NAME, data.clone())], Some(kind));
            let out = put_wal(&a, &mut &input[..], &d.path().join("incoming")).unwrap();
            assert!(matches!(out[0], ArchiveOutcome::Stored { .. }), "{kind:?}");
            let back = d.path().join("back");
            a.fetch(NAME, &back).unwrap();
            assert_eq!(std::fs::read(&back).unwrap(), data);
            assert!(incoming_is_empty(&d));
            // The same again is success.
            let out = put_wal(&a, &mut &input[..], &d.path().join("incoming")).unwrap();
            assert!(matches!(out[0], ArchiveOutcome::AlreadyArchived { .. }));
        }
    }

    #[test]
    fn a_compressed_segment_is_stored_with_the_archive_compression() {
        let (d, a) = setup();
        let data = segment(NAME, 9);
        let mut gz = Vec::new();
        let mut enc = Codec::new(Compression::Gzip, None)
            .unwrap()
            .encoder(Box::new(&mut gz))
            .unwrap();
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        let input = stream(&[(NAME, gz)], Some(SumKind::Sha256));
        put_wal(&a, &mut &input[..], &d.path().join("incoming")).unwrap();
        assert_eq!(a.stored_compression(NAME).unwrap(), Compression::Zstd);
        let back = d.path().join("back");
        a.fetch(NAME, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);
        assert!(incoming_is_empty(&d));
    }

    #[test]
    fn bad_input_is_refused_and_nothing_is_written() {
        let data = segment(NAME, 1);
        let mut wrong_sum = stream(&[(NAME, data.clone())], Some(SumKind::Md5));
        // Flip a data byte after the header: the checksum no longer matches.
        wrong_sum[512 + 100] ^= 1;
        let short = data[..8192].to_vec();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no checksum file", stream(&[(NAME, data.clone())], None)),
            ("checksum mismatch", wrong_sum),
            (
                "not a WAL name",
                stream(&[("pg_hba.conf", data.clone())], Some(SumKind::Sha256)),
            ),
            (
                "path in the name",
                stream(
                    &[("../000000010000000000000003", data.clone())],
                    Some(SumKind::Sha256),
                ),
            ),
            (
                "short segment",
                stream(&[(NAME, short)], Some(SumKind::Sha256)),
            ),
            (
                "bad history",
                stream(
                    &[("00000002.history", b"garbage\n".to_vec())],
                    Some(SumKind::Sha256),
                ),
            ),
            (
                "truncated tar",
                stream(&[(NAME, data.clone())], Some(SumKind::Sha256))[..4096].to_vec(),
            ),
            ("empty input", Vec::new()),
            ("only sums", stream(&[], Some(SumKind::Sha256))),
        ];
        for (what, input) in cases {
            let (d, a) = setup();
            let err = put_wal(&a, &mut &input[..], &d.path().join("incoming"));
            assert!(err.is_err(), "{what}");
            assert!(a.segment_names().unwrap().is_empty(), "{what}");
            assert!(a.history_names().unwrap().is_empty(), "{what}");
            assert!(incoming_is_empty(&d), "{what}: temporary files left");
        }
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = Codec::new(Compression::Zstd, None)
            .unwrap()
            .encoder(Box::new(&mut out))
            .unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
        out
    }

    /// Watches `dir` while a put-wal runs and returns the most bytes it ever held.
    fn peak_bytes_during(dir: &Path, work: impl FnOnce()) -> u64 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dir2, stop2) = (dir.to_path_buf(), stop.clone());
        let watcher = std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_micros(200));
                let now: u64 = std::fs::read_dir(&dir2)
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|e| e.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0);
                peak = peak.max(now);
            }
            peak
        });
        work();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().unwrap()
    }

    #[test]
    fn decompression_is_bounded_by_what_the_file_can_be() {
        // A real 1 MiB segment followed by 64 MiB more: 1 MiB at most is ever written.
        let mut big = segment(NAME, 5);
        let seg = big.len() as u64;
        big.resize(big.len() + (64 << 20), 0);
        let bomb = zstd(&big);
        assert!(bomb.len() < 64 << 10, "{} bytes compressed", bomb.len());
        // A history file that decompresses to 64 MiB, and compressed garbage named as a segment.
        let history = zstd(&vec![b'1'; 64 << 20]);
        let garbage = zstd(&vec![7u8; 64 << 20]);
        for (name, input, expect) in [
            (NAME, bomb, "decompresses to more than"),
            ("00000002.history", history, "decompresses to more than"),
            (NAME, garbage, "does not start with a WAL segment header"),
        ] {
            let (d, a) = setup();
            let incoming = d.path().join("incoming");
            let input = stream(&[(name, input)], Some(SumKind::Crc32c));
            let mut result = None;
            let peak = peak_bytes_during(&incoming, || {
                result = Some(put_wal(&a, &mut &input[..], &incoming));
            });
            let err = result.unwrap().unwrap_err().to_string();
            assert!(err.contains(expect), "{name}: {err}");
            assert!(
                peak <= seg.max(MAX_OTHER_BYTES) + (64 << 10),
                "{name}: {peak} bytes written"
            );
            assert!(incoming_is_empty(&d), "{name}: temporary files left");
            assert!(a.segment_names().unwrap().is_empty());
        }
    }

    #[test]
    fn a_damaged_compressed_file_archives_nothing() {
        // The first file is good; the second has a compression magic but is cut short. Its sum
        // matches what was sent, so the damage shows only when it is decompressed.
        let (d, a) = setup();
        let n2 = "000000010000000000000004";
        let mut zst = Vec::new();
        let mut enc = Codec::new(Compression::Zstd, None)
            .unwrap()
            .encoder(Box::new(&mut zst))
            .unwrap();
        enc.write_all(&segment(n2, 2)).unwrap();
        enc.finish().unwrap();
        zst.truncate(zst.len() / 2);
        let input = stream(
            &[(NAME, segment(NAME, 1)), (n2, zst)],
            Some(SumKind::Sha256),
        );
        let err = put_wal(&a, &mut &input[..], &d.path().join("incoming")).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(a.segment_names().unwrap().is_empty(), "nothing archived");
        assert!(incoming_is_empty(&d), "temporary files left");
    }

    #[test]
    fn several_files_in_one_stream() {
        let (d, a) = setup();
        let n2 = "000000010000000000000004";
        let input = stream(
            &[(NAME, segment(NAME, 1)), (n2, segment(n2, 2))],
            Some(SumKind::Crc32c),
        );
        let out = put_wal(&a, &mut &input[..], &d.path().join("incoming")).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            a.segment_names().unwrap(),
            vec![NAME.to_string(), n2.to_string()]
        );
    }

    #[test]
    fn the_archive_hooks_see_each_segment_by_its_name() {
        let d = tempfile::tempdir().unwrap();
        let seen = d.path().join("seen");
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost\n\
             pre_archive_script = echo \"pre $BARMAN_SEGMENT\" >> {seen}\n\
             post_archive_script = echo \"post $BARMAN_SEGMENT $BARMAN_ERROR\" >> {seen}\n",
            d.path().display(),
            seen = seen.display()
        );
        let cfg = crate::config::Config::parse_str(&text, &d.path().join("pgbak.conf")).unwrap();
        let server = Server::new(&cfg, "main").unwrap();
        let second = "000000010000000000000004";
        let input = stream(
            &[(NAME, segment(NAME, 1)), (second, segment(second, 1))],
            Some(SumKind::Sha256),
        );
        let out = put_wal_with_hooks(&server, &mut &input[..]).unwrap();
        assert_eq!(out.len(), 2);
        assert!(server.wal_archive().unwrap().contains(second).unwrap());
        let lines = std::fs::read_to_string(&seen).unwrap();
        assert_eq!(
            lines,
            format!("pre {NAME}\npost {NAME} \npre {second}\npost {second} \n")
        );
        assert!(std::fs::read_dir(&server.config.incoming_wals_directory)
            .unwrap()
            .next()
            .is_none());
    }
}
