//! Everything pgbak creates is private to its user whatever the umask: the catalogue (backups of
//! both formats, archived WAL, the index, metadata, locks, the log file), incoming/ and
//! streaming/, and a restored data directory.

use pgbak_tests::{give_to_owner, loose_modes, pgbak_bin, Cluster, ClusterOptions, PgbakEnv};
use std::time::{Duration, Instant};

/// Writes the configuration with `log_file` (a global option) and `extra` for `main`.
fn write_config(env: &PgbakEnv, cluster: &Cluster, log: &std::path::Path, extra: &str) {
    env.write_config(cluster, extra);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "[pgbak]\n",
        &format!("[pgbak]\nlog_file = {}\n", log.display()),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
}

#[test]
fn nothing_pgbak_creates_is_open_to_others_under_umask_000() {
    let env = PgbakEnv::new();
    // archive_command runs with PostgreSQL's own umask (0077): widen it, as a careless wrapper
    // script would.
    let archive_command = format!(
        "umask 000 && {} -q -c {} archive-wal main %p",
        pgbak_bin().display(),
        env.config.display()
    );
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some(archive_command),
        ..Default::default()
    });
    let log = env.home.join("log/pgbak.log");
    let streaming = "streaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\n";
    let tar = format!("backup_compression = zstd\ncompression = zstd\n{streaming}");
    write_config(&env, &cluster, &log, &tar);
    cluster.start_now();
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g",
    );

    let run = |args: &[&str]| env.run_umask(0, args).ok();
    run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ]);
    // cron starts receive-wal in the background: it inherits the umask.
    run(&["cron"]);
    // Wait until the receiver has written into streaming/.
    let streaming_dir = env.server_dir().join("streaming");
    let start = Instant::now();
    while std::fs::read_dir(&streaming_dir).map_or(0, |r| r.count()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "receive-wal wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    run(&["check", "main"]);
    run(&[
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ]);
    write_config(&env, &cluster, &log, streaming);
    let plain = run(&[
        "-f",
        "json",
        "backup",
        "main",
        "--wait",
        "--wait-timeout",
        "120",
    ]);
    assert_eq!(plain.json()["backup_format"], "plain");
    run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ]);
    run(&["cron"]);
    run(&["rebuild-xlogdb", "main"]);
    run(&["keep", "main", "latest", "--target", "full"]);
    run(&["receive-wal", "main", "--stop"]);

    // put-wal creates incoming/ for the files it receives (nothing arrives: it fails).
    assert_eq!(env.run_umask(0, &["put-wal", "main"]).code, 1);
    assert!(env.server_dir().join("incoming").is_dir());

    let dest = env.restore_dir("restored");
    run(&["recover", "main", "latest", dest.to_str().unwrap()]);

    assert!(log.exists(), "the log file was written");
    // The home itself was made by the test; everything in it by pgbak.
    let mut loose = Vec::new();
    for e in std::fs::read_dir(&env.home).unwrap() {
        loose.extend(loose_modes(&e.unwrap().path(), 0));
    }
    assert_eq!(loose, Vec::<String>::new());
    assert_eq!(loose_modes(&dest, 0), Vec::<String>::new());
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT count(*) FROM t", "5000", Duration::from_secs(120));
    give_to_owner(&dest);
}
