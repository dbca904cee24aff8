//! `pgbak check` against real servers: a healthy server passes every check (console, JSON and
//! Nagios), and each check made to fail on purpose (stale backup, unwritable catalogue folder,
//! wrong password, archiving off, failing archive_command) is reported FAILED with exit 1 (2 for
//! Nagios). Also the log file, show-servers, diagnose and lock-directory-cleanup.

use pgbak_tests::{give_to_owner, Cluster, ClusterOptions, PgbakEnv, PgbakOutput};
use std::time::Duration;

/// Writes the configuration of server `main` with extra global and server lines.
fn write_config(env: &PgbakEnv, conninfo: &str, global_extra: &str, server_extra: &str) {
    let text = format!(
        "[pgbak]\nhome = {}\nlog_level = INFO\n{global_extra}\n\n[main]\ndescription = test server\nconninfo = {conninfo}\nbackup_method = postgres\nimmediate_checkpoint = true\n{server_extra}\n",
        env.home.display()
    );
    std::fs::write(&env.config, text).expect("write config");
    give_to_owner(&env.config);
}

/// The check line called `name`, e.g. `wal_level: OK`.
fn line<'a>(out: &'a PgbakOutput, name: &str) -> &'a str {
    let prefix = format!("\t{name}: ");
    out.stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no '{name}' line in:\n{}", out.stdout))
}

fn backup(env: &PgbakEnv) -> String {
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE");
    out.json()["backup_id"].as_str().unwrap().to_string()
}

