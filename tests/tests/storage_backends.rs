//! The storage conformance suite, run against the local disk and against each of the three
//! emulators (moto for S3, Azurite, fake-gcs-server), plus the faults of object stores: throttling
//! and 5xx answers, bytes corrupted in flight, the store stopped or frozen in the middle of an
//! upload, wrong credentials, a missing bucket, an unreachable endpoint.

use pgbak_storage::{
    check, CloudOptions, CommitMode, Error, ErrorKind, Listing, Secret, StorageBackend,
};
use pgbak_tests::emulators::{Emulator, FaultProxy, Kind, Repository, AZURITE_KEY};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// Where a test runs.
#[derive(Clone, Copy, Debug)]
enum Target {
    Local,
    Cloud(Kind),
}

/// A repository for one test: its backend and what keeps it alive.
struct Repo {
    storage: Arc<dyn StorageBackend>,
    cloud: Option<Repository>,
    _dir: Option<tempfile::TempDir>,
}

/// Options every cloud test adds: small parts so that multipart uploads stay quick.
fn tune(o: &mut CloudOptions) {
    o.part_size = Some(5 * MIB as u64);
    o.read_timeout = Some(Duration::from_secs(20));
    o.retry_base_delay = Some(Duration::from_millis(20));
    o.retry_max_delay = Some(Duration::from_millis(200));
}

fn repo(target: Target, prefix: &str, adjust: impl FnOnce(&mut CloudOptions)) -> Repo {
    match target {
        Target::Local => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("repo");
            let storage =
                pgbak_storage::open(path.to_str().unwrap(), &CloudOptions::default()).unwrap();
            Repo {
                storage,
                cloud: None,
                _dir: Some(dir),
            }
        }
        Target::Cloud(kind) => {
            let mut r = Emulator::shared(kind).repository(prefix);
            tune(&mut r.options);
            adjust(&mut r.options);
            Repo {
                storage: r.open(),
                cloud: Some(r),
                _dir: None,
            }
        }
    }
}

/// Bytes that differ at every offset, so that a misplaced part shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(
    s: &dyn StorageBackend,
    key: &str,
    data: &[u8],
    mode: CommitMode,
) -> pgbak_storage::Result<()> {
    let mut w = s.put(key)?;
    for c in data.chunks(256 * 1024 + 7) {
        w.write_all(c)
            .unwrap_or_else(|e| panic!("write to {key} failed: {e}"));
    }
    w.commit(mode)
}

fn get(s: &dyn StorageBackend, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    s.get(key)
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("read {key}: {e}"));
    out
}

fn keys(l: &[pgbak_storage::ObjectMeta]) -> Vec<&str> {
    l.iter().map(|m| m.key.as_str()).collect()
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn local() {
                super::$test(super::Target::Local)
            }
            #[test]
            fn s3() {
                super::$test(super::Target::Cloud(pgbak_tests::emulators::Kind::S3))
            }
            #[test]
            fn azure() {
                super::$test(super::Target::Cloud(pgbak_tests::emulators::Kind::Azure))
            }
            #[test]
            fn gcs() {
                super::$test(super::Target::Cloud(pgbak_tests::emulators::Kind::Gcs))
            }
        }
    )*};
}

on_every_backend!(
    round_trip_of_small_and_multipart_objects,
    listings_page_and_show_one_level,
    stat_delete_and_batch_delete,
    create_new_never_replaces,
    a_dropped_writer_leaves_nothing,
    the_repository_check_passes,
);

