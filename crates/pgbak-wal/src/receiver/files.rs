//! The files of the receiver's directory: the segment being received, written as
//! `<segment>.partial` and renamed to its final name once whole and durable, and history files,
//! written whole through a temporary name.
//!
//! Durability order matters more than speed here: the server moves the slot to whatever the
//! receiver reports as flushed, so a position is only reported after `fdatasync` of its file and,
//! for a file new in the directory, `fsync` of the directory.

use crate::{Error, Result, SegmentName};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Fsyncs a directory so that entries created or renamed in it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::file("fsync directory", dir, e))
}

/// Writes `content` to `dir/name` durably: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_file_durably(dir: &Path, name: &str, content: &[u8]) -> Result<PathBuf> {
    let dest = dir.join(name);
    // The temporary name starts with a dot, which keeps it out of every scan of the directory.
    pgbak_storage::staging::write_replace(&dest, content, pgbak_storage::staging::PRIVATE_FILE)
        .map_err(|e| Error::file("write", &dest, e))?;
    Ok(dest)
}

/// The segment being received.
pub(crate) struct PartialSegment {
    file: File,
    dir: PathBuf,
    path: PathBuf,
    segment: SegmentName,
    seg_size: u64,
    /// Bytes written from the start of the segment in this session.
    offset: u64,
    /// Whether the directory entry of the file is known durable.
    dir_synced: bool,
}

impl PartialSegment {
    /// Opens `<segment>.partial` in `dir` for writing from the start of the segment. An existing
    /// file (left by an earlier run, streamed again from its start) is overwritten in place rather
    /// than truncated, so that a crash during the rewrite never loses bytes that were durable.
    pub(crate) fn open(dir: &Path, segment: SegmentName, seg_size: u64) -> Result<Self> {
        let path = dir.join(format!("{}.partial", segment.file_name(seg_size)));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::file("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::file("stat", &path, e))?
            .len();
        if len > seg_size {
            // Longer than any segment can be: whatever is beyond the segment is not WAL.
            tracing::warn!(
                file = %path.display(),
                len,
                seg_size,
                "partial segment is longer than a segment; truncated"
            );
            file.set_len(seg_size)
                .map_err(|e| Error::file("truncate", &path, e))?;
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::file("seek", &path, e))?;
        Ok(PartialSegment {
            file,
            dir: dir.to_path_buf(),
            path,
            segment,
            seg_size,
            offset: 0,
            dir_synced: false,
        })
    }

    /// The segment.
    pub(crate) fn segment(&self) -> SegmentName {
        self.segment
    }

    /// Bytes written so far from the start of the segment.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends WAL bytes; they must fit in the segment.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<()> {
        let end = self.offset + data.len() as u64;
        if end > self.seg_size {
            return Err(Error::protocol(format!(
                "{} bytes at offset {} do not fit in segment {}",
                data.len(),
                self.offset,
                self.segment.file_name(self.seg_size)
            )));
        }
        self.file
            .write_all(data)
            .map_err(|e| Error::file("write", &self.path, e))?;
        self.offset = end;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::file("fsync", &self.path, e))?;
        if !self.dir_synced {
            fsync_dir(&self.dir)?;
            self.dir_synced = true;
        }
        Ok(())
    }

    /// Whether the whole segment has been written.
    pub(crate) fn is_complete(&self) -> bool {
        self.offset == self.seg_size
    }

    /// Makes the whole segment durable under its final name and returns that path.
    pub(crate) fn complete(self) -> Result<PathBuf> {
        if !self.is_complete() {
            return Err(Error::protocol(format!(
                "segment {} is not complete ({} of {} bytes)",
                self.segment.file_name(self.seg_size),
                self.offset,
                self.seg_size
            )));
        }
        self.file
            .sync_data()
            .map_err(|e| Error::file("fsync", &self.path, e))?;
        let dest = self.dir.join(self.segment.file_name(self.seg_size));
        fs::rename(&self.path, &dest).map_err(|e| Error::file("rename", &self.path, e))?;
        fsync_dir(&self.dir)?;
        Ok(dest)
    }

    /// Makes what was written durable and leaves the file as `.partial` (its timeline ended, or
    /// the receiver stops); returns its path.
    pub(crate) fn close(mut self) -> Result<PathBuf> {
        self.sync()?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1 << 20;

    fn seg(n: u64) -> SegmentName {
        SegmentName { tli: 1, segno: n }
    }

    #[test]
    fn segment_is_written_then_renamed() {
        let d = tempfile::tempdir().unwrap();
        let mut p = PartialSegment::open(d.path(), seg(3), SEG).unwrap();
        assert!(d.path().join("000000010000000000000003.partial").is_file());
        p.write(&vec![1u8; 1000]).unwrap();
        p.sync().unwrap();
        assert_eq!(p.offset(), 1000);
        assert!(p.complete().is_err(), "incomplete segments keep their name");
        let mut p = PartialSegment::open(d.path(), seg(3), SEG).unwrap();
        p.write(&vec![2u8; (SEG - 10) as usize]).unwrap();
        assert!(p.write(&[0u8; 11]).is_err(), "past the end of the segment");
        p.write(&[3u8; 10]).unwrap();
        assert!(p.is_complete());
        let dest = p.complete().unwrap();
        assert_eq!(dest, d.path().join("000000010000000000000003"));
        let bytes = fs::read(&dest).unwrap();
        assert_eq!(bytes.len() as u64, SEG);
        assert_eq!(bytes[0], 2, "rewritten from the start");
        assert_eq!(bytes[SEG as usize - 1], 3);
        assert!(!d.path().join("000000010000000000000003.partial").exists());
    }

    #[test]
    fn rewrite_keeps_old_bytes_until_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let mut p = PartialSegment::open(d.path(), seg(4), SEG).unwrap();
        p.write(&[7u8; 4096]).unwrap();
        let path = p.close().unwrap();
        let mut p = PartialSegment::open(d.path(), seg(4), SEG).unwrap();
        p.write(&[7u8; 100]).unwrap();
        p.close().unwrap();
        assert_eq!(fs::read(&path).unwrap(), vec![7u8; 4096]);
    }

    #[test]
    fn oversized_partial_is_cut_to_a_segment() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("000000010000000000000005.partial");
        fs::write(&path, vec![0u8; SEG as usize + 5]).unwrap();
        let p = PartialSegment::open(d.path(), seg(5), SEG).unwrap();
        p.close().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), SEG);
    }

    #[test]
    fn history_files_are_written_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = write_file_durably(d.path(), "00000002.history", b"1\t0/3000000\tx\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"1\t0/3000000\tx\n");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["00000002.history"], "no temporary file is left");
    }
}
