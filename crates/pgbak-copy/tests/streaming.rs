//! Streaming backups of a real PostgreSQL cluster with one tablespace, in plain and tar formats,
//! checked with PostgreSQL's own `pg_verifybackup` and by extracting the tar backups again.

use pgbak_compress::{auto_decoder, Codec, Compression};
use pgbak_copy::{
    extract_tar, BackupDestination, CopyOutcome, CopyProgress, CopyStrategy, Error, ExtractOptions,
    StreamingCopy,
};
use pgbak_storage::{CommitMode, LocalStorage, ObjectMeta, ObjectWriter, StorageBackend};
use pgbak_tests::{pg_bin, postgres_tempdir, Cluster, ClusterOptions};
use pgbak_wal::{BaseBackupOptions, ConnParams};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A cluster with a tablespace holding a table, and a table in the default tablespace.
struct Fixture {
    cluster: Cluster,
    _ts_dir: tempfile::TempDir,
    ts_oid: u32,
}

fn fixture() -> Fixture {
    let cluster = Cluster::start(ClusterOptions::default());
    let ts_dir = postgres_tempdir();
    cluster.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts_dir.path().display()
    ));
    cluster.psql("CREATE TABLE in_ts (id int, t text) TABLESPACE ts1");
    cluster.psql("INSERT INTO in_ts SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g");
    cluster.psql("CREATE TABLE in_base AS SELECT g AS id FROM generate_series(1, 50000) g");
    let ts_oid = cluster
        .psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        .parse()
        .unwrap();
    Fixture {
        cluster,
        _ts_dir: ts_dir,
        ts_oid,
    }
}

fn options(tablespace_map: bool) -> BaseBackupOptions {
    BaseBackupOptions {
        label: "pgbak streaming test".into(),
        progress: true,
        fast_checkpoint: true,
        manifest: true,
        manifest_checksums: None,
        tablespace_map,
        max_rate_kbps: None,
        verify_checksums: true,
        wait_for_wal_archive: false,
        server_compression: None,
        incremental: false,
    }
}

fn strategy(cluster: &Cluster, tablespace_map: bool) -> StreamingCopy {
    StreamingCopy::new(
        ConnParams::resolve(&cluster.conninfo()).unwrap(),
        options(tablespace_map),
    )
}

#[derive(Default)]
struct Recorder {
    total: Option<u64>,
    done: Vec<u64>,
}

impl CopyProgress for Recorder {
    fn set_total(&mut self, bytes: Option<u64>) {
        self.total = bytes;
    }
    fn set_done(&mut self, bytes: u64) {
        self.done.push(bytes);
    }
}

/// Every path below `dir` with its size (0 for directories, the target for links), relative.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            let what = if ft.is_symlink() {
                "link".to_string()
            } else if ft.is_dir() {
                stack.push(e.path());
                "dir".to_string()
            } else {
                "file".to_string()
            };
            out.insert(rel, what);
        }
    }
    out
}