#[test]
fn a_healthy_server_passes_then_each_check_fails_on_purpose() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    let log = env.dir.path().join("log/pgbak.log");
    write_config(
        &env,
        &cluster.conninfo(),
        &format!("log_file = {}", log.display()),
        "",
    );
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    let id = backup(&env);

    let out = env.run(&["check", "main"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("Server main:\n"), "{}", out.stdout);
    for expected in [
        "WAL archive: OK",
        "PostgreSQL: OK",
        "superuser or standard user with backup privileges: OK",
        "PostgreSQL streaming: OK",
        "wal_level: OK",
        "has monitoring privileges: OK",
        "directories: OK",
        "retention policy settings: OK",
        "backup maximum age: OK (no last_backup_maximum_age provided)",
        "backup minimum size: OK (no last_backup_minimum_size provided)",
        "wal maximum age: OK (no last_wal_maximum_age provided)",
        "compression settings: OK",
        "failed backups: OK (there are 0 failed backups)",
        "minimum redundancy requirements: OK (have 1 backups, expected at least 0)",
        "systemid coherence: OK",
        "archive_mode: OK",
        "archive_command: OK",
        "continuous archiving: OK",
        "archiver errors: OK",
    ] {
        let name = expected.split(": ").next().unwrap();
        assert_eq!(line(&out, name), format!("\t{expected}"));
    }
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);

    // The first backup recorded the cluster's identity.
    let identity: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.server_dir().join("identity.json")).expect("identity.json"),
    )
    .unwrap();
    assert_eq!(
        identity["systemid"].as_str().unwrap(),
        cluster.psql("SELECT system_identifier FROM pg_control_system()")
    );
    assert_eq!(identity["version"], "15");
    let status = env.run(&["-f", "json", "status", "main"]).ok().json();
    assert_eq!(
        status["systemid"],
        format!("{} (PostgreSQL 15)", identity["systemid"].as_str().unwrap())
    );
    assert_eq!(status["locks"], "none held");

    let nagios = env.run(&["check", "--nagios", "main"]);
    assert_eq!(nagios.code, 0, "{nagios:?}");
    assert_eq!(
        nagios.stdout.trim_end(),
        "PGBAK OK - Ready to serve the backup for main"
    );
    let json = env.run(&["-f", "json", "check", "main"]);
    assert_eq!(json.code, 0);
    let checks = json.json()["main"].as_object().unwrap().clone();
    assert!(checks.len() >= 19, "{checks:?}");
    assert!(checks.values().all(|c| c["status"] == "OK"), "{checks:?}");
    assert_eq!(
        checks["minimum_redundancy_requirements"]["hint"],
        "have 1 backups, expected at least 0"
    );

    // The log file has the commands with their outcome.
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(
        logged.contains("started") && logged.contains("finished"),
        "{logged}"
    );
    assert!(logged.contains("INFO"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "ANSI escapes in the log file:\n{logged:?}"
    );
    // Captured stderr is not a terminal: no colour escapes either.
    let out = env.run(&["-d", "check", "main"]);
    assert!(out.stderr.contains("DEBUG"), "{}", out.stderr);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);

    // Stale backup: the latest backup ended 3 hours ago, the limit is 1 hour.
    write_config(
        &env,
        &cluster.conninfo(),
        "",
        "last_backup_maximum_age = 1 hour",
    );
    let info_path = env.server_dir().join("base").join(&id).join("backup.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
    let past = chrono::Utc::now() - chrono::Duration::hours(3);
    info["end_time"] = serde_json::json!(past.to_rfc3339());
    info["begin_time"] = serde_json::json!((past - chrono::Duration::minutes(1)).to_rfc3339());
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    let out = env.run(&["check", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    let age = line(&out, "backup maximum age");
    assert!(
        age.starts_with(
            "\tbackup maximum age: FAILED (interval provided: 1 hour, latest backup age: 3 hours"
        ),
        "{age}"
    );
    let nagios = env.run(&["check", "--nagios", "main"]);
    assert_eq!(nagios.code, 2, "{nagios:?}");
    let lines: Vec<&str> = nagios.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "PGBAK CRITICAL - server main has issues * main FAILED: backup maximum age"
    );
    assert!(
        lines[1].starts_with("main.backup maximum age: FAILED (interval provided: 1 hour"),
        "{}",
        nagios.stdout
    );
    assert_eq!(lines.len(), 2, "{}", nagios.stdout);

    // A catalogue folder pgbak cannot write into.
    write_config(&env, &cluster.conninfo(), "", "");
    let errors = env.server_dir().join("errors");
    std::fs::create_dir_all(&errors).unwrap();
    give_to_owner(&errors);
    let chmod = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&errors, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(0o000);
    let out = env.run(&["check", "main"]);
    chmod(0o700);
    assert_eq!(out.code, 1, "{out:?}");
    let dirs = line(&out, "directories");
    assert!(
        dirs.starts_with(&format!("\tdirectories: FAILED ({}: ", errors.display()))
            && dirs.contains("Permission denied"),
        "{dirs}"
    );
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("FAILED"))
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "directories and archiver errors only: {failed:?}"
    );
    assert_eq!(env.run(&["check", "main"]).code, 0, "back to healthy");
}

