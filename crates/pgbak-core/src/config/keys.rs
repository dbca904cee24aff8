//! Which option names exist, where they may be set and whether servers inherit them from the
//! global section, and what pgbak does with each of Barman's options that is not one of its own
//! typed options: implemented (read as text by the code that uses it), refused (an error that
//! disables the server, when pgbak without it would keep less or less safely than the file
//! asks), or ignored with a warning naming the file, line and option.

/// Global options pgbak reads (aliases included).
pub(crate) const GLOBAL: &[&str] = &[
    "home",
    "barman_home",
    "log_level",
    "log_file",
    "lock_directory",
    "barman_lock_directory",
    "configuration_files_directory",
];

/// How pgbak treats a Barman option that is not one of its own typed options (the table
/// `docs/barman-compatibility.md` shows to users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// pgbak implements it as Barman does; the code that uses it reads it from `raw`.
    Implemented,
    /// pgbak does not implement it, and without it pgbak would keep less, or keep it less
    /// safely, than the file asks (encryption, WORM storage, a passive copy of another server):
    /// any value but the `harmless` ones (compared in lower case) is an error, which disables the
    /// server.
    Refused {
        harmless: &'static [&'static str],
        why: &'static str,
    },
    /// pgbak does not implement it and its absence weakens nothing: any value but the
    /// `harmless` ones is a warning that says what pgbak does instead.
    Ignored {
        harmless: &'static [&'static str],
        why: &'static str,
    },
}

impl Support {
    /// Whether `value` asks for nothing pgbak would have to do.
    pub(crate) fn is_harmless(&self, value: &str) -> bool {
        let value = value.trim().to_ascii_lowercase();
        match self {
            Support::Implemented => true,
            Support::Refused { harmless, .. } | Support::Ignored { harmless, .. } => {
                harmless.contains(&value.as_str())
            }
        }
    }
}

/// The words Barman reads as false.
const FALSE_WORDS: &[&str] = &["false", "f", "no", "0", "off"];

const fn ignored(why: &'static str) -> Support {
    Support::Ignored { harmless: &[], why }
}

const NO_SNAPSHOTS: Support =
    ignored("it only applies to backup_method = snapshot, which pgbak does not support");
const STREAMED: Support =
    ignored("pgbak streams backups to object storage without staging them on local disk");
const NO_CUSTOM_COMPRESSION: Support = ignored(
    "it only applies to compression = custom, which pgbak does not support (its compressions are built in)",
);
const HOOK: Support = Support::Implemented;

/// Global options Barman has and pgbak does not use.
pub(crate) const BARMAN_GLOBAL: &[(&str, Support)] = &[
    (
        "barman_user",
        ignored("pgbak runs as the user that starts it and never switches users"),
    ),
    (
        "lock_directory_cleanup",
        Support::Ignored {
            harmless: FALSE_WORDS,
            why: "cron does not remove lock files; run 'pgbak lock-directory-cleanup' instead",
        },
    ),
    (
        "config_changes_queue",
        ignored("pgbak has no config-update command"),
    ),
    (
        "log_format",
        ignored("pgbak's log lines have a fixed format (or JSON with --log-format json)"),
    ),
];

/// Server options pgbak implements.
pub(crate) const SERVER: &[&str] = &[
    "active",
    "description",
    "conninfo",
    "streaming_conninfo",
    "primary_conninfo",
    "primary_checkpoint_timeout",
    "backup_method",
    "backup_options",
    "compression",
    "compression_level",
    "encryption",
    "encryption_key_id",
    "encryption_passphrase_command",
    "backup_compression",
    "backup_compression_format",
    "backup_compression_level",
    "backup_compression_location",
    "backup_compression_workers",
    "retention_policy",
    "wal_retention_policy",
    "minimum_redundancy",
    "parallel_jobs",
    "cloud_wal_archive_parallel",
    "path_prefix",
    "immediate_checkpoint",
    "backup_directory",
    "basebackups_directory",
    "wals_directory",
    "incoming_wals_directory",
    "streaming_wals_directory",
    "errors_directory",
    "archiver",
    "streaming_archiver",
    "slot_name",
    "create_slot",
    "ssh_command",
    "bandwidth_limit",
    "network_compression",
    "reuse_backup",
    "basebackup_retry_times",
    "basebackup_retry_sleep",
    "check_timeout",
    "last_backup_maximum_age",
    "max_incoming_wals_queue",
    "recovery_options",
    "streaming_backup_name",
    "keepalive_interval",
    "autogenerate_manifest",
    // Object storage (Barman's names).
    "aws_profile",
    "aws_region",
    "aws_encryption",
    "aws_sse_kms_key_id",
    "aws_read_timeout",
    "azure_credential",
    "cloud_upload_min_chunk_size",
    "cloud_delete_batch_size",
    // Object storage (pgbak's own; Barman reads these from the environment or command line).
    "cloud_endpoint_url",
    "aws_addressing_style",
    "aws_request_checksum_calculation",
    "azure_storage_account",
    "gcp_credentials_file",
    "cloud_max_attempts",
];

