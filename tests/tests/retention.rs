//! Retention policies against real backups taken "in the past" through the test-only clock
//! (`PGBAK_TEST_NOW`): REDUNDANCY and RECOVERY WINDOW keep what they must and `pgbak cron` removes
//! the rest with the WAL only it needed; `minimum_redundancy` and `pgbak keep` stop deletion; and
//! after retention the oldest remaining backup still restores and replays to the last commit.

use pgbak_tests::{Cluster, ClusterOptions, PgbakEnv};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const NOW: &str = "PGBAK_TEST_NOW";

/// Takes a backup as if it were `when` (RFC 3339) and returns its id, after a few rows and a WAL
/// switch so that every backup starts in its own segment.
fn backup_at(env: &PgbakEnv, cluster: &Cluster, when: &str, rows: i64) -> String {
    cluster.psql(&format!(
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series((SELECT coalesce(max(id), 0) + 1 FROM t), (SELECT coalesce(max(id), 0) + {rows} FROM t)) g"
    ));
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
            &[(NOW, when)],
        )
        .ok();
    let j = out.json();
    assert_eq!(j["status"], "DONE", "{}", out.stdout);
    j["backup_id"].as_str().unwrap().to_string()
}

fn day(d: u32) -> String {
    format!("2024-01-{d:02}T00:00:00Z")
}

fn setup(extra: &str) -> (PgbakEnv, Cluster) {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        &format!("compression = zstd\n{extra}"),
        ClusterOptions::default(),
    );
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    (env, cluster)
}

