//! Leftovers and limits: temporary files of killed processes are swept by cron, a tampered
//! receive-wal lock never makes `--stop` signal the wrong process, absurd timeouts are
//! configuration errors, recovery outputs are durable before `recover` succeeds, a backup that
//! fails for lack of space frees its partial data at once, a torn or damaged WAL index line
//! never poisons its neighbours, and put-wal never writes more than a WAL file can be.

use pgbak_tests::{
    command_as_owner, give_to_owner, pgbak_bin, run_ok, Cluster, ClusterOptions, PgbakEnv, Tmpfs,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Files below `dir` whose name starts with `prefix`.
fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            }
        }
    }
    out
}

/// A plain copy of archived segment `name` of server `main`, in a folder the owner can read.
fn segment_copy(env: &PgbakEnv, name: &str) -> PathBuf {
    let work = env.dir.path().join("work");
    if !work.exists() {
        std::fs::create_dir(&work).unwrap();
        give_to_owner(&work);
    }
    let p = work.join(name);
    env.run(&["get-wal", "main", name, p.to_str().unwrap()])
        .ok();
    p
}

fn last_archived(env: &PgbakEnv) -> String {
    env.switch_wal_archived()
}

#[test]
fn temp_files_of_killed_processes_tampered_locks_and_absurd_timeouts() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        "compression = zstd\nstreaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\n",
        ClusterOptions::default(),
    );
    // A second server section with a catalogue of its own, to archive into by hand.
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        "\n[other]\nconninfo = {}\ncompression = zstd\n",
        cluster.conninfo()
    ));
    std::fs::write(&env.config, &text).unwrap();
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let seg = last_archived(&env);
    let copy = segment_copy(&env, &seg);

    // archive-wal killed with its compressed copy written under a temporary name.
    let mut child = env.spawn_env(
        &["archive-wal", "other", copy.to_str().unwrap()],
        &[("PGBAK_TEST_PAUSE_AT", "archive-wal:before-commit")],
    );
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("PGBAK_TEST_PAUSED"), "{line}");
    // The banner names pgbak's own PID (the child is runuser).
    let pid = line.split_whitespace().last().unwrap();
    run_ok(Command::new("kill").args(["-9", pid]));
    child.wait().unwrap();
    let other = env.home.join("other");
    let temps = files_named(&other, ".pgbak-tmp.");
    assert_eq!(temps.len(), 1, "{temps:?}");
    // A recent file is left alone (its writer might be in another PID namespace)...
    let out = env.run(&["cron"]);
    assert!(
        !out.stdout.contains("left by a process that died"),
        "{out:?}"
    );
    assert!(temps[0].exists());
    // ...an old one is removed.
    run_ok(
        Command::new("touch")
            .args(["-d", "10 minutes ago"])
            .arg(&temps[0]),
    );
    let out = env.run(&["cron"]);
    assert!(
        out.stdout.contains("left by a process that died"),
        "{out:?}"
    );
    assert!(files_named(&other, ".pgbak-tmp.").is_empty());
    // And the segment archives as if nothing had happened.
    env.run(&["archive-wal", "other", copy.to_str().unwrap()])
        .ok();

    // receive-wal runs (cron started it); its lock file is made to name other processes.
    let lock = env.home.join(".main-receive-wal.lock");
    let start = Instant::now();
    let holder = loop {
        if let Ok(t) = std::fs::read_to_string(&lock) {
            if let Ok(pid) = t.trim().parse::<u32>() {
                break pid;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "receive-wal did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut bystander = command_as_owner("sleep").arg("600").spawn().unwrap();
    for fake in ["0", "1", &bystander.id().to_string(), "-1"] {
        std::fs::write(&lock, format!("{fake}\n")).unwrap();
        let out = env.run(&["receive-wal", "main", "--stop"]);
        assert_ne!(out.code, 0, "{fake}: {out:?}");
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "{fake}: signalled a bystander"
        );
        assert!(
            Path::new(&format!("/proc/{holder}")).exists(),
            "{fake}: the receiver was stopped"
        );
    }
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    std::fs::write(&lock, format!("{holder}\n")).unwrap();
    env.run(&["receive-wal", "main", "--stop"]).ok();

    // Timeouts beyond any meaning are configuration or usage errors, never a panic.
    std::fs::write(
        &env.config,
        text.replace("[other]", "check_timeout = 18446744073709551615\n\n[other]"),
    )
    .unwrap();
    // The server's section is disabled with the reason (other servers go on working).
    let out = env.run(&["check", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("check_timeout"), "{}", out.stdout);
    let out = env.run(&["backup", "main"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("check_timeout"), "{}", out.stderr);
    std::fs::write(&env.config, &text).unwrap();
    for args in [
        vec!["check", "main", "--check-timeout", "18446744073709551615"],
        vec!["backup", "main", "--wait-timeout", "99999999999"],
        vec![
            "switch-wal",
            "main",
            "--archive",
            "--archive-timeout",
            "99999999999",
        ],
    ] {
        let out = env.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
}

#[test]
fn recovery_outputs_are_durable_before_recover_succeeds() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    env.backup_wait();
    env.switch_wal_archived();
    let dest = env.restore_dir("restored");
    let trace = env.dir.path().join("trace");
    let out = command_as_owner("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(pgbak_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["recover", "main", "latest"])
        .arg(&dest)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        // Lines start with the PID when several threads were traced.
        .map(|l| {
            let l = l.trim_start();
            match l.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
                _ => l,
            }
            .to_string()
        })
        .collect();
    // Each file recovery adds is fsynced before it is renamed into place...
    for name in ["postgresql.auto.conf", "recovery.signal"] {
        let at = lines
            .iter()
            .position(|l| l.starts_with("rename") && l.contains(&format!("/{name}\"")))
            .unwrap_or_else(|| panic!("no rename of {name}: {lines:#?}"));
        assert!(lines[at - 1].starts_with("fsync("), "{name}: {lines:#?}");
    }
    // ...and the copied WAL is made durable before the signal file exists.
    let signal = lines
        .iter()
        .position(|l| l.contains("/recovery.signal\""))
        .unwrap();
    assert!(
        lines[..signal].iter().any(|l| l.starts_with("syncfs(")),
        "{lines:#?}"
    );
}

#[test]
fn a_backup_that_fails_for_lack_of_space_frees_it_at_once() {
    let disk = Tmpfs::mount(40 << 20);
    let env = PgbakEnv::new();
    // Load 64 MB before archiving starts, so that its WAL does not fill the small disk.
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some("true".into()),
        ..Default::default()
    });
    let home = disk.path().join("home");
    std::fs::create_dir(&home).unwrap();
    give_to_owner(&home);
    env.write_config(&cluster, "compression = zstd\n");
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &format!("home = {}", env.home.display()),
        &format!("home = {}", home.display()),
    );
    std::fs::write(&env.config, text).unwrap();
    cluster.start_now();
    cluster.psql(
        "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 700000) g",
    );
    cluster.psql(&format!(
        "ALTER SYSTEM SET archive_command = '{}'",
        env.archive_command().replace('\'', "''")
    ));
    cluster.psql("SELECT pg_reload_conf()");
    env.switch_wal_archived();
    let free_before = disk.available();

    let out = env.run(&["-f", "json", "backup", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("No space left"), "{}", out.stderr);
    let backups = env.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].1, "FAILED");
    let dir = home.join("main/base").join(&backups[0].0);
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["backup.json"], "only the FAILED record stays");
    assert!(
        disk.available() + (4 << 20) >= free_before,
        "{} bytes free after, {free_before} before",
        disk.available()
    );
    let shown = env
        .run(&["-f", "json", "show-backup", "main", &backups[0].0])
        .ok();
    assert!(shown.json()["error"]
        .as_str()
        .unwrap()
        .contains("No space left"));
    // WAL archiving into the same disk goes on.
    env.switch_wal_archived();
}

