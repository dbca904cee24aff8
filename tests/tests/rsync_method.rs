//! The rsync backup method over SSH (the test bed's sshd stands in for the database host):
//! point-in-time round trips restored locally and onto a "remote" host, reuse of an earlier
//! backup's files, tablespaces with relocation, parallel copies, and SSH failures.
//!
//! The tests of this file run one at a time: the SSH fault tests kill every SSH session of the
//! cluster owner, which would break a sibling's copy.

use pgbak_tests::{read_tree, Cluster, ClusterOptions, PgbakEnv, Sshd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cluster backed up with backup_method = rsync over the test bed's sshd.
fn rsync_setup(extra: &str) -> (Sshd, PgbakEnv, Cluster) {
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let config = format!(
        "backup_method = rsync\nssh_command = {}\nbasebackup_retry_sleep = 1\n{extra}",
        sshd.ssh_command()
    );
    let cluster = env.cluster(&config, ClusterOptions::default());
    (sshd, env, cluster)
}

fn ids(s: &str) -> Vec<i64> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

fn backup_json(env: &PgbakEnv, args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ];
    all.extend_from_slice(args);
    let out = env.run(&all).ok();
    let v = out.json();
    assert_eq!(v["status"], "DONE", "{}", out.stdout);
    v
}

fn backup_dir(env: &PgbakEnv, id: &str) -> PathBuf {
    env.server_dir().join("base").join(id)
}

/// Restores backup `id` with `args` (or onto the "remote" host with `--remote-ssh-command`),
/// starts it and waits until it is promoted.
fn restore(env: &PgbakEnv, id: &str, folder: &str, args: &[&str]) -> Cluster {
    let dest = env.restore_dir(folder);
    let dest_s = dest.display().to_string();
    let mut all = vec!["recover", "main", id, dest_s.as_str()];
    all.extend_from_slice(args);
    env.run(&all).ok();
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    restored
}

/// Inserts rows until told to stop; returns how many.
fn writer(cluster: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let conninfo = (cluster.port, cluster.socket_dir.clone());
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let out = std::process::Command::new(pgbak_tests::pg_bin("psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
                .arg("-p")
                .arg(conninfo.0.to_string())
                .arg("-c")
                .arg("INSERT INTO t (id, v) SELECT coalesce(max(id), 0) + 1, 'during backup' FROM t WHERE id < 1000000")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
        n
    })
}

#[test]
fn round_trip_over_ssh_restored_here_and_remotely() {
    let _serial = serial();
    let (sshd, env, cluster) = rsync_setup("parallel_jobs = 2\n");
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 20000) g");

    let status = env.run(&["status", "main"]).ok();
    assert!(status.stdout.contains("ssh"), "{}", status.stdout);
    assert!(
        !status.stdout.contains("FAILED"),
        "status of an rsync server: {}",
        status.stdout
    );

    let check = env.run(&["check", "main"]);
    for line in ["\tssh: OK", "\trsync: OK", "\tdata directory access: OK"] {
        assert!(check.stdout.contains(line), "{line:?} in {}", check.stdout);
    }

    // Back up while the cluster takes writes.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(&cluster, stop.clone());
    let b = backup_json(&env, &[]);
    stop.store(true, Ordering::SeqCst);
    assert!(w.join().unwrap() > 0, "the writer ran during the backup");
    assert_eq!(b["mode"], "rsync-concurrent");
    assert_eq!(b["backup_format"], "plain");
    assert!(b["copied_bytes"].as_u64().unwrap() > 1_000_000, "{b}");
    let id = b["backup_id"].as_str().unwrap().to_string();
    let data = backup_dir(&env, &id).join("data");
    let label = std::fs::read_to_string(data.join("backup_label")).unwrap();
    assert!(label.contains("LABEL: pgbak backup"), "{label}");
    assert!(!data.join("postmaster.pid").exists());
    assert!(data.join("pg_wal/archive_status").is_dir());
    assert_eq!(std::fs::read_dir(data.join("pg_wal")).unwrap().count(), 1);
    assert!(data.join("global/pg_control").is_file());

    // A second backup under writes, reusing the first: files written while the first one ran
    // are compared by content, later ones by size and time.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(&cluster, stop.clone());
    let b2 = backup_json(&env, &["--reuse-backup", "link"]);
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    assert!(b2["reused_bytes"].as_u64().unwrap() > 0, "{b2}");
    let id2 = b2["backup_id"].as_str().unwrap().to_string();

    // Keep writing; note what was committed at the target time.
    for id in 2_000_001..=2_000_010 {
        cluster.psql(&format!("INSERT INTO t (id, v) VALUES ({id}, 'after')"));
    }
    std::thread::sleep(Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));
    std::thread::sleep(Duration::from_millis(20));
    cluster.psql("INSERT INTO t (id, v) VALUES (3000000, 'too late')");
    cluster.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();

    let targets = ["--target-time", &target_time, "--target-action", "promote"];
    let local = restore(&env, &id2, "local", &targets);
    assert_eq!(
        ids(&local.psql("SELECT id FROM t ORDER BY id")),
        at_time,
        "local recovery of the reusing backup to {target_time}"
    );
    drop(local);

    let ssh = sshd.ssh_command();
    let mut remote_args = targets.to_vec();
    remote_args.extend(["--remote-ssh-command", &ssh, "--jobs", "3"]);
    let remote = restore(&env, &id, "remote", &remote_args);
    assert_eq!(
        ids(&remote.psql("SELECT id FROM t ORDER BY id")),
        at_time,
        "remote recovery to {target_time}"
    );
    remote.psql("INSERT INTO t (id, v) VALUES (-1, 'after recovery')");
    let conf =
        std::fs::read_to_string(env.restore_dir("remote").join("postgresql.auto.conf")).unwrap();
    assert!(conf.contains("recovery_target_time"), "{conf}");
    assert!(
        conf.contains("restore_command = 'cp pgbak_wal/%f %p'"),
        "{conf}"
    );
}