/// (backup id, retention status) of every listed backup, oldest first.
fn listed(env: &PgbakEnv, now: &str) -> Vec<(String, String)> {
    let out = env
        .run_env(&["-f", "json", "list-backups", "main"], &[(NOW, now)])
        .ok();
    let mut v: Vec<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["backup_id"].as_str().unwrap().to_string(),
                b["retention_status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn statuses(env: &PgbakEnv, now: &str) -> Vec<String> {
    listed(env, now).into_iter().map(|(_, s)| s).collect()
}

fn cron(env: &PgbakEnv, now: &str) -> serde_json::Value {
    let out = env.run_env(&["-f", "json", "cron"], &[(NOW, now)]);
    assert_eq!(out.code, 0, "{out:?}");
    out.json()[0].clone()
}

/// `backup_id` -> `begin_wal` from show-backup.
fn begin_wal(env: &PgbakEnv, id: &str) -> String {
    env.run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json()["begin_wal"]
        .as_str()
        .unwrap()
        .to_string()
}

fn end_wal(env: &PgbakEnv, id: &str) -> String {
    env.run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json()["end_wal"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Archived WAL file names on disk, after checking that the WAL index lists exactly them.
fn archived(env: &PgbakEnv) -> BTreeSet<String> {
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

fn segments(names: &BTreeSet<String>) -> Vec<&String> {
    names.iter().filter(|n| n.len() == 24).collect()
}

/// Switches WAL, waits for it in the archive, and returns every id of `t`.
fn final_rows(env: &PgbakEnv, cluster: &Cluster) -> String {
    cluster.psql("INSERT INTO t VALUES (-1, 'after the last backup')");
    env.switch_wal_archived();
    cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

/// Restores backup `id` with `args`, starts it and waits for the end of recovery.
fn restore(env: &PgbakEnv, id: &str, folder: &str, args: &[&str]) -> Cluster {
    let dest = env.restore_dir(folder);
    let dest_s = dest.display().to_string();
    let mut all = vec!["recover", "main", id, dest_s.as_str()];
    all.extend_from_slice(args);
    env.run(&all).ok();
    let c = Cluster::start_existing(&dest, &["archive_mode=off"]);
    c.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    c
}

fn rows(c: &Cluster) -> String {
    c.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

#[test]
fn redundancy_two_of_five_keeps_two_and_their_wal() {
    let (env, cluster) = setup("retention_policy = REDUNDANCY 2\n");
    let ids: Vec<String> = (1..=5)
        .map(|d| backup_at(&env, &cluster, &day(d), 100))
        .collect();
    assert_eq!(
        ids[0], "20240101T000000",
        "the id comes from the test clock"
    );
    assert_eq!(
        statuses(&env, &day(6)),
        ["OBSOLETE", "OBSOLETE", "OBSOLETE", "VALID", "VALID"]
    );
    let expected_rows = final_rows(&env, &cluster);
    let before = archived(&env);

    let t = std::time::Instant::now();
    let r = cron(&env, &day(6));
    eprintln!("retention deleted 3 of 5 backups in {:?}", t.elapsed());
    assert_eq!(r["deleted_backups"], serde_json::json!(ids[..3]));
    assert_eq!(
        listed(&env, &day(6)),
        vec![
            (ids[3].clone(), "VALID".to_string()),
            (ids[4].clone(), "VALID".to_string())
        ]
    );
    for id in &ids[..3] {
        assert!(!env.server_dir().join("base").join(id).exists());
    }

    // The WAL before the oldest remaining backup is gone, everything from it on is kept.
    let after = archived(&env);
    let first = begin_wal(&env, &ids[3]);
    for s in segments(&before) {
        assert_eq!(
            after.contains(s),
            s.as_str() >= first.as_str(),
            "{s} (oldest remaining backup begins at {first})"
        );
    }
    assert_eq!(
        r["removed_wal"].as_u64().unwrap() as usize,
        before.len() - after.len()
    );
    assert!(before.len() > after.len());

    // A second run has nothing to do.
    let again = cron(&env, &day(6));
    assert_eq!(again["deleted_backups"], serde_json::json!([]));

    // Round trip on the oldest remaining backup: restore it, replay all archived WAL, and find
    // every row committed before the last switch.
    let restored = restore(&env, &ids[3], "oldest_remaining", &[]);
    assert_eq!(rows(&restored), expected_rows);
}

#[test]
fn recovery_window_keeps_the_newest_backup_before_the_window() {
    let (env, cluster) = setup("retention_policy = RECOVERY WINDOW OF 2 DAYS\n");
    let ids: Vec<String> = (1..=4)
        .map(|d| backup_at(&env, &cluster, &day(d), 10))
        .collect();
    // Point of recoverability Jan 2 12:00: Jan 3 and 4 are inside, Jan 2 anchors the window.
    let noon4 = "2024-01-04T12:00:00Z";
    assert_eq!(
        statuses(&env, noon4),
        ["OBSOLETE", "VALID", "VALID", "VALID"]
    );
    let r = cron(&env, noon4);
    assert_eq!(r["deleted_backups"], serde_json::json!([ids[0]]));
    assert_eq!(statuses(&env, noon4), ["VALID", "VALID", "VALID"]);
    let first = begin_wal(&env, &ids[1]);
    assert!(segments(&archived(&env))
        .iter()
        .all(|s| s.as_str() >= first.as_str()));

    // A week later only the newest backup is needed (it anchors the window).
    let later = "2024-01-11T00:00:00Z";
    let r = cron(&env, later);
    assert_eq!(r["deleted_backups"], serde_json::json!([ids[1], ids[2]]));
    assert_eq!(statuses(&env, later), ["VALID"]);
}

#[test]
fn minimum_redundancy_stops_deletion() {
    let (env, cluster) =
        setup("retention_policy = RECOVERY WINDOW OF 1 DAYS\nminimum_redundancy = 2\n");
    let ids: Vec<String> = (1..=4)
        .map(|d| backup_at(&env, &cluster, &day(d), 10))
        .collect();
    let later = "2024-01-20T00:00:00Z";
    // Only the newest is in the window; minimum_redundancy keeps one more as OBSOLETE*.
    assert_eq!(
        statuses(&env, later),
        ["OBSOLETE", "OBSOLETE", "OBSOLETE*", "VALID"]
    );
    let r = cron(&env, later);
    assert_eq!(r["deleted_backups"], serde_json::json!([ids[0], ids[1]]));
    assert_eq!(statuses(&env, later), ["OBSOLETE*", "VALID"]);
    cron(&env, later);
    assert_eq!(listed(&env, later).len(), 2, "cron never goes below 2");

    // A manual delete may not go below minimum_redundancy either.
    let out = env.run(&["delete", "main", &ids[2]]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("minimum_redundancy"), "{}", out.stderr);
    assert_eq!(listed(&env, later).len(), 2);
}

#[test]
fn kept_backups_survive_and_standalone_keeps_only_its_own_wal() {
    let (env, cluster) = setup("retention_policy = REDUNDANCY 1\n");
    let ids: Vec<String> = (1..=4)
        .map(|d| backup_at(&env, &cluster, &day(d), 50))
        .collect();
    let rows_at_first: String =
        cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE id <= 50");
    env.run(&["keep", "main", &ids[0], "--target", "standalone"])
        .ok();
    let st = env.run(&["keep", "main", &ids[0], "--status"]).ok();
    assert_eq!(st.stdout.trim(), "Keep: standalone");
    // A full keep, then released: it follows the policy again.
    env.run(&["keep", "main", &ids[1], "--target", "full"]).ok();
    let refused = env.run(&["delete", "main", &ids[1]]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("kept"), "{}", refused.stderr);
    env.run(&["keep", "main", &ids[1], "--release"]).ok();
    assert_eq!(
        env.run(&["keep", "main", &ids[1], "--status"])
            .ok()
            .stdout
            .trim(),
        "Keep: nokeep"
    );
    assert_eq!(
        statuses(&env, &day(5)),
        ["KEEP:STANDALONE", "OBSOLETE", "OBSOLETE", "VALID"]
    );
    // show-backup says the same, with the keep target.
    let shown = |id: &str, format: &str| {
        env.run_env(
            &["-f", format, "show-backup", "main", id],
            &[(NOW, &day(5))],
        )
        .ok()
    };
    let kept = shown(&ids[0], "json").json();
    assert_eq!(kept["retention_status"], "KEEP:STANDALONE", "{kept}");
    assert_eq!(kept["keep_target"], "standalone", "{kept}");
    let released = shown(&ids[1], "json").json();
    assert_eq!(released["retention_status"], "OBSOLETE", "{released}");
    assert!(released["keep_target"].is_null(), "{released}");
    let text = shown(&ids[0], "console").stdout;
    let row = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .map(|l| l.rsplit(" : ").next().unwrap_or_default().to_string())
    };
    assert_eq!(
        row("retention_status").as_deref(),
        Some("KEEP:STANDALONE"),
        "{text}"
    );
    assert_eq!(row("keep_target").as_deref(), Some("standalone"), "{text}");
    let expected_rows = final_rows(&env, &cluster);
    let before = archived(&env);

    let r = cron(&env, &day(5));
    assert_eq!(r["deleted_backups"], serde_json::json!([ids[1], ids[2]]));
    assert_eq!(
        listed(&env, &day(5)),
        vec![
            (ids[0].clone(), "KEEP:STANDALONE".to_string()),
            (ids[3].clone(), "VALID".to_string())
        ]
    );
    // The standalone backup keeps its own begin..end WAL; the WAL after it up to the next
    // remaining backup is gone; everything from that one on stays.
    let after = archived(&env);
    let (b0, e0) = (begin_wal(&env, &ids[0]), end_wal(&env, &ids[0]));
    let b3 = begin_wal(&env, &ids[3]);
    for s in segments(&before) {
        let s = s.as_str();
        let kept = (s >= b0.as_str() && s <= e0.as_str()) || s >= b3.as_str();
        let older = s < b0.as_str();
        if !older {
            assert_eq!(after.contains(s), kept, "{s}");
        }
    }
    assert!(segments(&before).len() > segments(&after).len());

    // Both remaining backups restore: the standalone one to its consistency point, the other
    // with every archived WAL file replayed.
    let standalone = restore(
        &env,
        &ids[0],
        "standalone",
        &["--target-immediate", "--target-action", "promote"],
    );
    assert_eq!(rows(&standalone), rows_at_first);
    drop(standalone);
    let newest = restore(&env, &ids[3], "newest", &[]);
    assert_eq!(rows(&newest), expected_rows);
}

#[test]
fn keep_needs_an_existing_backup_and_an_action() {
    let (env, _cluster) = setup("");
    let out = env.run(&["keep", "main", "20240101T000000", "--target", "full"]);
    assert_eq!(out.code, 1, "{out:?}");
    let out = env.run(&["keep", "main", "latest"]);
    assert_eq!(
        out.code, 2,
        "one of --target, --status, --release is required: {out:?}"
    );
    assert!(!Path::new(&env.server_dir().join("base"))
        .join("20240101T000000")
        .exists());
}

/// The shipped `pgbak` binary (built without the `test-hooks` feature) ignores the test-only
/// settings: its clock is the real one and it never pauses at a fault point; the test build
/// honours both, so the settings below do ask for something.
#[test]
fn the_shipped_binary_ignores_the_test_only_settings() {
    use std::io::{BufRead, BufReader};
    let (env, cluster) = setup("");
    let past = "2001-02-03T04:05:06Z";
    let plain = env
        .run_plain_env(
            &[
                "-f",
                "json",
                "backup",
                "main",
                "--wait",
                "--wait-timeout",
                "120",
            ],
            &[(NOW, past)],
        )
        .ok()
        .json();
    let plain_id = plain["backup_id"].as_str().unwrap().to_string();
    assert!(
        !plain_id.starts_with("2001"),
        "the shipped binary took its time from {NOW}: {plain_id}"
    );
    let hooked = backup_at(&env, &cluster, past, 10);
    assert!(
        hooked.starts_with("200102"),
        "the test build must honour {NOW}: {hooked}"
    );

    // A pause point is ignored: the delete runs to its end (a paused process would print the
    // banner and wait to be killed).
    let mut child = pgbak_tests::command_as_owner(pgbak_tests::pgbak_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["delete", "main", &plain_id])
        .env("PGBAK_TEST_PAUSE_AT", "delete:after-marker")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.starts_with("PGBAK_TEST_PAUSED") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shipped binary paused at a test fault point: {line}");
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "delete failed: {seen}");
    let left: Vec<String> = env.backups().into_iter().map(|(id, _)| id).collect();
    assert_eq!(left, vec![hooked]);
}
