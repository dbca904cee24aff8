//! Object stores that fail, end to end on S3 (moto), Azure (Azurite) and GCS (fake-gcs-server):
//! the store stopped in the middle of a backup or of a WAL push, throttling and 5xx answers,
//! wrong credentials, a missing bucket, an unreachable endpoint, the same WAL segment pushed
//! twice, and the multipart upload a killed backup leaves behind.
//!
//! A [`FaultProxy`] between pgbak and the emulator holds an upload at a known byte so that the
//! store is stopped while pgbak is in the middle of it, never by timing.

use pgbak_tests::cloud::{assert_no_secret, CloudEnv};
use pgbak_tests::emulators::{Emulator, FaultProxy, Kind, AZURITE_KEY};
use pgbak_tests::{give_to_owner, Cluster, ClusterOptions, PgbakOutput};
use std::path::PathBuf;
use std::process::Child;
use std::sync::OnceLock;
use std::time::Duration;

pgbak_tests::on_every_cloud!(
    a_store_stopped_mid_upload_fails_cleanly_and_the_next_upload_succeeds,
    throttling_and_server_errors_are_retried,
    a_missing_bucket_and_an_unreachable_endpoint_are_clear_errors,
    the_same_segment_twice_is_accepted_only_with_the_same_content,
);

/// Settings that make a store which stopped answering fail a command within seconds, with
/// parts small enough that a backup or a WAL segment takes several.
const QUICK_FAILURE: &str =
    "aws_read_timeout = 2\ncloud_max_attempts = 2\ncloud_upload_min_chunk_size = 5Mi\n";

/// A real, complete 16 MiB WAL segment (name, bytes) of a throwaway cluster, made once.
fn segment() -> &'static (String, Vec<u8>) {
    static SEGMENT: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    SEGMENT.get_or_init(|| {
        let cluster = Cluster::start(ClusterOptions::default());
        cluster.psql("CREATE TABLE filler AS SELECT g FROM generate_series(1, 10000) g");
        let name = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        cluster.psql("SELECT pg_switch_wal()");
        let bytes = std::fs::read(cluster.data_dir.join("pg_wal").join(&name)).unwrap();
        assert_eq!(bytes.len(), 16 << 20);
        (name, bytes)
    })
}

/// Writes `bytes` as WAL file `name` into a folder of `env` that pgbak may read; returns it.
fn wal_file(env: &CloudEnv, folder: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = env.pgbak.dir.path().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    give_to_owner(&dir);
    path
}

/// The key of an archived segment in the WAL store.
fn wal_key(name: &str) -> String {
    format!("{}/{name}", &name[..16])
}

