//! Tests of whole configuration files: defaults, inheritance, interpolation, errors with their
//! locations, the search order and configuration_files_directory.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use pgbak_compress::{Compression, Level};

use super::load::load_with;
use super::*;

const ORIGIN: &str = "/etc/pgbak.conf";

fn local(path: &str) -> pgbak_storage::Location {
    pgbak_storage::Location::Local(PathBuf::from(path))
}

fn parse(text: &str) -> Config {
    match Config::parse_str(text, Path::new(ORIGIN)) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The error of a file whose global section is wrong, or the reason its one server is disabled.
fn parse_err(text: &str) -> ConfigError {
    match Config::parse_str(text, Path::new(ORIGIN)) {
        Ok(config) => match config.disabled.values().next() {
            Some(d) if config.disabled.len() == 1 => {
                assert!(config.server(&d.name).is_err());
                d.reason.clone()
            }
            _ => panic!("expected an error for:\n{text}"),
        },
        Err(e) => e,
    }
}

/// Asserts where an error points and that its message contains `needle`.
fn assert_error(err: &ConfigError, line: Option<usize>, option: Option<&str>, needle: &str) {
    assert_eq!(err.path.as_deref(), Some(Path::new(ORIGIN)), "{err}");
    assert_eq!(err.line, line, "{err}");
    assert_eq!(err.option.as_deref(), option, "{err}");
    assert!(err.message.contains(needle), "{err:?} lacks {needle:?}");
}

const HEADER: &str = "[pgbak]\nhome = /srv/pgbak\n";

fn with_server(body: &str) -> String {
    format!("{HEADER}[main]\nconninfo = host=pg1\n{body}")
}

#[test]
fn full_realistic_file() {
    let config = parse(
        r#"; pgbak configuration
[pgbak]
home = /var/lib/pgbak
log_file = /var/log/pgbak/pgbak.log
log_level = debug
lock_directory = /run/pgbak
barman_user = barman
compression = gzip
retention_policy = RECOVERY WINDOW OF 4 WEEKS
minimum_redundancy = 1
parallel_jobs = 2

[main]
description = "Main PostgreSQL Database"
conninfo = host=pg01 user=pgbak dbname=postgres
streaming_conninfo = host=pg01 user=streaming_pgbak
backup_method = postgres
backup_compression = zstd
backup_compression_level = 5
backup_compression_workers = 4
streaming_archiver = on
slot_name = pgbak
create_slot = auto
path_prefix = /usr/lib/postgresql/17/bin : /opt/bin
immediate_checkpoint = true
bandwidth_limit = 4000
last_backup_maximum_age = 1 week
max_incoming_wals_queue = 100
recovery_options = get-wal
keepalive_interval = 30
check_timeout = 60
post_backup_script = /usr/local/bin/notify

[web]
description = Web applications database
conninfo = host=web01 user=pgbak
backup_method = rsync
ssh_command = ssh -p 22 postgres@web01
reuse_backup = link
network_compression = yes
retention_policy = REDUNDANCY 3
compression = zstd
compression_level = high
active = false
"#,
    );
    assert_eq!(config.source, vec![PathBuf::from(ORIGIN)]);
    assert_eq!(
        config.warnings,
        vec![format!(
            "{ORIGIN}:7: option 'barman_user' in [pgbak]: not implemented by pgbak, ignored: pgbak runs as the user that starts it and never switches users"
        )]
    );

    let g = &config.global;
    assert_eq!(g.home, Path::new("/var/lib/pgbak"));
    assert_eq!(g.log_level, "DEBUG");
    assert_eq!(
        g.log_file.as_deref(),
        Some(Path::new("/var/log/pgbak/pgbak.log"))
    );
    assert_eq!(g.lock_directory, Path::new("/run/pgbak"));
    assert_eq!(g.configuration_files_directory, None);
    assert_eq!(g.raw.get("barman_user").map(String::as_str), Some("barman"));
    assert!(!g.raw.contains_key("compression"));

    assert_eq!(config.servers.keys().collect::<Vec<_>>(), ["main", "web"]);
    let main = config.server("main").unwrap();
    assert_eq!(main.name, "main");
    assert_eq!(
        main.description.as_deref(),
        Some("Main PostgreSQL Database")
    );
    assert!(main.active);
    assert_eq!(main.conninfo, "host=pg01 user=pgbak dbname=postgres");
    assert_eq!(main.streaming_conninfo, "host=pg01 user=streaming_pgbak");
    assert_eq!(main.backup_method, BackupMethod::Postgres);
    assert_eq!(main.compression, Compression::Gzip);
    assert_eq!(main.compression_level, None);
    assert_eq!(main.backup_compression, Compression::Zstd);
    assert_eq!(main.backup_compression_format, BackupFormat::Tar);
    assert_eq!(main.backup_compression_level, Some(5));
    assert_eq!(
        main.backup_compression_location,
        CompressionLocation::Client
    );
    assert_eq!(main.backup_compression_workers, Some(4));
    assert_eq!(
        main.retention_policy.as_deref(),
        Some("RECOVERY WINDOW OF 4 WEEKS")
    );
    assert_eq!(main.minimum_redundancy, 1);
    assert_eq!(main.parallel_jobs, 2);
    assert_eq!(
        main.path_prefix,
        vec![
            PathBuf::from("/usr/lib/postgresql/17/bin"),
            PathBuf::from("/opt/bin")
        ]
    );
    assert!(main.immediate_checkpoint);
    assert_eq!(main.backup_directory, Path::new("/var/lib/pgbak/main"));
    assert_eq!(main.wals_directory, local("/var/lib/pgbak/main/wals"));
    assert!(main.streaming_archiver);
    assert!(
        !main.archiver,
        "streaming only: archiver defaults off as in Barman"
    );
    assert_eq!(main.slot_name.as_deref(), Some("pgbak"));
    assert_eq!(main.create_slot, CreateSlot::Auto);
    assert_eq!(main.bandwidth_limit, Some(4000));
    assert_eq!(main.last_backup_maximum_age.as_deref(), Some("1 week"));
    assert_eq!(main.max_incoming_wals_queue, Some(100));
    assert_eq!(main.recovery_options, vec!["get-wal".to_string()]);
    assert_eq!(main.keepalive_interval, 30);
    assert_eq!(main.check_timeout, 60);
    assert_eq!(
        main.raw.get("post_backup_script").map(String::as_str),
        Some("/usr/local/bin/notify")
    );

    let web = config.server("web").unwrap();
    assert!(!web.active);
    assert_eq!(web.backup_method, BackupMethod::Rsync);
    assert_eq!(web.ssh_command.as_deref(), Some("ssh -p 22 postgres@web01"));
    assert_eq!(web.reuse_backup.as_deref(), Some("link"));
    assert!(web.network_compression);
    assert_eq!(web.retention_policy.as_deref(), Some("REDUNDANCY 3"));
    assert_eq!(web.compression, Compression::Zstd);
    assert_eq!(web.compression_level, Some(Level::High));
    assert_eq!(web.backup_compression, Compression::None);
    assert_eq!(web.backup_compression_format, BackupFormat::Plain);
    assert!(web.archiver);
    assert_eq!(web.parallel_jobs, 2, "inherited from [pgbak]");
}

#[test]
fn defaults_of_a_minimal_server() {
    let config = parse(&with_server(""));
    assert_eq!(config.global.log_level, "INFO");
    assert_eq!(config.global.lock_directory, Path::new("/srv/pgbak"));
    assert_eq!(config.global.log_file, None);
    let s = config.server("main").unwrap();
    assert_eq!(s.description, None);
    assert!(s.active);
    assert_eq!(s.streaming_conninfo, "host=pg1");
    assert_eq!(s.backup_method, BackupMethod::Postgres);
    assert_eq!(s.backup_options, "concurrent_backup");
    assert_eq!(s.compression, Compression::None);
    assert_eq!(s.compression_level, None);
    assert_eq!(s.backup_compression, Compression::None);
    assert_eq!(s.backup_compression_format, BackupFormat::Plain);
    assert_eq!(s.backup_compression_level, None);
    assert_eq!(s.backup_compression_location, CompressionLocation::Client);
    assert_eq!(s.backup_compression_workers, None);
    assert_eq!(s.retention_policy, None);
    assert_eq!(s.wal_retention_policy, "main");
    assert_eq!(s.minimum_redundancy, 0);
    assert_eq!(s.parallel_jobs, 1);
    assert!(s.path_prefix.is_empty());
    assert!(!s.immediate_checkpoint);
    assert_eq!(s.backup_directory, Path::new("/srv/pgbak/main"));
    assert_eq!(s.basebackups_directory, local("/srv/pgbak/main/base"));
    assert_eq!(s.wals_directory, local("/srv/pgbak/main/wals"));
    assert_eq!(
        s.incoming_wals_directory,
        Path::new("/srv/pgbak/main/incoming")
    );
    assert_eq!(
        s.streaming_wals_directory,
        Path::new("/srv/pgbak/main/streaming")
    );
    assert_eq!(s.errors_directory, Path::new("/srv/pgbak/main/errors"));
    assert!(s.archiver);
    assert!(!s.streaming_archiver);
    assert_eq!(s.slot_name, None);
    assert_eq!(s.create_slot, CreateSlot::Manual);
    assert_eq!(s.ssh_command, None);
    assert_eq!(s.bandwidth_limit, None);
    assert!(!s.network_compression);
    assert_eq!(s.reuse_backup, None);
    assert_eq!(s.basebackup_retry_times, 0);
    assert_eq!(s.basebackup_retry_sleep, 30);
    assert_eq!(s.check_timeout, 30);
    assert_eq!(s.last_backup_maximum_age, None);
    assert_eq!(s.max_incoming_wals_queue, None);
    assert!(s.recovery_options.is_empty());
    assert_eq!(s.streaming_backup_name, "pgbak_streaming_backup");
    assert_eq!(s.keepalive_interval, 60);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn backup_directory_moves_the_other_directories() {
    let config = parse(&with_server(
        "backup_directory = /data/main/\nwals_directory = /fast/wals\n",
    ));
    let s = config.server("main").unwrap();
    assert_eq!(s.basebackups_directory, local("/data/main/base"));
    assert_eq!(s.wals_directory, local("/fast/wals"));
    assert_eq!(s.errors_directory, Path::new("/data/main/errors"));
}

#[test]
fn inheritance_from_the_global_section() {
    let config = parse(
        "[pgbak]\nhome = /srv/pgbak\ncompression = gzip\nretention_policy = redundancy 2\n\
         ssh_command = ssh global\nconninfo = host=everyone\n\
         [a]\nconninfo = host=a\n\
         [b]\nconninfo = host=b\ncompression = xz\n\
         [c]\nconninfo = host=c\ncompression = None\nretention_policy =\n",
    );
    let a = config.server("a").unwrap();
    assert_eq!(a.compression, Compression::Gzip);
    assert_eq!(a.retention_policy.as_deref(), Some("REDUNDANCY 2"));
    assert_eq!(a.ssh_command, None, "ssh_command is per server only");
    assert_eq!(a.conninfo, "host=a");
    assert_eq!(a.raw.get("compression").map(String::as_str), Some("gzip"));
    assert_eq!(config.server("b").unwrap().compression, Compression::Xz);
    let c = config.server("c").unwrap();
    assert_eq!(c.compression, Compression::None, "None blocks inheritance");
    assert_eq!(
        c.retention_policy, None,
        "an empty value blocks inheritance"
    );
    // Per-server options in [pgbak] are ignored with a warning naming file and line.
    let warnings = &config.warnings;
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.contains(&format!(
        "{ORIGIN}:5: option 'ssh_command' in [pgbak]: only a server section can set this option; ignored here"
    )));
    assert!(warnings
        .iter()
        .any(|w| w.starts_with(&format!("{ORIGIN}:6: option 'conninfo'"))));
}

#[test]
fn interpolation() {
    let config = parse(
        "[pgbak]\nbarman_home = /srv/pgbak\nlog_file = %(barman_home)s/log/pgbak.log\n\
         slot_name = pgbak_%(name)s\n\
         [main]\nconninfo = host=pg1 password=50%%off\n\
         backup_directory = %(home)s/clusters/%(name)s\n\
         wals_directory = %(backup_directory)s/archive\n\
         [other]\nconninfo = host=pg2\nerrors_directory = %(backup_directory)s/failed\n",
    );
    assert_eq!(
        config.global.log_file.as_deref(),
        Some(Path::new("/srv/pgbak/log/pgbak.log"))
    );
    let main = config.server("main").unwrap();
    assert_eq!(main.conninfo, "host=pg1 password=50%off");
    assert_eq!(main.backup_directory, Path::new("/srv/pgbak/clusters/main"));
    assert_eq!(
        main.wals_directory,
        local("/srv/pgbak/clusters/main/archive")
    );
    assert_eq!(
        main.slot_name.as_deref(),
        Some("pgbak_main"),
        "%(name)s of an inherited value is the server's"
    );
    let other = config.server("other").unwrap();
    assert_eq!(other.slot_name.as_deref(), Some("pgbak_other"));
    assert_eq!(
        other.errors_directory,
        Path::new("/srv/pgbak/other/failed"),
        "the default backup_directory can be referred to"
    );
}

#[test]
fn quoting() {
    let config = parse(&with_server(
        "description = \" Text with quotes \"\nssh_command = ssh -c \"arcfour\" -p 22 postgres@pg01\n\
         compression = 'gzip'\n",
    ));
    let main = config.server("main").unwrap();
    assert_eq!(main.description.as_deref(), Some(" Text with quotes "));
    assert_eq!(
        main.ssh_command.as_deref(),
        Some("ssh -c \"arcfour\" -p 22 postgres@pg01")
    );
    assert_eq!(main.compression, Compression::Gzip);
}

#[test]
fn barman_section_and_names_are_accepted_with_a_warning() {
    let config = parse(
        "[barman]\nbarman_home = /var/lib/barman\nbarman_lock_directory = /run/barman\n\
         compression = pygzip\n[pg]\nconninfo = host=pg\nbackup_method = rsync\nssh_command = ssh pg\n",
    );
    assert_eq!(config.global.home, Path::new("/var/lib/barman"));
    assert_eq!(config.global.lock_directory, Path::new("/run/barman"));
    let pg = config.server("pg").unwrap();
    assert_eq!(pg.compression, Compression::Gzip);
    assert_eq!(pg.backup_directory, Path::new("/var/lib/barman/pg"));
    assert!(
        config.warnings[0].starts_with(&format!("{ORIGIN}:1: section [barman] is read as [pgbak]"))
    );
    assert!(config.warnings[1].contains("'pygzip' is a deprecated Barman name; read as 'gzip'"));
    assert!(config.warnings[1].contains("(value inherited from [barman])"));
    assert_eq!(config.warnings.len(), 2);
}

#[test]
fn barman_options_pgbak_lacks_are_errors_when_safety_depends_on_them() {
    // encryption = gpg with its key loads (what it encrypts is tested end to end).
    let config = parse(&with_server(
        "encryption = gpg\nencryption_key_id = backup@example.com\nencryption_passphrase_command = cat /etc/pass\n",
    ));
    let main = config.server("main").unwrap();
    assert_eq!(main.encryption, crate::config::Encryption::Gpg);
    assert_eq!(
        main.encryption_key_id.as_deref(),
        Some("backup@example.com")
    );
    assert_eq!(
        main.encryption_passphrase_command.as_deref(),
        Some("cat /etc/pass")
    );

    // Barman's defaults ask for nothing: they load without a word.
    let config = parse(&with_server(
        "encryption = none\nworm_mode = off\nretention_policy_mode = auto\nstaging_location = local\nmodel = false\n",
    ));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(config.server("main").is_ok());

    // Anything else disables the server, naming the file, line and option.
    for (line, needle) in [
        // GPG encryption needs the key to encrypt to.
        ("encryption = gpg", "needs encryption_key_id"),
        ("encryption = GPG", "needs encryption_key_id"),
        ("encryption = aes", "expected none or gpg"),
        ("worm_mode = on", "no WORM mode"),
        ("primary_ssh_command = ssh barman@backup", "passive node"),
        (
            "retention_policy_mode = manual",
            "only retention_policy_mode is auto",
        ),
    ] {
        let option = line.split(' ').next().unwrap();
        let err = parse_err(&with_server(&format!("{line}\n")));
        assert_error(&err, Some(5), Some(option), needle);
        assert_eq!(err.section.as_deref(), Some("main"));
    }
    // Set in the global section, it disables every server that inherits it.
    let config = parse(&format!(
        "{HEADER}encryption = gpg\n[a]\nconninfo = x\n[b]\nconninfo = y\nencryption = none\n"
    ));
    assert!(config.server("a").is_err());
    assert_eq!(config.disabled["a"].reason.line, Some(3));
    assert!(config.server("b").is_ok(), "b opts out");

    // The others are warnings, once, at the line that sets them.
    let config = parse(&format!(
        "{HEADER}archiver_batch_size = 50\n[a]\nconninfo = x\nwal_conninfo = host=p\n[b]\nconninfo = y\n"
    ));
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(config.warnings[0].starts_with(&format!(
        "{ORIGIN}:3: option 'archiver_batch_size' in [pgbak]: not implemented by pgbak, ignored: "
    )));
    assert!(config.warnings[1].starts_with(&format!(
        "{ORIGIN}:6: option 'wal_conninfo' of server 'a': not implemented by pgbak, ignored: "
    )));
    assert!(config.server("a").is_ok() && config.server("b").is_ok());
}

#[test]
fn every_barman_option_is_classified() {
    for (name, support) in keys::BARMAN_SERVER.iter().chain(keys::BARMAN_GLOBAL) {
        match support {
            keys::Support::Implemented => {}
            keys::Support::Refused { why, .. } | keys::Support::Ignored { why, .. } => {
                assert!(!why.is_empty(), "{name}")
            }
        }
    }
    // The table users read lists every option pgbak does not type itself.
    let doc = include_str!("../../../../docs/barman-compatibility.md");
    for (name, _) in keys::BARMAN_SERVER.iter().chain(keys::BARMAN_GLOBAL) {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is missing from docs/barman-compatibility.md"
        );
    }
}

