//! Faster restores: `recover --jobs N` (plain files copied by N workers, tar streams extracted side
//! by side) gives exactly the rows of the target, and `--delta-restore` brings an older restored
//! copy of the cluster up to a newer backup by rewriting only what differs, with the figures to
//! prove it; it refuses another cluster's directory and a running server, changing nothing.

use pgbak_tests::{
    give_to_owner, postgres_tempdir, read_tree, recover_backup_and_start, Cluster, ClusterOptions,
    PgbakEnv,
};
use std::path::Path;
use std::time::Duration;

const COUNT_BOTH: &str = "SELECT (SELECT count(*) FROM big) || ',' || (SELECT count(*) FROM small) || ',' || (SELECT coalesce(sum(id), 0) FROM small)";

/// A cluster with a tablespace `ts` holding table `small`, and a larger table `big` in the
/// default tablespace, settled (frozen and checkpointed) so its pages stay as they are.
fn cluster_with_tablespace(env: &PgbakEnv, settings: &str) -> (Cluster, tempfile::TempDir) {
    let cluster = env.cluster(settings, ClusterOptions::default());
    let spaces = postgres_tempdir();
    let loc = spaces.path().join("ts");
    std::fs::create_dir(&loc).unwrap();
    give_to_owner(&loc);
    cluster.psql(&format!(
        "CREATE TABLESPACE ts LOCATION '{}'",
        loc.display()
    ));
    cluster.psql("CREATE TABLE big (id int PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 150000) g");
    cluster.psql("CREATE TABLE small (id int, v text) TABLESPACE ts");
    cluster.psql("INSERT INTO small SELECT g, 'first' FROM generate_series(1, 1000) g");
    cluster.psql("VACUUM (FREEZE, ANALYZE)");
    cluster.psql("CHECKPOINT");
    (cluster, spaces)
}

