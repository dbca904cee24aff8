//! Backups of a standby with `primary_conninfo`: a real standby (made from pgbak's own backup of
//! its primary with `recover --standby-mode`, streaming from the primary and archiving with
//! `archive_mode = always`) is checked (Barman's three standby lines), backed up while pgbak
//! switches WAL on the primary so that the backup's last segment is archived, and restored to a
//! point in time with the rows of that moment; `check` names a wrong primary.

use pgbak_tests::{Cluster, ClusterOptions, PgbakEnv};
use std::time::Duration;

fn insert(c: &Cluster, from: i64, to: i64) {
    c.psql(&format!(
        "INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

/// The `check` line named `name` (panics when there is none).
fn check_line(env: &PgbakEnv, name: &str) -> String {
    let out = env.run(&["check", "main"]);
    out.stdout
        .lines()
        .find(|l| l.trim().starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no '{name}' line:\n{}", out.stdout))
        .trim()
        .to_string()
}

#[test]
fn backup_of_a_standby_switches_wal_on_its_primary_and_restores_to_a_time() {
    // The primary archives into its own catalogue, from which the standby is made.
    let penv = PgbakEnv::new();
    let primary = penv.cluster("", ClusterOptions::default());
    primary.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&primary, 1, 1000);
    let id = penv.backup_wait().json()["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = penv.restore_dir("standby");
    penv.run(&[
        "recover",
        "main",
        &id,
        data.to_str().unwrap(),
        "--standby-mode",
        "--get-wal",
    ])
    .ok();
    assert!(data.join("standby.signal").is_file());

    // The standby archives what it receives into the catalogue under test.
    let env = PgbakEnv::new();
    let standby = Cluster::start_existing(
        &data,
        &[
            "archive_mode=always",
            &format!("archive_command='{}'", env.archive_command()),
            &format!("primary_conninfo='{}'", primary.conninfo()),
        ],
    );
    standby.wait_for(
        "SELECT count(*) > 0 FROM pg_stat_wal_receiver WHERE status = 'streaming'",
        "t",
        Duration::from_secs(60),
    );
    // Without primary_conninfo, pgbak cannot switch WAL for a standby and says why.
    env.write_config(&standby, "");
    let out = env.run(&["switch-wal", "main"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("primary_conninfo"), "{}", out.stderr);

    env.write_config(
        &standby,
        &format!("primary_conninfo = {}\n", primary.conninfo()),
    );
    // switch-wal switches on the primary, and the standby archives the closed segment.
    let out = env
        .run(&[
            "-f",
            "json",
            "switch-wal",
            "main",
            "--archive",
            "--archive-timeout",
            "60",
        ])
        .ok();
    assert_eq!(out.json()["archived"], true, "{}", out.stdout);
    for (name, want) in [
        ("PostgreSQL server is standby", "OK"),
        ("Primary server is not a standby", "OK"),
        ("Primary and standby have same system ID", "OK"),
    ] {
        let line = check_line(&env, name);
        assert!(line.contains(want), "{line}");
    }

    insert(&primary, 1001, 2000);
    // The primary is idle: the backup's last segment ends only because pgbak switches there.
    let out = env.backup_wait_with(&["--log-level", "info"]);
    let backup = out.json();
    assert_eq!(backup["status"], "DONE", "{backup}");
    assert!(
        out.stderr.contains("WAL switched on the primary"),
        "{}",
        out.stderr
    );
    let backup_id = backup["backup_id"].as_str().unwrap().to_string();

    insert(&primary, 2001, 2100);
    std::thread::sleep(Duration::from_millis(20));
    let target_time = primary.psql("SELECT clock_timestamp()::text");
    let at_time = primary.ids();
    std::thread::sleep(Duration::from_millis(20));
    insert(&primary, 2101, 2200);
    primary.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();

    let dest = env.restore_dir("restored");
    env.run(&[
        "recover",
        "main",
        &backup_id,
        dest.to_str().unwrap(),
        "--target-time",
        &target_time,
        "--target-action",
        "promote",
    ])
    .ok();
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(restored.ids(), at_time, "recovery to {target_time}");
    drop(restored);

    // A wrong primary: the standby itself, then another cluster.
    env.write_config(
        &standby,
        &format!("primary_conninfo = {}\n", standby.conninfo()),
    );
    let line = check_line(&env, "Primary server is not a standby");
    assert!(
        line.contains("FAILED") && line.contains("not a standby"),
        "{line}"
    );
    let other = Cluster::init(ClusterOptions::default());
    let mut other = other;
    other.start_now();
    env.write_config(
        &standby,
        &format!("primary_conninfo = {}\n", other.conninfo()),
    );
    let line = check_line(&env, "Primary and standby have same system ID");
    assert!(line.contains("FAILED"), "{line}");
    // primary_conninfo on a server that is not a standby.
    env.write_config(
        &primary,
        &format!("primary_conninfo = {}\n", other.conninfo()),
    );
    let line = check_line(&env, "PostgreSQL server is standby");
    assert!(line.contains("FAILED"), "{line}");
}