fn relation_path(cluster: &Cluster, table: &str) -> String {
    cluster.psql(&format!("SELECT pg_relation_filepath('{table}')"))
}

fn inode(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.ino(), m.nlink())
}

fn snapshot(c: &Cluster) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|t| {
            c.psql(&format!(
                "SELECT count(*) || ':' || sum(hashtext(v)) FROM {t}"
            ))
        })
        .collect()
}

#[test]
fn reuse_sends_only_changed_files_and_both_backups_restore() {
    let _serial = serial();
    let (_sshd, env, cluster) = rsync_setup("reuse_backup = link\n");
    for t in ["a", "b", "c"] {
        cluster.psql(&format!(
            "CREATE TABLE {t} AS SELECT g AS id, md5(g::text) || md5((g + 7)::text) AS v FROM generate_series(1, 60000) g"
        ));
    }
    // Hint bits and visibility maps set now, so that reading a table later does not rewrite it.
    cluster.psql("VACUUM (FREEZE, ANALYZE)");
    cluster.psql("CHECKPOINT");
    // Whole seconds separate the files' times from the first backup's start.
    std::thread::sleep(Duration::from_millis(2100));
    let first = backup_json(&env, &[]);
    assert_eq!(first["reused_bytes"], 0, "nothing to reuse yet: {first}");
    let first_id = first["backup_id"].as_str().unwrap().to_string();

    cluster.psql("UPDATE a SET v = 'changed' WHERE id % 10 = 0");
    let at_second = snapshot(&cluster);
    let (a_path, b_path) = (relation_path(&cluster, "a"), relation_path(&cluster, "b"));
    let second = backup_json(&env, &[]);
    let second_id = second["backup_id"].as_str().unwrap().to_string();
    let (copied, reused, total) = (
        second["copied_bytes"].as_u64().unwrap(),
        second["reused_bytes"].as_u64().unwrap(),
        second["data_size"].as_u64().unwrap(),
    );
    eprintln!("second backup: {copied} copied, {reused} reused of {total}");
    assert_eq!(second["reuse_mode"], "link");
    assert_eq!(second["reuse_backup_id"].as_str(), Some(first_id.as_str()));
    assert!(reused > total / 2, "most bytes are reused: {second}");
    assert!(copied < total / 3, "only changed files are sent: {second}");
    let table_b = std::fs::metadata(backup_dir(&env, &first_id).join("data").join(&b_path))
        .unwrap()
        .len();
    assert!(
        copied < table_b * 3,
        "about one table's worth was sent: {second}"
    );
    let d1 = backup_dir(&env, &first_id).join("data");
    let d2 = backup_dir(&env, &second_id).join("data");
    assert_eq!(
        inode(&d1.join(&b_path)).0,
        inode(&d2.join(&b_path)).0,
        "an unchanged table is a hard link to the first backup"
    );
    assert!(inode(&d2.join(&b_path)).1 >= 2);
    assert_ne!(
        inode(&d1.join(&a_path)).0,
        inode(&d2.join(&a_path)).0,
        "the changed table was copied"
    );

    cluster.psql("UPDATE c SET v = 'changed again' WHERE id % 5 = 0");
    let at_third = snapshot(&cluster);
    let third = backup_json(&env, &["--reuse-backup", "copy"]);
    let third_id = third["backup_id"].as_str().unwrap().to_string();
    assert_eq!(third["reuse_mode"], "copy");
    assert!(
        third["reused_bytes"].as_u64().unwrap() > total / 2,
        "{third}"
    );
    assert!(
        third["copied_bytes"].as_u64().unwrap() < total / 3,
        "{third}"
    );
    let d3 = backup_dir(&env, &third_id).join("data");
    assert_ne!(
        inode(&d2.join(&b_path)).0,
        inode(&d3.join(&b_path)).0,
        "copy mode makes copies, not links"
    );
    assert_eq!(
        std::fs::read(d2.join(&b_path)).unwrap(),
        std::fs::read(d3.join(&b_path)).unwrap()
    );

    env.switch_wal_archived();
    let immediate = ["--target-immediate", "--target-action", "promote"];
    let r2 = restore(&env, &second_id, "second", &immediate);
    assert_eq!(snapshot(&r2), at_second, "the linked backup restores");
    drop(r2);
    let r3 = restore(&env, &third_id, "third", &immediate);
    assert_eq!(snapshot(&r3), at_third, "the copied backup restores");
}

