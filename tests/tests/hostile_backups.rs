//! Hostile content in backups and in the catalogue, and hostile words in names: what pgbak
//! reads from a backup or a catalogue record is never trusted as a path or as shell text.
//!
//! - links planted in a tar backup, in a live PGDATA copied by `local-rsync`, and in a plain
//!   backup sent by remote recovery are left out, and nothing is written through them;
//! - a server name full of shell and `restore_command` syntax works through `recover --get-wal`
//!   without running anything;
//! - catalogue records that name another backup, or a path outside the catalogue, are refused
//!   and nothing is removed.

use pgbak_tests::{
    give_to_owner, loose_modes, pgbak_bin, run_ok, Cluster, ClusterOptions, PgbakEnv, Sshd,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn ids(c: &Cluster) -> String {
    c.psql("SELECT count(*), sum(id) FROM t")
}

/// A file owned by the cluster owner that a hostile link points at.
fn victim(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b"precious\n").unwrap();
    give_to_owner(&p);
    p
}

fn assert_untouched(p: &Path) {
    assert_eq!(
        std::fs::read(p).unwrap(),
        b"precious\n",
        "{} was written through a link",
        p.display()
    );
}

/// Symbolic links below `dir` other than `pg_tblspc/<oid>`.
fn foreign_links(dir: &Path) -> Vec<String> {
    loose_modes(dir, 0o077)
        .into_iter()
        .filter(|l| l.ends_with("is a symbolic link"))
        .collect()
}

/// Adds symbolic links (name, target) to the zstd tar stream `archive`, as a tampered backup
/// would hold them.
fn add_links_to_tar(archive: &Path, links: &[(&str, &Path)]) {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("base.tar");
    run_ok(
        Command::new("zstd")
            .args(["-q", "-d", "-f"])
            .arg(archive)
            .arg("-o")
            .arg(&tar),
    );
    let stage = work.path().join("links");
    for (name, target) in links {
        let p = stage.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &p).unwrap();
    }
    let mut append = Command::new("tar");
    append.arg("-rf").arg(&tar).arg("-C").arg(&stage);
    for (name, _) in links {
        append.arg(name);
    }
    run_ok(&mut append);
    run_ok(
        Command::new("zstd")
            .args(["-q", "-f"])
            .arg(&tar)
            .arg("-o")
            .arg(archive),
    );
    give_to_owner(archive);
    pgbak_tests::rerecord_archive(archive);
}

