//! What `recover` calls for a backup that may be incremental: the chain is resolved, checked and
//! locked before anything is written, then combined into the destination.

use super::combine::{combine_chain, full_backup_label, ArchiveTarget, CombineStats};
use crate::backup_lock::SharedBackupLock;
use crate::catalogue::BackupInfo;
use crate::server::Server;
use crate::{Error, Result};
use pgbak_copy::ExtractOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The chain of backups a restore reads: the backup alone for a full one.
pub struct RestoreChain {
    /// Newest first; the last one is full.
    pub chain: Vec<BackupInfo>,
    /// Shared locks on the ancestors, so that no delete removes one while it is read.
    _locks: Vec<SharedBackupLock>,
}

impl RestoreChain {
    /// Resolves and checks the chain of `backup` and locks its ancestors. An incremental backup
    /// whose chain is broken (an ancestor deleted, unusable or not in tar format) is refused here,
    /// naming the ancestor, before the caller writes anything.
    pub fn prepare(server: &Server, backup: &BackupInfo) -> Result<Self> {
        if !backup.is_incremental() {
            return Ok(RestoreChain {
                chain: vec![backup.clone()],
                _locks: Vec::new(),
            });
        }
        if backup.backup_format != "tar" {
            return Err(Error::Usage(format!(
                "incremental backup {} is not stored as tar streams",
                backup.backup_id
            )));
        }
        let chain = super::chain::restore_chain(server, backup)?;
        let mut locks = Vec::new();
        for b in &chain[1..] {
            locks.push(crate::backup_lock::lock_backup_shared(
                server,
                &b.backup_id,
            )?);
        }
        // Read again under the locks: a delete may have finished meanwhile.
        let chain = super::chain::restore_chain(server, backup)?;
        Ok(RestoreChain {
            chain,
            _locks: locks,
        })
    }

    /// Whether the backup needs combining.
    pub fn is_incremental(&self) -> bool {
        self.chain.len() > 1
    }

    /// Bytes the restored directory needs at least: the largest backup of the chain.
    pub fn needed_bytes(&self) -> u64 {
        self.chain.iter().map(|b| b.data_size).max().unwrap_or(0)
    }

    /// Combines the chain into `dest` and the tablespace `locations`, `jobs` archives at a time,
    /// and writes the combined directory's `backup_label`.
    pub fn restore(
        &self,
        server: &Server,
        dest: &Path,
        locations: &BTreeMap<u32, PathBuf>,
        base: &ExtractOptions,
        jobs: usize,
    ) -> Result<CombineStats> {
        let mut targets = vec![ArchiveTarget {
            stem: "base.tar".into(),
            root: dest.to_path_buf(),
            extract: base.clone(),
        }];
        for (oid, loc) in locations {
            pgbak_storage::staging::create_dir_all_private(loc)
                .map_err(|e| Error::io("create", loc, e))?;
            targets.push(ArchiveTarget {
                stem: format!("{oid}.tar"),
                root: loc.clone(),
                extract: ExtractOptions {
                    replace_existing: base.replace_existing,
                    progress: base.progress.clone(),
                    ..Default::default()
                },
            });
        }
        let plain_dirs: Vec<Option<PathBuf>> = self
            .chain
            .iter()
            .map(|b| match b.backup_format.as_str() {
                "plain" => server.local_backup_dir(&b.backup_id),
                _ => None,
            })
            .collect();
        let stats = combine_chain(
            server.stores().backups.as_ref(),
            server.encryptor(),
            &self.chain,
            &plain_dirs,
            &targets,
            jobs,
        )?;
        let label_path = dest.join("backup_label");
        let label =
            std::fs::read_to_string(&label_path).map_err(|e| Error::io("read", &label_path, e))?;
        crate::recover::write_recovery_file(
            dest,
            "backup_label",
            full_backup_label(&label).as_bytes(),
        )?;
        tracing::debug!(
            backup = %self.chain[0].backup_id,
            ancestors = self.chain.len() - 1,
            files = stats.combined_files,
            newest_blocks = stats.newest_blocks,
            ancestor_blocks = stats.ancestor_blocks,
            "incremental chain combined"
        );
        Ok(stats)
    }
}
