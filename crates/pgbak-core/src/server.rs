//! One configured PostgreSQL server and the parts that serve it: its catalogue, WAL archive,
//! locks and SQL connection. Workflows take a [`Server`] rather than reassembling these.

use crate::catalogue::{BackupInfo, BackupStatus, Catalogue};
use crate::config::{Config, ServerConfig};
use crate::locks::{FileLockManager, LockManager, LockName};
use crate::pg::PgConnection;
use crate::receive_wal::ReceiverLauncher;
use crate::wal_archive::WalArchive;
use crate::{Error, Result};
use pgbak_compress::{Codec, Encryptor, Level};
use pgbak_storage::{LocalStorage, StorageBackend};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a server's data rests: one store per location of the configuration.
#[derive(Clone)]
pub struct Stores {
    /// The backups (`basebackups_directory`).
    pub backups: Arc<dyn StorageBackend>,
    /// The WAL archive and its index (`wals_directory`).
    pub wals: Arc<dyn StorageBackend>,
    /// Copies of WAL files that clashed with archived ones (`errors_directory`).
    pub errors: Arc<dyn StorageBackend>,
    /// The identity of the cluster (`<backup_directory>/identity.json` when the backups are on
    /// local disk, `identity.json` in the backups' store otherwise).
    pub meta: Arc<dyn StorageBackend>,
}

impl Stores {
    /// The stores a server configuration names: `basebackups_directory` and `wals_directory`
    /// (local directories or object storage URLs, reached with the configuration's cloud
    /// options and the stores' standard environment), `errors_directory`, and the identity
    /// beside the backups (in `backup_directory` when they are on local disk). Opening contacts
    /// no store.
    pub fn from_config(cfg: &ServerConfig) -> Result<Stores> {
        let backups = pgbak_storage::open_location(&cfg.basebackups_directory, &cfg.cloud)?;
        let wals = pgbak_storage::open_location(&cfg.wals_directory, &cfg.cloud)?;
        let meta: Arc<dyn StorageBackend> = if backups.local_root().is_some() {
            Arc::new(LocalStorage::new(&cfg.backup_directory))
        } else {
            backups.clone()
        };
        Ok(Stores {
            backups,
            wals,
            errors: Arc::new(LocalStorage::new(&cfg.errors_directory)),
            meta,
        })
    }

    /// Every store, each named by its option, without repeating one shared by two options.
    pub fn named(&self) -> Vec<(&'static str, &Arc<dyn StorageBackend>)> {
        let mut out: Vec<(&'static str, &Arc<dyn StorageBackend>)> = Vec::new();
        for (name, store) in [
            ("basebackups_directory", &self.backups),
            ("wals_directory", &self.wals),
            ("errors_directory", &self.errors),
        ] {
            if !out.iter().any(|(_, s)| Arc::ptr_eq(s, store)) {
                out.push((name, store));
            }
        }
        out
    }
}

/// What a [`Server`] is made of besides its configuration: where its data rests, its locks, the
/// encryption of what it stores, and how `cron` starts its WAL receiver. The CLI and the C ABI
/// build these; the workflows only use them.
#[derive(Clone)]
pub struct ServerParts {
    /// Where the data rests.
    pub stores: Stores,
    /// The lock files of this pgbak home.
    pub locks: FileLockManager,
    /// Encryption of stored bytes (none until an implementation is configured).
    pub encryptor: Option<Arc<dyn Encryptor>>,
    /// How `cron` starts `receive-wal` (none: cron reports that it cannot).
    pub launcher: Option<Arc<dyn ReceiverLauncher>>,
}

/// A configured server ready to work on.
#[derive(Clone)]
pub struct Server {
    pub config: ServerConfig,
    /// The configuration file(s) it came from (the first is passed to `restore_command`).
    pub config_files: Vec<PathBuf>,
    locks: FileLockManager,
    stores: Stores,
    encryptor: Option<Arc<dyn Encryptor>>,
    launcher: Option<Arc<dyn ReceiverLauncher>>,
}

impl Server {
    /// The server called `name` in `config`, with the parts its configuration names (its
    /// stores, lock directory and encryption) and no receiver launcher.
    pub fn new(config: &Config, name: &str) -> Result<Server> {
        let cfg = config.server(name)?.clone();
        let parts = ServerParts {
            stores: Stores::from_config(&cfg)?,
            locks: FileLockManager::new(config.global.lock_directory.clone()),
            encryptor: encryptor_of(&cfg)?,
            launcher: None,
        };
        Ok(Server::from_parts(cfg, config.source.clone(), parts))
    }

    /// A server from its configuration and parts built by the caller.
    pub fn from_parts(
        config: ServerConfig,
        config_files: Vec<PathBuf>,
        parts: ServerParts,
    ) -> Server {
        Server {
            config,
            config_files,
            locks: parts.locks,
            stores: parts.stores,
            encryptor: parts.encryptor,
            launcher: parts.launcher,
        }
    }

    /// The same server, starting its WAL receiver with `launcher`.
    pub fn with_launcher(mut self, launcher: Arc<dyn ReceiverLauncher>) -> Server {
        self.launcher = Some(launcher);
        self
    }

    /// How `cron` starts `receive-wal`, if this program can.
    pub fn launcher(&self) -> Option<&dyn ReceiverLauncher> {
        self.launcher.as_deref()
    }

