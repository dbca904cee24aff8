//! One broken server section never stops the others: with Barman's own shipped configuration
//! (its `barman.conf` and the `ssh-server`, `streaming-server` and `passive-server` templates
//! copied to `.conf` files, as its documentation says) plus a section with a typo, every command
//! works for a healthy server whose cluster archives WAL; the passive server (not supported by
//! pgbak) and the broken one are disabled, shown as such with the reason by `list-servers`,
//! `check` and `status`, skipped by `cron`, and refused by every command that names them.

use pgbak_tests::{free_port, give_to_owner, ClusterOptions, PgbakEnv, PgbakOutput};

/// Barman's `barman.conf` as shipped (comments shortened), with its paths moved into the test's
/// folder.
fn barman_conf(home: &str, conf_d: &str, log: &str) -> String {
    format!(
        "; Barman, Backup and Recovery Manager for PostgreSQL
; Main configuration file

[barman]
; System user
barman_user = barman

; Directory of configuration files. Place your sections in separate files with .conf extension
; For example place the 'main' server section in /etc/barman.d/main.conf
configuration_files_directory = {conf_d}

; Main directory
barman_home = {home}

; Locks directory - default: %(barman_home)s
;barman_lock_directory = /var/run/barman

; Log location
log_file = {log}

; Log level (see https://docs.python.org/3/library/logging.html#levels)
log_level = INFO

; Default compression level: possible values are None (default), bzip2, gzip, pigz, pygzip or pybzip2
compression = gzip

; Pre/post backup hook scripts
;pre_backup_script = env | grep ^BARMAN
;post_backup_script = env | grep ^BARMAN

; Global retention policy (REDUNDANCY or RECOVERY WINDOW) - default empty
;retention_policy =

; Number of parallel jobs for backup and recovery via rsync (default 1)
;parallel_jobs = 1

; Immediate checkpoint for backup command - default false
;immediate_checkpoint = false

; Enable network compression for data transfers - default false
;network_compression = false

; Minimum number of required backups (redundancy)
;minimum_redundancy = 1
"
    )
}

/// `ssh-server.conf-template`, its host pointing at a closed port of this machine.
fn ssh_server(closed: u16) -> String {
    format!(
        "; Template configuration file for a server using
; SSH connections and rsync for copy.

[ssh]
; Human readable description
description =  \"Example of PostgreSQL Database (via SSH)\"

; SSH options (mandatory)
ssh_command = ssh postgres@127.0.0.1

; PostgreSQL connection string (mandatory)
conninfo = host=127.0.0.1 port={closed} user=barman dbname=postgres connect_timeout=5

; Backup settings (via rsync over SSH)
backup_method = rsync
; Incremental backup support: possible values are None (default), link or copy
;reuse_backup = link
; Identify the standard behavior for backup operations: possible values are
; exclusive_backup, concurrent_backup (default)
; concurrent_backup is the preferred method
;backup_options = concurrent_backup

; Number of parallel workers to perform file copy during backup and recover
;parallel_jobs = 1

; WAL archiving settings (via rsync over SSH)
archiver = on
;archiver_batch_size = 50

; PATH setting for this server
;path_prefix = \"/usr/pgsql-12/bin\"
"
    )
}

/// `streaming-server.conf-template`, its host pointing at a closed port of this machine.
fn streaming_server(closed: u16) -> String {
    format!(
        "; Template configuration file for a server using
; only streaming replication protocol

[streaming]
; Human readable description
description =  \"Example of PostgreSQL Database (Streaming-Only)\"

; PostgreSQL connection string (mandatory)
conninfo = host=127.0.0.1 port={closed} user=barman dbname=postgres connect_timeout=5

; PostgreSQL streaming connection string
; To be used by pg_basebackup for backup and pg_receivewal for WAL streaming
; NOTE: streaming_barman is a regular user with REPLICATION privilege
streaming_conninfo = host=127.0.0.1 port={closed} user=streaming_barman connect_timeout=5

; Backup settings (via pg_basebackup)
backup_method = postgres
;streaming_backup_name = barman_streaming_backup

; WAL streaming settings (via pg_receivewal)
streaming_archiver = on
slot_name = barman
;create_slot = auto
;streaming_archiver_name = barman_receive_wal
;streaming_archiver_batch_size = 50

; PATH setting for this server
;path_prefix = \"/usr/pgsql-12/bin\"
"
    )
}

/// `passive-server.conf-template`, as shipped: no conninfo, a `primary_ssh_command`.
const PASSIVE_SERVER: &str = "; Template configuration file for a server using
; the passive mode: a copy of the backups of another Barman server

[passive]
; Human readable description
description =  \"Example of a Barman passive server\"

; Passive server configuration
primary_ssh_command = ssh barman@backup

; Incremental backup settings
;reuse_backup = link

; Compression: must be identical to the origin server
;compression = gzip
";

fn failed_with(out: &PgbakOutput, code: i32, needles: &[&str]) {
    assert_eq!(out.code, code, "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    for needle in needles {
        assert!(all.contains(needle), "{needle:?} in {out:?}");
    }
}

#[test]
fn barman_shipped_configuration_with_a_broken_section_keeps_a_healthy_server_working() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    let conf_d = env.dir.path().join("barman.d");
    std::fs::create_dir(&conf_d).unwrap();
    let closed = free_port();
    let log = env.dir.path().join("barman.log");
    std::fs::write(
        &env.config,
        barman_conf(
            &env.home.display().to_string(),
            &conf_d.display().to_string(),
            &log.display().to_string(),
        ),
    )
    .unwrap();
    std::fs::write(conf_d.join("ssh-server.conf"), ssh_server(closed)).unwrap();
    std::fs::write(
        conf_d.join("streaming-server.conf"),
        streaming_server(closed),
    )
    .unwrap();
    std::fs::write(conf_d.join("passive-server.conf"), PASSIVE_SERVER).unwrap();
    std::fs::write(
        conf_d.join("main.conf"),
        format!(
            "[main]\ndescription = healthy\nconninfo = {}\nbackup_method = postgres\nimmediate_checkpoint = true\n",
            cluster.conninfo()
        ),
    )
    .unwrap();
    std::fs::write(
        conf_d.join("typo.conf"),
        "[typo]\ndescription = one typo\nconninfo = host=127.0.0.1\ncompresion = gzip\ncompression = gzipp\n",
    )
    .unwrap();
    give_to_owner(env.dir.path());

    // list-servers works and says which servers cannot be used, and why.
    let list = env.run(&["list-servers"]);
    assert_eq!(list.code, 0, "{list:?}");
    for name in ["main - healthy", "ssh - ", "streaming - "] {
        assert!(
            list.stdout
                .lines()
                .any(|l| l.starts_with(name) && !l.contains("disabled")),
            "{name} in {}",
            list.stdout
        );
    }
    let passive = list
        .stdout
        .lines()
        .find(|l| l.starts_with("passive - "))
        .unwrap_or_else(|| panic!("no passive line: {}", list.stdout));
    assert!(
        passive.contains("WARNING: disabled")
            && passive.contains("primary_ssh_command")
            && passive.contains("passive-server.conf:"),
        "{passive}"
    );
    let typo = list
        .stdout
        .lines()
        .find(|l| l.starts_with("typo - "))
        .unwrap();
    assert!(
        typo.contains("disabled") && typo.contains("typo.conf:5") && typo.contains("gzipp"),
        "{typo}"
    );
    let json = env.run(&["-f", "json", "list-servers"]).ok().json();
    assert_eq!(json["passive"]["disabled"], true);
    assert_eq!(json["main"]["disabled"], false);

    // WAL archiving of the healthy server works: PostgreSQL's archive_command succeeds.
    env.switch_wal_archived();
    let backup = env.backup_wait().json();
    assert_eq!(backup["status"], "DONE");
    env.run(&["check", "main"]).ok();
    env.run(&["status", "main"]).ok();

    // Commands naming a disabled server fail as configuration errors, with the reason.
    let segment = env.dir.path().join("000000010000000000000001");
    std::fs::write(&segment, vec![0u8; 16 << 20]).unwrap();
    give_to_owner(&segment);
    for (name, why) in [("passive", "primary_ssh_command"), ("typo", "gzipp")] {
        for args in [
            &["status", name][..],
            &["backup", name],
            &["list-backups", name],
            &["archive-wal", name, segment.to_str().unwrap()],
            &["receive-wal", name],
        ] {
            failed_with(&env.run(args), 2, &[name, why, "disabled"]);
        }
        // check reports it FAILED (exit 1), with the reason.
        let check = env.run(&["check", name]);
        failed_with(&check, 1, &["configuration: FAILED", why]);
    }
    let nagios = env.run(&["check", "--nagios", "all"]);
    failed_with(
        &nagios,
        2,
        &["passive FAILED: configuration", "typo FAILED"],
    );

    // cron skips them with a warning and works on the others.
    let cron = env.run(&["-f", "json", "cron"]);
    // The templates' servers cannot be reached, so the exit code may be 1; never 2.
    assert_ne!(cron.code, 2, "{cron:?}");
    for name in ["passive", "typo"] {
        assert!(
            cron.stderr
                .contains(&format!("WARNING: {name}: skipped, the server is disabled")),
            "{}",
            cron.stderr
        );
    }
    let reports = cron.json();
    let main = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["server"] == "main")
        .unwrap();
    assert_eq!(main["errors"], serde_json::json!([]), "{main}");
    // cron started a receiver for the streaming template's server: stop it.
    let _ = env.run(&["receive-wal", "--stop", "streaming"]);

    // And archiving still works after all that.
    env.switch_wal_archived();
}