/// Every object of the WAL index (entries and chunks) below `wals/index/`.
fn index_objects(env: &PgbakEnv) -> Vec<PathBuf> {
    let mut v = files_named(&env.server_dir().join("wals/index"), "");
    v.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    v.sort();
    v
}

#[test]
fn torn_and_damaged_index_lines_never_poison_their_neighbours() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = zstd\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let first = last_archived(&env);
    let copy = segment_copy(&env, &first);
    let work = copy.parent().unwrap().to_path_buf();
    let fetch = |name: &str| {
        let dest = work.join(format!("fetched-{name}"));
        let _ = std::fs::remove_file(&dest);
        env.run(&["get-wal", "main", name, dest.to_str().unwrap()])
    };
    // An archive written by an earlier version: its appended `xlog.db`, whose last append was
    // torn by a full disk (half of `first`'s line, no newline). archive-wal failed, so
    // PostgreSQL archives the segment again.
    let wals = env.server_dir().join("wals");
    let legacy = wals.join("xlog.db");
    let mut text = String::new();
    for p in index_objects(&env) {
        text.push_str(&std::fs::read_to_string(&p).unwrap());
        std::fs::remove_file(&p).unwrap();
    }
    let line = text
        .lines()
        .find(|l| l.starts_with(&first))
        .unwrap()
        .to_string();
    let torn: Vec<&str> = line.split('\t').take(3).collect();
    let rest: String = text
        .lines()
        .filter(|l| !l.starts_with(&first))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&legacy, format!("{rest}{}", torn.join("\t"))).unwrap();
    give_to_owner(&legacy);
    env.run(&["archive-wal", "main", copy.to_str().unwrap()])
        .ok();
    let next = last_archived(&env);
    assert_ne!(first, next);
    fetch(&first).ok();
    fetch(&next).ok();
    // cron migrates the old file into the index's chunks.
    env.run(&["cron"]).ok();
    assert!(!legacy.exists(), "xlog.db is migrated");
    fetch(&first).ok();
    fetch(&next).ok();

    // A byte that is not UTF-8 in a chunk: a warning, not a failed status.
    let chunks = files_named(&wals.join("index/c"), "");
    assert!(!chunks.is_empty());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&chunks[0])
        .unwrap();
    f.write_all(b"\xff\xfe not a line\n").unwrap();
    drop(f);
    let out = env.run(&["status", "main"]).ok();
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);

    // A wrong checksum in the index: get-wal refuses the intact file until rebuild-xlogdb
    // recomputes the checksums from the files.
    for p in index_objects(&env) {
        let bytes = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        if let Some(line) = bytes.lines().find(|l| l.starts_with(&first)) {
            let crc = line
                .split('\t')
                .find(|c| c.starts_with("crc32c="))
                .unwrap()
                .to_string();
            std::fs::write(&p, bytes.replace(&crc, "crc32c=0badc0de")).unwrap();
        }
    }
    assert_eq!(fetch(&first).code, 1);
    env.run(&["rebuild-xlogdb", "main"]).ok();
    fetch(&first).ok();
    fetch(&next).ok();
    for p in index_objects(&env) {
        assert!(!String::from_utf8_lossy(&std::fs::read(&p).unwrap()).contains("0badc0de"));
    }
}