#[test]
fn unknown_options_warn_and_barman_options_are_kept() {
    let config = parse(&with_server(
        "frobnicate = yes\nlog_level = DEBUG\ncustom_compression_filter = bzip2 -c\nlast_wal_maximum_age = None\n",
    ));
    assert_eq!(
        config.warnings,
        vec![
            format!("{ORIGIN}:5: option 'frobnicate' of server 'main': unknown option; ignored"),
            format!(
                "{ORIGIN}:6: option 'log_level' of server 'main': global option: only the [pgbak] section can set it; ignored here"
            ),
            format!(
                "{ORIGIN}:7: option 'custom_compression_filter' of server 'main': not implemented by pgbak, ignored: it only applies to compression = custom, which pgbak does not support (its compressions are built in)"
            ),
        ]
    );
    let main = config.server("main").unwrap();
    assert_eq!(
        main.raw
            .get("custom_compression_filter")
            .map(String::as_str),
        Some("bzip2 -c")
    );
    assert!(!main.raw.contains_key("frobnicate"));
    assert!(!main.raw.contains_key("last_wal_maximum_age"));
    assert_eq!(
        main.raw.get("backup_method").map(String::as_str),
        Some("postgres")
    );
    assert_eq!(main.raw.get("archiver").map(String::as_str), Some("true"));
    assert_eq!(
        main.raw.get("wals_directory").map(String::as_str),
        Some("/srv/pgbak/main/wals")
    );
    assert!(!main.raw.contains_key("slot_name"));

    let global = parse("[pgbak]\nhome = /x\nwhatever = 1\n");
    assert_eq!(
        global.warnings,
        vec![format!(
            "{ORIGIN}:3: option 'whatever' in [pgbak]: unknown option; ignored"
        )]
    );
}

