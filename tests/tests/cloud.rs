//! End to end on object storage: a real PostgreSQL cluster archives its WAL with
//! `pgbak archive-wal` into a bucket of S3 (moto), Azure Blob (Azurite) or GCS
//! (fake-gcs-server), pgbak backs it up into the same bucket (uncompressed tar and zstd), the
//! cluster keeps writing, and a point-in-time recovery from the bucket gives back exactly the
//! rows committed at the target. The inspection commands show the repository and no secret.

use pgbak_storage::CommitMode;
use pgbak_tests::cloud::CloudEnv;
use pgbak_tests::emulators::{Emulator, Kind};
use pgbak_tests::{
    command_as_owner, md5_hex, pgbak_bin, put_wal_input, Cluster, ClusterOptions, PgbakOutput,
};
use std::collections::BTreeSet;
use std::time::Duration;

pgbak_tests::on_every_cloud!(
    point_in_time_recovery_from_the_bucket,
    retention_keep_delete_and_verify_in_the_bucket,
    local_to_cloud_with_wal_streamed_into_the_bucket,
    check_backup_put_wal_rebuild_and_other_targets_on_the_bucket,
);

fn ids(c: &Cluster) -> String {
    c.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
}

fn insert(c: &Cluster, from: i64, to: i64) {
    c.psql(&format!(
        "INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

fn point_in_time_recovery_from_the_bucket(kind: Kind) {
    let emu = Emulator::shared(kind);
    let env = CloudEnv::new(emu);
    let cluster = env.cluster("compression = gzip\n");
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 3000);

    // Uncompressed: on object storage, a tar stream.
    let plain = env.backup();
    assert_eq!(plain["backup_format"], "tar", "{plain}");
    assert_eq!(plain["compression"], "none", "{plain}");
    let plain_id = plain["backup_id"].as_str().unwrap().to_string();
    insert(&cluster, 3001, 3500);

    env.write_config(&cluster, "compression = gzip\nbackup_compression = zstd\n");
    let zstd = env.backup();
    assert_eq!(zstd["compression"], "zstd", "{zstd}");
    let zstd_id = zstd["backup_id"].as_str().unwrap().to_string();

    inspection_commands_show_the_bucket(emu, &env, &plain_id, &zstd_id);

    // Keep writing after the backups, noting what was committed at each target.
    insert(&cluster, 4001, 4100);
    cluster.psql("SELECT pg_create_restore_point('cloud_point')");
    let at_name = ids(&cluster);
    insert(&cluster, 4101, 4200);
    let target_lsn = cluster.psql("SELECT pg_current_wal_lsn()");
    let at_lsn = ids(&cluster);
    insert(&cluster, 4201, 4300);
    std::thread::sleep(Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(Duration::from_millis(20));
    insert(&cluster, 4301, 4400);
    cluster.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();
    assert_ne!(ids(&cluster), at_time);

    // The uncompressed backup to a time, WAL through get-wal.
    let r = env.recover_and_start(
        &plain_id,
        "by_time",
        &[
            "--target-time",
            &target_time,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_time, "{kind:?}: recovery to time {target_time}");
    drop(r);
    // The zstd backup to a time, with the WAL copied by recover.
    let r = env.recover_and_start(
        &zstd_id,
        "by_time_copied",
        &["--target-time", &target_time, "--target-action", "promote"],
    );
    assert_eq!(ids(&r), at_time, "{kind:?}: recovery to time {target_time}");
    drop(r);
    let r = env.recover_and_start(
        &zstd_id,
        "by_lsn",
        &[
            "--target-lsn",
            &target_lsn,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_lsn, "{kind:?}: recovery to LSN {target_lsn}");
    drop(r);
    let r = env.recover_and_start(
        &plain_id,
        "by_name",
        &["--target-name", "cloud_point", "--target-action", "promote"],
    );
    assert_eq!(ids(&r), at_name, "{kind:?}: recovery to a restore point");
    r.psql("INSERT INTO t (id, v) VALUES (-1, 'after recovery')");
    drop(r);
}

/// list-backups, show-backup, status, diagnose and check on a server whose backups and WAL
/// are in the bucket.
fn inspection_commands_show_the_bucket(emu: &Emulator, env: &CloudEnv, plain: &str, zstd: &str) {
    let kind = env.kind;
    // Everything is in the bucket; only the local queues are on disk.
    let keys = bucket_keys(emu, env, "");
    for id in [plain, zstd] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("base/{id}/data/base.tar"))),
            "{kind:?}: {keys:?}"
        );
        assert!(keys.contains(&format!("base/{id}/backup.json")), "{keys:?}");
    }
    assert!(keys.contains(&"base/identity.json".to_string()), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("wals/0000000100000000/")),
        "{keys:?}"
    );
    let local: Vec<String> = std::fs::read_dir(env.pgbak.server_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !local.iter().any(|n| n == "base" || n == "wals"),
        "{local:?}"
    );

    let out = env.run(&["list-backups", "main"]).ok();
    for (id, shape) in [(plain, "tar/none"), (zstd, "tar/zstd")] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{kind:?}: {id} not listed: {}", out.stdout));
        assert!(line.contains(shape) && line.ends_with("DONE"), "{line}");
    }
    let show = env
        .run(&["-f", "json", "show-backup", "main", zstd])
        .ok()
        .json();
    assert_eq!(show["status"], "DONE");
    assert_eq!(show["files"][0]["name"], "base.tar.zst", "{show}");
    let console = env.run(&["show-backup", "main", plain]).ok();
    assert!(
        console.stdout.lines().any(|l| l
            .split_once(':')
            .is_some_and(|(k, v)| k.trim() == "backup_format" && v.trim() == "tar")),
        "{}",
        console.stdout
    );

    let status = env.run(&["status", "main"]).ok();
    for (k, v) in [
        ("basebackups_directory", env.base_url()),
        ("wals_directory", env.wals_url()),
        ("backups", "2 (2 DONE)".to_string()),
        ("last_backup", zstd.to_string()),
    ] {
        let line = status
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{k} ")))
            .unwrap_or_else(|| panic!("{kind:?}: no {k} in {}", status.stdout));
        assert!(line.contains(&v), "{kind:?}: {line}");
    }

    let diag = env.run(&["diagnose"]).ok().json();
    let repos = &diag["servers"]["main"]["repositories"];
    for (option, url) in [
        ("basebackups_directory", env.base_url()),
        ("wals_directory", env.wals_url()),
    ] {
        assert_eq!(repos[option]["kind"], "object storage", "{repos}");
        let shown = repos[option]["repository"].as_str().unwrap();
        assert!(shown.starts_with(&url), "{kind:?}: {shown}");
    }
    assert_eq!(
        diag["servers"]["main"]["config"]["basebackups_directory"],
        env.base_url()
    );

    let check = env.run(&["check", "main"]);
    assert_eq!(check.code, 0, "{kind:?}: {check:?}");
    for line in [
        "backup repository: OK",
        "wal repository: OK",
        "directories: OK",
        "WAL archive: OK",
    ] {
        assert!(
            check.stdout.lines().any(|l| l.trim() == line),
            "{kind:?}: no '{line}' in {}",
            check.stdout
        );
    }
    assert!(!check.stdout.contains("FAILED"), "{}", check.stdout);
}

