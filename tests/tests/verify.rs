//! `verify-backup`, `check-backup` and `generate-manifest` on real backups: a clean plain backup
//! and a clean tar+zstd backup pass; one flipped byte in one data file is found and the file
//! named, in both formats; a generated manifest is accepted by PostgreSQL's `pg_verifybackup`
//! and matches the one the server wrote.

use pgbak_tests::{
    command_as_owner, pg_bin, postgres_tempdir, run_ok, Cluster, ClusterOptions, PgbakEnv,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn backup(env: &PgbakEnv) -> String {
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE");
    out.json()["backup_id"].as_str().unwrap().to_string()
}

fn data_dir(env: &PgbakEnv, id: &str) -> PathBuf {
    env.server_dir().join("base").join(id).join("data")
}

/// A tablespace with a table in it, so that `pg_tblspc/<oid>/` files are part of every backup.
fn with_tablespace(cluster: &Cluster) -> tempfile::TempDir {
    let dir = postgres_tempdir();
    cluster.psql(&format!(
        "CREATE TABLESPACE ts LOCATION '{}'",
        dir.path().display()
    ));
    cluster.psql("CREATE TABLE in_ts TABLESPACE ts AS SELECT g FROM generate_series(1, 1000) g");
    dir
}

fn flip(bytes: &mut [u8], at: usize) {
    bytes[at] ^= 0x01;
}

/// path -> (size, checksum) of a manifest's files.
fn manifest_files(path: &Path) -> BTreeMap<String, (u64, String)> {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    m["Files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["Path"].as_str().unwrap().to_string(),
                (
                    f["Size"].as_u64().unwrap(),
                    f["Checksum"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn plain_backups_are_verified_and_a_flipped_byte_is_named() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
    );
    let _ts = with_tablespace(&cluster);
    cluster.psql("CHECKPOINT");
    let rel = cluster.psql("SELECT pg_relation_filepath('t')");
    let id = backup(&env);
    let data = data_dir(&env, &id);

    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("is intact"), "{}", out.stdout);
    let ts_rel = cluster.psql("SELECT pg_relation_filepath('in_ts')");
    assert!(ts_rel.starts_with("pg_tblspc/"), "{ts_rel}");
    assert!(
        manifest_files(&data.join("backup_manifest")).contains_key(&ts_rel),
        "the manifest lists tablespace files under pg_tblspc/"
    );
    let report = env
        .run(&["-f", "json", "verify-backup", "main", "latest"])
        .ok()
        .json();
    assert!(report["files_checked"].as_u64().unwrap() > 900, "{report}");
    assert_eq!(report["problems"], serde_json::json!([]));
    let wal = env.run(&["check-backup", "main", &id]);
    assert_eq!(wal.code, 0, "{wal:?}");
    assert!(
        wal.stdout.contains("are archived (status DONE)"),
        "{}",
        wal.stdout
    );

    // One flipped byte in the table's file.
    let file = data.join(&rel);
    let original = std::fs::read(&file).unwrap();
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    flip(&mut bytes, middle);
    std::fs::write(&file, &bytes).unwrap();
    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("checksum mismatch for file \"{rel}\" (data)")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(1 problem(s);"), "{}", out.stdout);
    let j = env
        .run(&["-f", "json", "verify-backup", "main", &id])
        .json();
    assert_eq!(j["problems"][0]["problem"], "checksum_mismatch");
    assert_eq!(j["problems"][0]["path"], rel.as_str());
    std::fs::write(&file, &original).unwrap();

    // A file gone and a file added are named too; the manifest itself is checked.
    std::fs::rename(data.join("PG_VERSION"), data.join("PG_VERSION.moved")).unwrap();
    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("\"PG_VERSION\" is present in the manifest but not in the backup"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "\"PG_VERSION.moved\" is present in the backup (data) but not in the manifest"
        ),
        "{}",
        out.stdout
    );
    std::fs::rename(data.join("PG_VERSION.moved"), data.join("PG_VERSION")).unwrap();
    let manifest = data.join("backup_manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let tampered = text.replacen("\"Size\": ", "\"Size\": 1", 1);
    std::fs::write(&manifest, &tampered).unwrap();
    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("manifest checksum mismatch"),
        "{}",
        out.stdout
    );
    std::fs::write(&manifest, &text).unwrap();
    assert_eq!(env.run(&["verify-backup", "main", &id]).code, 0);

    // generate-manifest: refused while a manifest exists; once removed, the generated one
    // matches the server's and pg_verifybackup accepts it.
    let refused = env.run(&["generate-manifest", "main", &id]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("already has a manifest"),
        "{}",
        refused.stderr
    );
    let server_files = manifest_files(&manifest);
    std::fs::remove_file(&manifest).unwrap();
    let missing = env.run(&["verify-backup", "main", &id]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("generate-manifest"),
        "{}",
        missing.stderr
    );
    env.run(&["generate-manifest", "main", &id]).ok();
    assert_eq!(manifest_files(&manifest), server_files);
    let verifybackup = run_ok(
        command_as_owner(pg_bin("pg_verifybackup"))
            .arg("-n")
            .arg(&data),
    );
    assert!(
        String::from_utf8_lossy(&verifybackup.stdout).contains("successfully verified"),
        "{verifybackup:?}"
    );
    assert_eq!(env.run(&["verify-backup", "main", &id]).code, 0);
}

#[test]
fn zstd_tar_backups_are_verified_and_a_flipped_byte_is_named() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = zstd\n", ClusterOptions::default());
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
    );
    let _ts = with_tablespace(&cluster);
    cluster.psql("CHECKPOINT");
    let rel = cluster.psql("SELECT pg_relation_filepath('t')");
    let id = backup(&env);
    let base = data_dir(&env, &id).join("base.tar.zst");
    let oid = cluster.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'");
    assert!(data_dir(&env, &id).join(format!("{oid}.tar.zst")).is_file());
    assert!(base.is_file());

    // Every stored object has its size and CRC-32C in the record (archives are compressed
    // without a frame checksum; this is what catches damage to them).
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data_dir(&env, &id).with_file_name("backup.json")).unwrap(),
    )
    .unwrap();
    let files = info["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in files {
        let bytes = std::fs::read(data_dir(&env, &id).join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(f["size"], bytes.len() as u64, "{f}");
        assert_eq!(f["crc32c"], crc32c::crc32c(&bytes), "{f}");
    }

    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = env
        .run(&["-f", "json", "verify-backup", "main", &id])
        .ok()
        .json();
    assert_eq!(report["backup_format"], "tar");
    assert!(
        report["bytes_read"].as_u64().unwrap() < report["bytes_checked"].as_u64().unwrap(),
        "compressed bytes read, more checked: {report}"
    );

    // Flip one byte inside the table's file within the tar, and compress again.
    let original = std::fs::read(&base).unwrap();
    let mut tar = zstd::decode_all(&original[..]).unwrap();
    let (offset, size) = pgbak_tests::tar_entry(&tar, &rel).expect("table file in base.tar");
    assert!(size > 8192);
    flip(&mut tar, offset + size / 2);
    std::fs::write(&base, zstd::encode_all(&tar[..], 1).unwrap()).unwrap();
    // Damage before compression (the record matches the stored bytes): only the manifest's
    // checksums can catch it.
    pgbak_tests::rerecord_archive(&base);
    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "checksum mismatch for file \"{rel}\" (data/base.tar.zst)"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(1 problem(s);"), "{}", out.stdout);

    // A byte flipped in the compressed stream itself is caught as well.
    std::fs::write(&base, &original).unwrap();
    pgbak_tests::rerecord_archive(&base);
    let mut damaged = original.clone();
    flip(&mut damaged, original.len() / 2);
    std::fs::write(&base, &damaged).unwrap();
    let out = env.run(&["verify-backup", "main", &id]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("data/base.tar.zst"), "{}", out.stdout);
    // ...and refused by a restore, which names the stream.
    let dest = postgres_tempdir();
    let ts_dest = postgres_tempdir();
    let relocate = format!("ts:{}", ts_dest.path().display());
    let out = env.run(&[
        "recover",
        "main",
        &id,
        dest.path().join("pgdata").to_str().unwrap(),
        "--tablespace",
        &relocate,
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("base.tar.zst"), "{}", out.stderr);

    std::fs::write(&base, &original).unwrap();
    assert_eq!(env.run(&["verify-backup", "main", &id]).code, 0);
}
