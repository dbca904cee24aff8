//! The same proofs on every PostgreSQL major pgbak supports (13 to 18): on each, two servers,
//! each with its table in a tablespace that every restore relocates.
//!
//! - One archives through `archive_command`: `check` passes; a plain and a zstd tar backup with
//!   the postgres method are accepted by `verify-backup` and restore to a transaction id and to a
//!   time, row for row; compression on the server works from 15 on and is refused before; a restored server, promoted and archiving into the same catalogue, writes
//!   on timeline 2, and a restore that follows timeline 2 has exactly its rows.
//! - One has no `archive_command` (`receive-wal` is its only WAL source): `check` passes; a backup
//!   with the postgres method and one with the rsync method (over the test bed's sshd, its
//!   manifest made by `generate-manifest`) pass `verify-backup` and restore to an LSN and to a
//!   time, row for row.
//!
//! Servers of the majors Debian does not ship come from scripts/install-postgres-majors.sh; the
//! tests talk to every major with PostgreSQL 15's `psql`.

use pgbak_tests::{
    on_every_major, postgres_tempdir, recover_backup_and_start, Cluster, ClusterOptions, PgbakEnv,
    Receiver, Sshd,
};
use std::path::Path;
use std::time::Duration;

on_every_major!(archived_wal, streamed_wal);

/// The server `cluster` of `major` runs that major, and its table `t`, in a new tablespace `ts` at
/// `tablespace`, has rows 1..=5000.
fn fill(cluster: &Cluster, major: u32, tablespace: &Path) {
    let version: u32 = cluster.psql("SHOW server_version_num").parse().unwrap();
    assert_eq!(version / 10000, major, "server of major {major}");
    cluster.psql(&format!(
        "CREATE TABLESPACE ts LOCATION '{}'",
        tablespace.display()
    ));
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text) TABLESPACE ts");
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
}