fn round_trip_of_small_and_multipart_objects(t: Target) {
    let r = repo(t, "rt", |_| {});
    let s = &*r.storage;
    for (i, len) in [
        0usize,
        1,
        100 * 1024,
        5 * MIB,
        5 * MIB + 1,
        40 * MIB + 12345,
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("obj/{i}");
        let data = pattern(len, i as u64);
        put(s, &key, &data, CommitMode::Replace).unwrap_or_else(|e| panic!("{t:?} put {len}: {e}"));
        assert!(get(s, &key) == data, "{t:?}: object of {len} bytes differs");
        assert_eq!(s.stat(&key).unwrap().unwrap().size, len as u64);
    }
    // Ranges: inside the first part, across the boundary of two parts, past the end.
    let data = pattern(40 * MIB + 12345, 5);
    for (off, len) in [
        (0u64, 10u64),
        (5 * MIB as u64 - 3, 10),
        (40 * MIB as u64, 1 << 20),
        (50 * MIB as u64, 5),
    ] {
        let mut got = Vec::new();
        s.get_range("obj/5", off, len)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        let end = ((off + len) as usize).min(data.len());
        let want = if (off as usize) < data.len() {
            &data[off as usize..end]
        } else {
            &[][..]
        };
        assert!(got == want, "{t:?}: range {off}+{len}");
    }
    // Replace replaces.
    put(s, "obj/1", b"second", CommitMode::Replace).unwrap();
    assert_eq!(get(s, "obj/1"), b"second");
    // A missing key is NotFound, naming the repository and the key.
    let e = match s.get("obj/missing") {
        Err(e) => e,
        Ok(_) => panic!("{t:?}: missing object opened"),
    };
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains("obj/missing") && e.to_string().contains(&s.describe()),
        "{e}"
    );
}

