//! The SSH helpers for the database host against the test bed's sshd: `wal-archive` as the
//! archive_command of a real cluster (the backup waits for WAL that arrives only through it),
//! `wal-restore --parallel 4` as the restore_command of the recovered server, `--test` for both,
//! and bad input (not a WAL name, a segment of the wrong size, a history file that does not
//! parse, a damaged stream) refused with a clear error and nothing written.

use pgbak_tests::{
    command_as_owner, give_to_owner, md5_hex, pgbak_bin, put_wal_input, Cluster, ClusterOptions,
    PgbakEnv, Sshd,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// `--ssh-command` and `-U`/host arguments that reach the test sshd.
fn remote_args(sshd: &Sshd) -> (String, String, String) {
    let cmd = sshd.ssh_command();
    let (ssh, dest) = cmd.rsplit_once(' ').unwrap();
    let (user, host) = dest.split_once('@').unwrap();
    (ssh.to_string(), user.to_string(), host.to_string())
}

/// A shell-quoted helper invocation: `pgbak -c CONF HELPER --ssh-command ... -U USER ARGS...`.
fn helper_command(env: &PgbakEnv, sshd: &Sshd, helper: &str, args: &str) -> String {
    let (ssh, user, host) = remote_args(sshd);
    let bin = pgbak_bin();
    format!(
        "{bin} -c {conf} {helper} --ssh-command \"{ssh}\" -U {user} --pgbak-path {bin} {args} {host} main",
        bin = bin.display(),
        conf = env.config.display(),
    )
}

fn sh(cmd: &str) -> std::process::Output {
    command_as_owner("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ids(c: &Cluster) -> Vec<i64> {
    c.psql("SELECT id FROM t ORDER BY id")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

fn segment_count(env: &PgbakEnv) -> usize {
    let out = env.run(&["-f", "json", "status", "main"]).ok();
    out.json()["archived_wal_segments"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn wal_archive_and_wal_restore_over_ssh() {
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let archive_command = format!("{} %p", helper_command(&env, &sshd, "wal-archive", ""));
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some(archive_command),
        ..Default::default()
    });
    env.write_config(&cluster, "compression = zstd\n");
    cluster.start_now();

    // --test of both helpers.
    let out = sh(&format!(
        "{} --test",
        helper_command(&env, &sshd, "wal-archive", "")
    ));
    assert!(out.status.success(), "{out:?}\n{}", sshd.log());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Ready to accept WAL files"));
    let out = sh(&format!(
        "{} --test",
        helper_command(&env, &sshd, "wal-restore", "")
    ));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Ready to retrieve WAL files"));
    // A host that does not answer: ssh fails, exit 3 as Barman's helper.
    // (sshd listens on 127.0.0.1 only.)
    let bad = helper_command(&env, &sshd, "wal-archive", "")
        .replace(" 127.0.0.1 main", " 127.0.0.2 main");
    let out = sh(&format!("{bad} --test"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // The backup can only complete when its WAL arrives through wal-archive.
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", cluster.server_log());
    // Several segments after the backup, so the restore has something to prefetch.
    for round in 0..9 {
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series({}, {}) g",
            10_000 + round * 1000,
            10_000 + round * 1000 + 999
        ));
        env.switch_wal_archived();
    }
    let expected = ids(&cluster);
    assert!(segment_count(&env) >= 8);

    // wal-restore by hand: the first call fetches 4, the next three are served from the spool.
    let spool = env.dir.path().join("spool");
    let work = env.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    give_to_owner(&work);
    let first = out.json()["begin_wal"].as_str().unwrap().to_string();
    let fetch = |name: &str| {
        let dest = work.join(name);
        let out = sh(&format!(
            "{} {name} {}",
            helper_command(
                &env,
                &sshd,
                "wal-restore",
                &format!("-p 4 --spool-dir {}", spool.display())
            ),
            dest.display()
        ));
        assert!(out.status.success(), "{name}: {out:?}");
        std::fs::read(dest).unwrap()
    };
    let direct = |name: &str| {
        let dest = work.join(format!("direct-{name}"));
        env.run(&["get-wal", "main", name, dest.to_str().unwrap()])
            .ok();
        std::fs::read(dest).unwrap()
    };
    // Spooled files carry the checksum the backup host sent: `<name>.crc32c-<hex>`.
    let spooled = |spool: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| {
                let n = p.file_name()?.to_str()?.to_string();
                Some((n.split_once(".crc32c-")?.0.to_string(), p))
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(fetch(&first), direct(&first));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let names = spooled(&spool);
    assert_eq!(names.len(), 3, "{names:?}");
    for (n, p) in &names {
        assert_eq!(fetch(n), direct(n));
        assert!(!p.exists(), "moved out of the spool");
    }

    // What is in the spool is handed over only if it still matches its checksum, and never
    // through a link: a damaged copy and a link planted under a spooled name are fetched again.
    let next = {
        let last = &names[2].0;
        format!(
            "{}{:08X}",
            &last[..16],
            u32::from_str_radix(&last[16..], 16).unwrap() + 1
        )
    };
    assert_eq!(fetch(&next), direct(&next));
    let names = spooled(&spool);
    assert_eq!(names.len(), 3, "{names:?}");
    let mut damaged = std::fs::read(&names[0].1).unwrap();
    damaged[20_000] ^= 0x40;
    std::fs::write(&names[0].1, damaged).unwrap();
    let victim = work.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    give_to_owner(&victim);
    std::fs::remove_file(&names[1].1).unwrap();
    std::os::unix::fs::symlink(&victim, &names[1].1).unwrap();
    for (n, _) in &names[..2] {
        assert_eq!(fetch(n), direct(n), "{n}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // A spool that others can write to is not used at all: what was planted there is never
    // handed over, and the file comes from the backup host.
    let shared = env.dir.path().join("shared-spool");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted_name = &names[2].0;
    let bogus = vec![7u8; 16 << 20];
    std::fs::write(shared.join(planted_name), &bogus).unwrap();
    std::fs::write(
        shared.join(format!("{planted_name}.crc32c-{:08x}", 0)),
        &bogus,
    )
    .unwrap();
    let dest = work.join(format!("from-shared-{planted_name}"));
    let out = sh(&format!(
        "{} {planted_name} {}",
        helper_command(
            &env,
            &sshd,
            "wal-restore",
            &format!("-p 4 --spool-dir {}", shared.display())
        ),
        dest.display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not using the spool folder"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), direct(planted_name));
    assert_eq!(std::fs::read(shared.join(planted_name)).unwrap(), bogus);
    // A segment damaged in the archive ends a bundle: the segment before it is spooled, the
    // damaged one is not (its bytes were streamed but its checksum was left out), and asked for
    // on its own it is an error that hands nothing over.
    let after = |name: &str, k: u32| {
        format!(
            "{}{:08X}",
            &name[..16],
            u32::from_str_radix(&name[16..], 16).unwrap() + k
        )
    };
    let bad = after(&first, 2);
    let stored = env.server_dir().join("wals").join(&bad[..16]).join(&bad);
    let good_bytes = std::fs::read(&stored).unwrap();
    let mut damaged = good_bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    std::fs::write(&stored, &damaged).unwrap();
    let spool3 = env.dir.path().join("spool3");
    let fetch3 = |name: &str, dest: &Path| {
        sh(&format!(
            "{} {name} {}",
            helper_command(
                &env,
                &sshd,
                "wal-restore",
                &format!("-p 4 --spool-dir {}", spool3.display())
            ),
            dest.display()
        ))
    };
    let dest = work.join(format!("again-{first}"));
    let out = fetch3(&first, &dest);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), direct(&first));
    let in_spool: Vec<String> = spooled(&spool3).into_iter().map(|(n, _)| n).collect();
    assert_eq!(in_spool, vec![after(&first, 1)]);
    let dest = work.join(format!("damaged-{bad}"));
    let out = fetch3(&bad, &dest);
    assert!(!out.status.success(), "{out:?}");
    assert!(!dest.exists());
    std::fs::write(&stored, &good_bytes).unwrap();
    let out = fetch3(&bad, &dest);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), direct(&bad));

    // Not in the archive: exit 1 (PostgreSQL's end of the archive).
    let out = sh(&format!(
        "{} 0000000100000000000000FE {}",
        helper_command(&env, &sshd, "wal-restore", "-p 4"),
        work.join("none").display()
    ));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!work.join("none").exists());

    // A whole recovery with wal-restore --parallel 4 as restore_command.
    let dest = env.restore_dir("restored");
    env.run(&[
        "recover",
        "main",
        "latest",
        dest.to_str().unwrap(),
        "--get-wal",
    ])
    .ok();
    let restore_command = format!(
        "restore_command='{} %f %p'",
        helper_command(
            &env,
            &sshd,
            "wal-restore",
            &format!(
                "-p 4 --spool-dir {}",
                env.dir.path().join("spool2").display()
            )
        )
    );
    let restored = Cluster::start_existing(&dest, &["archive_mode=off", &restore_command]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(ids(&restored), expected);
}

fn put_wal(env: &PgbakEnv, input: &[u8]) -> std::process::Output {
    let mut child = command_as_owner(pgbak_bin())
        .arg("-c")
        .arg(&env.config)
        .args(["put-wal", "main"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The process may stop reading early on bad input.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn archive_files(home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![home.join("main/wals")];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_input_to_the_helpers_is_refused_and_nothing_is_written() {
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = gzip\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g");
    let seg = env.switch_wal_archived();
    let work = env.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    give_to_owner(&work);
    let good = work.join(&seg);
    env.run(&["get-wal", "main", &seg, good.to_str().unwrap()])
        .ok();
    let data = std::fs::read(&good).unwrap();
    let before = archive_files(&env.home);

    // wal-archive of a file whose name is not a WAL name: refused before ssh (exit 2).
    let not_wal = work.join("not-a-segment");
    std::fs::write(&not_wal, &data).unwrap();
    // A segment of the wrong size under the next segment's name.
    let next = format!(
        "{}{:08X}",
        &seg[..16],
        u32::from_str_radix(&seg[16..], 16).unwrap() + 1
    );
    let short = work.join(&next);
    std::fs::write(&short, &data[..data.len() / 2]).unwrap();
    // A history file that does not parse.
    let history = work.join("00000005.history");
    std::fs::write(&history, "this is not a timeline history\n").unwrap();
    give_to_owner(&work);
    // The short segment is a copy of another segment: its size or its header gives it away.
    for (path, want) in [
        (&not_wal, "not-a-segment"),
        (&short, "(bytes|does not match its name)"),
        (&history, "history"),
    ] {
        let out = sh(&format!(
            "{} {}",
            helper_command(&env, &sshd, "wal-archive", "--md5"),
            path.display()
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        let found = want
            .trim_matches(|c| c == '(' || c == ')')
            .split('|')
            .any(|w| stderr.contains(w));
        assert!(found, "{}: {stderr}", path.display());
    }
    assert_eq!(
        archive_files(&env.home),
        before,
        "nothing written to the archive"
    );
    let incoming = env.server_dir().join("incoming");
    assert!(
        std::fs::read_dir(&incoming).map(|r| r.count()).unwrap_or(0) == 0,
        "no temporary file left in incoming/"
    );

    // put-wal directly: a checksum that does not match, a missing checksum file, garbage.
    let mut other = data.clone();
    other[5000] ^= 1;
    for (what, input) in [
        (
            "wrong checksum",
            put_wal_input(
                &next,
                &other,
                Some(&format!("{} *{next}\n", md5_hex(&data))),
            ),
        ),
        ("no checksum file", put_wal_input(&next, &data, None)),
        ("not a tar stream", b"hello, this is not tar".repeat(100)),
    ] {
        let out = put_wal(&env, &input);
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ERROR"),
            "{what}: {out:?}"
        );
    }
    assert_eq!(
        archive_files(&env.home),
        before,
        "nothing written to the archive"
    );

    // The same segment again through wal-archive: identical content is success.
    let out = sh(&format!(
        "{} {}",
        helper_command(&env, &sshd, "wal-archive", "--sha256 -z"),
        good.display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(archive_files(&env.home), before);
}
