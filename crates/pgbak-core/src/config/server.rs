//! One PostgreSQL server's section: how to reach it, how to back it up, where its catalogue
//! lives. Every option has Barman's meaning and default unless its doc says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pgbak_compress::{Compression, Level};
use pgbak_storage::{
    AddressingStyle, AzureCredential, ChecksumCalculation, CloudOptions, Location, S3Encryption,
};

use super::choices::{
    backup_method_value, compression_value, level_value, BackupFormat, BackupMethod,
    CompressionLocation, CreateSlot, Encryption,
};
use super::error::ConfigError;
use super::keys::{self, Kind};
use super::raw::RawSection;
use super::reader::Reader;
use super::values;

/// The most segments one `archive-wal` call archives at once (`cloud_wal_archive_parallel`).
pub const MAX_WAL_ARCHIVE_PARALLEL: u32 = 64;

/// The settings of one server, after inheritance from the global section and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// The section name.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `active` (true): an inactive server is kept but skipped by cron and refused by commands.
    pub active: bool,
    /// `conninfo` (required): libpq connection string for ordinary SQL.
    pub conninfo: String,
    /// `streaming_conninfo` (default: `conninfo`): connection string for replication.
    pub streaming_conninfo: String,
    /// `primary_conninfo`: when `conninfo` is a standby, the connection string of its primary,
    /// where WAL is switched so that a backup of the standby can complete.
    pub primary_conninfo: Option<String>,
    /// `primary_checkpoint_timeout` in seconds (0: never): how long a backup of a standby waits
    /// for its last WAL segment, after switching WAL on the primary, before it forces a
    /// checkpoint there (an idle primary has nothing to switch).
    pub primary_checkpoint_timeout: u64,
    /// `backup_method` (default `postgres`, unlike Barman's `rsync`; see [`BackupMethod`]).
    pub backup_method: BackupMethod,
    /// `backup_options`, normalised comma-separated list (default `concurrent_backup`).
    pub backup_options: String,
    /// `encryption` (default none): `gpg` encrypts tar backups and archived WAL after
    /// compression.
    pub encryption: Encryption,
    /// `encryption_key_id`: the GPG key new data is encrypted to (required with `gpg`).
    pub encryption_key_id: Option<String>,
    /// `encryption_passphrase_command`: prints the passphrase of the secret key, for
    /// decryption (unset: gpg's agent answers).
    pub encryption_passphrase_command: Option<String>,
    /// `compression` of archived WAL (default none). Barman's `pigz`/`pygzip` read as gzip and
    /// `pybzip2` as bzip2; `custom` filters are refused.
    pub compression: Compression,
    /// `compression_level` of archived WAL (unset: `low`, the fastest level of the codec).
    pub compression_level: Option<Level>,
    /// `backup_compression` of base backups (default none).
    pub backup_compression: Compression,
    /// `backup_compression_format`: `tar` by default when a backup compression is set, `plain`
    /// when none is (an explicit `tar` without compression is ignored with a warning, as in
    /// Barman). `plain` with a compression needs `backup_compression_location = server`.
    pub backup_compression_format: BackupFormat,
    /// `backup_compression_level`.
    pub backup_compression_level: Option<i32>,
    /// `backup_compression_location` (default client).
    pub backup_compression_location: CompressionLocation,
    /// `backup_compression_workers` (zstd only).
    pub backup_compression_workers: Option<u32>,
    /// `retention_policy`, validated and normalised (`REDUNDANCY 3`,
    /// `RECOVERY WINDOW OF 4 WEEKS`).
    pub retention_policy: Option<String>,
    /// `wal_retention_policy` (`main`, the only value Barman has).
    pub wal_retention_policy: String,
    /// `minimum_redundancy` (0).
    pub minimum_redundancy: u32,
    /// `parallel_jobs` (1, at least 1).
    pub parallel_jobs: u32,
    /// `cloud_wal_archive_parallel` (0): when 2 or more, `archive-wal` also archives up to this
    /// many minus one of the following segments PostgreSQL has marked ready, in parallel, and
    /// acknowledges them when PostgreSQL asks (whatever the store, local or cloud).
    pub wal_archive_parallel: u32,
    /// `path_prefix`: directories (colon-separated in the file) put before `PATH` for external
    /// programs.
    pub path_prefix: Vec<PathBuf>,
    /// `immediate_checkpoint` (false).
    pub immediate_checkpoint: bool,
    /// `backup_directory` (default `<home>/<name>`).
    pub backup_directory: PathBuf,
    /// `basebackups_directory` (default `<backup_directory>/base`): a local directory or, as in
    /// Barman 3.18, an object storage URL (`s3://`, `azure://`,
    /// `https://ACCOUNT.blob.core.windows.net/`, `gs://`).
    pub basebackups_directory: Location,
    /// `wals_directory` (default `<backup_directory>/wals`): a local directory or an object
    /// storage URL.
    pub wals_directory: Location,
    /// `incoming_wals_directory` (default `<backup_directory>/incoming`).
    pub incoming_wals_directory: PathBuf,
    /// `streaming_wals_directory` (default `<backup_directory>/streaming`).
    pub streaming_wals_directory: PathBuf,
    /// `errors_directory` (default `<backup_directory>/errors`).
    pub errors_directory: PathBuf,
    /// `archiver`: WAL arrive through `archive_command` into `incoming/`.
    ///
    /// Default: on, unless `streaming_archiver` is on (then off, as in Barman). Set off
    /// explicitly together with `streaming_archiver` off, it is forced on with a warning, as
    /// Barman does, since a server without any WAL archiving cannot be recovered.
    pub archiver: bool,
    /// `streaming_archiver` (false): WAL are streamed by `receive-wal`.
    pub streaming_archiver: bool,
    /// `slot_name`, lower-cased and checked (`[0-9a-z_]+`, at most 63 characters).
    pub slot_name: Option<String>,
    /// `create_slot` (manual); `auto` needs `slot_name`.
    pub create_slot: CreateSlot,
    /// `ssh_command` (required by `backup_method = rsync`).
    pub ssh_command: Option<String>,
    /// `bandwidth_limit` in kB/s (unset or 0: no limit).
    pub bandwidth_limit: Option<u64>,
    /// `network_compression` (false; rsync `-z`).
    pub network_compression: bool,
    /// `reuse_backup`: `copy` or `link` (`off` reads as unset).
    pub reuse_backup: Option<String>,
    /// `basebackup_retry_times` (0).
    pub basebackup_retry_times: u32,
    /// `basebackup_retry_sleep` in seconds (30).
    pub basebackup_retry_sleep: u64,
    /// `check_timeout` in seconds (30).
    pub check_timeout: u64,
    /// `last_backup_maximum_age`, as written (checked with [`super::parse_interval`]).
    pub last_backup_maximum_age: Option<String>,
    /// `max_incoming_wals_queue`.
    pub max_incoming_wals_queue: Option<u32>,
    /// `recovery_options`: `get-wal`, `delta-restore`.
    pub recovery_options: Vec<String>,
    /// `streaming_backup_name` (`pgbak_streaming_backup`): application_name of backup connections.
    pub streaming_backup_name: String,
    /// `keepalive_interval` in seconds (60; 0 disables).
    pub keepalive_interval: u64,
    /// `autogenerate_manifest` (false): rsync and local-rsync backups get a PostgreSQL-format
    /// `backup_manifest` (as `pgbak generate-manifest` writes) before they are complete.
    pub autogenerate_manifest: bool,
    /// How to reach object storage: Barman's `aws_profile`, `aws_region`, `aws_encryption`,
    /// `aws_sse_kms_key_id`, `aws_read_timeout`, `azure_credential`,
    /// `cloud_upload_min_chunk_size`, `cloud_delete_batch_size`, and pgbak's
    /// `cloud_endpoint_url`, `aws_addressing_style`, `aws_request_checksum_calculation`,
    /// `azure_storage_account`, `gcp_credentials_file`, `cloud_max_attempts`; uploads run `parallel_jobs` parts at once
    /// when it is set. Credentials come from each store's standard environment, never from the
    /// file.
    pub cloud: CloudOptions,
    /// Every effective option of this server after inheritance: pgbak's options with their final
    /// values (defaults included) and the Barman options pgbak keeps as text; unknown options
    /// are left out. For `show-servers`.
    pub raw: BTreeMap<String, String>,
}

