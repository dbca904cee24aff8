//! Passwords never reach any output: stdout, stderr (text or JSON), the log file, or the
//! PostgreSQL server log (where `archive_command` writes its stderr), across the paths that
//! carry configuration values: a conninfo password with `%` (a configuration interpolation
//! error), a bad `%` escape in a URI password (a connection string error, shown by `check`,
//! `check --nagios` and `backup`), an upper-case `PASSWORD=` keyword and `PGPASSWORD=` in a hook
//! command (shown by `show-servers` and `diagnose`, logged when the hook fails).

use pgbak_tests::{give_to_owner, ClusterOptions, PgbakEnv, PgbakOutput};

/// The password: distinctive, so that any leak of it, or of most of it, is found.
const SECRET: &str = "Zq7xK9ecretPW";

/// Panics if the output shows the password (or a long piece of it).
fn hidden(what: &str, out: &PgbakOutput) {
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains(&SECRET[..8]) && !text.contains(&SECRET[5..]),
            "{what} shows the password:\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn no_output_of_any_command_shows_a_password() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    let log_file = env.dir.path().join("log").join("pgbak.log");
    let port = cluster.port;
    let text = format!(
        "[pgbak]
home = {home}
log_level = DEBUG
log_file = {log}

[main]
description = healthy server with secret hook commands
conninfo = {conninfo}
backup_method = postgres
pre_archive_script = PGPASSWORD={SECRET} false
post_backup_script = PGPASSWORD='{SECRET}' psql -c 'select 1'

[upper]
description = upper-case keyword
conninfo = host=127.0.0.1 port={port} user=postgres PASSWORD={SECRET} connect_timeout=5

[uri]
description = bad percent escape in a URI password
conninfo = postgresql://postgres:{SECRET}%%zz@127.0.0.1:{port}/postgres?connect_timeout=5
",
        home = env.home.display(),
        log = log_file.display(),
        conninfo = cluster.conninfo(),
    );
    std::fs::write(&env.config, text).unwrap();
    give_to_owner(&env.config);

    // A WAL switch makes PostgreSQL run archive_command, whose pre_archive_script fails: its
    // command is logged (and written to stderr, which PostgreSQL keeps in its log).
    let switched = env.run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ]);
    hidden("switch-wal", &switched);
    assert_eq!(switched.code, 0, "{switched:?}");

    let check = env.run(&["check", "uri"]);
    hidden("check", &check);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stdout.contains("PostgreSQL: FAILED") && check.stdout.contains("password"),
        "the URI error is reported, without the password: {}",
        check.stdout
    );
    for args in [
        &["check", "--nagios", "uri", "upper"][..],
        &["-f", "json", "check", "all"],
        &["-d", "check", "upper"],
        &["--log-format", "json", "-d", "backup", "uri"],
        &["backup", "upper"],
        &["status", "uri"],
        &["list-servers"],
        &["-f", "json", "list-servers"],
        &["cron"],
        &["diagnose"],
        &["diagnose", "--no-connect"],
    ] {
        hidden(&args.join(" "), &env.run(args));
    }

    let show = env.run(&["show-servers", "all"]);
    hidden("show-servers", &show);
    assert_eq!(show.code, 0, "{show:?}");
    for shown in [
        "PASSWORD=********",
        "PGPASSWORD=******** false",
        "PGPASSWORD='********' psql",
        "postgres:********@127.0.0.1",
    ] {
        assert!(show.stdout.contains(shown), "{shown} in {}", show.stdout);
    }
    hidden(
        "show-servers json",
        &env.run(&["-f", "json", "show-servers", "all"]),
    );

    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        !log.contains(&SECRET[..8]) && !log.contains(&SECRET[5..]),
        "the log file shows the password:\n{log}"
    );
    assert!(
        log.contains("pre_archive_script 'PGPASSWORD=******** false' exited with 1"),
        "the failing hook was logged: {log}"
    );
    let server_log = cluster.server_log();
    assert!(
        !server_log.contains(&SECRET[..8]),
        "archive_command's stderr shows the password:\n{server_log}"
    );

    // A `%` in a conninfo password is an interpolation error of the configuration file.
    let other = env.dir.path().join("percent.conf");
    std::fs::write(
        &other,
        format!(
            "[pgbak]\nhome = {}\nlog_file = {}\n\n[pct]\nconninfo = host=127.0.0.1 port={port} password={SECRET}%x\n",
            env.home.display(),
            log_file.display()
        ),
    )
    .unwrap();
    give_to_owner(&other);
    let other = other.display().to_string();
    for args in [
        &["list-servers"][..],
        &["check", "pct"],
        &["check", "--nagios", "all"],
        &["show-servers", "all"],
        &["diagnose"],
        &["archive-wal", "pct", "/nonexistent"],
    ] {
        let mut all = vec!["-c", other.as_str()];
        all.extend_from_slice(args);
        let out = env.run_raw(&all);
        hidden(&args.join(" "), &out);
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains("password=********"),
            "{args:?} names the problem: {out:?}"
        );
    }
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(!log.contains(&SECRET[..8]), "{log}");
}