fn listings_page_and_show_one_level(t: Target) {
    // Pages of 100 names, so that 1100 objects take several pages on every store.
    let r = repo(t, "ls", |o| o.list_page_size = Some(100));
    let s = r.storage.clone();
    let names: Vec<String> = (0..1100).map(|i| format!("many/{i:05}")).collect();
    std::thread::scope(|scope| {
        for chunk in names.chunks(140) {
            let s = s.clone();
            scope.spawn(move || {
                for k in chunk {
                    put(&*s, k, k.as_bytes(), CommitMode::Replace).unwrap();
                }
            });
        }
    });
    let all = s.list("many/").unwrap();
    assert_eq!(
        keys(&all),
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(all[7].size, names[7].len() as u64);
    assert_eq!(s.list("many/0109").unwrap().len(), 10);
    // With the stores' own page sizes too (1000 on S3 and GCS: two pages).
    if let Some(c) = &r.cloud {
        let mut o = c.options.clone();
        o.list_page_size = None;
        let default_pages = pgbak_storage::open(&c.url, &o).unwrap();
        assert_eq!(default_pages.list("many/").unwrap().len(), 1100);
    }

    for k in [
        "base/1/backup.json",
        "base/1/data/x",
        "base/2/backup.json",
        "base/top",
        "other",
    ] {
        put(&*s, k, b"x", CommitMode::Replace).unwrap();
    }
    let l = s.list_dir("base/").unwrap();
    assert_eq!(l.prefixes, ["base/1/", "base/2/"]);
    assert_eq!(keys(&l.objects), ["base/top"]);
    let root = s.list_dir("").unwrap();
    assert_eq!(root.prefixes, ["base/", "many/"]);
    assert_eq!(keys(&root.objects), ["other"]);
    assert_eq!(
        keys(&s.list("base/1").unwrap()),
        ["base/1/backup.json", "base/1/data/x"]
    );
    assert_eq!(s.list_dir("nothing/").unwrap(), Listing::default());
    // One level of 1100 objects pages too.
    assert_eq!(s.list_dir("many/").unwrap().objects.len(), 1100);
}

fn stat_delete_and_batch_delete(t: Target) {
    let r = repo(t, "del", |o| o.delete_batch_size = Some(64));
    let s = &*r.storage;
    assert!(s.stat("nope").unwrap().is_none());
    s.delete("nope").unwrap();
    let names: Vec<String> = (0..150).map(|i| format!("d/{i}")).collect();
    for k in &names {
        put(s, k, b"1", CommitMode::Replace).unwrap();
    }
    put(s, "keep", b"k", CommitMode::Replace).unwrap();
    s.delete("d/0").unwrap();
    assert!(s.stat("d/0").unwrap().is_none());
    s.delete_many(&names).unwrap();
    assert!(s.list("d/").unwrap().is_empty());
    assert_eq!(keys(&s.list("").unwrap()), ["keep"]);
    s.delete_many(&[]).unwrap();
}

fn create_new_never_replaces(t: Target) {
    let r = repo(t, "cn", |_| {});
    let s = &*r.storage;
    for (key, len) in [("wal/small", 1000usize), ("wal/multi", 12 * MIB)] {
        let first = pattern(len, 1);
        put(s, key, &first, CommitMode::CreateNew).unwrap();
        // The same content again, and other content: both refused, the first kept.
        for other in [first.clone(), pattern(len, 2)] {
            let e = put(s, key, &other, CommitMode::CreateNew).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{t:?} {key}: {e}");
            assert!(matches!(e, Error::AlreadyExists(_)));
            let mut w = s.put_with_mode(key, CommitMode::CreateNew).unwrap();
            w.write_all(&other).unwrap();
            let e = w.commit(CommitMode::CreateNew).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{t:?} {key}: {e}");
        }
        assert!(get(s, key) == first, "{t:?}: {key} was replaced");
    }
    // Nothing else appeared.
    assert_eq!(keys(&s.list("").unwrap()), ["wal/multi", "wal/small"]);
}

fn a_dropped_writer_leaves_nothing(t: Target) {
    let r = repo(t, "drop", |_| {});
    let s = &*r.storage;
    for len in [10usize, 17 * MIB] {
        let mut w = s.put("partial").unwrap();
        w.write_all(&pattern(len, 3)).unwrap();
        drop(w);
        assert!(
            s.stat("partial").unwrap().is_none(),
            "{t:?}: {len} bytes visible"
        );
        assert!(s.list("").unwrap().is_empty(), "{t:?}");
    }
    if let (Target::Cloud(Kind::S3), Some(c)) = (t, &r.cloud) {
        assert!(
            Emulator::shared(Kind::S3)
                .raw_s3_uploads(&c.bucket)
                .is_empty(),
            "the multipart upload was not aborted"
        );
    }
}

fn the_repository_check_passes(t: Target) {
    let r = repo(t, "chk", |_| {});
    let report = check::probe(&*r.storage, "");
    assert!(report.ok(), "{t:?}: {report:?}");
    assert!(r.storage.list("").unwrap().is_empty(), "{t:?}: probe left");
}

pgbak_tests::on_every_cloud!(
    a_missing_bucket_is_a_clear_error,
    an_unreachable_endpoint_is_a_clear_error,
    throttling_and_server_errors_are_retried,
    bytes_corrupted_in_flight_are_caught_and_sent_again,
    a_store_frozen_mid_upload_fails_cleanly_and_the_next_upload_succeeds,
    a_store_killed_mid_wal_push_fails_cleanly_and_the_next_push_succeeds,
    url_and_standard_environment_are_enough_and_memory_stays_bounded,
);

fn quick_failure(o: &mut CloudOptions) {
    o.max_attempts = Some(2);
    o.read_timeout = Some(Duration::from_secs(3));
    o.connect_timeout = Some(Duration::from_secs(2));
    o.retry_base_delay = Some(Duration::from_millis(10));
    o.retry_max_delay = Some(Duration::from_millis(50));
}

fn a_missing_bucket_is_a_clear_error(kind: Kind) {
    let emu = Emulator::shared(kind);
    let url = emu.url("pgbak-no-such-bucket", "p");
    let mut o = emu.options();
    quick_failure(&mut o);
    let s = pgbak_storage::open(&url, &o).unwrap();
    let results: Vec<(&str, Option<Error>)> = vec![
        ("list", s.list("").err()),
        ("list_dir", s.list_dir("").err()),
        ("stat", s.stat("k").err()),
        ("get", s.get("k").err()),
        ("put", put(&*s, "k", b"x", CommitMode::CreateNew).err()),
        ("delete", s.delete("k").err()),
    ];
    for (op, e) in results {
        let e = e.unwrap_or_else(|| panic!("{kind:?} {op}: no error"));
        assert_eq!(e.kind(), ErrorKind::NoSuchBucket, "{kind:?} {op}: {e}");
        assert!(
            e.to_string().contains("pgbak-no-such-bucket"),
            "{kind:?} {op}: {e}"
        );
    }
    let report = check::probe(&*s, "");
    let f = report.first_failure().unwrap();
    assert_eq!(
        (f.name, f.error_kind),
        ("reachable", Some(ErrorKind::NoSuchBucket))
    );
}

fn an_unreachable_endpoint_is_a_clear_error(kind: Kind) {
    let emu = Emulator::shared(kind);
    let closed = pgbak_tests::free_port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let mut o = emu.options();
    quick_failure(&mut o);
    match kind {
        Kind::S3 => o.endpoint_url = Some(endpoint.clone()),
        Kind::Azure => o.endpoint_url = Some(format!("{endpoint}/devstoreaccount1")),
        Kind::Gcs => o.gcs_emulator_host = Some(endpoint.clone()),
    }
    let url = emu.url("some-bucket", "p");
    let s = pgbak_storage::open(&url, &o).unwrap();
    assert!(s.describe().contains(&endpoint), "{}", s.describe());
    let e = s.list("").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{kind:?}: {e}");
    assert!(e.to_string().contains(&endpoint), "{e}");
    assert!(e.to_string().contains("after 2 attempts"), "{e}");
    let e = put(&*s, "k", b"x", CommitMode::Replace).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{kind:?}: {e}");
}

/// The emulator's options, pointed at a proxy.
fn through(kind: Kind, proxy: &FaultProxy, mut o: CloudOptions) -> CloudOptions {
    match kind {
        Kind::S3 => o.endpoint_url = Some(proxy.endpoint()),
        Kind::Azure => o.endpoint_url = Some(format!("{}/devstoreaccount1", proxy.endpoint())),
        Kind::Gcs => o.gcs_emulator_host = Some(proxy.endpoint()),
    }
    o
}

fn throttling_and_server_errors_are_retried(kind: Kind) {
    let emu = Emulator::shared(kind);
    let r = emu.repository("thr");
    let proxy = FaultProxy::new(emu.addr());
    let mut o = through(kind, &proxy, r.options.clone());
    tune(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    let code = match kind {
        Kind::S3 => "SlowDown",
        Kind::Azure => "ServerBusy",
        Kind::Gcs => "rateLimitExceeded",
    };
    let data = pattern(12 * MIB, 9);
    proxy.fail_next(3, 503, code);
    put(&*s, "t/obj", &data, CommitMode::CreateNew).unwrap();
    proxy.fail_next(2, 500, "InternalError");
    assert!(get(&*s, "t/obj") == data);
    proxy.fail_next(2, 503, code);
    assert_eq!(keys(&s.list("t/").unwrap()), ["t/obj"]);
    proxy.fail_next(1, 500, "InternalError");
    s.delete("t/obj").unwrap();
    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|r| r.failed).count(), 8, "{seen:#?}");
    assert!(s.stat("t/obj").unwrap().is_none());
    // More failures than attempts: a clear error.
    let mut o = o.clone();
    o.max_attempts = Some(3);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    proxy.fail_next(3, 503, code);
    let e = s.list("").unwrap_err();
    assert!(e.to_string().contains("after 3 attempts"), "{kind:?}: {e}");
}

