//! Block-level incremental backups on PostgreSQL 17 and 18 (`backup --incremental`), restored by
//! pgbak's own combine of the chain (no `pg_combinebackup`).
//!
//! - `chain`: full -> incremental -> incremental with writes between (inserts, updates, deletes,
//!   a new table, a table rewritten by VACUUM FULL), each part in a tablespace that the restores
//!   relocate; the chain's links in `show-backup` and `list-backups`; `verify-backup` accepts
//!   the incrementals; the newest restores (two archives at a time) to a time after it, the
//!   middle one to a time between the two incrementals, row for row, and the restored servers
//!   start; the newest is also restored through `--remote-ssh-command` (combined here, shipped
//!   with rsync) on 17.
//! - `refusals`: an incremental relative to a backup that does not exist, to one taken while
//!   `summarize_wal` was off, or while `summarize_wal` is off, is refused before anything is
//!   written; a restore of an incremental whose parent is gone from the catalogue is refused
//!   before anything is written; a damaged block in a stored incremental file is found by
//!   `verify-backup`.

use pgbak_tests::{postgres_tempdir, recover_backup_and_start, Cluster, ClusterOptions, PgbakEnv};
use std::path::Path;
use std::time::Duration;

mod chain {
    #[test]
    fn pg17() {
        super::chain(17)
    }
    #[test]
    fn pg18() {
        super::chain(18)
    }
}

pgbak_tests::on_every_cloud!(chain_in_the_cloud);