#[test]
fn archiver_defaults() {
    let s = |body: &str| parse(&with_server(body)).server("main").unwrap().clone();
    assert!(s("").archiver);
    let streaming = s("streaming_archiver = on\n");
    assert!(!streaming.archiver && streaming.streaming_archiver);
    let both = s("streaming_archiver = on\narchiver = on\n");
    assert!(both.archiver && both.streaming_archiver);
    let config = parse(&with_server("archiver = off\n"));
    assert!(config.server("main").unwrap().archiver, "forced on");
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].starts_with(&format!("{ORIGIN}:5: option 'archiver' of server 'main':"))
    );
}

#[test]
fn backup_compression_rules() {
    let s = |body: &str| parse(&with_server(body)).server("main").unwrap().clone();
    let server_plain = s("backup_compression = lz4\nbackup_compression_location = server\nbackup_compression_format = plain\n");
    assert_eq!(server_plain.backup_compression_format, BackupFormat::Plain);
    assert_eq!(
        server_plain.backup_compression_location,
        CompressionLocation::Server
    );
    let config = parse(&with_server("backup_compression_format = tar\n"));
    assert_eq!(
        config.server("main").unwrap().backup_compression_format,
        BackupFormat::Plain
    );
    assert!(config.warnings[0].contains("has no effect without backup_compression"));
    assert_eq!(
        s("backup_compression = none\n").backup_compression,
        Compression::None
    );
}

