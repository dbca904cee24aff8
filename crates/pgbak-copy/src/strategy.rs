//! The [`CopyStrategy`] seam: how the files of a running server become a backup, whatever moves
//! the bytes (streaming BASE_BACKUP here; rsync over SSH or a local copy elsewhere), and the
//! destinations and outcome every strategy shares.

use crate::Result;
use pgbak_compress::{Compressor, Encryptor};
use pgbak_storage::StorageBackend;
use pgbak_wal::{Lsn, TablespaceInfo};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Copies the data directory and tablespaces of a running server into a backup.
pub trait CopyStrategy: Send + Sync {
    /// Short name recorded in the backup metadata (e.g. "postgres").
    fn name(&self) -> &'static str;

    /// Takes the backup into `dest`, reporting progress as bytes arrive.
    fn copy(
        &self,
        dest: &BackupDestination,
        progress: &mut dyn CopyProgress,
    ) -> Result<CopyOutcome>;
}

/// Receives progress of a copy. Called from the thread that runs [`CopyStrategy::copy`].
pub trait CopyProgress {
    /// The expected total, when the server estimated it.
    fn set_total(&mut self, bytes: Option<u64>);
    /// Bytes done so far.
    fn set_done(&mut self, bytes: u64);
    /// Whether the caller asked the copy to stop; checked as the copy goes, which then fails.
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`CopyProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl CopyProgress for NoProgress {
    fn set_total(&mut self, _bytes: Option<u64>) {}
    fn set_done(&mut self, _bytes: u64) {}
}

/// Where and in which format a backup is written.
pub enum BackupDestination {
    /// A plain PGDATA tree like `pg_basebackup -Fp`: the data directory in `data_dir` (with
    /// `backup_manifest`) and each tablespace in [`BackupDestination::tablespace_dir`] =
    /// `<tablespaces_root>/<oid>`; `pg_tblspc/<oid>` in `data_dir` links there. `data_dir` must be
    /// missing or empty. If the copy fails, whatever was written stays for the caller to remove.
    Plain {
        /// Receives the data directory.
        data_dir: PathBuf,
        /// Receives one folder per tablespace, named by oid.
        tablespaces_root: PathBuf,
    },
    /// Tar streams like `pg_basebackup -Ft`: `<prefix>/base.tar<suffix>`, `<prefix>/<oid>.tar<suffix>`
    /// and `<prefix>/backup_manifest` (uncompressed) as objects of `storage`, where `<suffix>` is
    /// the compressor's [`pgbak_compress::Compression::tar_suffix`]. Objects are committed only
    /// once the whole backup succeeded.
    Tar {
        /// Where the objects go.
        storage: Arc<dyn StorageBackend>,
        /// Key prefix (a backup's folder), without trailing '/'; empty for the storage root.
        prefix: String,
        /// Compresses each tar stream.
        compressor: Arc<dyn Compressor>,
        /// Encrypts each tar stream after compression (its name then ends in `.gpg`, as in
        /// Barman); the manifest stays clear.
        encryptor: Option<Arc<dyn Encryptor>>,
    },
}

impl BackupDestination {
    /// The folder of tablespace `oid` in a plain destination (`None` for tar destinations).
    pub fn tablespace_dir(&self, oid: u32) -> Option<PathBuf> {
        match self {
            BackupDestination::Plain {
                tablespaces_root, ..
            } => Some(tablespaces_root.join(oid.to_string())),
            BackupDestination::Tar { .. } => None,
        }
    }

    /// The storage key of `name` ("base.tar.zst", "backup_manifest") in a tar destination.
    pub fn object_key(&self, name: &str) -> Option<String> {
        match self {
            BackupDestination::Tar { prefix, .. } => Some(join_key(prefix, name)),
            BackupDestination::Plain { .. } => None,
        }
    }
}

/// `prefix/name`, or `name` when the prefix is empty.
pub(crate) fn join_key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

impl fmt::Debug for BackupDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupDestination::Plain {
                data_dir,
                tablespaces_root,
            } => f
                .debug_struct("Plain")
                .field("data_dir", data_dir)
                .field("tablespaces_root", tablespaces_root)
                .finish(),
            BackupDestination::Tar {
                prefix,
                compressor,
                encryptor,
                ..
            } => f
                .debug_struct("Tar")
                .field("prefix", prefix)
                .field("compression", &compressor.compression().name())
                .field("encryption", &encryptor.as_ref().map(|e| e.name()))
                .finish_non_exhaustive(),
        }
    }
}

/// What a finished copy produced and where the backup starts and ends in the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// WAL location where the backup starts (redo point of its checkpoint).
    pub start_lsn: Lsn,
    /// Timeline of `start_lsn`.
    pub start_tli: u32,
    /// WAL location the backup must be replayed to, at least, to be consistent.
    pub end_lsn: Lsn,
    /// Timeline of `end_lsn`.
    pub end_tli: u32,
    /// The tablespaces copied (not the main data directory), as the server listed them.
    pub tablespaces: Vec<TablespaceInfo>,
    /// Content of the `backup_label` file the server generated.
    pub backup_label: Option<String>,
    /// Content of the `tablespace_map` file, when the server sent one.
    pub tablespace_map: Option<String>,
    /// Bytes received from the server (archives and manifest).
    pub bytes_received: u64,
    /// Bytes written to the destination (after compression).
    pub bytes_written: u64,
    /// What was written, relative to the destination.
    pub files: Vec<OutputFile>,
    /// Whether a backup manifest was received and stored.
    pub has_manifest: bool,
    /// The server's `server_version_num` (e.g. 150018).
    pub server_version_num: u32,
    /// The cluster's system identifier.
    pub systemid: String,
    /// The cluster's WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// How long each phase of the copy took.
    pub phases: CopyPhases,
}

/// How long each phase of a copy took, in the order they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyPhases {
    /// From the connection to the first byte of data: connecting, and the checkpoint that
    /// starts the backup (`pg_backup_start`).
    pub start: std::time::Duration,
    /// Receiving (or copying) the data files.
    pub copy: std::time::Duration,
    /// From the last data file to the end of the backup (`pg_backup_stop`, the manifest, and
    /// the server waiting for its last WAL segment to be archived, when it does).
    pub stop: std::time::Duration,
    /// Making what was written durable after the server was done (the last uploads, the
    /// fsyncs).
    pub durable: std::time::Duration,
}

/// One output of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative name: `base.tar.zst`, `16384.tar.zst`, `backup_manifest`, or `data` / `<oid>` for
    /// the trees of a plain backup.
    pub name: String,
    /// Bytes written (for a tree, the sum of its file sizes).
    pub size: u64,
    /// CRC-32C of the bytes written, for a stored object (an archive or the manifest); `None` for
    /// a tree. Readers check it ([`pgbak_compress::pipeline::ReadPipelineBuilder::expect_stored`]):
    /// archives are compressed without a frame checksum of their own.
    pub crc32c: Option<u32>,
}