    /// The encryption of stored bytes, if any.
    pub fn encryptor(&self) -> Option<&Arc<dyn Encryptor>> {
        self.encryptor.as_ref()
    }

    /// Where the server's data rests.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The local folder of backup `id` when the backups are on local disk (plain-format trees
    /// and the rsync methods work on files); `None` for an object store.
    pub(crate) fn local_backup_dir(&self, id: &str) -> Option<PathBuf> {
        let local = self.stores.backups.local_root()?;
        pgbak_repo::backups::is_backup_id(id).then(|| local.join(id))
    }

    /// The lock directory (`lock_directory` of the global section).
    pub(crate) fn lock_directory(&self) -> &std::path::Path {
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
        Catalogue::new(&self.config.name, self.stores.backups.clone())
    }

    /// The WAL archive of this server, writing with its `compression` at `compression_level`,
    /// `low` when unset: `archive-wal` is PostgreSQL's hot path, and the fastest level of each
    /// codec keeps it within reach of a plain copy (see docs/decisions.md).
    pub fn wal_archive(&self) -> Result<WalArchive> {
        let level = self.config.compression_level.or(Some(Level::Low));
        let codec = Codec::new(self.config.compression, level)
            .map_err(|e| Error::Usage(format!("server '{}': {e}", self.config.name)))?;
        Ok(WalArchive::new(
            &self.config.name,
            self.stores.wals.clone(),
            self.stores.errors.clone(),
            codec,
        )
        .with_encryptor(self.encryptor.clone()))
    }

    /// A SQL connection using `conninfo`.
    pub(crate) fn connect(&self) -> Result<PgConnection> {
        PgConnection::connect(&self.config.name, &self.config.conninfo)
    }

    /// A connection to the primary of this standby (`primary_conninfo`), or `None` when the
    /// option is not set.
    pub(crate) fn connect_primary(&self) -> Result<Option<PgConnection>> {
        match &self.config.primary_conninfo {
            Some(c) => {
                PgConnection::connect(&format!("{} (primary)", self.config.name), c).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Where WAL of this server is switched: the server itself, or its primary when it is a
    /// standby and `primary_conninfo` names one. A standby without `primary_conninfo` is an
    /// error (it cannot switch WAL).
    pub(crate) fn connect_wal_switcher(&self) -> Result<PgConnection> {
        let conn = self.connect()?;
        if !conn.is_in_recovery()? {
            return Ok(conn);
        }
        self.connect_primary()?.ok_or_else(|| {
            Error::Usage(format!(
                "server '{}' is a standby: set primary_conninfo so that pgbak switches WAL on its primary",
                self.config.name
            ))
        })
    }

    /// The file behind lock `name`, for locks taken in shared mode (which [`LockManager`] does
    /// not offer).
    pub(crate) fn lock_path(&self, name: &LockName) -> Result<PathBuf> {
        Ok(self.locks.path_for(name)?)
    }

    /// Whether a `pgbak backup` of this server is running now (it holds the backup lock).
    pub(crate) fn backup_running(&self) -> bool {
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
    pub(crate) fn fail_interrupted_backups(&self) -> Result<Vec<String>> {
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

/// The encryptor `cfg` asks for (`encryption`, `encryption_key_id`,
/// `encryption_passphrase_command`).
pub fn encryptor_of(cfg: &ServerConfig) -> Result<Option<Arc<dyn Encryptor>>> {
    match cfg.encryption {
        crate::config::Encryption::None => Ok(None),
        crate::config::Encryption::Gpg => gpg_encryptor(cfg),
    }
}

#[cfg(feature = "gpg")]
fn gpg_encryptor(cfg: &ServerConfig) -> Result<Option<Arc<dyn Encryptor>>> {
    let key = cfg.encryption_key_id.clone().ok_or_else(|| {
        Error::Usage(format!(
            "server '{}': encryption = gpg needs encryption_key_id",
            cfg.name
        ))
    })?;
    let mut gpg = pgbak_compress::gpg::GpgEncryptor::new(key);
    if let Some(command) = &cfg.encryption_passphrase_command {
        gpg = gpg.passphrase(passphrase_command(command.clone()));
    }
    Ok(Some(Arc::new(gpg)))
}

#[cfg(not(feature = "gpg"))]
fn gpg_encryptor(cfg: &ServerConfig) -> Result<Option<Arc<dyn Encryptor>>> {
    Err(Error::Usage(format!(
        "server '{}': encryption = gpg, but this pgbak was built without its gpg feature",
        cfg.name
    )))
}

/// Runs `encryption_passphrase_command` with the shell each time a passphrase is needed and
/// returns what it prints, without the final line break. Its output is never logged; a failure
/// says only how it ended.
#[cfg(feature = "gpg")]
fn passphrase_command(command: String) -> pgbak_compress::gpg::PassphraseSource {
    Arc::new(move || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("encryption_passphrase_command failed ({})", out.status),
            ));
        }
        let mut secret = out.stdout;
        if secret.last() == Some(&b'\n') {
            secret.pop();
            if secret.last() == Some(&b'\r') {
                secret.pop();
            }
        }
        if secret.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "encryption_passphrase_command printed no passphrase",
            ));
        }
        Ok(secret)
    })
}
