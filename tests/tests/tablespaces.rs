//! Tablespaces with the streaming (postgres) method: a cluster with two tablespaces backs up in
//! plain and in compressed tar format, and restores with one tablespace relocated.

use pgbak_tests::{give_to_owner, postgres_tempdir, recover_and_start, ClusterOptions, PgbakEnv};
use std::path::Path;

fn link_target(data: &Path, oid: &str) -> std::path::PathBuf {
    std::fs::read_link(data.join("pg_tblspc").join(oid)).unwrap()
}

#[test]
fn two_tablespaces_restore_relocated() {
    for (format, settings) in [("plain", ""), ("tar", "backup_compression = zstd\n")] {
        let env = PgbakEnv::new();
        let cluster = env.cluster(settings, ClusterOptions::default());
        let spaces = postgres_tempdir();
        let (one, two) = (spaces.path().join("one"), spaces.path().join("two"));
        for d in [&one, &two] {
            std::fs::create_dir(d).unwrap();
            give_to_owner(d);
        }
        cluster.psql(&format!(
            "CREATE TABLESPACE ts_one LOCATION '{}'",
            one.display()
        ));
        cluster.psql(&format!(
            "CREATE TABLESPACE ts_two LOCATION '{}'",
            two.display()
        ));
        cluster.psql("CREATE TABLE a (id int, v text) TABLESPACE ts_one");
        cluster.psql("CREATE TABLE b (id int, v text) TABLESPACE ts_two");
        cluster.psql("INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
        cluster.psql("INSERT INTO b SELECT g, md5(g::text) FROM generate_series(1, 30000) g");
        let info = env.backup_wait().json();
        assert_eq!(info["status"], "DONE", "{format}");
        assert_eq!(
            info["tablespaces"].as_array().unwrap().len(),
            2,
            "{format}: {info}"
        );
        cluster.psql("INSERT INTO a SELECT g, 'after' FROM generate_series(20001, 20100) g");
        let lsn = cluster.psql("SELECT pg_current_wal_lsn()");
        let expected =
            cluster.psql("SELECT (SELECT count(*) FROM a) || ',' || (SELECT count(*) FROM b)");
        cluster.psql("INSERT INTO b VALUES (-1, 'too late')");
        env.switch_wal_archived();
        let oid_one = cluster.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts_one'");
        let oid_two = cluster.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts_two'");

        // The originals are still in use: relocate one, and the other must go elsewhere too
        // since its original location is not empty (this is the same host).
        let new_places = postgres_tempdir();
        let (moved_one, moved_two) = (new_places.path().join("one"), new_places.path().join("two"));
        let t1 = format!("ts_one:{}", moved_one.display());
        let t2 = format!("ts_two:{}", moved_two.display());
        let folder = format!("restore_{format}");
        let restored = recover_and_start(
            &env,
            &folder,
            &[
                "--target-lsn",
                &lsn,
                "--target-action",
                "promote",
                "--tablespace",
                &t1,
                "--tablespace",
                &t2,
            ],
        );
        assert_eq!(
            restored.psql("SELECT (SELECT count(*) FROM a) || ',' || (SELECT count(*) FROM b)"),
            expected,
            "{format}: rows in both tablespaces"
        );
        let data = env.restore_dir(&folder);
        assert_eq!(
            link_target(&data, &oid_one),
            moved_one,
            "{format}: ts_one relocated"
        );
        assert_eq!(
            link_target(&data, &oid_two),
            moved_two,
            "{format}: ts_two relocated"
        );
        assert_eq!(
            restored.psql("SELECT spcname || '=' || pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts_one'"),
            format!("ts_one={}", moved_one.display())
        );
        // The source cluster's tablespaces were not touched by the restore.
        assert_eq!(cluster.psql("SELECT count(*) FROM b"), "30001");
    }
}

#[test]
fn relocation_into_a_non_empty_folder_is_refused() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    let spaces = postgres_tempdir();
    let one = spaces.path().join("one");
    std::fs::create_dir(&one).unwrap();
    give_to_owner(&one);
    cluster.psql(&format!(
        "CREATE TABLESPACE ts_one LOCATION '{}'",
        one.display()
    ));
    cluster.psql("CREATE TABLE a TABLESPACE ts_one AS SELECT 1 AS x");
    env.run(&["backup", "main", "--wait", "--wait-timeout", "120"])
        .ok();
    let dest = env.restore_dir("refused");
    // Without relocation the original location, in use, is not empty.
    let out = env.run(&["recover", "main", "latest", dest.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert!(!dest.exists(), "nothing was written");
    // A relative location is refused too.
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        dest.to_str().unwrap(),
        "--tablespace",
        "ts_one:relative/path",
    ]);
    assert_ne!(out.code, 0);
    assert!(!dest.exists());
}