#[test]
fn model_sections_are_skipped() {
    let config = parse(&format!("{HEADER}[m]\nmodel = true\ncluster = main\n"));
    assert!(config.servers.is_empty());
    assert!(config.warnings[0].contains("models"));
}

#[test]
fn unknown_server_lists_known_ones() {
    let config = parse(&format!("{HEADER}[b]\nconninfo = x\n[a]\nconninfo = y\n"));
    assert_eq!(
        config.server("zz").unwrap_err().to_string(),
        "unknown server 'zz' (known servers: a, b)"
    );
    let empty = parse(HEADER);
    assert_eq!(
        empty.server("a").unwrap_err().to_string(),
        "unknown server 'a' (no server is configured)"
    );
}

#[test]
fn error_message_shape() {
    let err = parse_err(&with_server("compression = zzz\n"));
    assert_eq!(
        err.to_string(),
        "/etc/pgbak.conf:5: option 'compression' of server 'main': unknown compression 'zzz' (expected one of none, gzip, bzip2, xz, zstd, lz4, snappy)"
    );
    assert_eq!(err.section.as_deref(), Some("main"));
}

#[test]
fn invalid_values_are_errors_at_their_line() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("archiver = maybe\n", 5, "archiver", "invalid boolean"),
        (
            "minimum_redundancy = -1\n",
            5,
            "minimum_redundancy",
            "invalid number",
        ),
        ("parallel_jobs = 0\n", 5, "parallel_jobs", "at least 1"),
        (
            "check_timeout = soon\n",
            5,
            "check_timeout",
            "invalid number",
        ),
        (
            "backup_method = snapshot\n",
            5,
            "backup_method",
            "not supported by pgbak",
        ),
        (
            "backup_method = tape\n",
            5,
            "backup_method",
            "unknown backup_method",
        ),
        (
            "compression = custom\n",
            5,
            "compression",
            "custom compression",
        ),
        (
            "compression_level = max\n",
            5,
            "compression_level",
            "invalid compression level",
        ),
        (
            "slot_name = my slot\n",
            5,
            "slot_name",
            "invalid replication slot name",
        ),
        (
            "create_slot = sometimes\n",
            5,
            "create_slot",
            "unknown create_slot",
        ),
        ("create_slot = auto\n", 5, "create_slot", "needs slot_name"),
        (
            "reuse_backup = hardlink\n",
            5,
            "reuse_backup",
            "unknown reuse_backup",
        ),
        (
            "recovery_options = get-wal, fast\n",
            5,
            "recovery_options",
            "unknown value 'fast'",
        ),
        (
            "backup_options = concurrent_backup,exclusive_backup\n",
            5,
            "backup_options",
            "cannot both",
        ),
        (
            "retention_policy = forever\n",
            5,
            "retention_policy",
            "invalid retention policy",
        ),
        (
            "wal_retention_policy = base\n",
            5,
            "wal_retention_policy",
            "expected one of main",
        ),
        (
            "last_backup_maximum_age = 1 year\n",
            5,
            "last_backup_maximum_age",
            "invalid interval",
        ),
        (
            "wals_directory = wals\n",
            5,
            "wals_directory",
            "not an absolute path",
        ),
        (
            "incoming_wals_directory = s3://bucket/incoming\n",
            5,
            "incoming_wals_directory",
            "only basebackups_directory and wals_directory may be in object storage",
        ),
        (
            "basebackups_directory = s3://Bad_Bucket/base\n",
            5,
            "basebackups_directory",
            "S3 bucket",
        ),
        (
            "wals_directory = ftp://host/wals\n",
            5,
            "wals_directory",
            "unknown repository scheme",
        ),
        (
            "wals_directory = https://example.com/wals\n",
            5,
            "wals_directory",
            "must be an Azure Blob URL",
        ),
        (
            "backup_method = local-to-cloud\n",
            5,
            "backup_method",
            "basebackups_directory must be an s3://",
        ),
        (
            "aws_encryption = rot13\n",
            5,
            "aws_encryption",
            "unknown aws_encryption",
        ),
        (
            "aws_sse_kms_key_id = alias/pgbak\n",
            5,
            "aws_sse_kms_key_id",
            "needs aws_encryption = aws:kms",
        ),
        (
            "cloud_upload_min_chunk_size = 1Mi\n",
            5,
            "cloud_upload_min_chunk_size",
            "5Mi to 512Mi",
        ),
        (
            "cloud_delete_batch_size = 5000\n",
            5,
            "cloud_delete_batch_size",
            "between 1 and 1000",
        ),
        (
            "azure_credential = password\n",
            5,
            "azure_credential",
            "unknown azure_credential",
        ),
        (
            "aws_read_timeout = 0\n",
            5,
            "aws_read_timeout",
            "at least 1 second",
        ),
        (
            "cloud_max_attempts = 0\n",
            5,
            "cloud_max_attempts",
            "between 1 and 100",
        ),
        (
            "cloud_max_attempts = many\n",
            5,
            "cloud_max_attempts",
            "many",
        ),
        (
            "cloud_endpoint_url = 127.0.0.1:9000\n",
            5,
            "cloud_endpoint_url",
            "not an http:// or https:// URL",
        ),
        (
            "aws_check_object_lock = on\n",
            5,
            "aws_check_object_lock",
            "Object Lock",
        ),
        (
            "aws_sse_customer_key = file:///etc/pgbak/key\n",
            5,
            "aws_sse_customer_key",
            "SSE-C",
        ),
        (
            "path_prefix = /usr/bin:bin\n",
            5,
            "path_prefix",
            "not an absolute path",
        ),
        (
            "backup_compression = gzip\nbackup_compression_format = plain\n",
            6,
            "backup_compression_format",
            "needs backup_compression_location = server",
        ),
        (
            "backup_compression = xz\nbackup_compression_location = server\n",
            5,
            "backup_compression",
            "only with gzip, lz4 or zstd",
        ),
        (
            "backup_compression = gzip\nbackup_compression_workers = 2\n",
            6,
            "backup_compression_workers",
            "only supported with backup_compression = zstd",
        ),
        (
            "backup_compression = gzip\nbackup_method = local-rsync\n",
            5,
            "backup_compression",
            "needs backup_method = postgres",
        ),
        (
            "backup_method = rsync\n",
            5,
            "backup_method",
            "needs ssh_command",
        ),
        (
            "backup_compression_level = high\n",
            5,
            "backup_compression_level",
            "invalid number",
        ),
        ("description = 100% sure\n", 5, "description", "write '%%'"),
        (
            "compression = gzip\ncompression_level = 15\n",
            6,
            "compression_level",
            "out of range for gzip",
        ),
        (
            "backup_compression = zstd\nbackup_compression_level = 40\n",
            6,
            "backup_compression_level",
            "out of range for zstd",
        ),
        (
            "description = %(nothing)s\n",
            5,
            "description",
            "'%(nothing)s'",
        ),
    ];
    for (body, line, option, needle) in cases {
        let err = parse_err(&with_server(body));
        assert_error(&err, Some(*line), Some(option), needle);
        assert_eq!(err.section.as_deref(), Some("main"), "{err}");
    }
}