#[test]
fn a_wrong_password_fails_the_connection_checks() {
    let env = PgbakEnv::new();
    let opts = ClusterOptions {
        hba: vec![
            "host all checker 127.0.0.1/32 scram-sha-256".into(),
            "host replication checker 127.0.0.1/32 scram-sha-256".into(),
        ],
        ..ClusterOptions::default()
    };
    let cluster = env.cluster("", opts);
    cluster.psql("CREATE ROLE checker LOGIN SUPERUSER REPLICATION PASSWORD 'right-one'");
    let conninfo = |pw: &str| {
        format!(
            "host=127.0.0.1 port={} user=checker password={pw} dbname=postgres",
            cluster.port
        )
    };
    write_config(&env, &conninfo("wrong-one"), "", "");
    let out = env.run(&["check", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    for name in ["PostgreSQL", "PostgreSQL streaming"] {
        let l = line(&out, name);
        assert!(
            l.contains(": FAILED (") && l.contains("password authentication failed"),
            "{l}"
        );
    }
    assert!(!out.stdout.contains("wrong-one"), "{}", out.stdout);
    let nagios = env.run(&["check", "--nagios", "main"]);
    assert_eq!(nagios.code, 2);
    assert!(
        nagios
            .stdout
            .starts_with("PGBAK CRITICAL - server main has issues * main FAILED: "),
        "{}",
        nagios.stdout
    );

    // The same user with its password connects: the password was the fault.
    write_config(&env, &conninfo("right-one"), "", "");
    let out = env.run(&["check", "main"]);
    assert_eq!(line(&out, "PostgreSQL"), "\tPostgreSQL: OK");
    assert_eq!(
        line(&out, "PostgreSQL streaming"),
        "\tPostgreSQL streaming: OK"
    );

    // Passwords never show in show-servers or diagnose.
    let show = env.run(&["show-servers", "main"]).ok();
    assert!(
        show.stdout.contains("\tconninfo: host=127.0.0.1"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("password=********"), "{}", show.stdout);
    let shown = env.run(&["-f", "json", "show-servers", "main"]).ok().json();
    assert_eq!(shown["main"]["backup_method"], "postgres");
    let diag = env.run(&["diagnose"]).ok();
    assert!(!diag.stdout.contains("right-one"), "{}", diag.stdout);
    let d = diag.json();
    assert!(d["servers"]["main"]["postgresql"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with("15"));
    assert!(d["system_info"]["pgbak_version"].is_string());
    assert!(d["servers"]["main"]["backups"].is_array());
}

#[test]
fn archiving_off_or_failing_is_reported() {
    // archive_mode off and no streaming archiver: nothing can reach the archive.
    let env = PgbakEnv::new();
    let mut cluster = Cluster::init(ClusterOptions::default());
    env.write_config(&cluster, "");
    cluster.start_now();
    let out = env.run(&["check", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        line(&out, "archive_mode"),
        "\tarchive_mode: FAILED (please set it to 'on' or 'always')"
    );
    assert_eq!(
        line(&out, "archive_command"),
        "\tarchive_command: FAILED (please set it accordingly to documentation)"
    );
    assert_eq!(
        line(&out, "WAL archive"),
        "\tWAL archive: FAILED (please make sure WAL shipping is setup)"
    );
    drop(cluster);

    // An archive_command that always fails: pg_stat_archiver shows it.
    let env = PgbakEnv::new();
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some("false".into()),
        ..ClusterOptions::default()
    });
    env.write_config(&cluster, "");
    cluster.start_now();
    cluster.psql("CREATE TABLE t AS SELECT 1 AS x");
    cluster.psql("SELECT pg_switch_wal()");
    cluster.wait_for(
        "SELECT failed_count > 0 FROM pg_stat_archiver",
        "t",
        Duration::from_secs(60),
    );
    let out = env.run(&["check", "--check-timeout", "20", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(line(&out, "archive_command"), "\tarchive_command: OK");
    let cont = line(&out, "continuous archiving");
    assert!(
        cont.starts_with("\tcontinuous archiving: FAILED (last failed WAL 0000000100000000000000"),
        "{cont}"
    );
}

#[test]
fn lock_directory_cleanup_reports_locks_of_dead_processes() {
    let env = PgbakEnv::new();
    std::fs::write(
        env.config.as_path(),
        format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=127.0.0.1 port=1 dbname=postgres\n",
            env.home.display()
        ),
    )
    .unwrap();
    give_to_owner(&env.config);
    // A backup lock left by a process killed with -9: the kernel freed it, its PID stayed.
    let lock = env.home.join(".main-backup.lock");
    std::fs::write(&lock, "2147483646\n").unwrap();
    give_to_owner(&lock);
    let listed = env.run(&["lock-directory-cleanup", "--list"]).ok();
    assert_eq!(
        listed.stdout.trim_end(),
        ".main-backup.lock: free, left by process 2147483646, which is no longer running"
    );
    let out = env.run(&["lock-directory-cleanup"]).ok();
    assert_eq!(
        out.stdout.trim_end(),
        "removed .main-backup.lock (left by process 2147483646, which is no longer running)"
    );
    assert!(!lock.exists());
}