impl ServerConfig {
    /// `basebackups_directory` when it is a local directory.
    pub fn local_basebackups_directory(&self) -> Option<&std::path::Path> {
        match &self.basebackups_directory {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// `wals_directory` when it is a local directory.
    pub fn local_wals_directory(&self) -> Option<&std::path::Path> {
        match &self.wals_directory {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }
}

fn path_list_value(value: &str) -> Result<Vec<PathBuf>, String> {
    value
        .split(':')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(values::path_value)
        .collect()
}

/// Reads and checks server `name` from its section, inheriting from `global`.
pub(crate) fn build(
    section: &RawSection,
    global: Option<&RawSection>,
    home: &std::path::Path,
    warnings: &mut Vec<String>,
) -> Result<ServerConfig, ConfigError> {
    let r = Reader::server(section, global, Some(home));
    let name = r.name().to_string();
    warn_about_keys(section, warnings);
    // First, so that a server asking for what pgbak does not do (a passive node, encryption)
    // says so rather than that some other option is missing.
    let raw_barman = barman_options(&r, warnings)?;

    let bool_or = |key: &str, default: bool| -> Result<bool, ConfigError> {
        Ok(r.parse(key, values::bool_value)?.unwrap_or(default))
    };

    let active = bool_or("active", true)?;
    let description = r.string("description")?;
    let conninfo = r.string("conninfo")?.ok_or_else(|| {
        r.error(
            "conninfo",
            None,
            "required option is missing (a libpq connection string, e.g. 'host=pg1 user=pgbak dbname=postgres')",
        )
    })?;
    let streaming_conninfo = r
        .string("streaming_conninfo")?
        .unwrap_or_else(|| conninfo.clone());
    let primary_conninfo = r
        .string("primary_conninfo")?
        .filter(|c| !c.trim().is_empty());
    let primary_checkpoint_timeout = r
        .parse("primary_checkpoint_timeout", values::seconds_value)?
        .unwrap_or(0);
    let backup_method_set = r.get("backup_method")?;
    let backup_method = match &backup_method_set {
        None => BackupMethod::default(),
        Some(v) => {
            backup_method_value(&v.text).map_err(|m| r.error("backup_method", Some(v), m))?
        }
    };
    let backup_options = r
        .parse("backup_options", |v| {
            values::csv_value(
                v,
                &[
                    "concurrent_backup",
                    "exclusive_backup",
                    "external_configuration",
                ],
            )
        })?
        .unwrap_or_else(|| vec!["concurrent_backup".to_string()]);
    if backup_options.iter().any(|o| o == "concurrent_backup")
        && backup_options.iter().any(|o| o == "exclusive_backup")
    {
        let v = r.get("backup_options")?;
        return Err(r.error(
            "backup_options",
            v.as_ref(),
            "concurrent_backup and exclusive_backup cannot both be set",
        ));
    }
    let backup_options = backup_options.join(",");

    let compression = match r.get("compression")? {
        None => Compression::None,
        Some(v) => {
            let c = compression_value(&v.text).map_err(|m| r.error("compression", Some(&v), m))?;
            let written = v.text.trim().to_ascii_lowercase();
            if written == "pygzip" || written == "pybzip2" {
                warnings.push(r.warning(
                    "compression",
                    Some(&v),
                    &format!(
                        "'{written}' is a deprecated Barman name; read as '{}'",
                        c.name()
                    ),
                ));
            }
            c
        }
    };
    let level_set = r.get("compression_level")?;
    let compression_level = match &level_set {
        None => None,
        Some(v) => {
            let level =
                level_value(&v.text).map_err(|m| r.error("compression_level", Some(v), m))?;
            // An out-of-range level would otherwise surface only when a WAL is archived.
            level
                .value_for(compression)
                .map_err(|e| r.error("compression_level", Some(v), e.to_string()))?;
            Some(level)
        }
    };

    let backup_compression_set = r.get("backup_compression")?;
    let backup_compression = match &backup_compression_set {
        None => Compression::None,
        Some(v) => {
            compression_value(&v.text).map_err(|m| r.error("backup_compression", Some(v), m))?
        }
    };
    let backup_compression_location = r
        .parse("backup_compression_location", |v| {
            values::choice_value(v, "backup_compression_location", &["client", "server"])
        })?
        .map(|c| match c {
            "server" => CompressionLocation::Server,
            _ => CompressionLocation::Client,
        })
        .unwrap_or_default();
    if backup_compression != Compression::None {
        if !backup_method.streams() {
            return Err(r.error(
                "backup_compression",
                backup_compression_set.as_ref(),
                format!(
                    "backup compression needs backup_method = postgres (this server uses {backup_method})"
                ),
            ));
        }
        if backup_compression_location == CompressionLocation::Server
            && !matches!(
                backup_compression,
                Compression::Gzip | Compression::Lz4 | Compression::Zstd
            )
        {
            return Err(r.error(
                "backup_compression",
                backup_compression_set.as_ref(),
                format!(
                    "PostgreSQL compresses on the server only with gzip, lz4 or zstd, not {}",
                    backup_compression.name()
                ),
            ));
        }
    }
    let format_set = r.get("backup_compression_format")?;
    let backup_compression_format = match &format_set {
        None if backup_compression == Compression::None => BackupFormat::Plain,
        None => BackupFormat::Tar,
        Some(v) => {
            let word =
                values::choice_value(&v.text, "backup_compression_format", &["plain", "tar"])
                    .map_err(|m| r.error("backup_compression_format", Some(v), m))?;
            if backup_compression == Compression::None {
                if word == "tar" {
                    warnings.push(r.warning(
                        "backup_compression_format",
                        Some(v),
                        "has no effect without backup_compression; backups are plain",
                    ));
                }
                BackupFormat::Plain
            } else if word == "plain" {
                if backup_compression_location != CompressionLocation::Server {
                    return Err(r.error(
                        "backup_compression_format",
                        Some(v),
                        "plain needs backup_compression_location = server (the server compresses, pgbak decompresses on arrival)",
                    ));
                }
                BackupFormat::Plain
            } else {
                BackupFormat::Tar
            }
        }
    };
    let backup_level_set = r.get("backup_compression_level")?;
    let backup_compression_level = match &backup_level_set {
        None => None,
        Some(v) => {
            let level = values::signed_value(&v.text)
                .map_err(|m| r.error("backup_compression_level", Some(v), m))?;
            Level::Value(level)
                .value_for(backup_compression)
                .map_err(|e| r.error("backup_compression_level", Some(v), e.to_string()))?;
            Some(level)
        }
    };
    let workers_set = r.get("backup_compression_workers")?;
    let backup_compression_workers = match &workers_set {
        None => None,
        Some(v) => {
            let n = values::unsigned_value::<u32>(&v.text)
                .map_err(|m| r.error("backup_compression_workers", Some(v), m))?;
            if backup_compression != Compression::Zstd {
                return Err(r.error(
                    "backup_compression_workers",
                    Some(v),
                    "is only supported with backup_compression = zstd",
                ));
            }
            Some(n)
        }
    };

    let retention_policy = r.parse("retention_policy", values::retention_policy_value)?;
    let wal_retention_policy = r
        .parse("wal_retention_policy", |v| {
            values::choice_value(v, "wal_retention_policy", &["main"])
        })?
        .unwrap_or("main")
        .to_string();
    let minimum_redundancy = r
        .parse("minimum_redundancy", values::unsigned_value::<u32>)?
        .unwrap_or(0);
    if let Some(redundancy) = retention_policy.as_deref().and_then(values::redundancy_of) {
        if redundancy < minimum_redundancy {
            let v = r.get("retention_policy")?;
            warnings.push(r.warning(
                "retention_policy",
                v.as_ref(),
                &format!(
                    "keeps {redundancy} backups, fewer than minimum_redundancy = {minimum_redundancy}: minimum_redundancy wins"
                ),
            ));
        }
    }
    let parallel_jobs_set = r.get("parallel_jobs")?;
    let parallel_jobs = match &parallel_jobs_set {
        None => 1,
        Some(v) => match values::unsigned_value::<u32>(&v.text) {
            Ok(0) => return Err(r.error("parallel_jobs", Some(v), "must be at least 1")),
            Ok(n) => n,
            Err(m) => return Err(r.error("parallel_jobs", Some(v), m)),
        },
    };
    let wal_archive_parallel = match r.get("cloud_wal_archive_parallel")? {
        None => 0,
        Some(v) => match values::unsigned_value::<u32>(&v.text) {
            Ok(n) if n <= MAX_WAL_ARCHIVE_PARALLEL => n,
            Ok(_) => {
                return Err(r.error(
                    "cloud_wal_archive_parallel",
                    Some(&v),
                    format!("must be at most {MAX_WAL_ARCHIVE_PARALLEL}"),
                ))
            }
            Err(m) => return Err(r.error("cloud_wal_archive_parallel", Some(&v), m)),
        },
    };
    let path_prefix = r.parse("path_prefix", path_list_value)?.unwrap_or_default();
    let immediate_checkpoint = bool_or("immediate_checkpoint", false)?;

    let backup_directory = r
        .parse("backup_directory", values::path_value)?
        .unwrap_or_else(|| home.join(&name));
    let dir = |key: &str, leaf: &str| -> Result<PathBuf, ConfigError> {
        Ok(r.parse(key, values::path_value)?
            .unwrap_or_else(|| backup_directory.join(leaf)))
    };
    let repository = |key: &str, leaf: &str| -> Result<Location, ConfigError> {
        Ok(r.parse(key, values::location_value)?
            .unwrap_or_else(|| Location::Local(backup_directory.join(leaf))))
    };
    let basebackups_directory = repository("basebackups_directory", "base")?;
    let wals_directory = repository("wals_directory", "wals")?;
    if backup_method == BackupMethod::LocalToCloud
        && matches!(basebackups_directory, Location::Local(_))
    {
        return Err(r.error(
            "backup_method",
            backup_method_set.as_ref(),
            "local-to-cloud sends backups to object storage: basebackups_directory must be an \
             s3://, azure://, https://ACCOUNT.blob.core.windows.net/ or gs:// URL",
        ));
    }
    let cloud = cloud_options(&r, parallel_jobs_set.is_some().then_some(parallel_jobs))?;
    let encryption_set = r.get("encryption")?;
    let encryption = match encryption_set
        .as_ref()
        .map(|v| v.text.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("none") => Encryption::None,
        Some("gpg") => Encryption::Gpg,
        Some(_) => {
            return Err(r.error(
                "encryption",
                encryption_set.as_ref(),
                "expected none or gpg",
            ))
        }
    };
    let non_empty = |key: &str| -> Result<Option<String>, ConfigError> {
        Ok(r.string(key)?.filter(|v| !v.trim().is_empty()))
    };
    let encryption_key_id = non_empty("encryption_key_id")?;
    let encryption_passphrase_command = non_empty("encryption_passphrase_command")?;
    if encryption == Encryption::Gpg && encryption_key_id.is_none() {
        return Err(r.error(
            "encryption",
            encryption_set.as_ref(),
            "encryption = gpg needs encryption_key_id (the GPG key backups and WAL are encrypted to)",
        ));
    }
    let incoming_wals_directory = dir("incoming_wals_directory", "incoming")?;
    let streaming_wals_directory = dir("streaming_wals_directory", "streaming")?;
    let errors_directory = dir("errors_directory", "errors")?;

    let streaming_archiver = bool_or("streaming_archiver", false)?;
    let archiver_set = r.get("archiver")?;
    let archiver = match &archiver_set {
        None => !streaming_archiver,
        Some(v) => {
            let on = values::bool_value(&v.text).map_err(|m| r.error("archiver", Some(v), m))?;
            if !on && !streaming_archiver {
                warnings.push(r.warning(
                    "archiver",
                    Some(v),
                    "archiver and streaming_archiver are both off; archiver forced on, as WAL archiving is required for recovery",
                ));
                true
            } else {
                on
            }
        }
    };
    let slot_name = r.parse("slot_name", values::slot_name_value)?;
    let create_slot_set = r.get("create_slot")?;
    let create_slot = match &create_slot_set {
        None => CreateSlot::default(),
        Some(v) => match values::choice_value(&v.text, "create_slot", &["manual", "auto"]) {
            Ok("auto") => CreateSlot::Auto,
            Ok(_) => CreateSlot::Manual,
            Err(m) => return Err(r.error("create_slot", Some(v), m)),
        },
    };
    if create_slot == CreateSlot::Auto && slot_name.is_none() {
        return Err(r.error(
            "create_slot",
            create_slot_set.as_ref(),
            "auto needs slot_name to be set",
        ));
    }
    let ssh_command = r.string("ssh_command")?;
    if backup_method == BackupMethod::Rsync && ssh_command.is_none() {
        return Err(r.error(
            "backup_method",
            backup_method_set.as_ref(),
            "rsync needs ssh_command (e.g. 'ssh postgres@pg1'); use local-rsync for a server on this host",
        ));
    }
    let bandwidth_limit = r
        .parse("bandwidth_limit", values::unsigned_value::<u64>)?
        .filter(|limit| *limit > 0);
    let network_compression = bool_or("network_compression", false)?;
    let reuse_backup = r
        .parse("reuse_backup", |v| {
            values::choice_value(v, "reuse_backup", &["off", "copy", "link"])
        })?
        .filter(|mode| *mode != "off")
        .map(str::to_string);
    let basebackup_retry_times = r
        .parse("basebackup_retry_times", values::unsigned_value::<u32>)?
        .unwrap_or(0);
    let basebackup_retry_sleep = r
        .parse("basebackup_retry_sleep", values::seconds_value)?
        .unwrap_or(30);
    let check_timeout = r
        .parse("check_timeout", values::seconds_value)?
        .unwrap_or(30);
    let last_backup_maximum_age = r.parse("last_backup_maximum_age", |v| {
        values::interval_value(v).map(|_| v.trim().to_string())
    })?;
    let max_incoming_wals_queue =
        r.parse("max_incoming_wals_queue", values::unsigned_value::<u32>)?;
    let recovery_options = r
        .parse("recovery_options", |v| {
            values::csv_value(v, &["get-wal", "delta-restore"])
        })?
        .unwrap_or_default();
    let streaming_backup_name = r
        .string("streaming_backup_name")?
        .unwrap_or_else(|| "pgbak_streaming_backup".to_string());
    let keepalive_interval = r
        .parse("keepalive_interval", values::seconds_value)?
        .unwrap_or(60);
    let autogenerate_manifest = bool_or("autogenerate_manifest", false)?;
    if autogenerate_manifest && backup_method.streams() {
        let v = r.get("autogenerate_manifest")?;
        warnings.push(r.warning(
            "autogenerate_manifest",
            v.as_ref(),
            "only applies to the rsync methods; backups of backup_method = postgres always have PostgreSQL's own manifest",
        ));
    }

    let mut config = ServerConfig {
        name,
        description,
        active,
        conninfo,
        streaming_conninfo,
        primary_conninfo,
        primary_checkpoint_timeout,
        backup_method,
        backup_options,
        encryption,
        encryption_key_id,
        encryption_passphrase_command,
        compression,
        compression_level,
        backup_compression,
        backup_compression_format,
        backup_compression_level,
        backup_compression_location,
        backup_compression_workers,
        retention_policy,
        wal_retention_policy,
        minimum_redundancy,
        parallel_jobs,
        wal_archive_parallel,
        path_prefix,
        immediate_checkpoint,
        backup_directory,
        basebackups_directory,
        wals_directory,
        incoming_wals_directory,
        streaming_wals_directory,
        errors_directory,
        archiver,
        streaming_archiver,
        slot_name,
        create_slot,
        ssh_command,
        bandwidth_limit,
        network_compression,
        reuse_backup,
        basebackup_retry_times,
        basebackup_retry_sleep,
        check_timeout,
        last_backup_maximum_age,
        max_incoming_wals_queue,
        recovery_options,
        streaming_backup_name,
        keepalive_interval,
        autogenerate_manifest,
        cloud,
        raw: BTreeMap::new(),
    };
    let mut raw = raw_barman;
    raw.extend(effective_values(&config));
    config.raw = raw;
    Ok(config)
}

/// pgbak's options of `config` as text, in the words the file uses; unset options are left out.
fn effective_values(c: &ServerConfig) -> Vec<(String, String)> {
    let path = |p: &PathBuf| Some(p.display().to_string());
    let flag = |b: bool| Some(b.to_string());
    let pairs: Vec<(&str, Option<String>)> = vec![
        ("active", flag(c.active)),
        ("description", c.description.clone()),
        ("conninfo", Some(c.conninfo.clone())),
        ("streaming_conninfo", Some(c.streaming_conninfo.clone())),
        ("primary_conninfo", c.primary_conninfo.clone()),
        (
            "primary_checkpoint_timeout",
            Some(c.primary_checkpoint_timeout.to_string()),
        ),
        ("backup_method", Some(c.backup_method.to_string())),
        ("backup_options", Some(c.backup_options.clone())),
        ("compression", Some(c.compression.to_string())),
        (
            "compression_level",
            c.compression_level.map(|l| l.to_string()),
        ),
        (
            "encryption",
            Some(
                match c.encryption {
                    Encryption::None => "none",
                    Encryption::Gpg => "gpg",
                }
                .to_string(),
            ),
        ),
        ("encryption_key_id", c.encryption_key_id.clone()),
        (
            "encryption_passphrase_command",
            c.encryption_passphrase_command.clone(),
        ),
        ("backup_compression", Some(c.backup_compression.to_string())),
        (
            "backup_compression_format",
            Some(c.backup_compression_format.to_string()),
        ),
        (
            "backup_compression_level",
            c.backup_compression_level.map(|n| n.to_string()),
        ),
        (
            "backup_compression_location",
            Some(c.backup_compression_location.to_string()),
        ),
        (
            "backup_compression_workers",
            c.backup_compression_workers.map(|n| n.to_string()),
        ),
        ("retention_policy", c.retention_policy.clone()),
        ("wal_retention_policy", Some(c.wal_retention_policy.clone())),
        ("minimum_redundancy", Some(c.minimum_redundancy.to_string())),
        ("parallel_jobs", Some(c.parallel_jobs.to_string())),
        (
            "cloud_wal_archive_parallel",
            Some(c.wal_archive_parallel.to_string()),
        ),
        (
            "path_prefix",
            (!c.path_prefix.is_empty()).then(|| {
                c.path_prefix
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            }),
        ),
        ("immediate_checkpoint", flag(c.immediate_checkpoint)),
        ("backup_directory", path(&c.backup_directory)),
        (
            "basebackups_directory",
            Some(c.basebackups_directory.to_string()),
        ),
        ("wals_directory", Some(c.wals_directory.to_string())),
        ("incoming_wals_directory", path(&c.incoming_wals_directory)),
        (
            "streaming_wals_directory",
            path(&c.streaming_wals_directory),
        ),
        ("errors_directory", path(&c.errors_directory)),
        ("archiver", flag(c.archiver)),
        ("streaming_archiver", flag(c.streaming_archiver)),
        ("slot_name", c.slot_name.clone()),
        ("create_slot", Some(c.create_slot.to_string())),
        ("ssh_command", c.ssh_command.clone()),
        ("bandwidth_limit", c.bandwidth_limit.map(|n| n.to_string())),
        ("network_compression", flag(c.network_compression)),
        ("reuse_backup", c.reuse_backup.clone()),
        (
            "basebackup_retry_times",
            Some(c.basebackup_retry_times.to_string()),
        ),
        (
            "basebackup_retry_sleep",
            Some(c.basebackup_retry_sleep.to_string()),
        ),
        ("check_timeout", Some(c.check_timeout.to_string())),
        ("last_backup_maximum_age", c.last_backup_maximum_age.clone()),
        (
            "max_incoming_wals_queue",
            c.max_incoming_wals_queue.map(|n| n.to_string()),
        ),
        (
            "recovery_options",
            (!c.recovery_options.is_empty()).then(|| c.recovery_options.join(",")),
        ),
        (
            "streaming_backup_name",
            Some(c.streaming_backup_name.clone()),
        ),
        ("keepalive_interval", Some(c.keepalive_interval.to_string())),
        ("autogenerate_manifest", flag(c.autogenerate_manifest)),
        ("aws_profile", c.cloud.aws_profile.clone()),
        ("aws_region", c.cloud.aws_region.clone()),
        (
            "aws_encryption",
            c.cloud.aws_encryption.map(|e| match e {
                S3Encryption::Aes256 => "AES256".to_string(),
                S3Encryption::AwsKms => "aws:kms".to_string(),
            }),
        ),
        ("aws_sse_kms_key_id", c.cloud.aws_sse_kms_key_id.clone()),
        (
            "aws_read_timeout",
            c.cloud.read_timeout.map(|d| d.as_secs().to_string()),
        ),
        (
            "azure_credential",
            c.cloud.azure_credential.map(|a| {
                match a {
                    AzureCredential::AzureCli => "azure-cli",
                    AzureCredential::ManagedIdentity => "managed-identity",
                    AzureCredential::Default => "default",
                }
                .to_string()
            }),
        ),
        (
            "cloud_upload_min_chunk_size",
            c.cloud.part_size.map(|n| n.to_string()),
        ),
        (
            "cloud_delete_batch_size",
            c.cloud.delete_batch_size.map(|n| n.to_string()),
        ),
        ("cloud_endpoint_url", c.cloud.endpoint_url.clone()),
        (
            "aws_addressing_style",
            Some(
                match c.cloud.s3_addressing_style {
                    AddressingStyle::Auto => "auto",
                    AddressingStyle::Path => "path",
                    AddressingStyle::Virtual => "virtual",
                }
                .to_string(),
            ),
        ),
        (
            "aws_request_checksum_calculation",
            c.cloud.s3_checksum_calculation.map(|k| {
                match k {
                    ChecksumCalculation::WhenSupported => "when_supported",
                    ChecksumCalculation::WhenRequired => "when_required",
                }
                .to_string()
            }),
        ),
        ("azure_storage_account", c.cloud.azure_account.clone()),
        (
            "gcp_credentials_file",
            c.cloud
                .gcp_credentials_file
                .as_ref()
                .map(|p| p.display().to_string()),
        ),
        (
            "cloud_max_attempts",
            c.cloud.max_attempts.map(|n| n.to_string()),
        ),
    ];
    debug_assert_eq!(pairs.len(), keys::SERVER.len());
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
}

/// The object storage options of a server (see [`ServerConfig::cloud`]). `parallel_jobs` is the
/// value of that option when the file sets it.
fn cloud_options(r: &Reader<'_>, parallel_jobs: Option<u32>) -> Result<CloudOptions, ConfigError> {
    fn word<T: std::str::FromStr<Err = String>>(v: &str) -> Result<T, String> {
        v.trim().parse()
    }
    let mut o = CloudOptions::default();
    o.endpoint_url = r.parse("cloud_endpoint_url", |v| {
        let v = v.trim();
        if v.starts_with("http://") || v.starts_with("https://") {
            Ok(v.trim_end_matches('/').to_string())
        } else {
            Err(format!("'{v}' is not an http:// or https:// URL"))
        }
    })?;
    o.aws_profile = r.string("aws_profile")?;
    o.aws_region = r.string("aws_region")?;
    o.s3_addressing_style = r
        .parse("aws_addressing_style", word::<AddressingStyle>)?
        .unwrap_or_default();
    o.aws_encryption = r.parse("aws_encryption", word::<S3Encryption>)?;
    o.aws_sse_kms_key_id = r.string("aws_sse_kms_key_id")?;
    if o.aws_sse_kms_key_id.is_some() && o.aws_encryption != Some(S3Encryption::AwsKms) {
        let v = r.get("aws_sse_kms_key_id")?;
        return Err(r.error(
            "aws_sse_kms_key_id",
            v.as_ref(),
            "needs aws_encryption = aws:kms",
        ));
    }
    o.s3_checksum_calculation = r.parse(
        "aws_request_checksum_calculation",
        word::<ChecksumCalculation>,
    )?;
    o.read_timeout = r.parse("aws_read_timeout", |v| match values::seconds_value(v)? {
        0 => Err("must be at least 1 second".to_string()),
        n => Ok(std::time::Duration::from_secs(n)),
    })?;
    o.max_attempts = r.parse("cloud_max_attempts", |v| {
        match values::unsigned_value::<u32>(v)? {
            n @ 1..=100 => Ok(n),
            _ => Err("must be between 1 and 100".to_string()),
        }
    })?;
    o.azure_credential = r.parse("azure_credential", word::<AzureCredential>)?;
    o.azure_account = r.string("azure_storage_account")?;
    o.gcp_credentials_file = r.parse("gcp_credentials_file", values::path_value)?;
    o.part_size = r.parse("cloud_upload_min_chunk_size", |v| {
        let n = values::size_value(v)?;
        if (pgbak_storage::MIN_PART_SIZE..=pgbak_storage::MAX_PART_SIZE).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "'{v}' is outside what object stores accept for upload parts (5Mi to 512Mi)"
            ))
        }
    })?;
    o.delete_batch_size = r.parse(
        "cloud_delete_batch_size",
        |v| match values::unsigned_value::<usize>(v)? {
            n @ 1..=1000 => Ok(n),
            _ => Err("must be between 1 and 1000 (the most one delete request takes)".to_string()),
        },
    )?;
    o.upload_concurrency = parallel_jobs.map(|n| n as usize);
    Ok(o)
}