#[test]
fn hostile_names_links_and_records() {
    // A server whose name is shell syntax and restore_command syntax at once.
    let name = "x$(id>pwned)%p";
    let env = PgbakEnv::new();
    let archive_command = format!(
        "{} -q -c {} archive-wal 'x$(id>pwned)%%p' %p",
        pgbak_bin().display(),
        env.config.display()
    );
    let mut cluster = Cluster::init(ClusterOptions {
        archive_command: Some(archive_command),
        ..Default::default()
    });
    let config = format!(
        "[pgbak]\nhome = {}\n\n[{name}]\nconninfo = {}\nbackup_method = postgres\nbackup_compression = zstd\ncompression = zstd\nimmediate_checkpoint = true\n",
        env.home.display(),
        cluster.conninfo()
    );
    std::fs::write(&env.config, config).unwrap();
    give_to_owner(&env.config);
    cluster.start_now();
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g");
    let backup = |env: &PgbakEnv| -> String {
        let out = env
            .run(&[
                "-f",
                "json",
                "backup",
                name,
                "--wait",
                "--wait-timeout",
                "120",
            ])
            .ok();
        out.json()["backup_id"].as_str().unwrap().to_string()
    };
    let first = backup(&env);
    std::thread::sleep(Duration::from_millis(1100));
    let second = backup(&env);
    cluster.psql("INSERT INTO t SELECT g FROM generate_series(3001, 3500) g");
    let expected = ids(&cluster);
    env.run(&[
        "switch-wal",
        name,
        "--force",
        "--archive",
        "--archive-timeout",
        "60",
    ])
    .ok();

    // Links planted in the newest backup's tar stream, at names recovery writes.
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    give_to_owner(&outside);
    let v_signal = victim(&outside, "signal-victim");
    let v_map = victim(&outside, "map-victim");
    let base = env.home.join(name).join("base");
    add_links_to_tar(
        &base.join(&second).join("data/base.tar.zst"),
        &[
            ("recovery.signal", &v_signal),
            ("tablespace_map", &v_map),
            ("base/escape", &outside),
        ],
    );

    // A newline in a recovery target is refused before anything is written.
    let refused = env.restore_dir("refused");
    let out = env.run(&[
        "recover",
        name,
        "latest",
        refused.to_str().unwrap(),
        "--target-name",
        "a\nrecovery_target_action = 'shutdown'",
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("control character"), "{}", out.stderr);
    assert!(!refused.exists());

    // Recovery through `get-wal`: the name reaches pgbak intact and no shell runs `id`.
    let dest = env.restore_dir("restored");
    let out = env
        .run(&[
            "recover",
            name,
            "latest",
            dest.to_str().unwrap(),
            "--get-wal",
        ])
        .ok();
    assert!(
        out.stderr.contains("left out the symbolic link"),
        "{}",
        out.stderr
    );
    assert_untouched(&v_signal);
    assert_untouched(&v_map);
    assert_eq!(foreign_links(&dest), Vec::<String>::new());
    let auto = std::fs::read_to_string(dest.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("%%p"), "{auto}");
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(ids(&restored), expected);
    assert!(!dest.join("pwned").exists(), "the server name ran as shell");
    drop(restored);

    // Catalogue records used as paths: a delete marker in the first backup that names the
    // second, and a backup record that names a folder outside the catalogue.
    let keep = env.run(&["keep", name, &second, "--target", "full"]);
    keep.ok();
    let record = std::fs::read_to_string(base.join(&first).join("backup.json")).unwrap();
    let marker = record.replace(&first, &second);
    let marker_path = base.join(&first).join("delete_this");
    std::fs::write(&marker_path, &marker).unwrap();
    give_to_owner(&marker_path);
    let out = env.run(&["delete", name, &first]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("lies in the folder of backup"),
        "{}",
        out.stderr
    );
    assert!(
        base.join(&second).join("backup.json").exists(),
        "the kept backup was deleted"
    );
    std::fs::remove_file(&marker_path).unwrap();

    let escape = env.dir.path().join("x");
    std::fs::create_dir(&escape).unwrap();
    std::fs::write(escape.join("keep-me"), b"x").unwrap();
    give_to_owner(&escape);
    let rel = "../../../x";
    let hostile = record.replace(
        &format!("\"backup_id\": \"{first}\""),
        &format!("\"backup_id\": \"{rel}\""),
    );
    assert_ne!(hostile, record);
    std::fs::write(&marker_path, &hostile).unwrap();
    give_to_owner(&marker_path);
    for args in [vec!["delete", name, first.as_str()], vec!["cron"]] {
        let out = env.run(&args);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            escape.join("keep-me").exists(),
            "{args:?} removed a folder outside"
        );
    }
    // A tablespace location that is not an absolute path is refused too.
    let record2 = std::fs::read_to_string(base.join(&second).join("backup.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&record2).unwrap();
    assert_eq!(v["backup_id"], second.as_str());
    let mut tampered = v.clone();
    tampered["tablespaces"] =
        serde_json::json!([{"name": "ts", "oid": 16400, "location": "../../etc"}]);
    let p = base.join(&second).join("backup.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&tampered).unwrap()).unwrap();
    give_to_owner(&p);
    let out = env.run(&["show-backup", name, &second]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("unusable location"), "{}", out.stderr);
}

#[test]
fn links_in_a_live_pgdata_are_not_copied_by_local_rsync_nor_sent_by_remote_recovery() {
    let sshd = Sshd::start();
    let env = PgbakEnv::new();
    let cluster = env.cluster("backup_method = local-rsync\n", ClusterOptions::default());
    cluster.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g");
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    give_to_owner(&outside);
    let keys = victim(&outside, "authorized_keys");
    // Planted in the live data directory by someone who can write there.
    for (link, target) in [
        ("recovery.signal", keys.clone()),
        ("pgbak_wal", outside.clone()),
        ("global/evil", keys.clone()),
    ] {
        let l = cluster.data_dir.join(link);
        std::os::unix::fs::symlink(&target, &l).unwrap();
        run_ok(Command::new("chown").arg("-h").arg("postgres:").arg(&l));
    }
    let out = env.backup_wait();
    let id = out.json()["backup_id"].as_str().unwrap().to_string();
    let bdir = env.server_dir().join("base").join(&id);
    assert_eq!(foreign_links(&bdir), Vec::<String>::new());
    let expected = ids(&cluster);
    env.switch_wal_archived();

    let dest = env.restore_dir("local");
    env.run(&["recover", "main", &id, dest.to_str().unwrap()])
        .ok();
    assert_untouched(&keys);
    assert_eq!(foreign_links(&dest), Vec::<String>::new());
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(ids(&restored), expected);
    drop(restored);

    // A link planted in the catalogue's copy: remote recovery must not read what it points to
    // on the backup host and ship it.
    let secret = victim(&outside, "secret");
    let auto = bdir.join("data/postgresql.auto.conf");
    std::fs::remove_file(&auto).unwrap();
    std::os::unix::fs::symlink(&secret, &auto).unwrap();
    let evil = bdir.join("data/base/evil");
    std::os::unix::fs::symlink(&outside, &evil).unwrap();
    let remote = env.restore_dir("remote");
    let out = env
        .run(&[
            "recover",
            "main",
            &id,
            remote.to_str().unwrap(),
            "--remote-ssh-command",
            &sshd.ssh_command(),
        ])
        .ok();
    assert!(out.stderr.contains("left out"), "{}", out.stderr);
    assert_eq!(foreign_links(&remote), Vec::<String>::new());
    let shipped = std::fs::read_to_string(remote.join("postgresql.auto.conf")).unwrap();
    assert!(!shipped.contains("precious"), "{shipped}");
    assert_untouched(&secret);
    let restored = Cluster::start_existing(&remote, &["archive_mode=off"]);
    restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
    assert_eq!(ids(&restored), expected);
}
