//! `pgbak delete` under SIGKILL: a delete frozen at one of its steps (test-only
//! `PGBAK_TEST_PAUSE_AT`) and killed leaves a catalogue whose every listed backup restores; the
//! next `pgbak delete` or `pgbak cron` finishes it, leaving `xlog.db` and `wals/` in agreement.
//! Also the refusals: a running backup or delete, a backup in use, minimum_redundancy.

use pgbak_tests::{give_to_owner, Cluster, ClusterOptions, PgbakEnv};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

fn setup(extra: &str) -> (PgbakEnv, Cluster) {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        &format!("compression = zstd\n{extra}"),
        ClusterOptions::default(),
    );
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    (env, cluster)
}

fn backup(env: &PgbakEnv, cluster: &Cluster, d: u32) -> String {
    cluster.psql(&format!(
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
        d * 100,
        d * 100 + 99
    ));
    let when = format!("2024-01-{d:02}T00:00:00Z");
    let out = env
        .run_env(
            &[
                "-f",
                "json",
                "backup",
                "main",
                "--wait",
                "--wait-timeout",
                "120",
            ],
            &[("PGBAK_TEST_NOW", &when)],
        )
        .ok();
    assert_eq!(out.json()["status"], "DONE");
    out.json()["backup_id"].as_str().unwrap().to_string()
}

fn listed(env: &PgbakEnv) -> Vec<String> {
    env.backups().into_iter().map(|(id, _)| id).collect()
}

fn rows(c: &Cluster) -> String {
    c.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

/// Starts `pgbak <args>` frozen at `point`, waits until it is there, and kills it with SIGKILL.
fn kill_at(env: &PgbakEnv, args: &[&str], point: &str) {
    let mut child = env.spawn_env(args, &[("PGBAK_TEST_PAUSE_AT", point)]);
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let pid: i32 = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("PGBAK_TEST_PAUSED ") {
                    let mut parts = rest.split_whitespace();
                    assert_eq!(parts.next(), Some(point));
                    break parts.next().unwrap().parse().unwrap();
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            _ => {
                let status = child.wait().unwrap();
                panic!("pgbak {args:?} ended ({status}) before {point}:\n{seen}");
            }
        }
    };
    // SAFETY: kill(2) of the pgbak process this test started, identified by its own banner.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = child.wait();
}

/// Archived WAL names on disk, after checking that the WAL index lists exactly them.
fn consistent_wal(env: &PgbakEnv) -> BTreeSet<String> {
    let files = env.archived_wal_files();
    let index: BTreeSet<String> = env
        .index_text()
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    assert_eq!(
        index, files,
        "the WAL index and the files of wals/ disagree"
    );
    files
}

fn begin_wal(env: &PgbakEnv, id: &str) -> String {
    env.run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json()["begin_wal"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Restores backup `id`, replays every archived WAL file, starts it and returns its rows.
fn restore_rows(env: &PgbakEnv, id: &str, folder: &str) -> String {
    let dest = env.restore_dir(folder);
    env.run(&["recover", "main", id, dest.to_str().unwrap()])
        .ok();
    let c = Cluster::start_existing(&dest, &["archive_mode=off"]);
    c.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    rows(&c)
}

fn assert_finished(env: &PgbakEnv, id: &str, oldest_left: &str) {
    assert!(
        !env.server_dir().join("base").join(id).exists(),
        "the folder of {id} is gone"
    );
    let first = begin_wal(env, oldest_left);
    let wal = consistent_wal(env);
    assert!(wal
        .iter()
        .filter(|n| n.len() == 24)
        .all(|n| n.as_str() >= first.as_str()));
}

#[test]
fn delete_killed_midway_leaves_a_restorable_catalogue_and_is_finished_later() {
    let (env, cluster) = setup("");
    let ids: Vec<String> = (1..=4).map(|d| backup(&env, &cluster, d)).collect();
    cluster.psql("INSERT INTO t VALUES (-1, 'last')");
    env.switch_wal_archived();
    let expected = rows(&cluster);

    // Killed while removing WAL: some files are gone, their index lines not yet.
    kill_at(&env, &["delete", "main", &ids[0]], "delete:mid-wal");
    assert_eq!(
        listed(&env),
        ids[1..].to_vec(),
        "the half-deleted backup is not listed"
    );
    let marker = env
        .server_dir()
        .join("base")
        .join(&ids[0])
        .join("delete_this");
    assert!(marker.is_file());
    let out = env.run(&[
        "recover",
        "main",
        &ids[0],
        env.restore_dir("no").to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "a half-deleted backup is never restored");
    for (i, id) in ids[1..].iter().enumerate() {
        assert_eq!(
            restore_rows(&env, id, &format!("after_mid_wal_{i}")),
            expected,
            "backup {id} after a delete killed mid-WAL"
        );
    }
    let out = env.run(&["delete", "main", &ids[0]]).ok();
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
    assert_finished(&env, &ids[0], &ids[1]);

    // Killed right after the marker: cron finishes it.
    kill_at(&env, &["delete", "main", &ids[1]], "delete:after-marker");
    assert_eq!(listed(&env), ids[2..].to_vec());
    let out = env.run(&["-f", "json", "cron"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()[0]["deleted_backups"],
        serde_json::json!([ids[1]])
    );
    assert_finished(&env, &ids[1], &ids[2]);

    // Killed after the data went: the remaining backup restores; delete finishes it.
    kill_at(&env, &["delete", "main", &ids[2]], "delete:after-data");
    assert_eq!(listed(&env), ids[3..].to_vec());
    assert_eq!(restore_rows(&env, &ids[3], "after_data"), expected);
    env.run(&["delete", "main", &ids[2]]).ok();
    assert_finished(&env, &ids[2], &ids[3]);
    assert_eq!(listed(&env), ids[3..].to_vec());
}

#[test]
fn delete_is_refused_while_busy_in_use_or_below_minimum_redundancy() {
    let (env, cluster) = setup("minimum_redundancy = 1\n");
    let ids: Vec<String> = (1..=2).map(|d| backup(&env, &cluster, d)).collect();

    // A backup (or another delete) holds the server's backup lock.
    let lock_path = env.home.join(".main-backup.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    give_to_owner(&lock_path);
    f.lock().unwrap();
    let out = env.run(&["delete", "main", &ids[0]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("a backup or another delete"),
        "{}",
        out.stderr
    );
    f.unlock().unwrap();

    // A restore holds the backup's own lock (shared).
    let lock_path = env.home.join(format!(".main-{}.lock", ids[0]));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    give_to_owner(&lock_path);
    f.lock_shared().unwrap();
    let out = env.run(&["delete", "main", &ids[0]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
    f.unlock().unwrap();
    assert_eq!(listed(&env), ids);

    env.run(&["delete", "main", "oldest"]).ok();
    let out = env.run(&["delete", "main", &ids[1]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("minimum_redundancy"), "{}", out.stderr);
    assert_eq!(listed(&env), ids[1..].to_vec());
    consistent_wal(&env);
}