fn wait(child: Child) -> PgbakOutput {
    let out = child.wait_with_output().unwrap();
    PgbakOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Stops the store: S3 and Azure are frozen (moto keeps its data only while it runs, Azurite
/// saves its metadata only now and then), so that requests time out as in a network
/// partition; fake-gcs-server, which keeps its data on disk, is killed, so that connections are
/// refused as after a crash.
fn stop(emu: &mut Emulator) {
    match emu.kind() {
        Kind::S3 | Kind::Azure => emu.pause(),
        Kind::Gcs => emu.kill(),
    }
}

fn start_again(emu: &mut Emulator) {
    match emu.kind() {
        Kind::S3 | Kind::Azure => emu.resume(),
        Kind::Gcs => emu.restart(),
    }
}

/// Starts `args` with `env`, waits until its upload is held in the middle (after 6 MiB of
/// upload bodies), stops the store, lets the upload go on against the stopped store, and
/// returns what the command said. The store is started again before returning.
fn stop_the_store_mid_upload(
    emu: &mut Emulator,
    proxy: &FaultProxy,
    env: &CloudEnv,
    args: &[&str],
) -> PgbakOutput {
    let via = env.env_via(&proxy.endpoint());
    proxy.hold_uploads_after(6 << 20);
    let child = env.spawn_with_env(args, &via);
    assert!(
        proxy.wait_held(Duration::from_secs(180)),
        "{:?}: {args:?} never uploaded 6 MiB",
        emu.kind()
    );
    stop(emu);
    proxy.release();
    let out = wait(child);
    assert_no_secret(&args.join(" "), &out);
    start_again(emu);
    out
}

fn a_store_stopped_mid_upload_fails_cleanly_and_the_next_upload_succeeds(kind: Kind) {
    let mut emu = Emulator::start(kind);
    let proxy = FaultProxy::new(emu.addr());
    let env = CloudEnv::new(&emu);
    // The server archives straight into the store; only the commands of the test go through
    // the proxy.
    let cluster = env.cluster("");
    env.write_config(&cluster, QUICK_FAILURE);
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g",
    );

    // A backup: FAILED, and nothing of it in the store but its metadata.
    let out = stop_the_store_mid_upload(&mut emu, &proxy, &env, &["backup", "main"]);
    assert_ne!(out.code, 0, "{kind:?}: {out:?}");
    assert!(
        out.stderr.contains(&env.base_url()),
        "{kind:?}: {}",
        out.stderr
    );
    let listed = env.backups();
    assert_eq!(listed.len(), 1, "{kind:?}: {listed:?}");
    let (failed, status) = &listed[0];
    assert_eq!(status, "FAILED", "{kind:?}");
    assert_eq!(
        env.keys(&format!("base/{failed}/")),
        [format!("base/{failed}/backup.json")],
        "{kind:?}"
    );
    // PostgreSQL's archive_command failed too while the store was away: a new segment wakes
    // its archiver, which catches up; then the next backup succeeds.
    env.switch_wal_archived();
    env.write_config(&cluster, "");
    let next = env.backup();
    assert_ne!(next["backup_id"].as_str().unwrap(), failed.as_str());
    assert_eq!(
        env.backups(),
        [
            (failed.clone(), "FAILED".to_string()),
            (
                next["backup_id"].as_str().unwrap().to_string(),
                "DONE".to_string()
            )
        ]
    );

    // A WAL push into a repository of its own (the server keeps archiving into the first):
    // refused, nothing under the final key; the next push succeeds.
    let wal = CloudEnv::new(&emu);
    wal.write_config_without_server(QUICK_FAILURE);
    let (name, bytes) = segment();
    let file = wal_file(&wal, "pg_wal", name, bytes);
    let file_s = file.to_str().unwrap();
    let out = stop_the_store_mid_upload(&mut emu, &proxy, &wal, &["archive-wal", "main", file_s]);
    assert_ne!(out.code, 0, "{kind:?}: {out:?}");
    assert!(
        out.stderr.contains(&wal.wals_url()),
        "{kind:?}: {}",
        out.stderr
    );
    let store = wal.store("wals");
    assert!(
        store.stat(&wal_key(name)).unwrap().is_none(),
        "{kind:?}: a partial segment is visible"
    );
    wal.run(&["archive-wal", "main", file_s]).ok();
    let back = wal.pgbak.restore_dir("back");
    wal.run(&["get-wal", "main", name, back.to_str().unwrap()])
        .ok();
    assert!(
        std::fs::read(&back).unwrap() == *bytes,
        "{kind:?}: the segment came back changed"
    );
    drop(cluster);
}

fn throttling_and_server_errors_are_retried(kind: Kind) {
    let emu = Emulator::shared(kind);
    let proxy = FaultProxy::new(emu.addr());
    let env = CloudEnv::new(emu);
    let cluster = env.cluster("compression = gzip\nbackup_compression = zstd\n");
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g");
    let via = env.env_via(&proxy.endpoint());
    let code = match kind {
        Kind::S3 => "SlowDown",
        Kind::Azure => "ServerBusy",
        Kind::Gcs => "rateLimitExceeded",
    };
    proxy.fail_next(3, 503, code);
    let out = env
        .run_with_env(
            &[
                "-f",
                "json",
                "backup",
                "main",
                "--wait",
                "--wait-timeout",
                "120",
            ],
            &via,
        )
        .ok();
    assert_eq!(out.json()["status"], "DONE", "{kind:?}: {}", out.stdout);
    proxy.fail_next(2, 500, "InternalError");
    let listed = env
        .run_with_env(&["-f", "json", "list-backups", "main"], &via)
        .ok();
    assert_eq!(listed.json()[0]["status"], "DONE");

    let wal = CloudEnv::new(emu);
    wal.write_config_without_server("");
    let (name, bytes) = segment();
    let file = wal_file(&wal, "pg_wal", name, bytes);
    proxy.fail_next(3, 503, code);
    wal.run_with_env(
        &["archive-wal", "main", file.to_str().unwrap()],
        &wal.env_via(&proxy.endpoint()),
    )
    .ok();
    assert!(wal.store("wals").stat(&wal_key(name)).unwrap().is_some());
    let failed = proxy.seen().iter().filter(|r| r.failed).count();
    assert_eq!(
        failed, 8,
        "{kind:?}: every injected failure was met and retried"
    );
    drop(cluster);
}

/// The configuration of a server whose repository is `url` (backups under `base`, WAL under
/// `wals`), without a PostgreSQL server.
fn env_on(emu: &Emulator, url: &str, extra: &str) -> CloudEnv {
    let env = CloudEnv::new(emu);
    env.pgbak.write_config_conninfo(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            pgbak_tests::free_port()
        ),
        &format!("basebackups_directory = {url}/base\nwals_directory = {url}/wals\n{extra}"),
    );
    env
}

