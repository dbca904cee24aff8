//! pgbak as a library, the way embedders use it, against a real cluster:
//!
//! - `c_program_backs_up_and_restores_to_a_time`: `examples/c/backup_restore.c`, compiled with
//!   gcc against the generated header and `libpgbak.so`, takes a backup (with a progress
//!   callback), then restores it to a time between later writes; the restored server starts
//!   and holds exactly the rows of that time. The failures it provokes come back as status
//!   codes with messages (a backup that does not exist: PGBAK_NOT_FOUND; an unknown option:
//!   PGBAK_USAGE).
//! - `rust_example_backs_up_and_restores_to_a_time`: `pgbak-core`'s example
//!   `backup_and_restore`, a program that links the library and nothing else, does the same
//!   round trip.
//! - `python_package_passes_its_tests`: the package in `python/`, installed with pip (which
//!   bundles the library), passes its pytest tests against a real cluster: a backup with a
//!   progress callback, list/show/verify/check, a point-in-time restore whose server starts
//!   with the rows of that time, the failures as exceptions, and a callback that raises
//!   cancelling its backup.

use pgbak_tests::{
    command_as_owner, pgbak_example, pgbak_library, postgres_tempdir, Cluster, ClusterOptions,
    PgbakEnv,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn rows(c: &Cluster) -> String {
    c.psql("SELECT count(*) || ':' || coalesce(sum(id), 0) FROM t")
}

fn insert(c: &Cluster, from: i64, to: i64) {
    c.psql(&format!(
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({from}, {to}) g"
    ));
}

/// A time between writes, with the rows at that time.
fn moment(c: &Cluster) -> (String, String) {
    std::thread::sleep(Duration::from_millis(20));
    let at = c.psql("SELECT clock_timestamp()::text");
    let rows = rows(c);
    std::thread::sleep(Duration::from_millis(20));
    (at, rows)
}

#[test]
fn c_program_backs_up_and_restores_to_a_time() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = zstd\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    insert(&cluster, 1, 5000);

    // Built in a folder the cluster owner can read, linked against the library there.
    let lib = pgbak_library();
    let build = postgres_tempdir();
    let program = build.path().join("backup_restore");
    let out = Command::new("gcc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-o")
        .arg(&program)
        .arg(repo_root().join("examples/c/backup_restore.c"))
        .arg("-I")
        .arg(repo_root().join("crates/pgbak-ffi/include"))
        .arg("-L")
        .arg(lib.parent().unwrap())
        .arg(format!("-Wl,-rpath,{}", lib.parent().unwrap().display()))
        .arg("-lpgbak")
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pgbak_tests::give_to_owner(&program);
    let run = |args: &[&str]| run_program(&program, args);
    let config = env.config.to_str().unwrap();

    let out = run(&["backup", config, "main"]);
    assert!(
        out.contains(&format!("libpgbak {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let line = out.lines().find(|l| l.starts_with("backup: ")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&line["backup: ".len()..]).unwrap();
    assert_eq!(report["status"], "DONE", "{report}");
    assert_eq!(report["compression"], "zstd", "{report}");
    // The callback saw the copy.
    let progress = out.lines().find(|l| l.starts_with("progress: ")).unwrap();
    let calls: u64 = progress.split_whitespace().nth(1).unwrap().parse().unwrap();
    let bytes: u64 = progress.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        calls > 0 && bytes >= report["data_size"].as_u64().unwrap() / 2,
        "{progress} {report}"
    );

    insert(&cluster, 5001, 6000);
    let (target, at_target) = moment(&cluster);
    insert(&cluster, 6001, 7000);
    env.switch_wal_archived();

    let dest = env.restore_dir("from_c");
    let out = run(&["recover", config, "main", dest.to_str().unwrap(), &target]);
    let line = out.lines().find(|l| l.starts_with("recover: ")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&line["recover: ".len()..]).unwrap();
    assert!(report["wal_files_copied"].as_u64().unwrap() > 0, "{report}");
    let set = report["settings"]["recovery_target_time"].as_str().unwrap();
    assert!(set.starts_with(&target[..19]), "{report}");
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(rows(&restored), at_target, "recovery to {target}");

    let out = run(&["missing", config, "main"]);
    assert!(
        out.contains("show_backup: status 6 (not found is 6)"),
        "{out}"
    );
    assert!(out.contains("does not exist"), "{out}");
    assert!(out.contains("backup: status 2 (usage is 2)"), "{out}");
    assert!(out.contains("unknown field `wiat`"), "{out}");
}

#[test]
fn python_package_passes_its_tests() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = lz4\n", ClusterOptions::default());
    env.switch_wal_archived();

    // pip bundles the library given by PGBAK_LIBRARY into the package.
    let site = postgres_tempdir();
    let out = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
        ])
        .arg("--target")
        .arg(site.path())
        .arg(repo_root().join("python"))
        .env("PGBAK_LIBRARY", pgbak_library())
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .expect("pip");
    assert!(
        out.status.success(),
        "pip install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(site.path().join("pgbak/libpgbak.so").is_file());
    pgbak_tests::run_ok(Command::new("chmod").arg("-R").arg("a+rX").arg(site.path()));

    let work = postgres_tempdir();
    let out = command_as_owner("/usr/bin/python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo_root().join("python/tests"))
        .env("PYTHONPATH", site.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGBAK_LIBRARY")
        .env("PGBAK_TEST_CONFIG", &env.config)
        .env("PGBAK_TEST_CONNINFO", cluster.conninfo())
        .env("PGBAK_TEST_PGBIN", pgbak_tests::pg_bindir())
        .env("PGBAK_TEST_WORK", work.path())
        .current_dir(work.path())
        .output()
        .expect("pytest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pytest: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("8 passed") && !text.contains("skipped"),
        "{text}"
    );
}

/// Runs `program` as the cluster owner; its standard output.
fn run_program(program: &Path, args: &[&str]) -> String {
    let out = command_as_owner(program)
        .args(args)
        .output()
        .expect("run the program");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The JSON report after `prefix` on its line of `out`.
fn report_line(out: &str, prefix: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{out}"));
    serde_json::from_str(&line[prefix.len()..]).unwrap()
}

#[test]
fn rust_example_backs_up_and_restores_to_a_time() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_compression = gzip\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    insert(&cluster, 1, 4000);
    let program = pgbak_example("backup_and_restore");
    let config = env.config.to_str().unwrap();

    let out = run_program(&program, &["backup", config, "main"]);
    let report = report_line(&out, "backup: ");
    assert_eq!(report["status"], "DONE", "{report}");
    assert_eq!(report["compression"], "gzip", "{report}");
    let progress: Vec<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("progress: "))
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(progress[0] > 0 && progress[1] > 0, "{out}");

    insert(&cluster, 4001, 4500);
    let (target, at_target) = moment(&cluster);
    insert(&cluster, 4501, 5000);
    env.switch_wal_archived();
    let dest = env.restore_dir("from_rust");
    let out = run_program(
        &program,
        &["recover", config, "main", dest.to_str().unwrap(), &target],
    );
    let report = report_line(&out, "recover: ");
    assert_eq!(
        report["settings"]["recovery_target_action"], "promote",
        "{report}"
    );
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(rows(&restored), at_target, "recovery to {target}");

    // A failure is the error and its kind.
    let out = command_as_owner(&program)
        .args(["recover", config, "nosuch", "/tmp/x", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error (configuration): unknown server 'nosuch'"),
        "{err}"
    );
}