#[test]
fn inherited_invalid_value_points_at_the_global_line() {
    let err = parse_err("[pgbak]\nhome = /x\ncompression = zzz\n[main]\nconninfo = c\n");
    assert_error(
        &err,
        Some(3),
        Some("compression"),
        "(value inherited from [pgbak])",
    );
    assert_eq!(err.section.as_deref(), Some("main"));
}

#[test]
fn structural_errors() {
    let err = parse_err("[main]\nconninfo = host=pg1\n");
    assert_error(&err, None, None, "no [pgbak] section");

    let err = parse_err("[pgbak]\nlog_level = INFO\n");
    assert_error(&err, Some(1), Some("home"), "required option is missing");
    assert_eq!(err.to_string(), "/etc/pgbak.conf:1: option 'home' in [pgbak]: required option is missing (Barman's name 'barman_home' is accepted too)");

    let err = parse_err(&format!("{HEADER}\n[main]\ndescription = no conninfo\n"));
    assert_error(
        &err,
        Some(4),
        Some("conninfo"),
        "required option is missing",
    );

    let err = parse_err("[pgbak]\nhome = relative/dir\n");
    assert_error(&err, Some(2), Some("home"), "not an absolute path");

    let err = parse_err("[pgbak]\nhome = /a\nbarman_home = /b\n");
    assert_error(&err, Some(3), Some("barman_home"), "keep one");

    let err = parse_err("[pgbak]\nhome = /a\nlog_level = LOUD\n");
    assert_error(&err, Some(3), Some("log_level"), "unknown log level");

    let err = parse_err(&format!("{HEADER}[all]\nconninfo = x\n"));
    assert_error(&err, Some(3), None, "'all' cannot be a server name");

    let err = parse_err(&format!("{HEADER}[a/b]\nconninfo = x\n"));
    assert_error(&err, Some(3), None, "cannot contain '/'");

    let err = parse_err(&format!(
        "{HEADER}[main]\nconninfo = x\n[main]\nactive = off\n"
    ));
    assert_error(
        &err,
        Some(5),
        None,
        "appears twice in this file (first at line 3)",
    );

    let err = parse_err("[pgbak]\nhome = /a\n[barman]\nlog_level = INFO\n");
    assert_error(&err, Some(3), None, "same global section");

    let err = parse_err("home = /a\n[pgbak]\n");
    assert_error(&err, Some(1), None, "outside any section");

    let err = parse_err(&format!("{HEADER}[main]\nconninfo\n"));
    assert_error(&err, Some(4), None, "expected 'option = value'");

    let err = parse_err(&format!("{HEADER}[m]\nmodel = perhaps\n"));
    assert_error(&err, Some(4), Some("model"), "invalid boolean");
}