/// `backup`, `archive-wal` and `check` of a server whose store refuses or cannot be reached
/// with `env`: `backup` and `archive-wal` exit with `code` naming the repository, `check`
/// fails its repository lines.
fn refused(what: &str, env: &CloudEnv, root: &str, store_env: &[(String, String)], code: i32) {
    let kind = env.kind;
    let (base_url, wals_url) = (format!("{root}/base"), format!("{root}/wals"));
    let (name, bytes) = segment();
    let file = wal_file(env, "pg_wal", name, bytes);
    for args in [
        vec!["backup", "main"],
        vec!["archive-wal", "main", file.to_str().unwrap()],
    ] {
        let out = env.run_with_env(&args, store_env);
        assert_eq!(out.code, code, "{kind:?} {what}: {args:?}: {out:?}");
        let url = if args[0] == "backup" {
            &base_url
        } else {
            &wals_url
        };
        assert!(
            out.stderr.contains(url.as_str()),
            "{kind:?} {what}: {args:?} does not name {url}: {}",
            out.stderr
        );
    }
    let out = env.run_with_env(&["check", "main"], store_env);
    assert_eq!(out.code, 1, "{kind:?} {what}: {out:?}");
    for (line, url) in [
        ("backup repository", &base_url),
        ("wal repository", &wals_url),
    ] {
        let l = out
            .stdout
            .lines()
            .find(|l| l.trim().starts_with(&format!("{line}: ")))
            .unwrap_or_else(|| panic!("{kind:?}: no {line} line: {}", out.stdout));
        assert!(
            l.contains("FAILED") && l.contains(url.as_str()),
            "{kind:?} {what}: {l}"
        );
    }
}

fn a_missing_bucket_and_an_unreachable_endpoint_are_clear_errors(kind: Kind) {
    let emu = Emulator::shared(kind);
    // A bucket that does not exist: exit 4.
    let url = emu.url(&format!("pgbak-missing-{}", std::process::id()), "db1");
    let env = env_on(emu, &url, "cloud_max_attempts = 2\n");
    refused("missing bucket", &env, &url, &env.env, 4);

    // Nothing listens at the endpoint: exit 3.
    let env = CloudEnv::new(emu);
    env.write_config_without_server("cloud_max_attempts = 2\n");
    let closed = format!("http://127.0.0.1:{}", pgbak_tests::free_port());
    refused(
        "unreachable endpoint",
        &env,
        &env.repo.url,
        &env.env_via(&closed),
        3,
    );

    // Credentials the store refuses: exit 4. (fake-gcs-server checks no credentials, so there
    // is nothing to refuse on GCS.)
    match kind {
        Kind::Azure => {
            let wrong_key = AZURITE_KEY.replace('E', "F");
            let wrong: Vec<(String, String)> = env
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.replace(AZURITE_KEY, &wrong_key)))
                .collect();
            refused("wrong account key", &env, &env.repo.url, &wrong, 4);
            for args in [vec!["check", "main"], vec!["backup", "main"]] {
                let out = env.run_with_env(&args, &wrong);
                assert!(!format!("{out:?}").contains(&wrong_key), "{out:?}");
            }
        }
        Kind::S3 => {
            // moto accepts any key: a machine without credentials at all is what S3 refuses
            // here.
            let none: Vec<(String, String)> = env
                .env
                .iter()
                .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
                .cloned()
                .chain([
                    (
                        "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                        "/nonexistent".to_string(),
                    ),
                    ("AWS_CONFIG_FILE".to_string(), "/nonexistent".to_string()),
                ])
                .collect();
            refused("no credentials", &env, &env.repo.url, &none, 4);
        }
        Kind::Gcs => {}
    }
}