#[test]
fn put_wal_never_writes_more_than_a_wal_file_can_be() {
    let disk = Tmpfs::mount(48 << 20);
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = zstd\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let seg = last_archived(&env);
    let plain = std::fs::read(segment_copy(&env, &seg)).unwrap();
    // incoming/ on a small disk: a decompression bomb would fill it.
    let incoming = disk.path().join("incoming");
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        "incoming_wals_directory = {}\n",
        incoming.display()
    ));
    std::fs::write(&env.config, text).unwrap();
    // The next segment's name, the real segment's 16 MiB and then 1 GiB more, zstd: 40 KB.
    let next = format!(
        "{}{:08X}",
        &seg[..16],
        u32::from_str_radix(&seg[16..], 16).unwrap() + 1
    );
    let mut header = plain.clone();
    // The header must name the next segment for the bomb to pass the first check.
    let seg_size = plain.len() as u64;
    let addr = u64::from_le_bytes(plain[8..16].try_into().unwrap()) + seg_size;
    header[8..16].copy_from_slice(&addr.to_le_bytes());
    let mut bomb = Vec::new();
    {
        let mut enc = zstd::Encoder::new(&mut bomb, 1).unwrap();
        enc.write_all(&header).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        enc.finish().unwrap();
    }
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    let sums = format!("{} *{next}\n", md5_hex(&bomb));
    let input = pgbak_tests::tar_of(&[(&next, &bomb), ("MD5SUMS", sums.as_bytes())]);
    let mut child = command_as_owner(pgbak_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["put-wal", "main"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(&input);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("decompresses to more than"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&incoming).unwrap().count(),
        0,
        "left in incoming/"
    );
}

fn md5_hex(data: &[u8]) -> String {
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
