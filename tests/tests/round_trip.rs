//! The proof that matters: back up, keep writing, restore to a point in time, start the restored
//! server, and compare its rows with exactly those committed before the target.

use pgbak_tests::{recover_and_start, ClusterOptions, PgbakEnv};
use std::time::Duration;

fn ids(s: &str) -> Vec<i64> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

fn insert(c: &pgbak_tests::Cluster, id: i64) {
    c.psql(&format!("INSERT INTO t (id, v) VALUES ({id}, md5('{id}'))"));
}

#[test]
fn point_in_time_recovery_to_time_lsn_and_name() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = zstd\n", ClusterOptions::default());
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 5000) g");

    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);

    // Keep writing after the backup, noting what was committed at each target.
    for id in 10001..=10010 {
        insert(&cluster, id);
    }
    cluster.psql("SELECT pg_create_restore_point('before_batch_2')");
    let at_name = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));

    for id in 10011..=10020 {
        insert(&cluster, id);
    }
    let target_lsn = cluster.psql("SELECT pg_current_wal_lsn()");
    let at_lsn = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));

    for id in 10021..=10030 {
        insert(&cluster, id);
    }
    std::thread::sleep(Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));
    std::thread::sleep(Duration::from_millis(20));

    for id in 10031..=10040 {
        insert(&cluster, id);
    }
    cluster.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();
    let final_rows = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));
    assert_ne!(final_rows, at_time);

    let r = recover_and_start(
        &env,
        "by_time",
        &["--target-time", &target_time, "--target-action", "promote"],
    );
    assert_eq!(
        ids(&r.psql("SELECT id FROM t ORDER BY id")),
        at_time,
        "recovery to time {target_time}"
    );
    drop(r);

    let r = recover_and_start(
        &env,
        "by_lsn",
        &[
            "--target-lsn",
            &target_lsn,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(
        ids(&r.psql("SELECT id FROM t ORDER BY id")),
        at_lsn,
        "recovery to LSN {target_lsn}"
    );
    drop(r);

    let r = recover_and_start(
        &env,
        "by_name",
        &[
            "--target-name",
            "before_batch_2",
            "--target-action",
            "promote",
        ],
    );
    assert_eq!(
        ids(&r.psql("SELECT id FROM t ORDER BY id")),
        at_name,
        "recovery to a restore point"
    );
    // The restored server is a working server: it takes writes.
    r.psql("INSERT INTO t (id, v) VALUES (-1, 'after recovery')");
    assert_eq!(r.psql("SELECT v FROM t WHERE id = -1"), "after recovery");
}

/// `--target-immediate` stops where the backup is consistent: recover copies the segments from
/// the backup's first to its last, not the WAL archived after it, and the restored server holds
/// exactly the rows committed before the backup.
#[test]
fn an_immediate_target_copies_only_the_wal_the_backup_needs() {
    let env = PgbakEnv::new();
    let c = env.cluster("", ClusterOptions::default());
    c.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    for id in 1..=20 {
        insert(&c, id);
    }
    let before = c.psql("SELECT id FROM t ORDER BY id");
    let info = env.backup_wait().json();
    let id = info["backup_id"].as_str().unwrap().to_string();
    // More WAL after the backup: five more archived segments.
    for round in 0..5 {
        insert(&c, 1000 + round);
        c.psql("SELECT pg_switch_wal()");
    }
    env.switch_wal_archived();

    let segno = |name: &str| u64::from_str_radix(&name[8..], 16).unwrap();
    let (begin, end) = (
        info["begin_wal"].as_str().unwrap(),
        info["end_wal"].as_str().unwrap(),
    );
    let needed = segno(end) - segno(begin) + 1;
    let dest = env.restore_dir("immediate");
    let report = env
        .run(&[
            "-f",
            "json",
            "recover",
            "main",
            &id,
            dest.to_str().unwrap(),
            "--target-immediate",
            "--target-action",
            "promote",
        ])
        .ok()
        .json();
    assert_eq!(report["wal_files_copied"], needed, "{report}");
    let mut copied: Vec<String> = std::fs::read_dir(dest.join("pgbak_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    copied.sort();
    assert_eq!(
        copied.first().map(String::as_str),
        Some(begin),
        "{copied:?}"
    );
    assert_eq!(copied.last().map(String::as_str), Some(end), "{copied:?}");
    let r = pgbak_tests::Cluster::start_existing(&dest, &["archive_mode=off"]);
    r.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(r.psql("SELECT id FROM t ORDER BY id"), before);
}