/// Keys under `prefix` of the bucket: asked of the emulator itself on S3 and GCS, through
/// pgbak's storage layer on Azure (Azurite wants signed requests).
fn bucket_keys(emu: &Emulator, env: &CloudEnv, prefix: &str) -> Vec<String> {
    let mut keys = match emu.kind() {
        Kind::Azure => env.keys(prefix),
        _ => emu.raw_keys(&env.repo.bucket, prefix),
    };
    keys.sort();
    keys
}

/// The archived WAL segments in the bucket (not the index, not history or backup files).
fn archived_segments(emu: &Emulator, env: &CloudEnv) -> BTreeSet<String> {
    bucket_keys(emu, env, "wals/")
        .into_iter()
        .filter_map(|k| {
            let name = k.rsplit('/').next()?.to_string();
            (name.len() == 24 && !k.starts_with("wals/index/")).then_some(name)
        })
        .collect()
}

fn show(env: &CloudEnv, id: &str, field: &str) -> String {
    env.run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json()[field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn retention_keep_delete_and_verify_in_the_bucket(kind: Kind) {
    let emu = Emulator::shared(kind);
    let env = CloudEnv::new(emu);
    let cluster = env.cluster("compression = gzip\nretention_policy = REDUNDANCY 1\n");
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    let mut next = 1;
    let mut backup = || {
        insert(&cluster, next, next + 999);
        next += 1000;
        env.switch_wal_archived();
        env.backup()["backup_id"].as_str().unwrap().to_string()
    };
    let a = backup();
    let b = backup();
    // `keep` protects A from retention, keeping only the WAL that makes it consistent.
    env.run(&["keep", "main", &a, "--target", "standalone"])
        .ok();
    assert_eq!(
        env.run(&["keep", "main", &a, "--status"])
            .ok()
            .stdout
            .trim(),
        "Keep: standalone"
    );
    let c = backup();
    env.switch_wal_archived();
    let before = archived_segments(emu, &env);
    let (a_begin, a_end) = (show(&env, &a, "begin_wal"), show(&env, &a, "end_wal"));
    let (b_begin, c_begin) = (show(&env, &b, "begin_wal"), show(&env, &c, "begin_wal"));
    assert!(before.contains(&b_begin), "{before:?}");

    // REDUNDANCY 1: cron deletes B (obsolete) and the WAL only it needed; A is kept.
    let out = env.run(&["-f", "json", "cron"]);
    assert_eq!(out.code, 0, "{kind:?}: {out:?}");
    assert_eq!(
        out.json()[0]["deleted_backups"],
        serde_json::json!([b]),
        "{}",
        out.stdout
    );
    assert_eq!(
        env.backups()
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        [a.clone(), c.clone()]
    );
    assert_eq!(
        bucket_keys(emu, &env, &format!("base/{b}/")),
        Vec::<String>::new()
    );
    assert!(!bucket_keys(emu, &env, &format!("base/{a}/")).is_empty());
    let after = archived_segments(emu, &env);
    for s in &before {
        let kept = (a_begin.as_str()..=a_end.as_str()).contains(&s.as_str())
            || s.as_str() >= c_begin.as_str();
        assert_eq!(
            after.contains(s),
            kept,
            "{kind:?}: {s} (A has {a_begin} to {a_end}, C begins at {c_begin})"
        );
    }
    assert!(!after.contains(&b_begin));

    // Released, A goes at the next cron, with its WAL.
    env.run(&["keep", "main", &a, "--release"]).ok();
    let out = env.run(&["-f", "json", "cron"]);
    assert_eq!(out.code, 0, "{kind:?}: {out:?}");
    assert_eq!(
        out.json()[0]["deleted_backups"],
        serde_json::json!([a]),
        "{}",
        out.stdout
    );
    assert_eq!(
        bucket_keys(emu, &env, &format!("base/{a}/")),
        Vec::<String>::new()
    );
    let left = archived_segments(emu, &env);
    assert!(
        left.iter().all(|s| s.as_str() >= c_begin.as_str()),
        "{kind:?}: {left:?}"
    );
    assert!(left.contains(&c_begin));

    // verify-backup: a good backup passes; one byte changed in its object is found and named.
    cluster.psql("CHECKPOINT");
    let rel = cluster.psql("SELECT pg_relation_filepath('t')");
    let out = env.run(&["verify-backup", "main", &c]);
    assert_eq!(out.code, 0, "{kind:?}: {out:?}");
    assert!(out.stdout.contains("is intact"), "{}", out.stdout);
    let store = env.store("base");
    let key = format!("{c}/data/base.tar");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut store.get(&key).unwrap(), &mut tar).unwrap();
    let (offset, size) = pgbak_tests::tar_entry(&tar, &rel).expect("table file in base.tar");
    tar[offset + size / 2] ^= 0x01;
    let mut w = store.put(&key).unwrap();
    std::io::Write::write_all(&mut w, &tar).unwrap();
    w.commit(CommitMode::Replace).unwrap();
    let out = env.run(&["verify-backup", "main", &c]);
    assert_eq!(out.code, 1, "{kind:?}: {out:?}");
    assert!(
        out.stdout.contains(&format!(
            "checksum mismatch for file \"{rel}\" (data/base.tar)"
        )),
        "{kind:?}: {}",
        out.stdout
    );

    // delete removes a backup from the bucket (C is the last one: no minimum_redundancy here).
    let d = backup();
    env.run(&["delete", "main", &c]).ok();
    assert_eq!(
        bucket_keys(emu, &env, &format!("base/{c}/")),
        Vec::<String>::new()
    );
    assert_eq!(env.backups(), [(d.clone(), "DONE".to_string())]);
}

/// `backup_method = local-to-cloud` on a server that does not archive: receive-wal streams its
/// WAL and its archiver stores each finished segment in the bucket; a lz4 backup goes to the
/// bucket too; a point-in-time recovery from there gives back the rows of the moment.
fn local_to_cloud_with_wal_streamed_into_the_bucket(kind: Kind) {
    let emu = Emulator::shared(kind);
    let env = CloudEnv::new(emu);
    let mut cluster = Cluster::init(ClusterOptions {
        env: env.env.clone(),
        ..Default::default()
    });
    env.write_config(
        &cluster,
        "backup_method = local-to-cloud\nstreaming_archiver = on\nslot_name = pgbak\n\
         create_slot = auto\ncompression = zstd\nbackup_compression = lz4\n",
    );
    cluster.start_now();

    let log = env.pgbak.dir.path().join("receive-wal.log");
    let mut receiver = command_as_owner(pgbak_bin())
        .arg("-c")
        .arg(&env.pgbak.config)
        .args(["--log-level", "info", "receive-wal", "main"])
        .envs(env.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start receive-wal");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("starting WAL streaming")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{kind:?}: receive-wal did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 5000);
    let backup = env.backup();
    assert_eq!(backup["compression"], "lz4", "{backup}");
    let id = backup["backup_id"].as_str().unwrap().to_string();
    let shown = env
        .run(&["-f", "json", "show-backup", "main", &id])
        .ok()
        .json();
    assert_eq!(shown["files"][0]["name"], "base.tar.lz4", "{shown}");

    insert(&cluster, 5001, 5100);
    std::thread::sleep(Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(Duration::from_millis(20));
    insert(&cluster, 5101, 5200);
    cluster.psql("DELETE FROM t WHERE id <= 100");
    env.switch_wal_archived();

    // The WAL is in the bucket, compressed; nothing of it stays in a local archive.
    let segments = archived_segments(emu, &env);
    assert!(segments.len() >= 2, "{kind:?}: {segments:?}");
    assert!(
        !env.pgbak.server_dir().join("wals").exists(),
        "{kind:?}: a local WAL archive was made"
    );

    let r = env.recover_and_start(
        &id,
        "streamed",
        &[
            "--target-time",
            &target_time,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_time, "{kind:?}: recovery to time {target_time}");
    drop(r);

    let out = env.run(&["receive-wal", "main", "--stop"]).ok();
    assert!(out.stdout.contains("Stopped receive-wal"), "{out:?}");
    let status = receiver.wait().unwrap();
    assert!(
        status.success(),
        "{kind:?}: receive-wal exited with {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for secret in pgbak_tests::cloud::SECRETS {
        assert!(!text.contains(secret), "receive-wal logged a secret");
    }
}

/// The commands the round trip leaves out, on the bucket: `check-backup`, `rebuild-xlogdb`
/// (the index made again from a listing), recovery to a transaction id and to the end of the
/// backup, and `put-wal` (what a database host's `wal-archive` sends) into a repository of its
/// own.
fn check_backup_put_wal_rebuild_and_other_targets_on_the_bucket(kind: Kind) {
    let emu = Emulator::shared(kind);
    let env = CloudEnv::new(emu);
    let cluster = env.cluster("compression = lz4\nbackup_compression = gzip\n");
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    insert(&cluster, 1, 1000);
    let id = env.backup()["backup_id"].as_str().unwrap().to_string();
    let at_backup = ids(&cluster);
    insert(&cluster, 1001, 1100);
    let xid = cluster.psql("INSERT INTO t (id, v) VALUES (1101, 'x') RETURNING xmin::text");
    let at_xid = ids(&cluster);
    insert(&cluster, 1102, 1200);
    env.switch_wal_archived();

    let out = env.run(&["check-backup", "main", &id]);
    assert_eq!(out.code, 0, "{kind:?}: {out:?}");
    assert!(
        out.stdout.contains("are archived (status DONE)"),
        "{}",
        out.stdout
    );

    let segments = archived_segments(emu, &env);
    let rebuilt = env
        .run(&["-f", "json", "rebuild-xlogdb", "main"])
        .ok()
        .json();
    assert!(
        rebuilt["entries"].as_u64().unwrap() >= segments.len() as u64,
        "{kind:?}: {rebuilt} for {segments:?}"
    );
    assert_eq!(rebuilt["unknown"], serde_json::json!([]), "{rebuilt}");
    assert_eq!(rebuilt["unreadable"], serde_json::json!([]), "{rebuilt}");

    let r = env.recover_and_start(
        &id,
        "by_xid",
        &[
            "--target-xid",
            &xid,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_xid, "{kind:?}: recovery to xid {xid}");
    drop(r);
    let r = env.recover_and_start(
        &id,
        "immediate",
        &["--target-immediate", "--target-action", "promote"],
    );
    assert_eq!(
        ids(&r),
        at_backup,
        "{kind:?}: recovery to the end of the backup"
    );
    drop(r);

    // put-wal: a segment of this server, with its MD5SUMS, into another repository.
    let name = segments.iter().next_back().unwrap().clone();
    let fetched = env.pgbak.restore_dir("fetched");
    env.run(&["get-wal", "main", &name, fetched.to_str().unwrap()])
        .ok();
    let bytes = std::fs::read(&fetched).unwrap();
    let other = CloudEnv::new(emu);
    other.write_config_without_server("compression = zstd\n");
    let input = put_wal_input(
        &name,
        &bytes,
        Some(&format!("{} *{name}\n", md5_hex(&bytes))),
    );
    let mut child = command_as_owner(pgbak_bin())
        .arg("-c")
        .arg(&other.pgbak.config)
        .args(["put-wal", "main"])
        .envs(other.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    let out = PgbakOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    pgbak_tests::cloud::assert_no_secret("put-wal", &out);
    assert_eq!(out.code, 0, "{kind:?}: {out:?}");
    assert!(
        archived_segments(emu, &other).contains(&name),
        "{kind:?}: put-wal stored nothing"
    );
    let back = other.pgbak.restore_dir("back");
    other
        .run(&["get-wal", "main", &name, back.to_str().unwrap()])
        .ok();
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "{kind:?}: put-wal changed the segment"
    );
}