/// A zstd chain full -> incremental in an object store (PostgreSQL 17), restored to a time after
/// the incremental with WAL through get-wal: the combine reads every stream from the store.
fn chain_in_the_cloud(kind: pgbak_tests::emulators::Kind) {
    use pgbak_tests::cloud::CloudEnv;
    use pgbak_tests::emulators::Emulator;
    let env = CloudEnv::new(Emulator::shared(kind));
    let cluster = env.cluster_with("backup_compression = zstd\n", options(17, true));
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    cluster.psql("VACUUM FREEZE t");
    let full = env.backup()["backup_id"].as_str().unwrap().to_string();
    insert(&cluster, 20001, 21000);
    cluster.psql("UPDATE t SET v = 'changed' WHERE id % 1000 = 0");
    let incr = env
        .run(&[
            "-f",
            "json",
            "backup",
            "main",
            "--incremental",
            &full,
            "--wait",
            "--wait-timeout",
            "120",
        ])
        .ok()
        .json();
    assert_eq!(incr["status"], "DONE", "{incr}");
    assert_eq!(incr["parent_backup_id"], full.as_str(), "{incr}");
    let id = incr["backup_id"].as_str().unwrap().to_string();
    insert(&cluster, 21001, 21100);
    let target_time = time_between(&cluster);
    let at_time = cluster.psql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t");
    insert(&cluster, 21101, 21200);
    env.switch_wal_archived();
    let r = env.recover_and_start(
        &id,
        "from_chain",
        &[
            "--target-time",
            &target_time,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(
        r.psql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t"),
        at_time,
        "{kind:?}: recovery to {target_time}"
    );
}

mod refusals {
    #[test]
    fn pg17() {
        super::refusals(17)
    }
    #[test]
    fn pg18() {
        super::refusals(18)
    }
}

fn options(major: u32, summarize: bool) -> ClusterOptions {
    ClusterOptions {
        major: Some(major),
        extra_conf: vec![format!(
            "summarize_wal = {}",
            if summarize { "on" } else { "off" }
        )],
        ..Default::default()
    }
}

/// Table `t` (in tablespace `ts` at `tablespace`) with rows 1..=20000, and tables `u` and `n`
/// (empty) in the default tablespace.
fn fill(cluster: &Cluster, tablespace: &Path) {
    cluster.psql(&format!(
        "CREATE TABLESPACE ts LOCATION '{}'",
        tablespace.display()
    ));
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text) TABLESPACE ts");
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    cluster.psql("CREATE TABLE u (id bigint PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO u SELECT g, repeat('u', 200) FROM generate_series(1, 5000) g");
    cluster.psql("CREATE TABLE n (id int)");
    // Hint bits set later by a read would log whole pages (data checksums, the default from
    // 18 on) and make every block of the tables look changed to the next incremental backup.
    cluster.psql("VACUUM FREEZE t, u");
}

fn insert(cluster: &Cluster, from: i64, to: i64) {
    cluster.psql(&format!(
        "INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

/// Every row of every test table, as text: what a restore must give back exactly.
fn rows(cluster: &Cluster) -> String {
    let mut out = cluster.psql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t");
    out.push('|');
    out.push_str(&cluster.psql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM u"));
    out.push('|');
    out.push_str(&cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM n"));
    out
}

fn time_between(cluster: &Cluster) -> String {
    std::thread::sleep(Duration::from_millis(20));
    let at = cluster.psql("SELECT clock_timestamp()::text");
    std::thread::sleep(Duration::from_millis(20));
    at
}

/// A backup with `args` that must end DONE; its id and report.
fn backup(env: &PgbakEnv, args: &[&str]) -> (String, serde_json::Value) {
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
    let info = out.json();
    assert_eq!(info["status"], "DONE", "{}", out.stdout);
    (info["backup_id"].as_str().unwrap().to_string(), info)
}

fn show(env: &PgbakEnv, id: &str) -> serde_json::Value {
    env.run(&["-f", "json", "show-backup", "main", id])
        .ok()
        .json()
}

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

/// Restores `id` to `target_time` with `ts` relocated and two archives at a time (on this host,
/// or through `ssh` as a remote recovery), starts it and returns its rows.
fn restored_rows(
    env: &PgbakEnv,
    id: &str,
    folder: &str,
    target_time: &str,
    ssh: Option<&str>,
) -> String {
    let moved = format!("ts:{}", env.restore_dir(&format!("{folder}-ts")).display());
    let dest = env.restore_dir(folder);
    let dest_s = dest.display().to_string();
    let mut args = vec![
        "-f",
        "json",
        "recover",
        "main",
        id,
        &dest_s,
        "--target-time",
        target_time,
        "--target-action",
        "promote",
        "--tablespace",
        &moved,
        "--jobs",
        "2",
    ];
    if let Some(ssh) = ssh {
        args.extend(["--remote-ssh-command", ssh]);
    }
    let report = env.run(&args).ok().json();
    if ssh.is_none() {
        // The combined files are counted at their full length.
        let restore = &report["restore"];
        assert!(
            restore["files_written"].as_u64().unwrap() > 500
                && restore["bytes_written"].as_u64().unwrap() > 20 << 20,
            "{folder}: {report}"
        );
    }
    let r = Cluster::start_existing(&dest, &["archive_mode=off"]);
    r.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(
        r.psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"),
        moved["ts:".len()..],
        "{folder}: tablespace relocated"
    );
    assert_eq!(
        r.psql("SELECT count(*) FROM t WHERE v <> md5(id::text) AND v <> 'changed'"),
        "0"
    );
    rows(&r)
}

fn chain(major: u32) {
    let env = PgbakEnv::new();
    let origin = env.cluster(
        "compression = zstd\nbackup_compression = zstd\n",
        options(major, true),
    );
    let ts = postgres_tempdir();
    fill(&origin, ts.path());
    let (full, full_info) = backup(&env, &[]);
    assert_eq!(full_info["summarize_wal"], true, "{full_info}");
    assert!(full_info["parent_backup_id"].is_null(), "{full_info}");

    // Writes between the full backup and the first incremental: new rows, changed and deleted
    // rows in old blocks, and a new table.
    insert(&origin, 20001, 21000);
    origin.psql("UPDATE t SET v = 'changed' WHERE id % 97 = 0");
    origin.psql("DELETE FROM u WHERE id % 3 = 0");
    origin.psql("DROP TABLE n");
    origin.psql("CREATE TABLE n AS SELECT g AS id FROM generate_series(1, 300) g");
    let (incr1, info1) = backup(&env, &["--incremental", "latest-full"]);
    assert_eq!(info1["parent_backup_id"], full.as_str(), "{info1}");
    assert!(
        info1["data_size"].as_u64().unwrap() < full_info["data_size"].as_u64().unwrap(),
        "an incremental backup is smaller than its parent: {info1} {full_info}"
    );

    // Between the two incrementals: more changes, and `u` rewritten in a new file.
    insert(&origin, 21001, 22000);
    origin.psql("DELETE FROM t WHERE id BETWEEN 500 AND 900");
    origin.psql("VACUUM FULL u");
    let between = time_between(&origin);
    let at_between = rows(&origin);
    origin.psql("UPDATE t SET v = 'changed' WHERE id % 89 = 0");
    origin.psql("INSERT INTO n SELECT g FROM generate_series(301, 400) g");
    let (incr2, info2) = backup(&env, &["--incremental", "latest"]);
    assert_eq!(info2["parent_backup_id"], incr1.as_str(), "{info2}");

    insert(&origin, 22001, 22500);
    origin.psql("TRUNCATE n");
    let after = time_between(&origin);
    let at_after = rows(&origin);
    insert(&origin, 22501, 23000);
    env.switch_wal_archived();

    // The chain's links, from both ends, and the types.
    let f = show(&env, &full);
    assert_eq!(f["backup_type"], "full", "{f}");
    assert_eq!(f["children_backup_ids"], serde_json::json!([incr1]), "{f}");
    let m = show(&env, &incr1);
    assert_eq!(m["backup_type"], "incremental", "{m}");
    assert_eq!(m["parent_backup_id"], full.as_str(), "{m}");
    assert_eq!(m["children_backup_ids"], serde_json::json!([incr2]), "{m}");
    let listed = env.run(&["-f", "json", "list-backups", "main"]).ok().json();
    let last = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backup_id"] == incr2.as_str())
        .unwrap();
    assert_eq!(last["backup_type"], "incremental", "{last}");
    assert_eq!(last["parent_backup_id"], incr1.as_str(), "{last}");
    let console = env.run(&["list-backups", "main"]).ok().stdout;
    assert!(
        console.contains(&format!("incremental of {incr1}")),
        "{console}"
    );

    verified(&env, &incr1);
    verified(&env, &incr2);

    assert_eq!(restored_rows(&env, &incr2, "after", &after, None), at_after);
    assert_eq!(
        restored_rows(&env, &incr1, "between", &between, None),
        at_between
    );
    // The same chain shipped to another host: combined on this one, sent with rsync.
    if major == 17 {
        let sshd = pgbak_tests::Sshd::start();
        let ssh = sshd.ssh_command();
        assert_eq!(
            restored_rows(&env, &incr2, "remote", &after, Some(&ssh)),
            at_after
        );
    }
}

/// Entries of an uncompressed tar: (name, data offset, size).
fn tar_entries(tar: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).trim().to_string()
        };
        let size = usize::from_str_radix(&field(124..136), 8).unwrap_or(0);
        out.push((field(0..100), pos + 512, size));
        pos += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn refused(env: &PgbakEnv, args: &[&str], expected: &str) {
    let before = env.backups();
    let out = env.run(args);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    assert_eq!(env.backups(), before, "nothing written by {args:?}");
}

fn refusals(major: u32) {
    let env = PgbakEnv::new();
    // The default format: full backups are plain trees, incremental ones uncompressed tar
    // streams (in which the test damages a block in place).
    let origin = env.cluster("", options(major, false));
    let ts = postgres_tempdir();
    fill(&origin, ts.path());
    let (without, info) = backup(&env, &[]);
    assert_eq!(info["summarize_wal"], false, "{info}");

    refused(
        &env,
        &["backup", "main", "--incremental", "latest"],
        "summarize_wal is off on the server",
    );
    origin.psql("ALTER SYSTEM SET summarize_wal = on");
    origin.psql("SELECT pg_reload_conf()");
    origin.wait_for("SHOW summarize_wal", "on", Duration::from_secs(30));
    refused(
        &env,
        &["backup", "main", "--incremental", &without],
        &format!("summarize_wal was not on when backup {without} was taken"),
    );
    refused(
        &env,
        &["backup", "main", "--incremental", "20000101T000000"],
        "the parent backup 20000101T000000 does not exist",
    );

    let (full, _) = backup(&env, &[]);
    insert(&origin, 20001, 21000);
    origin.psql("UPDATE t SET v = 'changed' WHERE id % 50 = 0");
    origin.psql("UPDATE u SET v = 'w' WHERE id % 1000 = 0");
    let (incr1, _) = backup(&env, &["--incremental", &full]);
    insert(&origin, 21001, 21500);
    let (incr2, info2) = backup(&env, &["--incremental", &incr1]);
    assert_eq!(info2["backup_format"], "tar", "{info2}");
    env.switch_wal_archived();
    let at_end = rows(&origin);

    // A chain whose full backup is a plain tree restores too.
    let moved = format!("ts:{}", env.restore_dir("plain-root-ts").display());
    let r = recover_backup_and_start(&env, &incr2, "plain-root", &["--tablespace", &moved]);
    assert_eq!(rows(&r), at_end);
    drop(r);

    // A damaged block of an incremental file is found by verify-backup.
    let tar_path = env
        .server_dir()
        .join("base")
        .join(&incr1)
        .join("data/base.tar");
    let mut tar = std::fs::read(&tar_path).unwrap();
    let (name, offset, size) = tar_entries(&tar)
        .into_iter()
        .find(|(n, _, size)| n.contains("/INCREMENTAL.") && *size > 8192)
        .expect("an incremental file with blocks");
    let clean = tar.clone();
    tar[offset + size - 100] ^= 0xff;
    std::fs::write(&tar_path, &tar).unwrap();
    let out = env.run(&["-f", "json", "verify-backup", "main", &incr1]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&name), "{name}: {}", out.stdout);
    assert!(out.stdout.contains("checksum"), "{}", out.stdout);
    std::fs::write(&tar_path, &clean).unwrap();
    verified(&env, &incr1);

    // The parent of an incremental gone from the catalogue: its restore is refused and writes
    // nothing.
    let gone = env.server_dir().join("base").join(&incr1);
    let aside = env.dir.path().join("aside");
    std::fs::rename(&gone, &aside).unwrap();
    let dest = env.restore_dir("orphan");
    let out = env.run(&["recover", "main", &incr2, &dest.display().to_string()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("its parent {incr1} (of {incr2}) does not exist")),
        "{}",
        out.stderr
    );
    assert!(!dest.exists(), "nothing written for a broken chain");
    refused(
        &env,
        &["backup", "main", "--incremental", &incr1],
        &format!("the parent backup {incr1} does not exist"),
    );
    std::fs::rename(&aside, &gone).unwrap();

    // keep applies to full backups only; deleting a backup deletes its incremental descendants.
    let out = env.run(&["keep", "--target", "full", "main", &incr1]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("it is incremental"), "{}", out.stderr);
    let before: Vec<String> = env.backups().into_iter().map(|(id, _)| id).collect();
    assert!(before.contains(&incr2));
    env.run(&["delete", "main", &incr1]).ok();
    let after: Vec<String> = env.backups().into_iter().map(|(id, _)| id).collect();
    assert!(
        !after.contains(&incr1) && !after.contains(&incr2),
        "{after:?}"
    );
    assert!(after.contains(&full), "{after:?}");
    assert_eq!(
        show(&env, &full)["children_backup_ids"],
        serde_json::json!([])
    );

    // A gap in the WAL summaries after the parent: summarize_wal off for a while, long enough
    // for the server to recycle the WAL it did not summarise.
    origin.psql("ALTER SYSTEM SET summarize_wal = off");
    origin.psql("SELECT pg_reload_conf()");
    origin.wait_for("SHOW summarize_wal", "off", Duration::from_secs(30));
    for i in 0..6 {
        insert(&origin, 30000 + i * 100, 30000 + i * 100 + 99);
        origin.psql("SELECT pg_switch_wal()");
        origin.psql("CHECKPOINT");
    }
    origin.psql("ALTER SYSTEM SET summarize_wal = on");
    origin.psql("SELECT pg_reload_conf()");
    origin.wait_for("SHOW summarize_wal", "on", Duration::from_secs(30));
    refused(
        &env,
        &["backup", "main", "--incremental", &full],
        "the WAL summaries of timeline 1 have a gap",
    );
}