#[test]
fn directories_must_not_clash() {
    let err = parse_err(&format!(
        "{HEADER}[a]\nconninfo = x\n[b]\nconninfo = y\nbackup_directory = /srv/pgbak/a/\n"
    ));
    assert_error(
        &err,
        Some(7),
        Some("backup_directory"),
        "is also the backup_directory of server 'a'",
    );
    assert_eq!(err.section.as_deref(), Some("b"));
    // Only the server that chose the clashing folder is disabled; the other one works.
    let config = parse(&format!(
        "{HEADER}[a]\nconninfo = x\n[b]\nconninfo = y\nbackup_directory = /srv/pgbak/a/\n"
    ));
    assert!(config.server("a").is_ok());
    assert!(config.server("b").is_err());
    // Both chose it: both are disabled.
    let config = parse(&format!(
        "{HEADER}[a]\nconninfo = x\nwals_directory = /w\n[b]\nconninfo = y\nwals_directory = /w\n"
    ));
    assert!(config.servers.is_empty(), "{:?}", config.servers.keys());
    assert_eq!(config.server_names(), vec!["a", "b"]);
    assert!(config.disabled["a"].reason.message.contains("server 'b'"));

    let err = parse_err(&with_server("wals_directory = /srv/pgbak/main/incoming\n"));
    assert_eq!(err.option.as_deref(), Some("incoming_wals_directory"));
    assert_eq!(
        err.line,
        Some(3),
        "points at the section when the option is a default"
    );
    assert!(
        err.message.contains("this server's wals_directory"),
        "{err}"
    );
}

