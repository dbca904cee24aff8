//! Barman's common backup flow: the server checks run first and a critical failure stops the
//! backup before anything is written (non-critical ones never do), and every backup ends with a
//! restore point `pgbak_<id>` that recovery can target.

use pgbak_tests::{recover_and_start, Cluster, ClusterOptions, PgbakEnv};
use std::path::Path;

fn ids(s: &str) -> Vec<i64> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

/// The backup folders in the catalogue (none when `base/` does not exist).
fn backup_folders(base: &Path) -> Vec<String> {
    match std::fs::read_dir(base) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_failed_critical_check_stops_the_backup_before_anything_is_written() {
    let env = PgbakEnv::new();
    // archive_mode = off and no streaming archiver: the WAL of a backup could never be archived.
    let mut cluster = Cluster::init(ClusterOptions::default());
    env.write_config(&cluster, "");
    cluster.start_now();

    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("critical checks failed") && out.stderr.contains("archive_mode"),
        "{}",
        out.stderr
    );
    let base = env.server_dir().join("base");
    assert_eq!(backup_folders(&base), Vec::<String>::new());
    assert!(env.backups().is_empty());
}

#[test]
fn an_unwritable_catalogue_is_named_and_nothing_is_written() {
    let env = PgbakEnv::new();
    let _cluster = env.cluster("", ClusterOptions::default());
    let base = env.server_dir().join("base");
    std::fs::create_dir_all(&base).unwrap();
    pgbak_tests::give_to_owner(&env.server_dir());
    pgbak_tests::give_to_owner(&base);
    // Read-only for its owner (pgbak runs as the cluster owner, not as root).
    let mut perms = std::fs::metadata(&base).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&base, perms).unwrap();

    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("critical checks failed") && out.stderr.contains("directories"),
        "{}",
        out.stderr
    );
    assert_eq!(backup_folders(&base), Vec::<String>::new());
}

#[test]
fn non_critical_failures_do_not_stop_a_backup() {
    let env = PgbakEnv::new();
    // No backup yet: `backup maximum age` and `minimum redundancy requirements` both fail.
    let _cluster = env.cluster(
        "last_backup_maximum_age = 1 day\nminimum_redundancy = 2\n",
        ClusterOptions::default(),
    );
    let check = env.run(&["check", "main"]);
    assert_ne!(check.code, 0, "{}", check.stdout);
    assert!(
        check.stdout.contains("backup maximum age"),
        "{}",
        check.stdout
    );

    // Twice: the first backup of a new server also proves archiving with a WAL switch.
    for _ in 0..2 {
        let out = env
            .run(&[
                "-f",
                "json",
                "--log-level",
                "debug",
                "backup",
                "main",
                "--wait",
                "--wait-timeout",
                "120",
            ])
            .ok();
        assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);
        // What the checks cost (seen with --nocapture).
        for line in out
            .stderr
            .lines()
            .filter(|l| l.contains("pre-backup checks"))
        {
            eprintln!("{line}");
        }
    }
}

#[test]
fn recovery_to_the_backup_restore_point_stops_at_the_backup_end() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY)");
    cluster.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    let at_backup = ids(&cluster.psql("SELECT id FROM t ORDER BY id"));

    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);
    let id = out.json()["backup_id"].as_str().unwrap().to_string();
    let name = format!("pgbak_{id}");

    // Committed after the restore point: recovery to it must not see these.
    cluster.psql("INSERT INTO t SELECT generate_series(1001, 1100)");
    cluster.psql("DELETE FROM t WHERE id <= 10");
    env.switch_wal_archived();

    let r = recover_and_start(
        &env,
        "to_restore_point",
        &["--target-name", &name, "--target-action", "promote"],
    );
    assert_eq!(ids(&r.psql("SELECT id FROM t ORDER BY id")), at_backup);
}

#[test]
fn every_phase_of_a_backup_is_timed_in_its_metadata_and_the_log() {
    let env = PgbakEnv::new();
    let _cluster = env.cluster("", ClusterOptions::default());
    let began = std::time::Instant::now();
    let out = env.backup_wait_with(&["--log-level", "info"]);
    let wall = began.elapsed().as_secs_f64();
    let info = out.json();
    assert_eq!(info["status"], "DONE", "{}", out.stdout);
    let phases = &info["phases"];
    let names = [
        "checks",
        "start",
        "copy",
        "stop",
        "durable",
        "wal_switch",
        "wal_wait",
    ];
    let mut sum = 0.0;
    for name in names {
        let s = phases[name]
            .as_f64()
            .unwrap_or_else(|| panic!("phase {name} missing: {phases}"));
        assert!(s >= 0.0, "{name}: {s}");
        sum += s;
    }
    assert!(phases["copy"].as_f64().unwrap() > 0.0, "{phases}");
    assert!(phases["start"].as_f64().unwrap() > 0.0, "{phases}");
    // The phases follow one another inside the run: together no longer than the process.
    assert!(
        sum <= wall,
        "phases {sum} s, the whole run {wall} s: {phases}"
    );
    // The catalogue keeps them, and the log says them in one line.
    let shown = env
        .run(&["-f", "json", "show-backup", "main", "latest"])
        .ok();
    assert_eq!(&shown.json()["phases"], phases, "{}", shown.stdout);
    let id = info["backup_id"].as_str().unwrap();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(&format!("backup {id}: checks ")))
        .unwrap_or_else(|| panic!("no phase line in the log:\n{}", out.stderr));
    for name in names {
        assert!(line.contains(&format!("{name} ")), "{line}");
    }
}
