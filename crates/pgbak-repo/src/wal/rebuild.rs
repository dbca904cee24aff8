//! `rebuild-xlogdb`: recreates the index of the WAL archive from the files it holds, reading
//! each one back for its checksum, so that a wrong line never survives a rebuild.

use super::index::{IndexEntry, LEGACY_INDEX};
use super::WalArchive;
use crate::Result;
use std::collections::BTreeMap;

/// What `rebuild-xlogdb` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RebuildReport {
    /// Lines in the new index.
    pub entries: usize,
    /// Files read back and checksummed.
    pub checksummed: usize,
    /// Lines of the old index whose file no longer exists (dropped).
    pub dropped: Vec<String>,
    /// Objects in the archive that are not WAL files where the archive keeps them (left alone,
    /// not indexed).
    pub unknown: Vec<String>,
    /// WAL files that cannot be read back (damaged compression): left alone, not indexed.
    pub unreadable: Vec<String>,
}

impl WalArchive {
    /// Recreates the index from the files of the archive (`pgbak rebuild-xlogdb`). Every file is
    /// read back and checksummed. Objects that are not WAL files, and unreadable files, are
    /// reported, not indexed. The caller holds the server's xlog.db lock.
    pub fn rebuild_index(&self) -> Result<RebuildReport> {
        self.rebuild_index_with(&mut |_, _| {})
    }

    /// [`WalArchive::rebuild_index`], calling `progress(done, total)` as files are read back.
    pub fn rebuild_index_with(
        &self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RebuildReport> {
        let old = self.indexed()?.unwrap_or_default();
        let mut report = RebuildReport::default();
        let mut new: BTreeMap<String, IndexEntry> = BTreeMap::new();
        let stored = self.stored_keys()?;
        for (i, (name, key, stored_size)) in stored.iter().enumerate() {
            progress(i, stored.len());
            let stored = match self.read_back(key) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("{name}: not indexed: {e}");
                    report.unreadable.push(name.clone());
                    continue;
                }
            };
            report.checksummed += 1;
            let meta = self.storage().stat(key)?;
            let mut entry = stored.entry(name, meta.as_ref());
            // The size as listed: the same object, whatever the store's stat reports.
            entry.stored_size = *stored_size;
            new.insert(name.clone(), entry);
        }
        let known: std::collections::BTreeSet<&str> =
            stored.iter().map(|(_, k, _)| k.as_str()).collect();
        for m in self.storage().list("")? {
            let k = m.key.as_str();
            if known.contains(k) || k == LEGACY_INDEX || k.starts_with("index/") {
                continue;
            }
            report.unknown.push(self.location(k));
        }
        report.dropped = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        report.unknown.sort();
        let entries: Vec<IndexEntry> = new.into_values().collect();
        report.entries = entries.len();
        self.index().replace_all(&entries)?;
        Ok(report)
    }

    /// Removes the index lines `keep` refuses (for callers that remove files: remove the files
    /// first, then their lines). Returns the number of lines removed. The caller holds the
    /// server's xlog.db lock.
    pub fn retain_index(&self, keep: impl Fn(&IndexEntry) -> bool) -> Result<usize> {
        self.index().retain(keep)
    }

    /// Merges the index's entry objects into chunks (`cron`). The caller holds the server's
    /// xlog.db lock.
    pub fn compact_index(&self) -> Result<super::CompactReport> {
        self.index().compact()
    }
}

#[cfg(test)]
mod tests {
    use crate::wal::archive::tests::{local_archive, segment};
    use crate::wal::WalArchive;
    use pgbak_compress::Compression;

    fn name(i: u64) -> String {
        format!("00000001{:08X}{:08X}", i >> 8, i & 0xFF)
    }

    #[test]
    fn rebuild_recreates_a_lost_index_and_listings_use_it() {
        let (d, a) = local_archive(Compression::Zstd);
        for i in 1..=3u64 {
            let n = name(i);
            let src = d.path().join(&n);
            std::fs::write(&src, segment(&n, i as u8)).unwrap();
            a.archive_file(&src).unwrap();
        }
        let h = d.path().join("00000002.history");
        std::fs::write(&h, "1\t0/3000000\tno recovery target specified\n").unwrap();
        a.archive_file(&h).unwrap();
        let before = a.indexed().unwrap().unwrap();
        let wals = d.path().join("wals");
        std::fs::write(wals.join("stray.txt"), b"x").unwrap();

        std::fs::remove_dir_all(wals.join("index")).unwrap();
        assert!(a.indexed().unwrap().is_none());
        let r = a.rebuild_index().unwrap();
        assert_eq!(r.entries, 4);
        assert_eq!(r.checksummed, 4);
        assert_eq!(r.unknown.len(), 1, "{:?}", r.unknown);
        let after = a.indexed().unwrap().unwrap();
        for (n, e) in &before {
            let b = &after[n];
            assert_eq!(
                (b.crc32c, b.size, b.stored_size),
                (e.crc32c, e.size, e.stored_size)
            );
            assert_eq!(b.compression, e.compression);
        }
        assert_eq!(a.segment_names().unwrap(), vec![name(1), name(2), name(3)]);
        assert_eq!(a.history_names().unwrap(), vec!["00000002.history"]);

        // A wrong checksum in the index does not survive a rebuild; a removed file drops out.
        std::fs::remove_file(wals.join(WalArchive::key_of(&name(2)).unwrap())).unwrap();
        let mut wrong = after[&name(3)].clone();
        wrong.crc32c = Some(0x0bad_c0de);
        a.index().add(&wrong).unwrap();
        assert!(a.fetch(&name(3), &d.path().join("refused")).is_err());
        let r = a.rebuild_index().unwrap();
        assert_eq!(r.checksummed, 3);
        assert_eq!(r.dropped, vec![name(2)]);
        assert_eq!(
            a.indexed().unwrap().unwrap()[&name(3)].crc32c,
            after[&name(3)].crc32c
        );
        assert_eq!(a.segment_names().unwrap(), vec![name(1), name(3)]);
        a.fetch(&name(3), &d.path().join("out")).unwrap();
    }

    #[test]
    fn a_retried_archive_heals_a_missing_index_line() {
        let (d, a) = local_archive(Compression::Gzip);
        let n = name(7);
        let src = d.path().join(&n);
        std::fs::write(&src, segment(&n, 7)).unwrap();
        a.archive_file(&src).unwrap();
        // Simulate a crash after the file's commit but before the index line.
        a.retain_index(|e| e.name != n).unwrap();
        assert!(a.segment_names().unwrap().is_empty());
        a.archive_file(&src).unwrap();
        assert_eq!(a.segment_names().unwrap(), vec![n.clone()]);
        assert_eq!(a.index_entries().unwrap().len(), 1);
        // And only once.
        a.archive_file(&src).unwrap();
        assert_eq!(a.index_entries().unwrap().len(), 1);
    }
}