fn verify(data_dir: &Path) {
    let out = Command::new(pg_bin("pg_verifybackup"))
        .arg("-n")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_verifybackup failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_outcome(o: &CopyOutcome, f: &Fixture) {
    assert!(o.end_lsn >= o.start_lsn);
    assert_eq!(o.start_tli, 1);
    assert_eq!(o.wal_segment_size, 16 << 20);
    assert!(o.server_version_num >= 150000);
    assert_eq!(
        o.systemid,
        f.cluster
            .psql("SELECT system_identifier FROM pg_control_system()")
    );
    assert_eq!(o.tablespaces.len(), 1);
    assert_eq!(o.tablespaces[0].oid, Some(f.ts_oid));
    assert!(o.has_manifest);
    let label = o.backup_label.as_deref().unwrap();
    assert!(label.starts_with("START WAL LOCATION"), "{label}");
    assert!(label.contains("LABEL: pgbak streaming test"), "{label}");
    assert_eq!(o.bytes_written, o.files.iter().map(|f| f.size).sum::<u64>());
    assert!(o.bytes_received > 1 << 20);
}

/// Plain backup; returns its directory (data/ and tablespaces/<oid>/).
fn plain_backup(f: &Fixture, root: &Path) -> CopyOutcome {
    let dest = BackupDestination::Plain {
        data_dir: root.join("data"),
        tablespaces_root: root.join("tablespaces"),
    };
    let mut progress = Recorder::default();
    let o = strategy(&f.cluster, false)
        .copy(&dest, &mut progress)
        .unwrap();
    check_outcome(&o, f);
    assert!(progress.total.unwrap() > 1 << 20);
    assert!(!progress.done.is_empty());
    o
}

#[test]
fn plain_backup_passes_pg_verifybackup() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let o = plain_backup(&f, tmp.path());
    let data = tmp.path().join("data");
    for name in [
        "PG_VERSION",
        "backup_label",
        "backup_manifest",
        "global/pg_control",
    ] {
        assert!(data.join(name).is_file(), "{name} missing");
    }
    assert!(!data.join("tablespace_map").exists());
    let ts_root = tmp.path().join("tablespaces").join(f.ts_oid.to_string());
    assert_eq!(
        fs::read_link(data.join(format!("pg_tblspc/{}", f.ts_oid))).unwrap(),
        ts_root
    );
    assert!(fs::read_dir(&ts_root).unwrap().next().is_some());
    let names: Vec<_> = o.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, [f.ts_oid.to_string(), "data".to_string()]);
    assert_eq!(
        fs::read_to_string(data.join("backup_label")).unwrap(),
        o.backup_label.clone().unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(data.join("PG_VERSION"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    verify(&data);

    // A second backup into the same place is refused before anything is written.
    let dest = BackupDestination::Plain {
        data_dir: data.clone(),
        tablespaces_root: tmp.path().join("tablespaces"),
    };
    let err = strategy(&f.cluster, false)
        .copy(&dest, &mut pgbak_copy::NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::DestinationNotEmpty { .. }), "{err}");
}

#[test]
fn tar_backups_extract_to_the_plain_tree() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    plain_backup(&f, &tmp.path().join("plain"));
    let mut plain_tree = tree(&tmp.path().join("plain/data"));
    plain_tree.remove("backup_manifest");
    let plain_ts = tree(
        &tmp.path()
            .join("plain/tablespaces")
            .join(f.ts_oid.to_string()),
    );

    let storage = Arc::new(LocalStorage::new(tmp.path().join("repo")));
    // zstd with a tablespace_map (links listed in it), gzip without (links inside base.tar).
    for (compression, suffix, with_map) in [
        (Compression::Zstd, ".zst", true),
        (Compression::Gzip, ".gz", false),
    ] {
        let prefix = format!("backup-{}", compression.name());
        let dest = BackupDestination::Tar {
            storage: storage.clone(),
            prefix: prefix.clone(),
            compressor: Arc::new(Codec::new(compression, None).unwrap()),
            encryptor: None,
        };
        let mut progress = Recorder::default();
        let o = strategy(&f.cluster, with_map)
            .copy(&dest, &mut progress)
            .unwrap();
        check_outcome(&o, &f);
        if with_map {
            let map = o.tablespace_map.as_deref().unwrap();
            assert_eq!(
                map.split_whitespace().next(),
                Some(f.ts_oid.to_string().as_str()),
                "{map}"
            );
        } else {
            assert_eq!(o.tablespace_map, None);
        }
        let names: Vec<_> = o.files.iter().map(|f| f.name.clone()).collect();
        let want = [
            format!("{}.tar{suffix}", f.ts_oid),
            format!("base.tar{suffix}"),
            "backup_manifest".into(),
        ];
        assert_eq!(names, want);
        let mut keys: Vec<_> = storage
            .list(&format!("{prefix}/"))
            .unwrap()
            .into_iter()
            .map(|m| (m.key, m.size))
            .collect();
        keys.sort();
        let mut expected: Vec<_> = o
            .files
            .iter()
            .map(|f| (format!("{prefix}/{}", f.name), f.size))
            .collect();
        expected.sort();
        assert_eq!(keys, expected);
        // Compression did something: the stored bytes are fewer than the streamed ones.
        assert!(
            o.bytes_written < o.bytes_received / 2,
            "{} vs {}",
            o.bytes_written,
            o.bytes_received
        );

        // Restore it the way recovery does: detect the codec, extract, relink the tablespace.
        let restore = tmp.path().join(format!("restore-{}", compression.name()));
        let ts_dest = restore.join("ts");
        let opts = ExtractOptions {
            tablespace_remap: [(f.ts_oid, ts_dest.clone())].into_iter().collect(),
            ..Default::default()
        };
        let get = |name: &str| {
            let (detected, reader) =
                auto_decoder(storage.get(&format!("{prefix}/{name}")).unwrap()).unwrap();
            assert_eq!(detected, compression);
            reader
        };
        let base_stats = extract_tar(get(&want[1]), &restore.join("data"), &opts).unwrap();
        let ts_stats = extract_tar(get(&want[0]), &ts_dest, &ExtractOptions::default()).unwrap();
        assert!(base_stats.files > 500, "{base_stats:?}");
        let link = restore.join(format!("data/pg_tblspc/{}", f.ts_oid));
        if with_map {
            // With TABLESPACE_MAP the server leaves the pg_tblspc links out and lists them in
            // tablespace_map instead; recovery creates them, as this test does.
            assert_eq!(base_stats.symlinks, 0);
            std::os::unix::fs::symlink(&ts_dest, &link).unwrap();
        } else {
            assert_eq!(base_stats.symlinks, 1);
            assert_eq!(
                fs::read_link(&link).unwrap(),
                ts_dest,
                "the link is remapped"
            );
        }
        assert!(ts_stats.bytes > 1 << 20, "{ts_stats:?}");
        let mut tar_tree = tree(&restore.join("data"));
        assert_eq!(tar_tree.remove("tablespace_map").is_some(), with_map);
        assert_eq!(tar_tree, plain_tree, "{}", compression.name());
        assert_eq!(tree(&ts_dest), plain_ts);
        assert!(fs::read_to_string(restore.join("data/backup_label"))
            .unwrap()
            .starts_with("START WAL LOCATION"));

        // With its manifest beside it, the extracted backup passes pg_verifybackup too.
        let mut manifest = Vec::new();
        std::io::Read::read_to_end(
            &mut storage.get(&format!("{prefix}/backup_manifest")).unwrap(),
            &mut manifest,
        )
        .unwrap();
        fs::write(restore.join("data/backup_manifest"), manifest).unwrap();
        verify(&restore.join("data"));
    }
}