#[test]
fn tablespaces_are_copied_and_one_is_relocated() {
    let _serial = serial();
    let (sshd, env, mut cluster) = rsync_setup("parallel_jobs = 3\n");
    let spaces = pgbak_tests::postgres_tempdir();
    let (loc1, loc2) = (spaces.path().join("one"), spaces.path().join("two"));
    for l in [&loc1, &loc2] {
        std::fs::create_dir(l).unwrap();
        pgbak_tests::give_to_owner(l);
    }
    cluster.psql(&format!(
        "CREATE TABLESPACE tbs1 LOCATION '{}'",
        loc1.display()
    ));
    cluster.psql(&format!(
        "CREATE TABLESPACE tbs2 LOCATION '{}'",
        loc2.display()
    ));
    cluster.psql("CREATE TABLE in1 TABLESPACE tbs1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 30000) g");
    cluster.psql("CREATE TABLE in2 TABLESPACE tbs2 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g");
    cluster.psql("CREATE INDEX ON in2 (v)");
    let b = backup_json(&env, &[]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    let names: Vec<&str> = b["tablespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["tbs1", "tbs2"]);
    let dir = backup_dir(&env, &id);
    for t in b["tablespaces"].as_array().unwrap() {
        let oid = t["oid"].as_u64().unwrap().to_string();
        assert!(dir.join(&oid).is_dir());
        assert_eq!(
            std::fs::read_link(dir.join("data/pg_tblspc").join(&oid)).unwrap(),
            dir.join(&oid),
            "pg_tblspc links to the backup's own copy"
        );
    }
    let map = std::fs::read_to_string(dir.join("data/tablespace_map")).unwrap();
    assert!(map.contains(loc1.to_str().unwrap()), "{map}");
    let expected = (
        cluster.psql("SELECT count(*), sum(hashtext(v)) FROM in1"),
        cluster.psql("SELECT count(*), sum(hashtext(v)) FROM in2 WHERE v > 'a'"),
    );
    env.switch_wal_archived();

    // Onto the "remote" host, both tablespaces relocated there.
    let far = pgbak_tests::postgres_tempdir();
    let (far1, far2) = (
        format!("tbs1:{}", far.path().join("t1").display()),
        format!("tbs2:{}", far.path().join("t2").display()),
    );
    let ssh = sshd.ssh_command();
    let remote = restore(
        &env,
        &id,
        "remote",
        &[
            "--target-immediate",
            "--target-action",
            "promote",
            "--remote-ssh-command",
            &ssh,
            "--tablespace",
            &far1,
            "--tablespace",
            &far2,
        ],
    );
    assert_eq!(
        (
            remote.psql("SELECT count(*), sum(hashtext(v)) FROM in1"),
            remote.psql("SELECT count(*), sum(hashtext(v)) FROM in2 WHERE v > 'a'"),
        ),
        expected,
        "remote recovery with relocated tablespaces"
    );
    assert_eq!(
        remote.psql("SELECT string_agg(pg_tablespace_location(oid), ',' ORDER BY spcname) FROM pg_tablespace WHERE spcname LIKE 'tbs%'"),
        format!("{},{}", far.path().join("t1").display(), far.path().join("t2").display())
    );
    drop(remote);
    cluster.stop();
    // tbs2 goes back where it was (emptied); tbs1 moves.
    std::fs::rename(&loc2, spaces.path().join("two.old")).unwrap();
    let moved = spaces.path().join("moved");
    let moved_s = format!("tbs1:{}", moved.display());
    let r = restore(
        &env,
        &id,
        "restored",
        &[
            "--target-immediate",
            "--target-action",
            "promote",
            "--tablespace",
            &moved_s,
        ],
    );
    assert_eq!(
        (
            r.psql("SELECT count(*), sum(hashtext(v)) FROM in1"),
            r.psql("SELECT count(*), sum(hashtext(v)) FROM in2 WHERE v > 'a'"),
        ),
        expected
    );
    assert_eq!(
        r.psql("SELECT spcname || '=' || pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'tbs1'"),
        format!("tbs1={}", moved.display())
    );
    let restored_in_place = std::fs::read_dir(&loc2)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("PG_"));
    assert!(restored_in_place, "tbs2 is back in its original location");
}

/// Every file of a backup's data folder, without those that change at every backup.
fn stable_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    read_tree(dir)
        .into_iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "backup_label" | "global/pg_control" | "pg_logical/replorigin_checkpoint"
            )
        })
        .collect()
}