fn bytes_corrupted_in_flight_are_caught_and_sent_again(kind: Kind) {
    let emu = Emulator::shared(kind);
    let r = emu.repository("cor");
    let proxy = FaultProxy::new(emu.addr());
    let mut o = through(kind, &proxy, r.options.clone());
    tune(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    for (key, len) in [("one-request", MIB), ("multipart", 11 * MIB)] {
        proxy.corrupt_next_uploads(1);
        let data = pattern(len, 4);
        let result = put(&*s, key, &data, CommitMode::CreateNew);
        if kind == Kind::Gcs && key == "multipart" {
            // GCS checks a resumable upload as a whole, at its last chunk: the spent chunks
            // cannot be sent again, so the upload fails cleanly and a new one succeeds.
            let e = result.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
            assert!(
                s.stat(key).unwrap().is_none(),
                "a corrupt object is visible"
            );
            put(&*s, key, &data, CommitMode::CreateNew).unwrap();
        } else {
            result.unwrap_or_else(|e| panic!("{kind:?} {key}: {e}"));
        }
        assert!(get(&*s, key) == data, "{kind:?}: {key} stored corrupt");
    }
    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|r| r.corrupted).count(), 2);
    // Every upload of data declares a checksum the store can verify (GCS: for the whole
    // object, with its last chunk).
    for req in seen
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "POST")
    {
        if req.length.unwrap_or(0) < 64 << 10 {
            continue;
        }
        let intermediate_gcs_chunk = req
            .header("content-range")
            .is_some_and(|r| r.ends_with("/*"));
        let declared = req.header("content-md5").is_some()
            || req.header("x-goog-hash").is_some()
            || req.target.contains("uploadType=multipart")
            || intermediate_gcs_chunk;
        assert!(declared, "{kind:?}: upload without a checksum: {req:?}");
    }
}

