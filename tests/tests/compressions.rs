//! Every `backup_compression` and every WAL `compression` round-trips through a real server, and
//! PostgreSQL's own `pg_verifybackup` accepts a plain-format backup.

use pgbak_tests::{command_as_owner, pg_bin, recover_and_start, ClusterOptions, PgbakEnv};

/// (backup_compression, WAL compression) pairs covering every codec on both sides.
const CASES: &[(&str, &str)] = &[
    ("none", "none"),
    ("gzip", "gzip"),
    ("lz4", "lz4"),
    ("zstd", "zstd"),
    ("bzip2", "bzip2"),
    ("xz", "xz"),
    ("snappy", "snappy"),
];

/// First bytes each WAL compression must leave in the archive.
fn magic(c: &str) -> &'static [u8] {
    match c {
        "gzip" => &[0x1f, 0x8b],
        "bzip2" => b"BZh",
        "xz" => &[0xfd, b'7', b'z', b'X', b'Z', 0],
        "zstd" => &[0x28, 0xb5, 0x2f, 0xfd],
        "lz4" => &[0x04, 0x22, 0x4d, 0x18],
        "snappy" => &[0xff, 0x06, 0, 0, b's', b'N', b'a', b'P', b'p', b'Y'],
        _ => &[],
    }
}

fn settings(backup: &str, wal: &str) -> String {
    format!("backup_compression = {backup}\ncompression = {wal}\n")
}

#[test]
fn every_codec_round_trips() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(&settings("none", "none"), ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
    let mut next = 0;
    for (backup_c, wal_c) in CASES {
        env.write_config(&cluster, &settings(backup_c, wal_c));
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            next + 1,
            next + 1000
        ));
        next += 1000;
        let out = env.backup_wait();
        let info = out.json();
        assert_eq!(info["status"], "DONE");
        let id = info["backup_id"].as_str().unwrap().to_string();
        let data = env.server_dir().join("base").join(&id).join("data");
        if *backup_c == "none" {
            assert!(
                data.join("PG_VERSION").is_file(),
                "plain backup has a PGDATA tree"
            );
        } else {
            let suffix = match *backup_c {
                "gzip" => ".gz".to_string(),
                "bzip2" => ".bz2".to_string(),
                "zstd" => ".zst".to_string(),
                other => format!(".{other}"),
            };
            assert!(
                data.join(format!("base.tar{suffix}")).is_file(),
                "{backup_c}: base.tar{suffix} missing"
            );
        }
        // Rows written after the backup come back from WAL compressed with `wal_c`.
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, 'after' FROM generate_series({}, {}) g",
            next + 1,
            next + 10
        ));
        next += 10;
        let lsn = cluster.psql("SELECT pg_current_wal_lsn()");
        let expected = cluster.psql("SELECT count(*), sum(id) FROM t");
        cluster.psql(&format!("INSERT INTO t VALUES (-{next}, 'not wanted')"));
        let sw = env
            .run(&[
                "-f",
                "json",
                "switch-wal",
                "main",
                "--archive",
                "--archive-timeout",
                "60",
            ])
            .ok()
            .json();
        let seg = sw["segment"].as_str().unwrap().to_string();
        let stored =
            std::fs::read(env.server_dir().join("wals").join(&seg[..16]).join(&seg)).unwrap();
        assert!(
            stored.starts_with(magic(wal_c)),
            "{wal_c}: archived segment does not carry its magic"
        );

        let folder = format!("restore_{backup_c}_{wal_c}");
        let r = recover_and_start(
            &env,
            &folder,
            &["--target-lsn", &lsn, "--target-action", "promote"],
        );
        assert_eq!(
            r.psql("SELECT count(*), sum(id) FROM t"),
            expected,
            "backup {backup_c}, WAL {wal_c}"
        );
    }
}

#[test]
fn pg_verifybackup_accepts_a_plain_backup() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        "",
        ClusterOptions {
            data_checksums: true,
            ..Default::default()
        },
    );
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    );
    let info = env.backup_wait().json();
    let data = env
        .server_dir()
        .join("base")
        .join(info["backup_id"].as_str().unwrap())
        .join("data");
    assert!(data.join("backup_manifest").is_file());
    let out = command_as_owner(pg_bin("pg_verifybackup"))
        .arg("-n")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_verifybackup: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it notices damage, so the check above means something.
    let victim = std::fs::read_dir(data.join("base"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::read_dir(&victim)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.metadata().unwrap().len() > 0)
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let out = command_as_owner(pg_bin("pg_verifybackup"))
        .arg("-n")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "pg_verifybackup missed a flipped byte in {}",
        file.display()
    );
}
