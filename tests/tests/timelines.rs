//! Timelines end to end: a restored server archiving into the catalogue of its origin is promoted
//! to timeline 2 while the origin keeps writing on timeline 1; a second restore with
//! `--target-tli latest` follows timeline 2, and one with `--target-tli current` stays on 1.

use pgbak_tests::{Cluster, ClusterOptions, PgbakEnv};
use std::time::Duration;

fn recover(env: &PgbakEnv, folder: &str, extra: &[&str]) -> std::path::PathBuf {
    let dest = env.restore_dir(folder);
    let d = dest.display().to_string();
    let mut args = vec!["recover", "main", "latest", d.as_str()];
    args.extend_from_slice(extra);
    env.run(&args).ok();
    dest
}

#[test]
fn promote_keep_archiving_and_restore_on_the_new_timeline() {
    let env = PgbakEnv::new();
    let origin = env.cluster("compression = zstd\n", ClusterOptions::default());
    origin.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    origin.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE");
    assert_eq!(out.json()["timeline"], 1);
    origin.psql("INSERT INTO t SELECT g, 'before fork' FROM generate_series(1001, 1010) g");
    origin.switch_wal_and_wait_archived();
    let at_fork = origin.ids();

    // Restore, and let the restored server archive into the same catalogue (recover writes
    // archive_command = false; the command line overrides it).
    let dest = recover(&env, "first", &[]);
    let archive_command = format!("archive_command='{}'", env.archive_command());
    let restored = Cluster::start_existing(&dest, &["archive_mode=on", &archive_command]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(restored.ids(), at_fork);
    assert_eq!(
        restored.psql("SELECT timeline_id FROM pg_control_checkpoint()"),
        "2",
        "end of recovery starts timeline 2"
    );
    restored.psql("INSERT INTO t SELECT g, 'timeline 2' FROM generate_series(2001, 2010) g");
    restored.switch_wal_and_wait_archived();
    restored.psql("INSERT INTO t SELECT g, 'timeline 2 again' FROM generate_series(2011, 2020) g");
    restored.switch_wal_and_wait_archived();
    let on_tli2 = restored.ids();
    drop(restored);

    // Meanwhile the origin goes on writing timeline 1 past the fork.
    origin
        .psql("INSERT INTO t SELECT g, 'timeline 1 after fork' FROM generate_series(3001, 3010) g");
    origin.switch_wal_and_wait_archived();
    let on_tli1 = origin.ids();
    assert!(env.server_dir().join("wals/00000002.history").exists());

    // list-backups and show-backup name the timeline.
    let list = env.run(&["list-backups", "main"]).ok();
    assert!(list.stdout.contains("TLI 1"), "{}", list.stdout);
    let show = env
        .run(&["-f", "json", "show-backup", "main", "latest"])
        .ok();
    assert_eq!(show.json()["timeline"], 1);

    // The index can be rebuilt from the folder and still serves both timelines.
    env.run(&["rebuild-xlogdb", "main"]).ok();

    let latest = recover(&env, "latest", &["--target-tli", "latest"]);
    let copied: Vec<String> = std::fs::read_dir(latest.join("pgbak_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Segments of timeline 1 after the switch to timeline 2 belong to another branch: they are
    // in the archive, but not copied for a recovery that follows timeline 2.
    let history = std::fs::read_to_string(latest.join("pgbak_wal/00000002.history")).unwrap();
    let switchpoint = history.split('\t').nth(1).unwrap();
    let (hi, lo) = switchpoint.split_once('/').unwrap();
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    let last_on_tli1 = (lsn - 1) / (16 << 20);
    let segno = |n: &str| {
        u64::from_str_radix(&n[8..16], 16).unwrap() * 256
            + u64::from_str_radix(&n[16..24], 16).unwrap()
    };
    let tli1 = |n: &&String| n.len() == 24 && n.starts_with("00000001");
    let archived: Vec<String> = std::fs::read_dir(env.server_dir().join("wals/0000000100000000"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        archived
            .iter()
            .filter(tli1)
            .any(|n| segno(n) > last_on_tli1),
        "the origin archived timeline 1 past the fork: {archived:?}"
    );
    for n in copied.iter().filter(tli1) {
        assert!(
            segno(n) <= last_on_tli1,
            "{n} is past the fork at {switchpoint}"
        );
    }
    assert!(copied
        .iter()
        .any(|n| n.starts_with("00000002") && n.len() == 24));
    let r = Cluster::start_existing(&latest, &["archive_mode=off"]);
    r.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(r.ids(), on_tli2, "--target-tli latest follows timeline 2");
    drop(r);

    let current = recover(&env, "current", &["--target-tli", "current"]);
    let r = Cluster::start_existing(&current, &["archive_mode=off"]);
    r.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(r.ids(), on_tli1, "--target-tli current stays on timeline 1");
    drop(r);

    let by_number = recover(&env, "two", &["--target-tli", "2", "--get-wal"]);
    let r = Cluster::start_existing(&by_number, &["archive_mode=off"]);
    r.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(r.ids(), on_tli2, "--target-tli 2 through get-wal");
    drop(r);

    let out = env.run(&[
        "recover",
        "main",
        "latest",
        env.restore_dir("nine").to_str().unwrap(),
        "--target-tli",
        "9",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("history"), "{}", out.stderr);
    assert!(!env.restore_dir("nine").exists(), "nothing restored");
}