#[test]
fn four_workers_copy_the_same_files_as_one() {
    let _serial = serial();
    let (_sshd, env, cluster) = rsync_setup("parallel_jobs = 4\n");
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
    );
    cluster.psql("CREATE TABLE u AS SELECT g AS id FROM generate_series(1, 1000) g");
    cluster.psql("CHECKPOINT");
    let one = backup_json(&env, &["--jobs", "1"]);
    // parallel_jobs from the configuration.
    let four = backup_json(&env, &[]);
    let a = stable_files(&backup_dir(&env, one["backup_id"].as_str().unwrap()).join("data"));
    let b = stable_files(&backup_dir(&env, four["backup_id"].as_str().unwrap()).join("data"));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same files");
    let differ: Vec<&String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, _)| &x.0)
        .collect();
    assert!(
        differ.is_empty(),
        "files with different contents: {differ:?}"
    );
    assert!(a.len() > 500, "a whole cluster: {} files", a.len());
}

/// Enough data that a rate-limited copy lasts several seconds.
fn slow_setup(extra: &str) -> (Sshd, PgbakEnv, Cluster) {
    let (sshd, env, cluster) = rsync_setup(&format!(
        "bandwidth_limit = 4000\nparallel_jobs = 2\n{extra}"
    ));
    cluster.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 250000) g");
    cluster.psql("CHECKPOINT");
    (sshd, env, cluster)
}

