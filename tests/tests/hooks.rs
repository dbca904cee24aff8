//! Hook scripts against real operations: every pre/post, plain/retry script of backup, archive,
//! recovery, delete and wal_delete runs at its phase with Barman's environment (and the same under
//! `PGBAK_`); a retry script is retried until it succeeds; ABORT_STOP (63) from a pre retry script
//! stops a backup cleanly (FAILED, nothing copied) and keeps a WAL segment in PostgreSQL until
//! the hook lets it go; ABORT_CONTINUE (62), and ABORT_STOP after the action, change nothing.
//! A file that arrives through `put-wal` runs the archive hooks too.

use pgbak_tests::{command_as_owner, give_to_owner, pgbak_bin, Cluster, ClusterOptions, PgbakEnv};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Env = BTreeMap<String, String>;

const EVENTS: [&str; 5] = ["backup", "archive", "recovery", "delete", "wal_delete"];

/// A folder the scripts (run as the cluster owner) can write into.
fn hook_dir(env: &PgbakEnv) -> PathBuf {
    let d = env.dir.path().join("hooks");
    std::fs::create_dir_all(&d).unwrap();
    give_to_owner(&d);
    d
}

/// A script that saves its environment to `<dir>/<hook>.<phase>.<nanoseconds>.<pid>`.
fn recorder(dir: &Path) -> String {
    format!(
        "env > {}/$BARMAN_HOOK.$BARMAN_PHASE.$(date +%%s%%N).$$",
        dir.display()
    )
}