fn the_same_segment_twice_is_accepted_only_with_the_same_content(kind: Kind) {
    let emu = Emulator::shared(kind);
    let env = CloudEnv::new(emu);
    env.write_config_without_server("compression = zstd\n");
    let (name, bytes) = segment();
    let file = wal_file(&env, "first", name, bytes);
    env.run(&["archive-wal", "main", file.to_str().unwrap()])
        .ok();
    let store = env.store("wals");
    let stored = store.stat(&wal_key(name)).unwrap().expect("archived");

    // Identical content: success.
    let again = wal_file(&env, "again", name, bytes);
    let out = env
        .run(&["archive-wal", "main", again.to_str().unwrap()])
        .ok();
    assert!(
        out.stderr
            .contains("already archived with identical content"),
        "{kind:?}: {out:?}"
    );

    // Different content under the same name: refused, both kept.
    let mut other = bytes.clone();
    other[1 << 20] ^= 0xFF;
    let changed = wal_file(&env, "changed", name, &other);
    let out = env.run(&["archive-wal", "main", changed.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{kind:?}: {out:?}");
    assert!(
        out.stderr.contains("different content"),
        "{kind:?}: {}",
        out.stderr
    );
    let now = store.stat(&wal_key(name)).unwrap().expect("still archived");
    assert_eq!(
        (now.size, now.modified),
        (stored.size, stored.modified),
        "{kind:?}"
    );
    let back = env.pgbak.restore_dir("back");
    env.run(&["get-wal", "main", name, back.to_str().unwrap()])
        .ok();
    assert!(
        std::fs::read(&back).unwrap() == *bytes,
        "{kind:?}: the archived copy changed"
    );
    let errors = env.pgbak.server_dir().join("errors");
    let kept: Vec<PathBuf> = std::fs::read_dir(&errors)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(name.as_str())
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kind:?}: {kept:?}");
    assert!(
        std::fs::read(&kept[0]).unwrap() == other,
        "{kind:?}: the new copy is not kept as is"
    );
}

/// The pgbak process under `runuser` (which [`CloudEnv::spawn_with_env`] starts).
fn pgbak_pid(runuser: &Child) -> i32 {
    let pid = runuser.id();
    for _ in 0..100 {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children.split_whitespace().next() {
            return c.parse().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("runuser {pid} has no child")
}

#[test]
fn the_upload_of_a_killed_backup_is_aborted_by_cron() {
    let emu = Emulator::shared(Kind::S3);
    let proxy = FaultProxy::new(emu.addr());
    let env = CloudEnv::new(emu);
    let cluster = env.cluster("cloud_upload_min_chunk_size = 5Mi\n");
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g");
    proxy.hold_uploads_after(6 << 20);
    let mut child = env.spawn_with_env(&["backup", "main"], &env.env_via(&proxy.endpoint()));
    assert!(
        proxy.wait_held(Duration::from_secs(180)),
        "the backup never uploaded 6 MiB"
    );
    let pid = pgbak_pid(&child);
    // SAFETY: killing the pgbak process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    child.wait().unwrap();
    proxy.release();
    // The server may be archiving a segment meanwhile: only the backup's uploads count.
    let backup_uploads = || -> Vec<String> {
        emu.raw_s3_uploads(&env.repo.bucket)
            .into_iter()
            .filter(|k| k.starts_with("base/"))
            .collect()
    };
    let uploads = backup_uploads();
    assert!(!uploads.is_empty(), "the killed backup left no upload");
    assert!(
        uploads.iter().all(|k| k.ends_with("/data/base.tar")),
        "{uploads:?}"
    );

    // (A request the killed process sent just before dying may reach the store after the
    // listing above: cron may find one more upload than was listed.)
    let out = env.run(&["cron"]).ok();
    let aborted: usize = out
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("main: aborted ")?
                .strip_suffix(" unfinished upload(s) left by a process that died")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("cron aborted nothing: {out:?}"));
    assert!(aborted >= uploads.len(), "{aborted} < {uploads:?}");
    assert_eq!(backup_uploads(), Vec::<String>::new());
    // The killed backup is FAILED and the next one succeeds.
    let next = env.backup();
    let listed = env.backups();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].1, "FAILED");
    assert_eq!(listed[1].0, next["backup_id"].as_str().unwrap());
}
