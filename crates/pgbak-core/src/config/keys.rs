//! Which option names exist, where they may be set and whether servers inherit them from the
//! global section. Options Barman has and pgbak does not implement yet are known here so that a
//! Barman file loads without a wall of warnings; they are kept as text for later use.

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

/// Global options Barman has and pgbak does not use.
pub(crate) const BARMAN_GLOBAL: &[&str] = &[
    "barman_user",
    "lock_directory_cleanup",
    "config_changes_queue",
    "log_format",
];

/// Server options pgbak implements.
pub(crate) const SERVER: &[&str] = &[
    "active",
    "description",
    "conninfo",
    "streaming_conninfo",
    "backup_method",
    "backup_options",
    "compression",
    "compression_level",
    "backup_compression",
    "backup_compression_format",
    "backup_compression_level",
    "backup_compression_location",
    "backup_compression_workers",
    "retention_policy",
    "wal_retention_policy",
    "minimum_redundancy",
    "parallel_jobs",
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
];

/// Server options Barman has (3.20) and pgbak does not implement yet.
pub(crate) const BARMAN_SERVER: &[&str] = &[
    "cluster",
    "model",
    "xlogdb_directory",
    "wal_conninfo",
    "wal_streaming_conninfo",
    "primary_conninfo",
    "primary_checkpoint_timeout",
    "primary_ssh_command",
    "forward_config_path",
    "autogenerate_manifest",
    "warehousepg_dbid",
    "archiver_batch_size",
    "streaming_archiver_batch_size",
    "streaming_archiver_name",
    "last_wal_maximum_age",
    "custom_compression_filter",
    "custom_decompression_filter",
    "custom_compression_magic",
    "retention_policy_mode",
    "last_backup_minimum_size",
    "pre_backup_script",
    "pre_backup_retry_script",
    "post_backup_script",
    "post_backup_retry_script",
    "pre_archive_script",
    "pre_archive_retry_script",
    "post_archive_script",
    "post_archive_retry_script",
    "pre_delete_script",
    "pre_delete_retry_script",
    "post_delete_script",
    "post_delete_retry_script",
    "pre_recovery_script",
    "pre_recovery_retry_script",
    "post_recovery_script",
    "post_recovery_retry_script",
    "pre_wal_delete_script",
    "pre_wal_delete_retry_script",
    "post_wal_delete_script",
    "post_wal_delete_retry_script",
    "parallel_jobs_start_batch_size",
    "parallel_jobs_start_batch_period",
    "tablespace_bandwidth_limit",
    "staging_path",
    "staging_location",
    "recovery_staging_path",
    "local_staging_path",
    "combine_mode",
    "encryption",
    "encryption_key_id",
    "encryption_passphrase_command",
    "worm_mode",
    "snapshot_provider",
    "snapshot_instance",
    "snapshot_disks",
    "snapshot_zone",
    "snapshot_gcp_project",
    "gcp_project",
    "gcp_zone",
    "azure_subscription_id",
    "azure_resource_group",
    "azure_credential",
    "aws_region",
    "aws_profile",
    "aws_await_snapshots_timeout",
    "aws_snapshot_lock_mode",
    "aws_snapshot_lock_duration",
    "aws_snapshot_lock_cool_off_period",
    "aws_snapshot_lock_expiration_date",
    "cloud_staging_directory",
    "cloud_staging_max_size",
    "cloud_upload_max_archive_size",
    "cloud_upload_min_chunk_size",
    "cloud_wal_archive_parallel",
    "cloud_wal_restore_parallel",
    "cloud_delete_batch_size",
    "aws_encryption",
    "aws_sse_kms_key_id",
    "aws_sse_customer_key",
    "aws_read_timeout",
    "aws_check_object_lock",
];

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
    /// A global option of Barman that pgbak ignores.
    BarmanGlobal,
    /// A server option pgbak implements.
    Server,
    /// A server option of Barman that pgbak keeps as text.
    BarmanServer,
    /// Neither pgbak nor Barman knows it.
    Unknown,
}

pub(crate) fn kind(key: &str) -> Kind {
    if GLOBAL.contains(&key) {
        Kind::Global
    } else if BARMAN_GLOBAL.contains(&key) {
        Kind::BarmanGlobal
    } else if SERVER.contains(&key) {
        Kind::Server
    } else if BARMAN_SERVER.contains(&key) {
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
        let all = [GLOBAL, BARMAN_GLOBAL, SERVER, BARMAN_SERVER];
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
