//! The habits of the command line that are not workflows: shell completion and the manual page
//! generated from the command definitions, the systemd units shipped in `contrib/systemd`, and
//! progress bars drawn only on a terminal.

use pgbak_tests::{pgbak_bin, run_ok};
use std::path::Path;
use std::process::Command;

fn pgbak(args: &[&str]) -> String {
    let out = run_ok(Command::new(pgbak_bin()).args(args));
    String::from_utf8(out.stdout).unwrap()
}

/// Every subcommand `pgbak --help` lists.
fn subcommands() -> Vec<String> {
    let help = pgbak(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn completion_scripts_and_the_manual_page_cover_every_command() {
    let commands = subcommands();
    assert!(commands.len() > 25, "{commands:?}");
    for c in [
        "backup",
        "recover",
        "archive-wal",
        "get-wal",
        "cron",
        "completion",
        "manpage",
    ] {
        assert!(commands.iter().any(|x| x == c), "{c} in {commands:?}");
    }

    let bash = pgbak(&["completion", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pgbak.bash");
    std::fs::write(&script, &bash).unwrap();
    // bash reads it without a syntax error, and it completes every command.
    run_ok(Command::new("bash").arg("-n").arg(&script));
    for c in &commands {
        assert!(bash.contains(c.as_str()), "bash completion lacks {c}");
    }
    let zsh = pgbak(&["completion", "zsh"]);
    assert!(
        zsh.starts_with("#compdef pgbak"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = pgbak(&["completion", "fish"]);
    assert!(fish.contains("complete -c pgbak"), "fish");
    for c in &commands {
        assert!(zsh.contains(c.as_str()) && fish.contains(c.as_str()), "{c}");
    }
    let out = Command::new(pgbak_bin())
        .args(["completion", "tcsh-like"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let man = pgbak(&["manpage"]);
    assert!(
        man.contains(".TH pgbak 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("Backup and recovery manager for PostgreSQL"));
    for c in &commands {
        assert!(
            man.contains(&c.replace('-', "\\-")),
            "manual page lacks {c}"
        );
    }
}

#[test]
fn systemd_units_run_existing_commands_as_the_postgres_user() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let mut services = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".timer") {
            assert!(text.contains("OnCalendar=minutely"), "{name}");
            let service = name.replace(".timer", ".service");
            assert!(dir.join(&service).is_file(), "{name} without {service}");
            continue;
        }
        services += 1;
        for needed in ["User=postgres", "UMask=0077", "NoNewPrivileges=yes"] {
            assert!(text.contains(needed), "{name} lacks {needed}");
        }
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{name}: no ExecStart"));
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(words[0], "/usr/local/bin/pgbak", "{name}");
        // The command and its options exist: `--help` of the same words accepts them.
        let args: Vec<&str> = words[1..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with('%'))
            .chain(["--help"])
            .collect();
        pgbak(&args);
    }
    assert_eq!(services, 2);
}

/// Runs `pgbak -c CONFIG args` as the cluster owner on a pseudo-terminal (`script`); everything
/// the terminal showed.
fn on_a_terminal(env: &pgbak_tests::PgbakEnv, args: &[&str]) -> String {
    let mut line = format!("{} -c {}", pgbak_bin().display(), env.config.display());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let out = pgbak_tests::command_as_owner("script")
        .args(["-qfec", &line, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{line}: {text}");
    text
}

#[test]
fn long_commands_draw_a_bar_on_a_terminal_only() {
    let env = pgbak_tests::PgbakEnv::new();
    let cluster = env.cluster("backup_compression = gzip\n", Default::default());
    cluster.psql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    );
    let id = env.backup_wait().json()["backup_id"]
        .as_str()
        .unwrap()
        .to_string();

    let shown = on_a_terminal(&env, &["verify-backup", "main", &id]);
    assert!(
        shown.contains("verify [") && shown.contains("eta"),
        "{shown}"
    );
    let dest = env.restore_dir("bar");
    let shown = on_a_terminal(&env, &["recover", "main", &id, dest.to_str().unwrap()]);
    assert!(
        shown.contains("recover [") && shown.contains("eta"),
        "{shown}"
    );
    assert!(shown.contains("Restored backup"), "{shown}");

    // Files: rebuild-xlogdb reads every archived file back; delete removes the WAL only the
    // deleted backup needed.
    for _ in 0..3 {
        cluster.psql("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g");
        cluster.psql("SELECT pg_switch_wal()");
    }
    let shown = on_a_terminal(&env, &["backup", "main", "--wait"]);
    assert!(shown.contains("eta") && shown.contains("DONE"), "{shown}");
    let second = env.backup_wait().json()["backup_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = on_a_terminal(&env, &["rebuild-xlogdb", "main"]);
    assert!(
        shown.contains("rebuild-xlogdb [") && shown.contains("files"),
        "{shown}"
    );
    let shown = on_a_terminal(&env, &["delete", "main", &id]);
    assert!(
        shown.contains("delete [") && shown.contains("files"),
        "{shown}"
    );
    assert!(shown.contains("WAL file(s) removed"), "{shown}");
    assert_ne!(id, second);
    let listed = env.run(&["list-backups", "main"]).ok().stdout;
    assert!(
        listed.contains(&second) && !listed.contains(&id),
        "{id} {second}: {listed}"
    );

    // Not a terminal, or -q: no bar.
    let plain = env.run(&["verify-backup", "main", &second]).ok();
    assert!(
        !plain.stderr.contains("eta") && !plain.stdout.contains("eta"),
        "{plain:?}"
    );
    let quiet = on_a_terminal(&env, &["-q", "verify-backup", "main", &second]);
    assert!(!quiet.contains("eta"), "{quiet}");
}
