//! `backup_compression_location = server`: PostgreSQL compresses the tar archives, pgbak stores
//! them as they arrive (tar) or decompresses them on arrival (plain), and either way the backup
//! restores to an exact point.

use pgbak_tests::{recover_and_start, ClusterOptions, PgbakEnv};

/// (backup_compression, backup_compression_format, extra settings).
const CASES: &[(&str, &str, &str)] = &[
    ("zstd", "tar", "backup_compression_workers = 2\n"),
    ("lz4", "tar", ""),
    ("zstd", "plain", "backup_compression_level = 3\n"),
];

fn settings(compression: &str, format: &str, extra: &str) -> String {
    format!(
        "backup_compression = {compression}\nbackup_compression_format = {format}\n\
         backup_compression_location = server\n{extra}"
    )
}

#[test]
fn server_compressed_backups_restore_exactly() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
    let mut next = 0;
    for (compression, format, extra) in CASES {
        env.write_config(&cluster, &settings(compression, format, extra));
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            next + 1,
            next + 5000
        ));
        next += 5000;
        let info = env.backup_wait().json();
        assert_eq!(info["status"], "DONE", "{compression} {format}: {info}");
        let id = info["backup_id"].as_str().unwrap().to_string();
        let data = env.server_dir().join("base").join(&id).join("data");
        if *format == "plain" {
            assert_eq!(info["compression"], "none", "{info}");
            assert!(data.join("PG_VERSION").is_file(), "plain: a PGDATA tree");
            assert!(data.join("backup_label").is_file());
            assert!(data.join("backup_manifest").is_file());
        } else {
            assert_eq!(info["compression"], *compression, "{info}");
            let (suffix, magic): (&str, &[u8]) = match *compression {
                "zstd" => (".zst", &[0x28, 0xb5, 0x2f, 0xfd]),
                _ => (".lz4", &[0x04, 0x22, 0x4d, 0x18]),
            };
            let base = data.join(format!("base.tar{suffix}"));
            let stored = std::fs::read(&base).unwrap();
            assert!(
                stored.starts_with(magic),
                "{}: not a {compression} stream",
                base.display()
            );
            assert!(!data.join("base.tar").exists());
            // The manifest is never compressed.
            let manifest = std::fs::read_to_string(data.join("backup_manifest")).unwrap();
            assert!(manifest.starts_with('{'), "manifest: {manifest:.40}");
            let label = info["backup_label"].as_str().unwrap_or_default();
            assert!(label.contains("START WAL LOCATION"), "{info}");
        }
        // The stored archives check against the server's manifest like client-compressed ones.
        let verified = env.run(&["verify-backup", "main", &id]);
        assert_eq!(
            verified.code, 0,
            "{compression} {format}: verify-backup failed"
        );

        // Rows written after the backup come back from the WAL archive, up to the target only.
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, 'after' FROM generate_series({}, {}) g",
            next + 1,
            next + 10
        ));
        next += 10;
        let lsn = cluster.psql("SELECT pg_current_wal_lsn()");
        let expected = cluster.psql("SELECT count(*), sum(id) FROM t");
        cluster.psql(&format!("INSERT INTO t VALUES (-{next}, 'not wanted')"));
        env.run(&["switch-wal", "main", "--archive", "--archive-timeout", "60"])
            .ok();

        let folder = format!("restore_{compression}_{format}");
        let r = recover_and_start(
            &env,
            &folder,
            &["--target-lsn", &lsn, "--target-action", "promote"],
        );
        assert_eq!(
            r.psql("SELECT count(*), sum(id) FROM t"),
            expected,
            "{compression} {format}"
        );
    }
}