/// Server options Barman has (3.20) that are not typed options of pgbak, and what pgbak does
/// with each.
pub(crate) const BARMAN_SERVER: &[(&str, Support)] = &[
    (
        "cluster",
        ignored("it only groups servers for configuration models, which pgbak does not support"),
    ),
    (
        "model",
        Support::Ignored {
            harmless: FALSE_WORDS,
            why: "configuration models are not supported; a section with model = true is skipped",
        },
    ),
    (
        "xlogdb_directory",
        ignored("pgbak keeps its WAL index (xlog.db) in wals_directory"),
    ),
    (
        "wal_conninfo",
        ignored("pgbak runs its WAL-related queries over conninfo"),
    ),
    ("wal_streaming_conninfo", Support::Implemented),
    (
        "primary_ssh_command",
        Support::Refused {
            harmless: &[],
            why: "makes this a passive node (a copy of another Barman server's backups and WAL), which pgbak does not support",
        },
    ),
    (
        "forward_config_path",
        ignored("pgbak's put-wal has no --config to forward"),
    ),
    (
        "warehousepg_dbid",
        ignored("pgbak does not back up WarehousePG segments"),
    ),
    (
        "archiver_batch_size",
        ignored("cron archives every queued WAL file in each run"),
    ),
    (
        "streaming_archiver_batch_size",
        ignored("receive-wal archives each streamed segment as soon as it is complete"),
    ),
    ("streaming_archiver_name", Support::Implemented),
    ("last_wal_maximum_age", Support::Implemented),
    ("custom_compression_filter", NO_CUSTOM_COMPRESSION),
    ("custom_decompression_filter", NO_CUSTOM_COMPRESSION),
    ("custom_compression_magic", NO_CUSTOM_COMPRESSION),
    (
        "retention_policy_mode",
        Support::Refused {
            harmless: &["auto"],
            why: "the only retention_policy_mode is auto (cron enforces the policy)",
        },
    ),
    ("last_backup_minimum_size", Support::Implemented),
    ("pre_backup_script", HOOK),
    ("pre_backup_retry_script", HOOK),
    ("post_backup_script", HOOK),
    ("post_backup_retry_script", HOOK),
    ("pre_archive_script", HOOK),
    ("pre_archive_retry_script", HOOK),
    ("post_archive_script", HOOK),
    ("post_archive_retry_script", HOOK),
    ("pre_delete_script", HOOK),
    ("pre_delete_retry_script", HOOK),
    ("post_delete_script", HOOK),
    ("post_delete_retry_script", HOOK),
    ("pre_recovery_script", HOOK),
    ("pre_recovery_retry_script", HOOK),
    ("post_recovery_script", HOOK),
    ("post_recovery_retry_script", HOOK),
    ("pre_wal_delete_script", HOOK),
    ("pre_wal_delete_retry_script", HOOK),
    ("post_wal_delete_script", HOOK),
    ("post_wal_delete_retry_script", HOOK),
    (
        "parallel_jobs_start_batch_size",
        ignored("pgbak starts its parallel_jobs rsync workers at once"),
    ),
    (
        "parallel_jobs_start_batch_period",
        ignored("pgbak starts its parallel_jobs rsync workers at once"),
    ),
    ("tablespace_bandwidth_limit", Support::Implemented),
    ("staging_path", Support::Implemented),
    (
        "staging_location",
        Support::Ignored {
            harmless: &["local"],
            why: "pgbak stages a recovery on the backup host (local)",
        },
    ),
    (
        "recovery_staging_path",
        ignored("a deprecated Barman name; pgbak reads staging_path"),
    ),
    (
        "local_staging_path",
        ignored("a deprecated Barman name; pgbak reads staging_path"),
    ),
    (
        "combine_mode",
        ignored("it only applies to restoring PostgreSQL 17 incremental backups with pg_combinebackup"),
    ),
    (
        "worm_mode",
        Support::Refused {
            harmless: FALSE_WORDS,
            why: "pgbak has no WORM mode: it would write to and delete from the catalogue as on ordinary storage",
        },
    ),
    ("snapshot_provider", NO_SNAPSHOTS),
    ("snapshot_instance", NO_SNAPSHOTS),
    ("snapshot_disks", NO_SNAPSHOTS),
    ("snapshot_zone", NO_SNAPSHOTS),
    ("snapshot_gcp_project", NO_SNAPSHOTS),
    ("gcp_project", NO_SNAPSHOTS),
    ("gcp_zone", NO_SNAPSHOTS),
    ("azure_subscription_id", NO_SNAPSHOTS),
    ("azure_resource_group", NO_SNAPSHOTS),
    ("aws_await_snapshots_timeout", NO_SNAPSHOTS),
    ("aws_snapshot_lock_mode", NO_SNAPSHOTS),
    ("aws_snapshot_lock_duration", NO_SNAPSHOTS),
    ("aws_snapshot_lock_cool_off_period", NO_SNAPSHOTS),
    ("aws_snapshot_lock_expiration_date", NO_SNAPSHOTS),
    ("cloud_staging_directory", STREAMED),
    ("cloud_staging_max_size", STREAMED),
    (
        "cloud_upload_max_archive_size",
        ignored("pgbak writes each tar stream as one object, growing its parts so that it fits the store's limits"),
    ),
    (
        "cloud_wal_restore_parallel",
        ignored("pgbak get-wal fetches one file per call; 'pgbak wal-restore --parallel' prefetches"),
    ),
    (
        "aws_sse_customer_key",
        Support::Refused {
            harmless: &[""],
            why: "pgbak does not encrypt with customer-provided keys (SSE-C): objects would be stored without it; use aws_encryption = aws:kms",
        },
    ),
    (
        "aws_check_object_lock",
        Support::Refused {
            harmless: FALSE_WORDS,
            why: "pgbak does not check S3 Object Lock before deleting: retention would fail on locked objects",
        },
    ),
];