fn insert(cluster: &Cluster, from: i64, to: i64) {
    cluster.psql(&format!(
        "INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

/// A backup that must end DONE; returns its id and its JSON report.
fn backup(env: &PgbakEnv) -> (String, serde_json::Value) {
    let out = env.backup_wait();
    let info = out.json();
    assert_eq!(info["status"], "DONE", "{}", out.stdout);
    (info["backup_id"].as_str().unwrap().to_string(), info)
}

/// `check` passes every check of `main`.
fn check_passes(env: &PgbakEnv) {
    let out = env.run(&["-f", "json", "check", "main"]);
    let failed: Vec<_> = out.json()["main"]
        .as_object()
        .expect("checks of main")
        .iter()
        .filter(|(_, c)| c["status"] != "OK")
        .map(|(name, c)| format!("{name}: {c}"))
        .collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
    assert_eq!(out.code, 0, "{out:?}");
}

/// `verify-backup` accepts backup `id` and checked its files.
fn verified(env: &PgbakEnv, id: &str) {
    let report = env
        .run(&["-f", "json", "verify-backup", "main", id])
        .ok()
        .json();
    assert!(
        report["files_checked"].as_u64().unwrap() > 500,
        "{id}: {report}"
    );
}

/// The current time of `cluster`, a moment after the last commit and before the next one.
fn time_between(cluster: &Cluster) -> String {
    std::thread::sleep(Duration::from_millis(20));
    let at = cluster.psql("SELECT clock_timestamp()::text");
    std::thread::sleep(Duration::from_millis(20));
    at
}

/// Where restore `folder` puts tablespace `ts`, as `--tablespace` takes it.
fn relocation(env: &PgbakEnv, folder: &str) -> String {
    format!("ts:{}", env.restore_dir(&format!("{folder}-ts")).display())
}

/// Restores backup `id` with `args` and tablespace `ts` relocated, starts it and compares its
/// rows (with `expected`) and the place of `ts`.
fn restores_exactly(env: &PgbakEnv, id: &str, folder: &str, args: &[&str], expected: &[i64]) {
    let mut all = args.to_vec();
    if args
        .iter()
        .any(|a| ["--target-xid", "--target-time", "--target-lsn"].contains(a))
    {
        all.extend(["--target-action", "promote"]);
    }
    let moved = relocation(env, folder);
    all.extend(["--tablespace", &moved]);
    let r = recover_backup_and_start(env, id, folder, &all);
    assert_eq!(
        r.ids(),
        expected,
        "{folder}: backup {id} restored with {args:?}"
    );
    assert_eq!(
        r.psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"),
        moved["ts:".len()..],
        "{folder}: tablespace relocated"
    );
}

/// Compression on the server (gzip: the embedded-postgres builds have no zstd or lz4) makes a
/// backup `verify-backup` accepts from PostgreSQL 15 on; 13 and 14 cannot compress, and the
/// backup is refused with the reason before anything is written (no FAILED backup left). The configuration is put back as it was.
fn server_compression(env: &PgbakEnv, cluster: &Cluster, major: u32) {
    let before = env.backups();
    env.write_config(
        cluster,
        "compression = zstd\nbackup_compression = gzip\nbackup_compression_location = server\n",
    );
    if major >= 15 {
        let (id, info) = backup(env);
        assert_eq!(info["compression"], "gzip", "{info}");
        let data = env.server_dir().join("base").join(&id).join("data");
        assert!(data.join("base.tar.gz").is_file(), "server-compressed tar");
        verified(env, &id);
        env.run(&["delete", "main", &id]).ok();
    } else {
        let out = env.run(&["backup", "main"]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr
                .contains("backup_compression_location = server needs PostgreSQL 15 or later"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(env.backups(), before);
    env.write_config(cluster, "compression = zstd\nbackup_compression = zstd\n");
}

fn archived_wal(major: u32) {
    let env = PgbakEnv::new();
    let origin = env.cluster(
        "compression = zstd\n",
        ClusterOptions {
            major: Some(major),
            ..Default::default()
        },
    );
    let ts = postgres_tempdir();
    fill(&origin, major, ts.path());
    let (plain, info) = backup(&env);
    assert_eq!(info["timeline"], 1);
    assert_eq!(info["tablespaces"].as_array().unwrap().len(), 1, "{info}");
    let data = env.server_dir().join("base").join(&plain).join("data");
    assert!(data.join("PG_VERSION").is_file(), "plain backup of {major}");
    env.switch_wal_archived();
    check_passes(&env);
    verified(&env, &plain);

    // A transaction whose id is the first target: recovery stops right after its commit.
    insert(&origin, 10001, 10010);
    let xid = origin.psql("INSERT INTO t (id, v) VALUES (10011, 'x'); SELECT txid_current()");
    let at_xid = origin.ids();
    insert(&origin, 10012, 10020);

    env.write_config(&origin, "compression = zstd\nbackup_compression = zstd\n");
    let (tar, _) = backup(&env);
    let data = env.server_dir().join("base").join(&tar).join("data");
    let oid = origin.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'");
    assert!(data.join("base.tar.zst").is_file(), "zstd tar backup");
    assert!(
        data.join(format!("{oid}.tar.zst")).is_file(),
        "tablespace tar"
    );
    verified(&env, &tar);
    server_compression(&env, &origin, major);

    insert(&origin, 10021, 10030);
    let target_time = time_between(&origin);
    let at_time = origin.ids();
    insert(&origin, 10031, 10040);
    origin.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();
    let at_end = origin.ids();
    assert_ne!(at_end, at_time);

    restores_exactly(&env, &plain, "by_xid", &["--target-xid", &xid], &at_xid);
    restores_exactly(
        &env,
        &tar,
        "by_time",
        &["--target-time", &target_time],
        &at_time,
    );

    // Timeline 2: a restored server promoted at the end of the archive keeps archiving into the
    // catalogue of its origin (recover writes archive_command = false; the command line
    // overrides it).
    let dest = env.restore_dir("fork");
    let moved = relocation(&env, "fork");
    let dest_s = dest.display().to_string();
    env.run(&["recover", "main", &tar, &dest_s, "--tablespace", &moved])
        .ok();
    let archive_command = format!("archive_command='{}'", env.archive_command());
    let fork = Cluster::start_existing(&dest, &["archive_mode=on", &archive_command]);
    fork.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(fork.ids(), at_end);
    assert_eq!(
        fork.psql("SELECT timeline_id FROM pg_control_checkpoint()"),
        "2"
    );
    insert(&fork, 20001, 20010);
    fork.switch_wal_and_wait_archived();
    let on_tli2 = fork.ids();
    drop(fork);
    assert!(env.server_dir().join("wals/00000002.history").is_file());
    restores_exactly(&env, &tar, "tli2", &["--target-tli", "latest"], &on_tli2);
}

fn streamed_wal(major: u32) {
    let env = PgbakEnv::new();
    let sshd = Sshd::start();
    let mut cluster = Cluster::init(ClusterOptions {
        major: Some(major),
        ..Default::default()
    });
    let streaming =
        "streaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\ncompression = zstd\n";
    env.write_config(&cluster, streaming);
    cluster.start_now();
    let ts = postgres_tempdir();
    fill(&cluster, major, ts.path());
    let receiver = Receiver::start(&env, "majors");
    let (by_postgres, _) = backup(&env);
    check_passes(&env);
    verified(&env, &by_postgres);

    env.write_config(
        &cluster,
        &format!(
            "{streaming}backup_method = rsync\nssh_command = {}\n",
            sshd.ssh_command()
        ),
    );
    insert(&cluster, 10001, 10010);
    let (by_rsync, info) = backup(&env);
    assert_eq!(info["mode"], "rsync-concurrent");
    // An rsync backup has no manifest from the server (as with Barman): pgbak makes one.
    env.run(&["generate-manifest", "main", &by_rsync]).ok();
    verified(&env, &by_rsync);

    insert(&cluster, 10011, 10020);
    let target_lsn = cluster.psql("SELECT pg_current_wal_lsn()");
    let at_lsn = cluster.ids();
    insert(&cluster, 10021, 10030);
    let target_time = time_between(&cluster);
    let at_time = cluster.ids();
    insert(&cluster, 10031, 10040);
    env.switch_wal_archived();
    let report = receiver.stop();
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");

    restores_exactly(
        &env,
        &by_postgres,
        "by_lsn",
        &["--target-lsn", &target_lsn],
        &at_lsn,
    );
    restores_exactly(
        &env,
        &by_rsync,
        "by_time",
        &["--target-time", &target_time, "--get-wal"],
        &at_time,
    );
}