/// The Barman options of this server that are not typed options of pgbak, as text (for the code
/// that implements them and for `show-servers`). One that pgbak refuses is an error; one it
/// ignores is a warning, unless the value asks for nothing (Barman's default) or it is inherited
/// (the global section warns about it once).
fn barman_options(
    r: &Reader<'_>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut raw = BTreeMap::new();
    for key in r.keys() {
        if keys::kind(key) != Kind::BarmanServer {
            continue;
        }
        let Some(value) = r.get(key)? else { continue };
        match keys::support(key) {
            Some(support @ keys::Support::Refused { why, .. })
                if !support.is_harmless(&value.text) =>
            {
                return Err(r.error(key, Some(&value), why));
            }
            Some(support @ keys::Support::Ignored { why, .. })
                if !value.inherited && !support.is_harmless(&value.text) =>
            {
                warnings.push(r.warning(
                    key,
                    Some(&value),
                    &format!("not implemented by pgbak, ignored: {why}"),
                ));
            }
            _ => {}
        }
        raw.insert(key.to_string(), value.text);
    }
    Ok(raw)
}

/// Unknown options and global options in a server section are warnings.
fn warn_about_keys(section: &RawSection, warnings: &mut Vec<String>) {
    for (key, entry) in &section.entries {
        let message = match keys::kind(key) {
            Kind::Server | Kind::BarmanServer => continue,
            Kind::Global | Kind::BarmanGlobal => {
                "global option: only the [pgbak] section can set it; ignored here"
            }
            Kind::Unknown => "unknown option; ignored",
        };
        warnings.push(
            ConfigError::new(message)
                .at(&entry.at.path, Some(entry.at.line))
                .in_section(&section.name)
                .for_option(key)
                .to_string(),
        );
    }
}
