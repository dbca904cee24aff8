//! Backups under stress: two at once on one server, and one killed with SIGKILL halfway.

use pgbak_tests::{ClusterOptions, PgbakEnv};
use std::path::Path;
use std::time::{Duration, Instant};

/// A cluster with enough data that a rate-limited backup takes a few seconds.
fn slow_setup() -> (PgbakEnv, pgbak_tests::Cluster) {
    let env = PgbakEnv::new();
    // BASE_BACKUP's MAX_RATE (kB/s) makes the copy last long enough to interfere with it.
    let cluster = env.cluster("bandwidth_limit = 8192\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g+1)::text) AS v FROM generate_series(1, 100000) g");
    (env, cluster)
}

/// Waits until a backup of `main` has written its STARTED metadata.
fn wait_started(env: &PgbakEnv) -> String {
    let base = env.server_dir().join("base");
    let start = Instant::now();
    loop {
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                if e.path().join("backup.json").is_file() && e.path().join("data").exists() {
                    return e.file_name().to_string_lossy().into_owned();
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "backup never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lock_holder(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn second_concurrent_backup_fails_fast_naming_the_lock() {
    let (env, _cluster) = slow_setup();
    let mut first = env.spawn(&["backup", "main"]);
    wait_started(&env);
    let t = Instant::now();
    let second = env.run(&["backup", "main"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the second backup waited instead of failing fast"
    );
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains("backup lock"),
        "the error names the lock: {}",
        second.stderr
    );
    let t = Instant::now();
    let status = first.wait().unwrap();
    eprintln!("first backup finished {:?} after the second", t.elapsed());
    _cluster.dump_log_if_asked();
    assert!(status.success(), "the first backup completes");
    let backups = env.backups();
    assert_eq!(
        backups.len(),
        1,
        "the refused backup left nothing behind: {backups:?}"
    );
}

#[test]
fn killed_backup_is_failed_and_the_next_one_succeeds() {
    let (env, _cluster) = slow_setup();
    let mut first = env.spawn(&["backup", "main"]);
    let killed_id = wait_started(&env);
    std::thread::sleep(Duration::from_millis(500));
    let pid = lock_holder(&env.home.join(".main-backup.lock"));
    // SAFETY: plain kill(2) of the pgbak process the test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = first.wait();

    let backups = env.backups();
    assert_eq!(
        backups,
        vec![(killed_id.clone(), "FAILED".to_string())],
        "an interrupted backup is not DONE"
    );
    let dest = env.restore_dir("nothing");
    let out = env.run(&["recover", "main", "latest", dest.to_str().unwrap()]);
    assert_ne!(
        out.code, 0,
        "recover latest must not use the interrupted backup"
    );
    assert!(!dest.exists());

    env.write_config(&_cluster, "");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE");
    let backups = env.backups();
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0], (killed_id, "FAILED".to_string()));
    assert_eq!(backups[1].1, "DONE");
}
