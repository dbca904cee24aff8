//! The fixed choices of server options (`backup_method`, `backup_compression_format`, ...) and
//! the parsers of the words that name them, including the compression names of pgbak-compress.

use std::fmt;

use pgbak_compress::{Compression, Level};

/// How base backups are taken (`backup_method`).
///
/// pgbak's default is [`BackupMethod::Postgres`] (the replication protocol's `BASE_BACKUP`),
/// where Barman's default is `rsync`: a Barman file that relies on the default and means rsync
/// must now say `backup_method = rsync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackupMethod {
    /// Stream the backup over a replication connection (`postgres`).
    #[default]
    Postgres,
    /// Copy PGDATA with rsync over SSH (`rsync`).
    Rsync,
    /// Copy PGDATA with rsync on the same host (`local-rsync`).
    LocalRsync,
    /// pgbak runs on the database host and sends backups straight to object storage
    /// (`local-to-cloud`, Barman 3.18): the backup streams over a local replication connection
    /// as with `postgres`, and `basebackups_directory` must be an object storage URL.
    LocalToCloud,
}

impl BackupMethod {
    /// The configuration word for this method.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMethod::Postgres => "postgres",
            BackupMethod::Rsync => "rsync",
            BackupMethod::LocalRsync => "local-rsync",
            BackupMethod::LocalToCloud => "local-to-cloud",
        }
    }

    /// Whether backups stream over the replication protocol (`BASE_BACKUP`).
    pub fn streams(self) -> bool {
        matches!(self, BackupMethod::Postgres | BackupMethod::LocalToCloud)
    }
}

/// `encryption` of tar backups and archived WAL (Barman 3.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Encryption {
    /// Stored in clear (default).
    #[default]
    None,
    /// OpenPGP messages to `encryption_key_id`, made with GnuPG.
    Gpg,
}

/// How a compressed base backup is written (`backup_compression_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupFormat {
    /// A plain directory tree.
    Plain,
    /// One compressed tar stream per tablespace.
    Tar,
}

impl BackupFormat {
    /// The configuration word for this format.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupFormat::Plain => "plain",
            BackupFormat::Tar => "tar",
        }
    }
}

/// Where a base backup is compressed (`backup_compression_location`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompressionLocation {
    /// On the backup host, by pgbak.
    #[default]
    Client,
    /// On the PostgreSQL server (PostgreSQL 15 and later; gzip, lz4 or zstd).
    Server,
}

impl CompressionLocation {
    /// The configuration word for this location.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionLocation::Client => "client",
            CompressionLocation::Server => "server",
        }
    }
}

/// Whether pgbak creates the replication slot itself (`create_slot`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CreateSlot {
    /// The operator creates the slot (`pgbak receive-wal --create-slot`).
    #[default]
    Manual,
    /// pgbak creates the slot when it is missing.
    Auto,
}

impl CreateSlot {
    /// The configuration word for this choice.
    pub fn as_str(self) -> &'static str {
        match self {
            CreateSlot::Manual => "manual",
            CreateSlot::Auto => "auto",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(BackupMethod, BackupFormat, CompressionLocation, CreateSlot);

/// Reads a compression name; pgbak-compress accepts Barman's aliases for the same formats
/// (`pigz`, `pygzip`, `pybzip2`). Barman's `custom` filters are refused by name.
pub(crate) fn compression_value(value: &str) -> Result<Compression, String> {
    let expected = || {
        let names: Vec<&str> = Compression::ALL.iter().map(|c| c.name()).collect();
        names.join(", ")
    };
    if value.trim().eq_ignore_ascii_case("custom") {
        return Err(format!(
            "custom compression filters are not supported by pgbak (expected one of {})",
            expected()
        ));
    }
    value.parse().map_err(|_| {
        format!(
            "unknown compression '{value}' (expected one of {})",
            expected()
        )
    })
}

pub(crate) fn level_value(value: &str) -> Result<Level, String> {
    value.parse().map_err(|_| {
        format!("invalid compression level '{value}' (expected low, medium, high or a number)")
    })
}

pub(crate) fn backup_method_value(value: &str) -> Result<BackupMethod, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "postgres" => Ok(BackupMethod::Postgres),
        "rsync" => Ok(BackupMethod::Rsync),
        "local-rsync" => Ok(BackupMethod::LocalRsync),
        "local-to-cloud" => Ok(BackupMethod::LocalToCloud),
        "snapshot" => Err(format!(
            "backup_method '{value}' is not supported by pgbak (expected one of postgres, rsync, local-rsync, local-to-cloud)"
        )),
        _ => Err(format!(
            "unknown backup_method '{value}' (expected one of postgres, rsync, local-rsync, local-to-cloud)"
        )),
    }
}
