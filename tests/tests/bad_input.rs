//! Bad input gets a clear error, the documented exit code, and changes nothing.

use pgbak_tests::{free_port, give_to_owner, ClusterOptions, PgbakEnv};

#[test]
fn configuration_errors_exit_2() {
    let env = PgbakEnv::new();
    let missing = env.dir.path().join("nope.conf");
    let out = env.run_raw(&["-c", missing.to_str().unwrap(), "list-servers"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("nope.conf"), "{}", out.stderr);

    std::fs::write(
        &env.config,
        "[pgbak]\nhome = /tmp\n[main]\nthis line is not an option\n",
    )
    .unwrap();
    give_to_owner(&env.config);
    let out = env.run(&["list-servers"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(":4"),
        "the error names the line: {}",
        out.stderr
    );

    std::fs::write(
        &env.config,
        format!(
            "[pgbak]\nhome = {}\n[main]\nconninfo = host=x\ncompression = zzz\n",
            env.home.display()
        ),
    )
    .unwrap();
    // An invalid server section disables that server only: list-servers shows why, and every
    // command naming the server is a configuration error.
    let out = env.run(&["list-servers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("main - (WARNING: disabled: ") && out.stdout.contains("compression"),
        "{}",
        out.stdout
    );
    let out = env.run(&["list-backups", "main"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("compression"), "{}", out.stderr);

    let out = env.run(&["frobnicate"]);
    assert_eq!(out.code, 2, "unknown command is a usage error");
}

#[test]
fn unknown_server_and_unreachable_postgres() {
    let env = PgbakEnv::new();
    let port = free_port();
    std::fs::write(
        &env.config,
        format!("[pgbak]\nhome = {}\n[main]\nconninfo = host=127.0.0.1 port={port} user=postgres connect_timeout=5\n", env.home.display()),
    )
    .unwrap();
    give_to_owner(&env.config);
    let out = env.run(&["list-backups", "other"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("other"), "{}", out.stderr);

    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("main"), "{}", out.stderr);
    assert!(
        !env.server_dir().join("base").exists()
            || std::fs::read_dir(env.server_dir().join("base"))
                .unwrap()
                .next()
                .is_none(),
        "a backup that could not start left files behind"
    );
}

#[test]
fn recover_refuses_bad_destinations_and_targets() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT 1 AS x");
    let info = env.backup_wait().json();
    let end_lsn = info["end_lsn"].as_str().unwrap().to_string();

    // Not empty.
    let dest = env.restore_dir("busy");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), b"mine").unwrap();
    give_to_owner(&dest);
    let out = env.run(&["recover", "main", "latest", dest.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        1,
        "nothing was added"
    );

    // A target time before the backup ended.
    let fresh = env.restore_dir("fresh");
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        fresh.to_str().unwrap(),
        "--target-time",
        "2000-01-01 00:00:00+00",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("before the end of backup"),
        "{}",
        out.stderr
    );
    assert!(!fresh.exists(), "nothing was written");

    // A target LSN before the backup ended.
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        fresh.to_str().unwrap(),
        "--target-lsn",
        "0/1",
    ]);
    assert_ne!(out.code, 0, "{end_lsn}");
    assert!(!fresh.exists());

    // Contradictory targets, unknown backups, unknown tablespaces.
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        fresh.to_str().unwrap(),
        "--target-lsn",
        "FF/0",
        "--target-name",
        "x",
    ]);
    assert_eq!(out.code, 2);
    let out = env.run(&[
        "recover",
        "main",
        "20000101T000000",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1);
    let out = env.run(&[
        "recover",
        "main",
        "latest",
        fresh.to_str().unwrap(),
        "--tablespace",
        "nosuch:/tmp/x",
    ]);
    assert_ne!(out.code, 0);
    assert!(!fresh.exists());
}