#[test]
fn ssh_killed_once_is_retried() {
    let _serial = serial();
    let (sshd, env, cluster) = slow_setup("basebackup_retry_times = 3\n");
    let start = Instant::now();
    let child = env.spawn(&[
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    sshd.kill_sessions();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("attempt 2 of 4"),
        "a retry was logged: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "DONE");
    eprintln!("backup with one SSH failure took {:?}", start.elapsed());
    assert!(!cluster
        .server_log()
        .contains("aborting backup due to backend exiting"));
}

#[test]
fn ssh_killed_for_good_fails_cleanly_and_stops_the_backup() {
    let _serial = serial();
    let (sshd, env, cluster) = slow_setup("basebackup_retry_times = 2\n");
    let mut child = env.spawn(&["backup", "main"]);
    std::thread::sleep(Duration::from_secs(2));
    let killing = Arc::new(AtomicBool::new(true));
    let k = killing.clone();
    let sshd = Arc::new(sshd);
    let s2 = sshd.clone();
    let killer = std::thread::spawn(move || {
        while k.load(Ordering::SeqCst) {
            s2.kill_sessions();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the backup did not give up");
        std::thread::sleep(Duration::from_millis(100));
    };
    killing.store(false, Ordering::SeqCst);
    killer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(!status.success());
    assert!(
        stderr.contains("basebackup_retry_times = 2 exhausted"),
        "the error says retries ran out: {stderr}"
    );
    let backups = env.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].1, "FAILED");
    // pg_backup_stop ran: PostgreSQL did not have to abort a backup left open.
    assert!(
        !cluster
            .server_log()
            .contains("aborting backup due to backend exiting"),
        "{}",
        cluster.server_log()
    );
    // And a new backup works once SSH does.
    let again = backup_json(&env, &["--jobs", "4"]);
    assert_eq!(again["mode"], "rsync-concurrent");
}

#[test]
fn a_wrong_ssh_command_is_a_clear_error() {
    let _serial = serial();
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let wrong = sshd.ssh_command().replace(
        &format!("-p {}", sshd.port),
        &format!("-p {}", pgbak_tests::free_port()),
    );
    let cluster = env.cluster(
        &format!("backup_method = rsync\nssh_command = {wrong}\n"),
        ClusterOptions::default(),
    );
    let t = Instant::now();
    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(
        out.stderr
            .contains("cannot reach the database host (check ssh_command)")
            && out.stderr.contains("Connection refused"),
        "{}",
        out.stderr
    );
    assert!(env.backups().is_empty(), "nothing was started");
    assert!(!cluster.server_log().contains("pg_backup_start"));
    let status = env.run(&["status", "main"]).ok();
    assert!(status.stdout.contains("FAILED"), "{}", status.stdout);
}

/// Runs PostgreSQL's `pg_verifybackup -n` (no WAL parsing: the backup keeps no WAL) on `data`.
fn pg_verifybackup(data: &Path) -> std::process::Output {
    pgbak_tests::command_as_owner(pgbak_tests::pg_bin("pg_verifybackup"))
        .arg("-n")
        .arg(data)
        .output()
        .unwrap()
}

/// `autogenerate_manifest = true` (Barman's option): an rsync backup gets a PostgreSQL-format
/// `backup_manifest` before it is DONE, which PostgreSQL's own `pg_verifybackup` accepts (and
/// which catches a damaged file); by default there is none, as in Barman.
#[test]
fn autogenerate_manifest_gives_rsync_backups_a_manifest_pg_verifybackup_accepts() {
    let _serial = serial();
    let (_sshd, env, cluster) = rsync_setup("autogenerate_manifest = true\nparallel_jobs = 2\n");
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    let b = backup_json(&env, &[]);
    let id = b["backup_id"].as_str().unwrap().to_string();
    assert_eq!(b["has_manifest"], true, "{b}");
    let data = backup_dir(&env, &id).join("data");
    assert!(data.join("backup_manifest").is_file());
    let out = pg_verifybackup(&data);
    assert!(
        out.status.success(),
        "pg_verifybackup: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.run(&["verify-backup", "main", &id]).ok();

    // A flipped byte in a relation file is caught: the manifest describes the copy.
    let relation = data.join(relation_path(&cluster, "t"));
    let mut bytes = std::fs::read(&relation).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&relation, bytes).unwrap();
    assert!(!pg_verifybackup(&data).status.success());

    // Off (Barman's default): no manifest.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "autogenerate_manifest = true",
            "autogenerate_manifest = false",
        ),
    )
    .unwrap();
    let b = backup_json(&env, &[]);
    assert_eq!(b["has_manifest"], false, "{b}");
    let data = backup_dir(&env, b["backup_id"].as_str().unwrap()).join("data");
    assert!(!data.join("backup_manifest").exists());
}

#[test]
fn local_rsync_round_trip() {
    let _serial = serial();
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        "backup_method = local-rsync\nparallel_jobs = 2\nreuse_backup = copy\n",
        ClusterOptions::default(),
    );
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    let first = backup_json(&env, &[]);
    assert_eq!(first["mode"], "rsync-concurrent");
    cluster.psql("INSERT INTO t SELECT g, 'second' FROM generate_series(20001, 20100) g");
    let expected = cluster.psql("SELECT count(*), sum(hashtext(v)) FROM t");
    let second = backup_json(&env, &[]);
    assert_eq!(second["reuse_mode"], "copy");
    assert!(second["reused_bytes"].as_u64().unwrap() > 0, "{second}");
    env.switch_wal_archived();
    let r = restore(
        &env,
        second["backup_id"].as_str().unwrap(),
        "restored",
        &["--target-immediate", "--target-action", "promote"],
    );
    assert_eq!(r.psql("SELECT count(*), sum(hashtext(v)) FROM t"), expected);
}

#[test]
fn remote_recovery_of_a_compressed_streaming_backup() {
    let _serial = serial();
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = zstd\n", ClusterOptions::default());
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    let b = backup_json(&env, &[]);
    assert_eq!(b["mode"], "postgres");
    assert_eq!(b["backup_format"], "tar");
    let expected = cluster.psql("SELECT count(*), sum(hashtext(v)) FROM t");
    env.switch_wal_archived();
    let ssh = sshd.ssh_command();
    let r = restore(
        &env,
        b["backup_id"].as_str().unwrap(),
        "remote",
        &[
            "--target-immediate",
            "--target-action",
            "promote",
            "--remote-ssh-command",
            &ssh,
        ],
    );
    assert_eq!(r.psql("SELECT count(*), sum(hashtext(v)) FROM t"), expected);

    // A second restore into the same place is refused before anything is written.
    drop(r);
    let dest = env.restore_dir("remote");
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        dest.to_str().unwrap(),
        "--remote-ssh-command",
        &ssh,
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
}
