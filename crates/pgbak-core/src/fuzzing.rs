//! Entry points for the fuzz targets in `fuzz/`: the smallest openings into parsers that are not
//! public otherwise. Not part of the API; nothing outside the fuzz targets may use them.

use crate::catalogue::BackupInfo;
use crate::wal_archive::{ArchiveOutcome, IndexEntry};
use crate::Result;
use std::io::Read;
use std::path::Path;

/// Parses the text of a `backup.json` as the catalogue reads it from the folder of backup `id`.
pub fn parse_backup_info(text: &[u8], id: &str) -> Result<BackupInfo> {
    crate::catalogue::parse_info(text, Path::new("backup.json"), id)
}

/// Parses one line of the WAL index (`xlog.db`).
pub fn parse_index_line(line: &str) -> Option<IndexEntry> {
    IndexEntry::parse(line)
}

/// The line the WAL index stores for `entry` (newline included).
pub fn index_line(entry: &IndexEntry) -> String {
    entry.to_line()
}

/// The newest line for `name` in the index file at `path`, searched from the end as `get-wal`
/// does.
pub fn last_index_entry(path: &Path, name: &str) -> Result<Option<IndexEntry>> {
    crate::wal_index::last_entry_for(path, name)
}

/// Receives a put-wal stream into `spool_dir` and hands each verified file to `archive_one`.
pub fn put_wal_receive(
    input: &mut dyn Read,
    spool_dir: &Path,
    archive_one: &mut dyn FnMut(&Path, &str) -> Result<ArchiveOutcome>,
) -> Result<Vec<ArchiveOutcome>> {
    crate::put_wal::receive(input, spool_dir, archive_one)
}