/// Every recorded run of `hook` (e.g. `backup_retry_script`) in `phase`, oldest first, with the
/// time it ran.
fn runs(dir: &Path, hook: &str, phase: &str) -> Vec<(u128, Env)> {
    let prefix = format!("{hook}.{phase}.");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let stamp: u128 = rest.split('.').next().unwrap().parse().unwrap();
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let vars: Env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("BARMAN_") || k.starts_with("PGBAK_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push((stamp, vars));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn only(dir: &Path, hook: &str, phase: &str, key: &str, value: &str) -> Vec<(u128, Env)> {
    runs(dir, hook, phase)
        .into_iter()
        .filter(|(_, e)| e.get(key).map(String::as_str) == Some(value))
        .collect()
}

/// Checks the variables every hook gets, under both prefixes.
fn common(e: &Env, env: &PgbakEnv, hook: &str, phase: &str, retry: bool) {
    let want = [
        ("SERVER", "main".to_string()),
        ("CONFIGURATION", env.config.display().to_string()),
        ("HOOK", hook.to_string()),
        ("PHASE", phase.to_string()),
        ("RETRY", if retry { "1" } else { "0" }.to_string()),
    ];
    for (k, v) in want {
        assert_eq!(
            e.get(&format!("BARMAN_{k}")),
            Some(&v),
            "BARMAN_{k} in {e:?}"
        );
        assert_eq!(e.get(&format!("PGBAK_{k}")), Some(&v), "PGBAK_{k} in {e:?}");
    }
    assert!(e.contains_key("BARMAN_VERSION") && e.contains_key("PGBAK_VERSION"));
}

fn backup(env: &PgbakEnv, d: u32) -> String {
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

#[test]
fn every_hook_runs_at_its_phase_with_the_documented_environment() {
    let env = PgbakEnv::new();
    let dir = hook_dir(&env);
    let rec = recorder(&dir);
    let mut extra = String::from("compression = zstd\n");
    for ev in EVENTS {
        for phase in ["pre", "post"] {
            extra.push_str(&format!("{phase}_{ev}_script = {rec}\n"));
            extra.push_str(&format!("{phase}_{ev}_retry_script = {rec}\n"));
        }
    }
    let cluster = env.cluster(&extra, ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    let b1 = backup(&env, 1);
    let b2 = backup(&env, 2);
    let base = env.server_dir().join("base");

    // Backup: pre plain, pre retry, post retry, post plain, in that order, with the backup's
    // variables; STARTED before, DONE after.
    let pre = only(&dir, "backup_script", "pre", "BARMAN_BACKUP_ID", &b1);
    let pre_retry = only(&dir, "backup_retry_script", "pre", "BARMAN_BACKUP_ID", &b1);
    let post_retry = only(&dir, "backup_retry_script", "post", "BARMAN_BACKUP_ID", &b1);
    let post = only(&dir, "backup_script", "post", "BARMAN_BACKUP_ID", &b1);
    assert_eq!(
        (pre.len(), pre_retry.len(), post_retry.len(), post.len()),
        (1, 1, 1, 1)
    );
    assert!(
        pre[0].0 < pre_retry[0].0
            && pre_retry[0].0 < post_retry[0].0
            && post_retry[0].0 < post[0].0
    );
    let e = &pre[0].1;
    common(e, &env, "backup_script", "pre", false);
    common(&pre_retry[0].1, &env, "backup_retry_script", "pre", true);
    assert_eq!(e["BARMAN_STATUS"], "STARTED");
    assert_eq!(e["BARMAN_BACKUP_DIR"], base.join(&b1).display().to_string());
    assert_eq!(
        e["BARMAN_BACKUP_INFO_PATH"],
        base.join(&b1).join("backup.json").display().to_string()
    );
    assert_eq!(e["BARMAN_ERROR"], "");
    assert_eq!(e["BARMAN_PREVIOUS_ID"], "");
    assert_eq!(e["PGBAK_BACKUP_ID"], b1);
    assert_eq!(post[0].1["BARMAN_STATUS"], "DONE");
    assert_eq!(post[0].1["PGBAK_STATUS"], "DONE");
    let post2 = only(&dir, "backup_script", "post", "BARMAN_BACKUP_ID", &b2);
    assert_eq!(post2[0].1["BARMAN_PREVIOUS_ID"], b1);

    // Archive: around every segment archive_command sent; pre sees pg_wal, post the archive.
    let pre = runs(&dir, "archive_script", "pre");
    let post = runs(&dir, "archive_script", "post");
    assert!(
        !pre.is_empty() && pre.len() == post.len(),
        "{} {}",
        pre.len(),
        post.len()
    );
    assert_eq!(runs(&dir, "archive_retry_script", "pre").len(), pre.len());
    let seg = pre[0].1["BARMAN_SEGMENT"].clone();
    common(&pre[0].1, &env, "archive_script", "pre", false);
    assert!(
        pre[0].1["BARMAN_FILE"].ends_with(&format!("pg_wal/{seg}")),
        "{:?}",
        pre[0].1
    );
    assert_eq!(pre[0].1["BARMAN_COMPRESSION"], "");
    let p = post
        .iter()
        .find(|(_, e)| e["BARMAN_SEGMENT"] == seg)
        .unwrap();
    assert_eq!(
        p.1["BARMAN_FILE"],
        env.server_dir()
            .join("wals")
            .join(&seg[..16])
            .join(&seg)
            .display()
            .to_string()
    );
    assert_eq!(p.1["BARMAN_COMPRESSION"], "zstd");
    assert!(p.1["BARMAN_SIZE"].parse::<u64>().unwrap() > 0);
    assert!(p.1["BARMAN_TIMESTAMP"].parse::<f64>().unwrap() > 0.0);

    // Recovery.
    let dest = env.restore_dir("restored");
    env.run(&[
        "recover",
        "main",
        &b2,
        dest.to_str().unwrap(),
        "--target-immediate",
    ])
    .ok();
    for (hook, retry) in [("recovery_script", false), ("recovery_retry_script", true)] {
        for phase in ["pre", "post"] {
            let r = runs(&dir, hook, phase);
            assert_eq!(r.len(), 1, "{hook} {phase}");
            let e = &r[0].1;
            common(e, &env, hook, phase, retry);
            assert_eq!(e["BARMAN_BACKUP_ID"], b2);
            assert_eq!(
                e["BARMAN_DESTINATION_DIRECTORY"],
                dest.display().to_string()
            );
            assert_eq!(e["BARMAN_TABLESPACES"], "");
            assert_eq!(e["BARMAN_REMOTE_COMMAND"], "");
            let opts: serde_json::Value =
                serde_json::from_str(&e["BARMAN_RECOVER_OPTIONS"]).unwrap();
            assert_eq!(opts["target_immediate"], true, "{opts}");
        }
    }
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT count(*) FROM t", "1000", Duration::from_secs(120));
    drop(restored);

    // Delete of the oldest backup, and one wal_delete run per WAL file removed with it.
    let out = env.run(&["-f", "json", "delete", "main", &b1]).ok().json();
    let removed: Vec<String> = out["wal_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!removed.is_empty());
    for (hook, retry) in [("delete_script", false), ("delete_retry_script", true)] {
        for phase in ["pre", "post"] {
            let r = runs(&dir, hook, phase);
            assert_eq!(r.len(), 1, "{hook} {phase}");
            common(&r[0].1, &env, hook, phase, retry);
            assert_eq!(r[0].1["BARMAN_BACKUP_ID"], b1);
            assert_eq!(r[0].1["BARMAN_NEXT_ID"], b2);
            assert_eq!(r[0].1["BARMAN_STATUS"], "DONE");
        }
    }
    for (hook, retry) in [
        ("wal_delete_script", false),
        ("wal_delete_retry_script", true),
    ] {
        for phase in ["pre", "post"] {
            let r = runs(&dir, hook, phase);
            let segs: Vec<String> = r.iter().map(|(_, e)| e["BARMAN_SEGMENT"].clone()).collect();
            assert_eq!(
                segs, removed,
                "{hook} {phase}: one run per removed file, oldest first"
            );
            common(&r[0].1, &env, hook, phase, retry);
            assert!(r[0].1["BARMAN_FILE"].contains("/wals/"));
            assert!(
                !r[0].1.contains_key("BARMAN_ERROR"),
                "no error for a removed file"
            );
        }
    }
}

#[test]
fn a_retry_hook_runs_until_it_succeeds() {
    let env = PgbakEnv::new();
    let dir = hook_dir(&env);
    let count = dir.join("count");
    // Fails twice, then succeeds.
    let script = format!(
        "echo run >> {c} && test $(wc -l < {c}) -ge 3",
        c = count.display()
    );
    let cluster = env.cluster(
        &format!("pre_backup_retry_script = {script}\n"),
        ClusterOptions::default(),
    );
    let _ = cluster;
    let t = Instant::now();
    let out = env.run(&["-f", "json", "backup", "main", "--wait"]).ok();
    assert_eq!(out.json()["status"], "DONE");
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    assert!(
        t.elapsed() >= Duration::from_secs(6),
        "two pauses of 3 s between attempts, as Barman"
    );
}

#[test]
fn abort_stop_stops_a_backup_cleanly_and_abort_continue_goes_on() {
    let env = PgbakEnv::new();
    let dir = hook_dir(&env);
    let rec = recorder(&dir);
    let cluster = env.cluster(
        &format!("pre_backup_retry_script = exit 63\npost_backup_script = {rec}\n"),
        ClusterOptions::default(),
    );
    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("ABORT_STOP"), "{}", out.stderr);
    let backups = env.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].1, "FAILED");
    let id = &backups[0].0;
    let info = env
        .run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json();
    assert!(
        info["error"].as_str().unwrap().contains("ABORT_STOP"),
        "{info}"
    );
    assert!(
        !env.server_dir().join("base").join(id).join("data").exists(),
        "nothing was copied"
    );
    let post = runs(&dir, "backup_script", "post");
    assert_eq!(post.len(), 1, "post hooks still run");
    assert_eq!(post[0].1["BARMAN_STATUS"], "FAILED");
    assert!(post[0].1["BARMAN_ERROR"].contains("ABORT_STOP"));
    let kept = env.run(&["keep", "main", id, "--target", "full"]);
    assert_eq!(kept.code, 1, "a FAILED backup cannot be kept: {kept:?}");

    // ABORT_CONTINUE before, ABORT_STOP after: the backup is taken and succeeds.
    env.write_config(
        &cluster,
        "pre_backup_retry_script = exit 62\npost_backup_retry_script = exit 63\n",
    );
    let out = env.run(&["-f", "json", "backup", "main", "--wait"]).ok();
    assert_eq!(out.json()["status"], "DONE");
}

#[test]
fn abort_stop_before_archiving_keeps_the_segment_in_postgres() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        "pre_archive_retry_script = exit 63\n",
        ClusterOptions::default(),
    );
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let seg = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    cluster.psql("SELECT pg_switch_wal()");
    cluster.wait_for(
        "SELECT failed_count > 0 FROM pg_stat_archiver",
        "t",
        Duration::from_secs(60),
    );
    let stored = env.server_dir().join("wals").join(&seg[..16]).join(&seg);
    assert!(!stored.exists(), "the hook stopped archiving of {seg}");
    assert!(cluster.data_dir.join("pg_wal").join(&seg).exists());

    // Without the hook the segment is archived at the next attempt.
    env.write_config(&cluster, "");
    env.run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "120",
    ])
    .ok();
    assert!(stored.exists());
}

