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

/// A Barman option pgbak does not implement is never loaded in silence: one whose absence would
/// weaken safety (`encryption = gpg`, `worm_mode = on`) disables its server with an error, any
/// other one is a warning; both name the file, line and option. Barman's defaults load quietly.
#[test]
fn barman_options_pgbak_lacks_are_said_out_loud() {
    let env = PgbakEnv::new();
    let config = env.config.display().to_string();
    let write = |text: &str| {
        std::fs::write(
            &env.config,
            format!("[barman]\nbarman_home = {}\n{text}", env.home.display()),
        )
        .unwrap();
        give_to_owner(&env.config);
    };

    write("[main]\nconninfo = host=127.0.0.1\nencryption = none\nworm_mode = off\n");
    let out = env.run(&["list-servers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stderr.contains("encryption") && !out.stderr.contains("worm_mode"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("disabled"), "{}", out.stdout);

    for (line, option) in [
        ("encryption = gpg", "encryption"),
        ("worm_mode = on", "worm_mode"),
    ] {
        write(&format!(
            "[main]\nconninfo = host=127.0.0.1\n{line}\n[other]\nconninfo = host=127.0.0.1\n"
        ));
        let out = env.run(&["list-servers"]);
        assert_eq!(out.code, 0, "{out:?}");
        let main = out
            .stdout
            .lines()
            .find(|l| l.starts_with("main - "))
            .unwrap();
        assert!(
            main.contains("disabled")
                && main.contains(&format!("{config}:5: option '{option}' of server 'main'")),
            "{main}"
        );
        assert!(
            out.stdout.lines().any(|l| l == "other - "),
            "{}",
            out.stdout
        );
        let out = env.run(&["list-backups", "main"]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains(option), "{}", out.stderr);
        env.run(&["list-backups", "other"]).ok();
    }

    write("archiver_batch_size = 50\n[main]\nconninfo = host=127.0.0.1\nwal_conninfo = host=pg2\n");
    let out = env.run(&["list-servers"]).ok();
    for warning in [
        format!("WARNING: {config}:3: option 'archiver_batch_size' in [barman]: not implemented by pgbak, ignored: "),
        format!("WARNING: {config}:6: option 'wal_conninfo' of server 'main': not implemented by pgbak, ignored: "),
    ] {
        assert!(out.stderr.contains(&warning), "{warning} in {}", out.stderr);
    }
}