/// `-f json recover main ID DEST ARGS...`, which must succeed; returns its report.
fn recover_json(env: &PgbakEnv, id: &str, dest: &Path, args: &[&str]) -> serde_json::Value {
    let dest = dest.display().to_string();
    let mut all = vec!["-f", "json", "recover", "main", id, dest.as_str()];
    all.extend_from_slice(args);
    env.run(&all).ok().json()
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v["restore"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no restore.{key} in {v}"))
}

#[test]
fn four_jobs_restore_plain_and_zstd_tar_with_a_tablespace() {
    for (format, settings) in [("plain", ""), ("tar", "backup_compression = zstd\n")] {
        let env = PgbakEnv::new();
        let (cluster, _spaces) = cluster_with_tablespace(&env, settings);
        let id = env.backup_wait().json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        cluster.psql("INSERT INTO small SELECT g, 'after' FROM generate_series(2001, 2100) g");
        let lsn = cluster.psql("SELECT pg_current_wal_lsn()");
        let expected = cluster.psql(COUNT_BOTH);
        cluster.psql("INSERT INTO small VALUES (-1, 'too late')");
        env.switch_wal_archived();

        let places = postgres_tempdir();
        let moved = places.path().join("ts");
        let ts = format!("ts:{}", moved.display());
        let dest = env.restore_dir("jobs4");
        let args = [
            "--jobs",
            "4",
            "--target-lsn",
            &lsn,
            "--target-action",
            "promote",
            "--tablespace",
            &ts,
        ];
        let report = recover_json(&env, &id, &dest, &args);
        assert_eq!(report["restore"]["jobs"], 4, "{format}: {report}");
        assert_eq!(report["restore"]["delta"], false, "{format}");
        assert!(n(&report, "files_written") > 100, "{format}: {report}");
        assert!(
            n(&report, "bytes_written") > 5_000_000,
            "{format}: {report}"
        );
        let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
        restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
        assert_eq!(
            restored.psql(COUNT_BOTH),
            expected,
            "{format}: rows at the target"
        );
        assert_eq!(
            std::fs::read_link(
                dest.join("pg_tblspc")
                    .join(cluster.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'"))
            )
            .unwrap(),
            moved,
            "{format}"
        );
    }
}

#[test]
fn delta_restore_rewrites_only_what_changed() {
    for (format, settings) in [("tar", "backup_compression = zstd\n"), ("plain", "")] {
        let env = PgbakEnv::new();
        let (cluster, _spaces) = cluster_with_tablespace(&env, settings);
        let first = env.backup_wait().json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        env.switch_wal_archived();

        // The first restore, used for a while and stopped.
        let places = postgres_tempdir();
        let ts_loc = places.path().join("ts");
        let ts = format!("ts:{}", ts_loc.display());
        let folder = format!("first_{format}");
        let mut old = recover_backup_and_start(
            &env,
            &first,
            &folder,
            &[
                "--target-immediate",
                "--target-action",
                "promote",
                "--tablespace",
                &ts,
            ],
        );
        old.psql("INSERT INTO small VALUES (-5, 'only in the old copy')");
        old.psql("CREATE TABLE junk AS SELECT g FROM generate_series(1, 5000) g");
        old.psql("CHECKPOINT");
        old.stop();
        let dest = env.restore_dir(&folder);

        // The primary moves on; a second backup; a target after it.
        cluster.psql("INSERT INTO small SELECT g, 'second' FROM generate_series(3001, 3500) g");
        cluster.psql("UPDATE big SET v = 'changed' WHERE id % 20000 = 0");
        let second = env.backup_wait().json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(first, second);
        cluster.psql("INSERT INTO small SELECT g, 'after' FROM generate_series(4001, 4010) g");
        let lsn = cluster.psql("SELECT pg_current_wal_lsn()");
        let expected = cluster.psql(COUNT_BOTH);
        cluster.psql("DELETE FROM small WHERE id > 4000");
        env.switch_wal_archived();

        let target = ["--target-lsn", &lsn, "--target-action", "promote"];
        let mut delta_args = vec!["--delta-restore", "--jobs", "4", "--tablespace", &ts];
        delta_args.extend_from_slice(&target);
        let delta = recover_json(&env, &second, &dest, &delta_args);

        let fresh_places = postgres_tempdir();
        let fresh_ts = format!("ts:{}", fresh_places.path().join("ts").display());
        let mut full_args = vec!["--jobs", "4", "--tablespace", &fresh_ts];
        full_args.extend_from_slice(&target);
        let full = recover_json(
            &env,
            &second,
            &env.restore_dir(&format!("full_{format}")),
            &full_args,
        );
        eprintln!(
            "{format}: delta {} / full {}",
            delta["restore"], full["restore"]
        );
        assert_eq!(delta["restore"]["delta"], true, "{format}: {delta}");
        // The same files, most of them found unchanged; what the old copy had of its own
        // (its WAL, the junk table, the old spool) removed.
        assert_eq!(
            n(&delta, "files_written") + n(&delta, "files_unchanged"),
            n(&full, "files_written"),
            "{format}: {delta} {full}"
        );
        assert!(n(&delta, "files_unchanged") > 0, "{format}: {delta}");
        assert!(n(&delta, "removed") > 0, "{format}: {delta}");
        assert!(
            n(&delta, "bytes_written") < n(&full, "bytes_written"),
            "{format}: delta wrote {} bytes, a full restore {}",
            n(&delta, "bytes_written"),
            n(&full, "bytes_written")
        );

        let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
        restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
        assert_eq!(
            restored.psql(COUNT_BOTH),
            expected,
            "{format}: rows at the target"
        );
        assert_eq!(
            restored.psql("SELECT count(*) FROM small WHERE id = -5"),
            "0",
            "{format}"
        );
        assert_eq!(
            restored.psql("SELECT to_regclass('junk') IS NULL"),
            "t",
            "{format}"
        );
        assert_eq!(
            restored.psql("SELECT count(*) FROM big WHERE v = 'changed'"),
            "7",
            "{format}"
        );
    }
}

#[test]
fn delta_restore_refuses_another_cluster_and_a_running_server() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = zstd\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id int)");
    cluster.psql("INSERT INTO t SELECT generate_series(1, 100)");
    let id = env.backup_wait().json()["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.switch_wal_archived();

    // Another cluster's directory (its own system identifier), stopped.
    let other = Cluster::init(ClusterOptions::default());
    let before = read_tree(&other.data_dir);
    let out = env.run(&[
        "recover",
        "main",
        &id,
        other.data_dir.to_str().unwrap(),
        "--delta-restore",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("another cluster") && out.stderr.contains("system identifier"),
        "{}",
        out.stderr
    );
    assert!(read_tree(&other.data_dir) == before, "nothing was changed");

    // A directory that is not a cluster at all.
    let stray = env.restore_dir("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), b"keep me").unwrap();
    give_to_owner(&stray);
    give_to_owner(&stray.join("notes.txt"));
    let out = env.run(&[
        "recover",
        "main",
        &id,
        stray.to_str().unwrap(),
        "--delta-restore",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("pg_control"), "{}", out.stderr);
    assert_eq!(std::fs::read(stray.join("notes.txt")).unwrap(), b"keep me");

    // A restored copy of this very cluster, running.
    let running = recover_backup_and_start(&env, &id, "running", &[]);
    let dest = env.restore_dir("running");
    std::fs::write(dest.join("marker"), b"not in the backup").unwrap();
    let out = env.run(&[
        "recover",
        "main",
        &id,
        dest.to_str().unwrap(),
        "--delta-restore",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("running"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(dest.join("marker")).unwrap(),
        b"not in the backup",
        "a delta would have removed it"
    );
    assert_eq!(running.psql("SELECT count(*) FROM t"), "100");
    // Without --delta-restore, a non-empty destination is refused as before.
    let out = env.run(&["recover", "main", &id, dest.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
}

/// Times full restores with one and four jobs and a delta restore after a pgbench run, on a
/// pgbench database of scale `PGBAK_MEASURE_SCALE` (default 20, about 300 MB), for plain and zstd
/// tar backups. A measurement, not a check: run with
/// `cargo test -p pgbak-tests --test restore_speed -- --ignored --nocapture measure`.
#[test]
#[ignore = "timing measurement, not a check"]
fn measure_restore_times() {
    let scale = std::env::var("PGBAK_MEASURE_SCALE").unwrap_or_else(|_| "20".into());
    for (format, settings) in [("plain", ""), ("tar", "backup_compression = zstd\n")] {
        let env = PgbakEnv::new();
        let cluster = env.cluster(settings, ClusterOptions::default());
        let pgbench = |args: &[&str]| {
            let out = pgbak_tests::command_as_owner(pgbak_tests::pg_bin("pgbench"))
                .args(["-h", cluster.socket_dir.to_str().unwrap()])
                .args(["-p", &cluster.port.to_string(), "-U", "postgres"])
                .args(args)
                .arg("postgres")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        pgbench(&["-i", "-q", "-s", &scale]);
        cluster.psql("VACUUM (FREEZE)");
        cluster.psql("CHECKPOINT");
        let first = env.backup_wait().json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        let timed = |id: &str, dest: &Path, args: &[&str]| {
            let start = std::time::Instant::now();
            let mut all = vec!["--get-wal", "--target-immediate"];
            all.extend_from_slice(args);
            let r = recover_json(&env, id, dest, &all);
            (start.elapsed(), r["restore"].clone())
        };
        let one = env.restore_dir("one");
        let four = env.restore_dir("four");
        let (t1, r1) = timed(&first, &one, &["--jobs", "1"]);
        let (t4, _) = timed(&first, &four, &["--jobs", "4"]);
        std::fs::remove_dir_all(&one).unwrap();
        pgbench(&["-t", "2000", "-c", "2"]);
        let second = env.backup_wait().json()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (td, rd) = timed(&second, &four, &["--jobs", "4", "--delta-restore"]);
        let (tf, rf) = timed(&second, &env.restore_dir("full2"), &["--jobs", "4"]);
        println!(
            "{format}, scale {scale}: full --jobs 1 {t1:.2?} ({} bytes); full --jobs 4 {t4:.2?}; \
             after pgbench -t 2000: full --jobs 4 {tf:.2?} ({} bytes), delta --jobs 4 {td:.2?} ({} bytes written, {} files written, {} unchanged, {} removed)",
            r1["bytes_written"], rf["bytes_written"], rd["bytes_written"], rd["files_written"], rd["files_unchanged"], rd["removed"]
        );
    }
}