// ---- search order and configuration_files_directory ----

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
}

fn minimal(home: &str) -> String {
    format!("[pgbak]\nhome = {home}\n")
}

#[test]
fn search_order() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let user_home = t.join("user");
    let sys1 = t.join("etc/pgbak.conf");
    let sys2 = t.join("etc/pgbak/pgbak.conf");
    let explicit = t.join("explicit.conf");
    let env_file = t.join("env.conf");
    let system = [sys1.as_path(), sys2.as_path()];
    let home_of = |c: Config| c.global.home;

    // Nothing exists: the error lists every place looked at.
    let err = load_with(None, None, Some(&user_home), &system).unwrap_err();
    for place in [user_home.join(".pgbak.conf"), sys1.clone(), sys2.clone()] {
        assert!(err.message.contains(&place.display().to_string()), "{err}");
    }
    assert!(err.message.contains("PGBAK_CONFIG"));

    write(&sys2, &minimal("/sys2"));
    assert_eq!(
        home_of(load_with(None, None, Some(&user_home), &system).unwrap()),
        Path::new("/sys2")
    );
    write(&sys1, &minimal("/sys1"));
    assert_eq!(
        home_of(load_with(None, None, Some(&user_home), &system).unwrap()),
        Path::new("/sys1")
    );
    write(&user_home.join(".pgbak.conf"), &minimal("/user"));
    assert_eq!(
        home_of(load_with(None, None, Some(&user_home), &system).unwrap()),
        Path::new("/user")
    );
    assert_eq!(
        home_of(load_with(None, None, None, &system).unwrap()),
        Path::new("/sys1")
    );

    // $PGBAK_CONFIG beats the usual places; an empty value is ignored; a missing file is an
    // error, not a fallback.
    write(&env_file, &minimal("/env"));
    let env = Some(env_file.as_os_str());
    assert_eq!(
        home_of(load_with(None, env, Some(&user_home), &system).unwrap()),
        Path::new("/env")
    );
    assert_eq!(
        home_of(load_with(None, Some(OsStr::new("")), Some(&user_home), &system).unwrap()),
        Path::new("/user")
    );
    let missing = t.join("missing.conf");
    let err = load_with(None, Some(missing.as_os_str()), Some(&user_home), &system).unwrap_err();
    assert_eq!(err.path.as_deref(), Some(missing.as_path()));
    assert!(err.message.contains("$PGBAK_CONFIG"), "{err}");

    // An explicit file beats everything, and must exist.
    write(&explicit, &minimal("/explicit"));
    let config = load_with(Some(&explicit), env, Some(&user_home), &system).unwrap();
    assert_eq!(config.source, vec![explicit.clone()]);
    assert_eq!(home_of(config), Path::new("/explicit"));
    let err = load_with(Some(&missing), env, Some(&user_home), &system).unwrap_err();
    assert_eq!(err.path.as_deref(), Some(missing.as_path()));
    assert!(err.message.contains("does not exist"));
}

#[test]
fn configuration_files_directory_overrides_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("pgbak.d");
    let main = t.join("pgbak.conf");
    write(
        &main,
        &format!(
            "[pgbak]\nhome = /srv\ncompression = gzip\nconfiguration_files_directory = {}\n\
             [main]\nconninfo = host=from-main\ndescription = main file\n",
            dir.display()
        ),
    );
    write(
        &dir.join("b.conf"),
        "[main]\nconninfo = host=from-b\n[other]\nconninfo = host=o\n",
    );
    write(
        &dir.join("a.conf"),
        "[main]\nconninfo = host=from-a\nstreaming_conninfo = host=a-stream\n",
    );
    write(
        &dir.join("c.conf.disabled"),
        "[main]\nconninfo = host=ignored\n",
    );
    write(
        &dir.join(".hidden.conf"),
        "[main]\nconninfo = host=hidden\n",
    );
    fs::create_dir_all(dir.join("sub.conf")).unwrap();

    let config = load_with(Some(&main), None, None, &[]).unwrap();
    assert_eq!(
        config.source,
        vec![main.clone(), dir.join("a.conf"), dir.join("b.conf")]
    );
    assert_eq!(
        config.global.configuration_files_directory.as_deref(),
        Some(dir.as_path())
    );
    let s = config.server("main").unwrap();
    assert_eq!(
        s.conninfo, "host=from-b",
        "later files override earlier keys"
    );
    assert_eq!(s.streaming_conninfo, "host=a-stream");
    assert_eq!(
        s.description.as_deref(),
        Some("main file"),
        "keys not overridden are kept"
    );
    assert_eq!(s.compression, Compression::Gzip);
    assert_eq!(config.server("other").unwrap().conninfo, "host=o");

    // An error in an included file names that file and line, and disables only that server.
    write(&dir.join("d.conf"), "[main]\narchiver = sometimes\n");
    let config = load_with(Some(&main), None, None, &[]).unwrap();
    let err = config.server("main").unwrap_err();
    assert!(err.message.contains("d.conf:2"), "{err}");
    let reason = &config.disabled["main"].reason;
    assert_eq!(reason.path.as_deref(), Some(dir.join("d.conf").as_path()));
    assert_eq!(reason.line, Some(2));
    assert_eq!(config.server("other").unwrap().conninfo, "host=o");
    fs::remove_file(dir.join("d.conf")).unwrap();

    // A global section is refused in included files.
    write(&dir.join("e.conf"), "[pgbak]\nlog_level = DEBUG\n");
    let err = load_with(Some(&main), None, None, &[]).unwrap_err();
    assert_eq!(err.path.as_deref(), Some(dir.join("e.conf").as_path()));
    assert_eq!(err.line, Some(1));
    assert!(err
        .message
        .contains("only allowed in the main configuration file"));
}