fn a_store_frozen_mid_upload_fails_cleanly_and_the_next_upload_succeeds(kind: Kind) {
    let mut emu = Emulator::start(kind);
    let r = emu.repository("frz");
    let mut o = r.options.clone();
    tune(&mut o);
    quick_failure(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    let data = pattern(30 * MIB, 6);
    let mut w = s.put("base/b1/data.tar").unwrap();
    w.write_all(&data[..12 * MIB]).unwrap();
    emu.pause();
    let result = w
        .write_all(&data[12 * MIB..])
        .map_err(|e| e.to_string())
        .and_then(|()| w.commit(CommitMode::Replace).map_err(|e| e.to_string()));
    let e = result.unwrap_err();
    assert!(
        e.contains("cannot reach") || e.contains("no answer"),
        "{kind:?}: {e}"
    );
    emu.resume();
    assert!(s.stat("base/b1/data.tar").unwrap().is_none());
    assert!(s.list("").unwrap().is_empty());
    if kind == Kind::S3 {
        // The abort could not reach the frozen store: the orphan parts are cleaned up.
        s.cleanup_incomplete_uploads(Duration::ZERO).unwrap();
        assert!(emu.raw_s3_uploads(&r.bucket).is_empty());
    }
    put(&*s, "base/b1/data.tar", &data, CommitMode::Replace).unwrap();
    assert!(get(&*s, "base/b1/data.tar") == data);
}

fn a_store_killed_mid_wal_push_fails_cleanly_and_the_next_push_succeeds(kind: Kind) {
    let mut emu = Emulator::start(kind);
    let r = emu.repository("kil");
    let mut o = r.options.clone();
    tune(&mut o);
    quick_failure(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    let wal = pattern(16 * MIB, 7);
    let key = "wals/0000000100000000/000000010000000000000001";
    let mut w = s.put_with_mode(key, CommitMode::CreateNew).unwrap();
    w.write_all(&wal[..6 * MIB]).unwrap();
    emu.kill();
    let result = w
        .write_all(&wal[6 * MIB..])
        .map_err(|e| e.to_string())
        .and_then(|()| w.commit(CommitMode::CreateNew).map_err(|e| e.to_string()));
    let e = result.unwrap_err();
    assert!(e.contains("cannot reach"), "{kind:?}: {e}");
    assert!(e.contains(&s.describe()), "{e}");
    emu.restart();
    // moto keeps nothing across a restart, and Azurite may lose its last writes to a kill:
    // the bucket may have to be made again.
    pgbak_storage::create_bucket(&r.url, &r.options).unwrap();
    assert!(
        s.stat(key).unwrap().is_none(),
        "{kind:?}: a partial WAL is visible"
    );
    put(&*s, key, &wal, CommitMode::CreateNew).unwrap();
    assert!(get(&*s, key) == wal);
}

fn load(kind: Kind, r: &Repository, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbak-storage-load"))
        .arg(&r.url)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(r.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{kind:?} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn url_and_standard_environment_are_enough_and_memory_stays_bounded(kind: Kind) {
    let emu = Emulator::shared(kind);
    let r = emu.repository("env");
    let put = load(kind, &r, &["put", "big", "200"]);
    let get = load(kind, &r, &["get", "big"]);
    assert_eq!(put["bytes"], 200 * MIB as u64);
    assert_eq!(get["bytes"], 200 * MIB as u64);
    let stat = load(kind, &r, &["stat", "big"]);
    assert_eq!(stat["bytes"], 200 * MIB as u64);
    for m in [&put, &get] {
        let rss = m["peak_rss_kib"].as_u64().unwrap();
        assert!(rss < 64 * 1024, "{kind:?}: peak RSS {rss} KiB: {m}");
        eprintln!("{kind:?}: {m}");
    }
}

#[test]
fn part_buffers_stay_within_concurrency_plus_one() {
    let emu = Emulator::shared(Kind::S3);
    let r = emu.repository("mem");
    let mut o = r.options.clone();
    tune(&mut o);
    o.upload_concurrency = Some(2);
    let loc = pgbak_storage::Location::parse(&r.url).unwrap();
    let s = pgbak_storage::s3::S3Storage::open(&loc, &o).unwrap();
    put(&s, "big", &pattern(60 * MIB, 8), CommitMode::Replace).unwrap();
    let peak = s.peak_upload_buffer();
    assert!(peak <= 3 * 5 * MIB as u64, "peak part buffers {peak}");
    assert!(peak >= 5 * MIB as u64, "no part buffered? {peak}");
}

#[test]
fn azure_refuses_a_wrong_account_key_clearly() {
    let emu = Emulator::shared(Kind::Azure);
    let r = emu.repository("key");
    let mut o = CloudOptions::default();
    let wrong = AZURITE_KEY.replace('E', "F");
    o.azure_connection_string = Some(Secret::new(emu.connection_string(&wrong)));
    quick_failure(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    let e = s.list("").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains(&s.describe()), "{e}");
    assert!(!e.to_string().contains(&wrong), "the key leaked: {e}");
    let e = put(&*s, "k", b"x", CommitMode::Replace).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let report = check::probe(&*s, "");
    assert_eq!(
        report.first_failure().unwrap().error_kind,
        Some(ErrorKind::PermissionDenied)
    );
}

#[test]
fn s3_requests_are_signed_with_the_configured_key_and_missing_credentials_are_clear() {
    // moto accepts any signature, so a wrong key cannot be refused here: check instead that
    // requests carry a SigV4 signature by the configured key id, and that a machine with no
    // credentials at all gets a clear error naming the repository.
    let emu = Emulator::shared(Kind::S3);
    let r = emu.repository("sig");
    let proxy = FaultProxy::new(emu.addr());
    let mut o = through(Kind::S3, &proxy, r.options.clone());
    o.aws_access_key_id = Some("AKIDPGBAKTEST".into());
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    put(&*s, "k", b"x", CommitMode::Replace).unwrap();
    for req in proxy.seen() {
        let auth = req.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPGBAKTEST/"),
            "{req:?}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbak-storage-load"))
        .args([&r.url, "stat", "k"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("AWS_ENDPOINT_URL", emu.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PermissionDenied") && err.contains(&r.url),
        "{err}"
    );
}

#[test]
fn describe_shows_no_secrets() {
    let emu = Emulator::shared(Kind::Azure);
    let mut o = CloudOptions::default();
    o.azure_sas_token = Some(Secret::new("sv=2024&sig=TOPSECRETSIG"));
    o.azure_account = Some("acct".into());
    o.endpoint_url = Some(format!(
        "http://user:pw@127.0.0.1:{}/acct",
        emu.addr().port()
    ));
    let s = pgbak_storage::open("azure://cont/p", &o).unwrap();
    let d = s.describe();
    assert!(!d.contains("TOPSECRET") && !d.contains("pw@"), "{d}");
    assert!(d.starts_with("azure://cont/p"), "{d}");
}

#[test]
fn gcs_service_account_credentials_sign_every_request() {
    // fake-gcs-server checks no credentials, so the test checks what reaches it: every request
    // carries a bearer token that is a JWT signed by the service account's key, for its email.
    let emu = Emulator::shared(Kind::Gcs);
    let r = emu.repository("sa");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&key_path).unwrap();
    let sa = serde_json::json!({
        "type": "service_account",
        "project_id": "pgbak-test",
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": "backup@pgbak-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",
    });
    let sa_path = dir.path().join("sa.json");
    std::fs::write(&sa_path, sa.to_string()).unwrap();
    let proxy = FaultProxy::new(emu.addr());
    let mut o = CloudOptions::default();
    o.endpoint_url = Some(proxy.endpoint());
    o.gcp_credentials_file = Some(sa_path);
    tune(&mut o);
    let s = pgbak_storage::open(&r.url, &o).unwrap();
    put(&*s, "k", b"signed", CommitMode::CreateNew).unwrap();
    assert_eq!(get(&*s, "k"), b"signed");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for req in seen {
        let auth = req.header("authorization").unwrap_or_default();
        let jwt = auth
            .strip_prefix("Bearer ")
            .unwrap_or_else(|| panic!("{req:?}"));
        let payload = jwt.split('.').nth(1).unwrap();
        let claims = base64_url_decode(payload);
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(
            claims["iss"], "backup@pgbak-test.iam.gserviceaccount.com",
            "{claims}"
        );
    }
    // A credentials file that is not one is a clear configuration error.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"type\":\"service_account\"}").unwrap();
    let mut o = CloudOptions::default();
    o.endpoint_url = Some(emu.endpoint());
    o.gcp_credentials_file = Some(bad.clone());
    let e = match pgbak_storage::open(&r.url, &o) {
        Err(e) => e,
        Ok(_) => panic!("bad credentials accepted"),
    };
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'-' | b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u32> = s.bytes().filter(|c| *c != b'=').map(table).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            acc |= v << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Base64url without padding, for the JWTs of the fake Azure CLI.
fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn azure_entra_id_tokens_from_the_azure_cli_are_used() {
    // Azurite over HTTPS with --oauth basic checks the bearer token's issuer, audience and
    // lifetime. A fake `az` prints a token as `az account get-access-token` does; pgbak gets it
    // through azure_identity's Azure CLI credential (azure_credential = azure-cli).
    let pki = pgbak_tests::TestPki::new();
    let certs = tempfile::tempdir().unwrap();
    pki.install_server(certs.path(), &["127.0.0.1"]);
    let emu = Emulator::start_azurite_https(
        &certs.path().join("server.crt"),
        &certs.path().join("server.key"),
    );
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "oid": "11059fcc-5514-4800-b5f8-49808b9cfab6",
        "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
    });
    let jwt = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes()),
        b64url(b"not-checked-by-azurite")
    );
    let answer = serde_json::json!({
        "accessToken": jwt,
        "expiresOn": "2099-01-01 00:00:00.000000",
        "expires_on": now + 3600,
        "subscription": "sub",
        "tenant": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
        "tokenType": "Bearer",
    });
    let az = bin.path().join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncat <<'EOF'\n{answer}\nEOF\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&az, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let endpoint = format!("{}/devstoreaccount1", emu.endpoint());
    let url = "azure://entra/p";
    let run = |args: &[&str], entra: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pgbak-storage-load"));
        c.arg(url)
            .args(args)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
            .env("SSL_CERT_FILE", pki.root_crt())
            .env("PGBAK_LOAD_ENDPOINT_URL", &endpoint)
            .env("PGBAK_LOAD_AZURE_ACCOUNT", "devstoreaccount1");
        if entra {
            c.env("PGBAK_LOAD_AZURE_CREDENTIAL", "azure-cli");
        } else {
            c.env("AZURE_STORAGE_KEY", AZURITE_KEY);
        }
        c.output().unwrap()
    };
    // The container is made with the account key (over HTTPS), the rest with the token.
    let out = run(&["create-bucket", "-"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [&["put", "obj", "12"][..], &["get", "obj"], &["stat", "obj"]] {
        let out = run(args, true);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let asked = std::fs::read_to_string(&calls).unwrap();
    assert!(asked.contains("account get-access-token"), "{asked}");
    assert!(asked.contains("https://storage.azure.com"), "{asked}");
    // A token for another audience is refused with a clear error.
    let wrong = answer.to_string().replace(
        &jwt,
        &format!(
            "{}.{}.x",
            b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64url(
                claims
                    .to_string()
                    .replace("storage.azure.com", "vault.azure.net")
                    .as_bytes()
            )
        ),
    );
    std::fs::write(&az, format!("#!/bin/sh\ncat <<'EOF'\n{wrong}\nEOF\n")).unwrap();
    let out = run(&["stat", "obj"], true);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PermissionDenied") && err.contains("azure://entra/p"),
        "{err}"
    );
}
