//! One configured PostgreSQL server and the parts that serve it: its catalogue, WAL archive,
//! locks and SQL connection. Workflows take a [`Server`] rather than reassembling these.

use crate::catalogue::{BackupInfo, BackupStatus, Catalogue};
use crate::config::{Config, ServerConfig};
use crate::locks::{FileLockManager, LockManager, LockName};
use crate::pg::PgConnection;
use crate::wal_archive::WalArchive;
use crate::{Error, Result};
use pgbak_compress::Codec;
use std::path::PathBuf;

/// A configured server ready to work on.
#[derive(Clone)]
pub struct Server {
    pub config: ServerConfig,
    /// The configuration file(s) it came from (the first is passed to `restore_command`).
    pub config_files: Vec<PathBuf>,
    locks: FileLockManager,
}

impl Server {
    /// The server called `name` in `config`.
    pub fn new(config: &Config, name: &str) -> Result<Server> {
        let cfg = config.server(name)?.clone();
        Ok(Server {
            config: cfg,
            config_files: config.source.clone(),
            locks: FileLockManager::new(config.global.lock_directory.clone()),
        })
    }

    /// The lock directory (`lock_directory` of the global section).
    pub fn lock_directory(&self) -> &std::path::Path {
        self.locks.dir()
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The lock manager of this pgbak home.
    pub fn locks(&self) -> &dyn LockManager {
        &self.locks
    }

    /// The backups of this server.
    pub fn catalogue(&self) -> Catalogue {
        Catalogue::new(&self.config.name, &self.config.basebackups_directory)
    }

    /// The WAL archive of this server, writing with its `compression`.
    pub fn wal_archive(&self) -> Result<WalArchive> {
        let codec = Codec::new(self.config.compression, self.config.compression_level)
            .map_err(|e| Error::Usage(format!("server '{}': {e}", self.config.name)))?;
        Ok(WalArchive::new(
            &self.config.name,
            &self.config.wals_directory,
            &self.config.errors_directory,
            codec,
        ))
    }

    /// A SQL connection using `conninfo`.
    pub fn connect(&self) -> Result<PgConnection> {
        PgConnection::connect(&self.config.name, &self.config.conninfo)
    }

    /// The file behind lock `name`, for locks taken in shared mode (which [`LockManager`] does
    /// not offer).
    pub fn lock_path(&self, name: &LockName) -> Result<PathBuf> {
        Ok(self.locks.path_for(name)?)
    }

    /// Whether a `pgbak backup` of this server is running now (it holds the backup lock).
    pub fn backup_running(&self) -> bool {
        matches!(
            self.locks
                .try_lock(&LockName::ServerBackup(self.config.name.clone())),
            Err(crate::locks::LockError::Busy { .. })
        )
    }

    /// Backups, oldest first, with interrupted ones (STARTED while no backup runs) shown as FAILED.
    pub fn backups(&self) -> Result<Vec<BackupInfo>> {
        let (mut all, _) = self.catalogue().list()?;
        if all.iter().any(|b| b.status == BackupStatus::Started) && !self.backup_running() {
            for b in all.iter_mut().filter(|b| b.status == BackupStatus::Started) {
                b.status = BackupStatus::Failed;
                b.error.get_or_insert_with(|| {
                    "interrupted: no pgbak process is running this backup".into()
                });
            }
        }
        Ok(all)
    }

    /// Marks backups left STARTED by a process that died as FAILED on disk. Call it while holding
    /// the server's backup lock.
    pub fn fail_interrupted_backups(&self) -> Result<Vec<String>> {
        let cat = self.catalogue();
        let (all, _) = cat.list()?;
        let mut failed = Vec::new();
        for mut b in all
            .into_iter()
            .filter(|b| b.status == BackupStatus::Started)
        {
            b.status = BackupStatus::Failed;
            b.error = Some(
                "interrupted: the process running this backup stopped before it finished".into(),
            );
            cat.discard_data(&b.backup_id)?;
            cat.write(&b)?;
            failed.push(b.backup_id);
        }
        Ok(failed)
    }
}