/// A WAL file that arrives through put-wal (the receiving end of wal-archive) runs the archive
/// hooks as one from archive_command does, and the hooks see it under its own name.
#[test]
fn put_wal_runs_the_archive_hooks() {
    let env = PgbakEnv::new();
    let dir = hook_dir(&env);
    let rec = recorder(&dir);
    let text = format!(
        "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=/nonexistent dbname=postgres\n\
         pre_archive_script = {rec}\npost_archive_script = {rec}\n",
        env.home.display()
    );
    std::fs::write(&env.config, text).unwrap();
    give_to_owner(&env.config);
    let send = env.dir.path().join("send");
    std::fs::create_dir(&send).unwrap();
    let name = "00000002.history";
    std::fs::write(
        send.join(name),
        "1\t0/3000000\tno recovery target specified\n",
    )
    .unwrap();
    give_to_owner(&send);
    let script = format!(
        "set -e; cd {send}; sha256sum {name} > SHA256SUMS; \
         tar --format=ustar -cf - {name} SHA256SUMS | {bin} -c {conf} put-wal main",
        send = send.display(),
        bin = pgbak_bin().display(),
        conf = env.config.display()
    );
    let out = command_as_owner("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pre = runs(&dir, "archive_script", "pre");
    let post = runs(&dir, "archive_script", "post");
    assert_eq!((pre.len(), post.len()), (1, 1), "{pre:?} {post:?}");
    common(&pre[0].1, &env, "archive_script", "pre", false);
    assert_eq!(pre[0].1["BARMAN_SEGMENT"], name);
    assert_eq!(post[0].1["BARMAN_SEGMENT"], name);
    let error = post[0].1.get("BARMAN_ERROR").map(String::as_str);
    assert_eq!(error.unwrap_or(""), "", "{:?}", post[0].1);
    assert!(pre[0].0 < post[0].0);
}