#[test]
fn missing_configuration_files_directory_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("pgbak.conf");
    let dir = tmp.path().join("nope.d");
    write(
        &main,
        &format!(
            "[pgbak]\nhome = /srv\nconfiguration_files_directory = {}\n",
            dir.display()
        ),
    );
    let config = load_with(Some(&main), None, None, &[]).unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(config.warnings[0].contains("does not exist"));
}

#[test]
fn unreadable_main_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("bad.conf");
    fs::write(&main, [0xff, 0xfe, b'[']).unwrap();
    let err = load_with(Some(&main), None, None, &[]).unwrap_err();
    assert!(err.message.contains("UTF-8"));
    let err = load_with(Some(tmp.path()), None, None, &[]).unwrap_err();
    assert!(err.message.starts_with("cannot read"), "{err}");
}

#[test]
fn object_storage_repositories_and_their_options() {
    let config = parse(&with_server(
        "basebackups_directory = s3://pgbak-backups/db1/base\n\
         wals_directory = gs://pgbak-wal/db1\n\
         backup_method = local-to-cloud\n\
         parallel_jobs = 4\n\
         aws_profile = backup\n\
         aws_region = eu-west-3\n\
         aws_encryption = aws:kms\n\
         aws_sse_kms_key_id = alias/pgbak\n\
         aws_read_timeout = 20\n\
         aws_addressing_style = virtual\n\
         aws_request_checksum_calculation = when_required\n\
         cloud_endpoint_url = http://127.0.0.1:9000/\n\
         cloud_upload_min_chunk_size = 16Mi\n\
         cloud_delete_batch_size = 500\n\
         azure_credential = managed-identity\n\
         azure_storage_account = pgbakacct\n\
         gcp_credentials_file = /etc/pgbak/gcs.json\n\
         cloud_max_attempts = 3\n\
         cloud_staging_directory = /tmp/staging\n",
    ));
    let main = config.server("main").unwrap();
    assert_eq!(
        main.basebackups_directory,
        pgbak_storage::Location::parse("s3://pgbak-backups/db1/base").unwrap()
    );
    assert_eq!(main.local_basebackups_directory(), None);
    assert_eq!(main.wals_directory.to_string(), "gs://pgbak-wal/db1");
    assert_eq!(main.backup_method, BackupMethod::LocalToCloud);
    assert!(main.backup_method.streams());
    let c = &main.cloud;
    assert_eq!(c.aws_profile.as_deref(), Some("backup"));
    assert_eq!(c.aws_region.as_deref(), Some("eu-west-3"));
    assert_eq!(c.aws_encryption, Some(pgbak_storage::S3Encryption::AwsKms));
    assert_eq!(c.aws_sse_kms_key_id.as_deref(), Some("alias/pgbak"));
    assert_eq!(c.read_timeout, Some(std::time::Duration::from_secs(20)));
    assert_eq!(
        c.s3_addressing_style,
        pgbak_storage::AddressingStyle::Virtual
    );
    assert_eq!(
        c.s3_checksum_calculation,
        Some(pgbak_storage::ChecksumCalculation::WhenRequired)
    );
    assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(c.part_size, Some(16 << 20));
    assert_eq!(c.delete_batch_size, Some(500));
    assert_eq!(c.upload_concurrency, Some(4));
    assert_eq!(c.max_attempts, Some(3));
    assert_eq!(
        c.azure_credential,
        Some(pgbak_storage::AzureCredential::ManagedIdentity)
    );
    assert_eq!(c.azure_account.as_deref(), Some("pgbakacct"));
    assert_eq!(
        c.gcp_credentials_file.as_deref(),
        Some(Path::new("/etc/pgbak/gcs.json"))
    );
    // What show-servers prints.
    assert_eq!(
        main.raw.get("basebackups_directory").map(String::as_str),
        Some("s3://pgbak-backups/db1/base")
    );
    assert_eq!(
        main.raw.get("aws_encryption").map(String::as_str),
        Some("aws:kms")
    );
    assert_eq!(
        main.raw.get("cloud_max_attempts").map(String::as_str),
        Some("3")
    );
    // Staging is not needed: a warning says so.
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("cloud_staging_directory") && w.contains("without staging")),
        "{:?}",
        config.warnings
    );

    // Two servers on one bucket prefix would mix their catalogues: both chose it, both are
    // disabled.
    let config = parse(
        "[pgbak]\nhome = /srv/pgbak\n\
         [a]\nconninfo = host=a\nbasebackups_directory = s3://bucket/base\n\
         [b]\nconninfo = host=b\nbasebackups_directory = s3://bucket/base/\n",
    );
    assert!(config.server("a").is_err());
    let err = config.server("b").unwrap_err().to_string();
    assert!(err.contains("s3://bucket/base is also"), "{err}");
    // Defaults: local folders below backup_directory, no cloud options.
    let config = parse(&with_server(""));
    let main = config.server("main").unwrap();
    assert_eq!(main.cloud, pgbak_storage::CloudOptions::default());
    assert!(main.local_wals_directory().is_some());
}