/// Storage whose uploads fail once they exceed `limit` bytes, like a full disk.
struct FullDisk {
    inner: LocalStorage,
    limit: u64,
}

struct FullDiskWriter {
    inner: Box<dyn ObjectWriter>,
    left: u64,
}

impl std::io::Write for FullDiskWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other("no space left on device (simulated)"));
        }
        self.left -= buf.len() as u64;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ObjectWriter for FullDiskWriter {
    fn commit(self: Box<Self>, mode: CommitMode) -> pgbak_storage::Result<()> {
        self.inner.commit(mode)
    }
}

impl StorageBackend for FullDisk {
    fn describe(&self) -> String {
        format!("a full disk at {}", self.inner.describe())
    }
    fn put(&self, key: &str) -> pgbak_storage::Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(FullDiskWriter {
            inner: self.inner.put(key)?,
            left: self.limit,
        }))
    }
    fn get(&self, key: &str) -> pgbak_storage::Result<Box<dyn std::io::Read + Send>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> pgbak_storage::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn stat(&self, key: &str) -> pgbak_storage::Result<Option<ObjectMeta>> {
        self.inner.stat(key)
    }
    fn delete(&self, key: &str) -> pgbak_storage::Result<()> {
        self.inner.delete(key)
    }
}

#[test]
fn a_failing_writer_stops_the_backup_and_commits_nothing() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let storage = Arc::new(FullDisk {
        inner: LocalStorage::new(&repo),
        limit: 2 << 20,
    });
    let dest = BackupDestination::Tar {
        storage: storage.clone(),
        prefix: "b".into(),
        compressor: Arc::new(Codec::new(Compression::None, None).unwrap()),
        encryptor: None,
    };
    let err = strategy(&f.cluster, true)
        .copy(&dest, &mut pgbak_copy::NoProgress)
        .unwrap_err();
    // The writer's own error is reported, not the protocol's "sink failed".
    assert!(matches!(err, Error::Stream { op: "compress", .. }), "{err}");
    assert!(err.to_string().contains("simulated"), "{err}");
    assert!(storage.list("").unwrap().is_empty());
    // Not even temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(repo.join("b"))
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The server is fine and a new backup works.
    let ok = LocalStorage::new(tmp.path().join("repo2"));
    let dest = BackupDestination::Tar {
        storage: Arc::new(ok),
        prefix: "b".into(),
        compressor: Arc::new(Codec::new(Compression::Lz4, None).unwrap()),
        encryptor: None,
    };
    let o = strategy(&f.cluster, true)
        .copy(&dest, &mut pgbak_copy::NoProgress)
        .unwrap();
    assert_eq!(o.files[1].name, "base.tar.lz4");
}

