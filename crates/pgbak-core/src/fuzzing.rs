//! Entry points for the fuzz targets in `fuzz/`: the smallest openings into parsers that are not
//! public otherwise. Not part of the API; nothing outside the fuzz targets may use them.

pub use crate::catalogue::FORMAT_VERSION;
pub use crate::manifest::BackupManifest;
pub use crate::wal_archive::{check_segment, parse_segment_header, ArchiveOutcome};
pub use crate::wal_tar::{parse_sums, sums_line, write_end, write_entry, SumKind, Summer};

use crate::catalogue::BackupInfo;
use crate::wal_archive::IndexEntry;
use crate::Result;
use std::io::Read;
use std::path::Path;

/// Parses the text of a `backup.json` as the catalogue reads it from the folder of backup `id`.
pub fn parse_backup_info(text: &[u8], id: &str) -> Result<BackupInfo> {
    Ok(pgbak_repo::backups::catalogue::parse_record(
        text,
        &format!("{id}/backup.json"),
        id,
        "backup metadata",
    )?)
}

/// Parses one line of the WAL index.
pub fn parse_index_line(line: &str) -> Option<IndexEntry> {
    IndexEntry::parse(line)
}

/// The line the WAL index stores for `entry` (newline included).
pub fn index_line(entry: &IndexEntry) -> String {
    entry.to_line()
}

/// The line for `name` that the WAL index finds when `data` is the `xlog.db` of an earlier
/// version, in a store rooted at `dir`.
pub fn legacy_index_lookup(dir: &Path, data: &[u8], name: &str) -> Result<Option<IndexEntry>> {
    use pgbak_storage::StorageBackend;
    use std::io::Write;
    let store = pgbak_storage::LocalStorage::new(dir);
    let mut w = store.put(pgbak_repo::wal::index::LEGACY_INDEX)?;
    w.write_all(data)
        .map_err(|e| crate::Error::io("write", dir, e))?;
    w.commit(pgbak_storage::CommitMode::Replace)?;
    let found = pgbak_repo::wal::WalIndex::new(&store).lookup(name);
    store.delete(pgbak_repo::wal::index::LEGACY_INDEX)?;
    Ok(found?)
}

/// Every valid line of index bytes, and how many lines were left out.
pub fn parse_index_lines(data: &[u8]) -> (Vec<IndexEntry>, usize) {
    pgbak_repo::wal::index::parse_lines(data)
}

/// Receives a put-wal stream into `spool_dir` and hands each verified file to `archive_one`.
pub fn put_wal_receive(
    input: &mut dyn Read,
    spool_dir: &Path,
    archive_one: &mut dyn FnMut(&Path, &str) -> Result<ArchiveOutcome>,
) -> Result<Vec<ArchiveOutcome>> {
    crate::put_wal::receive(input, spool_dir, archive_one)
}