/// What pgbak does with Barman option `key` (`None` for pgbak's own options and unknown names).
pub(crate) fn support(key: &str) -> Option<Support> {
    BARMAN_SERVER
        .iter()
        .chain(BARMAN_GLOBAL)
        .find(|(name, _)| *name == key)
        .map(|(_, support)| *support)
}

fn listed(table: &[(&str, Support)], key: &str) -> bool {
    table.iter().any(|(name, _)| *name == key)
}

/// Server options that only a server section may set (Barman's list); every other server option
/// set in the global section is inherited by all servers that do not set it.
pub(crate) const SERVER_ONLY: &[&str] = &[
    "active",
    "backup_directory",
    "basebackups_directory",
    "cloud_upload_max_archive_size",
    "cloud_upload_min_chunk_size",
    "cluster",
    "conninfo",
    "description",
    "errors_directory",
    "gcp_zone",
    "incoming_wals_directory",
    "keepalive_interval",
    "primary_checkpoint_timeout",
    "primary_conninfo",
    "snapshot_disks",
    "snapshot_instance",
    "snapshot_zone",
    "ssh_command",
    "streaming_conninfo",
    "streaming_wals_directory",
    "wal_conninfo",
    "wal_streaming_conninfo",
    "wals_directory",
];

/// Names that mean the same option; the first is pgbak's, the second Barman's.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("home", "barman_home"),
    ("lock_directory", "barman_lock_directory"),
];

/// What a name is to pgbak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A global option pgbak reads.
    Global,
    /// A global option of Barman that pgbak does not use ([`support`] says what it does).
    BarmanGlobal,
    /// A server option pgbak implements as a typed option.
    Server,
    /// A server option of Barman that pgbak keeps as text ([`support`] says what it does).
    BarmanServer,
    /// Neither pgbak nor Barman knows it.
    Unknown,
}

pub(crate) fn kind(key: &str) -> Kind {
    if GLOBAL.contains(&key) {
        Kind::Global
    } else if listed(BARMAN_GLOBAL, key) {
        Kind::BarmanGlobal
    } else if SERVER.contains(&key) {
        Kind::Server
    } else if listed(BARMAN_SERVER, key) {
        Kind::BarmanServer
    } else {
        Kind::Unknown
    }
}

/// True for a server option that servers take from the global section when they do not set it.
pub(crate) fn is_inheritable(key: &str) -> bool {
    matches!(kind(key), Kind::Server | Kind::BarmanServer) && !SERVER_ONLY.contains(&key)
}

/// The other names of `key` (empty when it has none).
pub(crate) fn aliases(key: &str) -> Vec<&'static str> {
    ALIASES
        .iter()
        .filter_map(|(a, b)| {
            if *a == key {
                Some(*b)
            } else if *b == key {
                Some(*a)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_do_not_overlap() {
        let names = |t: &[(&'static str, Support)]| t.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        let (barman_global, barman_server) = (names(BARMAN_GLOBAL), names(BARMAN_SERVER));
        let all = [GLOBAL, &barman_global, SERVER, &barman_server];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                for key in a.iter() {
                    assert!(!b.contains(key), "{key} is in two tables");
                }
            }
        }
        for key in SERVER_ONLY {
            assert!(
                matches!(kind(key), Kind::Server | Kind::BarmanServer),
                "{key}"
            );
        }
    }

    #[test]
    fn inheritance_and_aliases() {
        assert!(is_inheritable("compression"));
        assert!(is_inheritable("post_backup_script"));
        assert!(!is_inheritable("conninfo"));
        assert!(!is_inheritable("keepalive_interval"));
        assert!(!is_inheritable("home"));
        assert!(!is_inheritable("no_such_option"));
        assert_eq!(aliases("barman_home"), vec!["home"]);
        assert_eq!(aliases("lock_directory"), vec!["barman_lock_directory"]);
        assert!(aliases("compression").is_empty());
    }
}