#[test]
fn connection_failures_are_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = pgbak_tests::free_port();
    let conn = ConnParams::resolve(&format!(
        "host=127.0.0.1 port={port} user=postgres connect_timeout=5"
    ))
    .unwrap();
    let storage = Arc::new(LocalStorage::new(tmp.path().join("repo")));
    let dest = BackupDestination::Tar {
        storage: storage.clone(),
        prefix: "b".into(),
        compressor: Arc::new(Codec::new(Compression::Zstd, None).unwrap()),
        encryptor: None,
    };
    let err = StreamingCopy::new(conn, options(true))
        .copy(&dest, &mut pgbak_copy::NoProgress)
        .unwrap_err();
    assert!(matches!(err, Error::Wal(_)), "{err}");
    assert!(storage.list("").unwrap().is_empty());
}

#[test]
fn copy_inside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dest = BackupDestination::Plain {
        data_dir: tmp.path().join("d"),
        tablespaces_root: tmp.path().join("t"),
    };
    let conn = ConnParams::resolve("host=127.0.0.1 port=1 user=postgres").unwrap();
    let err = rt.block_on(async {
        StreamingCopy::new(conn, options(false)).copy(&dest, &mut pgbak_copy::NoProgress)
    });
    assert!(matches!(err, Err(Error::Aborted(_))));
}

/// Times plain, tar and tar+zstd backups of a pgbench database against `pg_basebackup`.
/// `PGBAK_BENCH_SCALE=20 cargo test -p pgbak-copy --release --test streaming -- --ignored --nocapture`
#[test]
#[ignore = "throughput measurement, not a check"]
fn throughput() {
    let scale: u32 = std::env::var("PGBAK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let cluster = Cluster::start(ClusterOptions::default());
    let out = Command::new(pg_bin("pgbench"))
        .args([
            "-i",
            "-q",
            "-s",
            &scale.to_string(),
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(cluster.port.to_string())
        .arg("postgres")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size: u64 = cluster
        .psql("SELECT pg_database_size('postgres')")
        .parse()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let storage = Arc::new(LocalStorage::new(tmp.path().join("repo")));
    let mb = |bytes: u64, secs: f64| bytes as f64 / secs / (1 << 20) as f64;
    for round in 0..2 {
        for (label, compression) in [
            ("plain", None),
            ("tar", Some(Compression::None)),
            ("tar+zstd", Some(Compression::Zstd)),
        ] {
            let dest = match compression {
                None => BackupDestination::Plain {
                    data_dir: tmp.path().join(format!("plain{round}/data")),
                    tablespaces_root: tmp.path().join(format!("plain{round}/ts")),
                },
                Some(c) => BackupDestination::Tar {
                    storage: storage.clone(),
                    prefix: format!("{label}{round}"),
                    compressor: Arc::new(Codec::new(c, None).unwrap()),
                    encryptor: None,
                },
            };
            let start = std::time::Instant::now();
            let o = strategy(&cluster, compression.is_some())
                .copy(&dest, &mut pgbak_copy::NoProgress)
                .unwrap();
            let secs = start.elapsed().as_secs_f64();
            // Peak resident memory of this whole test process so far.
            let hwm = fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .map(str::to_string)
                })
                .unwrap_or_default();
            println!(
                "pgbak {label}: {:.0} MiB received in {secs:.2} s = {:.0} MiB/s, {:.0} MiB written; {hwm}",
                o.bytes_received as f64 / (1 << 20) as f64,
                mb(o.bytes_received, secs),
                o.bytes_written as f64 / (1 << 20) as f64
            );
        }
        for (label, args) in [
            ("plain", vec!["-Fp"]),
            ("tar", vec!["-Ft"]),
            ("tar+zstd", vec!["-Ft", "--compress=client-zstd"]),
        ] {
            let dir: PathBuf = tmp.path().join(format!("pgbb-{label}-{round}"));
            let start = std::time::Instant::now();
            let out = Command::new(pg_bin("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-X",
                    "none",
                    "-c",
                    "fast",
                    "-D",
                ])
                .arg(&dir)
                .arg("-p")
                .arg(cluster.port.to_string())
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let secs = start.elapsed().as_secs_f64();
            println!(
                "pg_basebackup {label}: {secs:.2} s = {:.0} MiB/s of database",
                mb(size, secs)
            );
        }
    }
}
