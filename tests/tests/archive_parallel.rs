//! Parallel archiving (`cloud_wal_archive_parallel`): a call for one segment archives the ready
//! segments after it too and acknowledges each once it is durable; PostgreSQL's later calls
//! return at once. Killed at any point, nothing is lost or stored twice; an acknowledgement is
//! never trusted for other bytes; a real server archiving this way restores to a point in time.

use pgbak_tests::{give_to_owner, recover_and_start, ClusterOptions, PgbakEnv};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Command;

/// Real segments of `cluster`, copied into a folder laid out as `pg_wal` (each marked ready),
/// and a second server section `other`, with an empty catalogue, that archives 4 at a time.
struct Setup {
    env: PgbakEnv,
    _cluster: pgbak_tests::Cluster,
    pg_wal: PathBuf,
    segments: Vec<(String, Vec<u8>)>,
}

fn setup(count: usize) -> Setup {
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = zstd\n", ClusterOptions::default());
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!(
        "\n[other]\nconninfo = {}\ncompression = zstd\ncloud_wal_archive_parallel = 4\n",
        cluster.conninfo()
    ));
    std::fs::write(&env.config, &text).unwrap();
    let pg_wal = env.dir.path().join("work/pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    give_to_owner(&env.dir.path().join("work"));
    cluster.psql("CREATE TABLE t (id bigint, v text)");
    let mut segments = Vec::new();
    for i in 0..count {
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            i * 1000,
            i * 1000 + 999
        ));
        let name = env.switch_wal_archived();
        let path = pg_wal.join(&name);
        env.run(&["get-wal", "main", &name, path.to_str().unwrap()])
            .ok();
        std::fs::write(pg_wal.join(format!("archive_status/{name}.ready")), "").unwrap();
        segments.push((name, std::fs::read(&path).unwrap()));
    }
    give_to_owner(&pg_wal);
    Setup {
        env,
        _cluster: cluster,
        pg_wal,
        segments,
    }
}

impl Setup {
    fn path(&self, name: &str) -> String {
        self.pg_wal.join(name).to_str().unwrap().to_string()
    }

    /// What PostgreSQL does for each segment in turn: archive it, then mark it done.
    fn archive_in_order(&self) {
        for (name, _) in &self.segments {
            self.env
                .run(&["archive-wal", "other", &self.path(name)])
                .ok();
            let status = self.pg_wal.join("archive_status");
            std::fs::rename(
                status.join(format!("{name}.ready")),
                status.join(format!("{name}.done")),
            )
            .unwrap();
        }
    }

    fn queue(&self) -> PathBuf {
        self.env.home.join("other/archive-queue")
    }

    fn acknowledged(&self) -> Vec<String> {
        let mut acks: Vec<String> = match std::fs::read_dir(self.queue()) {
            Ok(rd) => rd
                .filter_map(|e| {
                    let n = e.unwrap().file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".ok")
                        .filter(|s| !s.starts_with('.'))
                        .map(str::to_string)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        acks.sort();
        acks
    }

    /// The segment as the archive of `other` hands it back.
    fn fetched(&self, name: &str) -> Vec<u8> {
        let dest = self.env.dir.path().join("work/fetched");
        let _ = std::fs::remove_file(&dest);
        self.env
            .run(&["get-wal", "other", name, dest.to_str().unwrap()])
            .ok();
        std::fs::read(&dest).unwrap()
    }

    /// Every segment is archived once, with its bytes, and indexed once; nothing was set aside
    /// as a conflict and no acknowledgement is left.
    fn assert_archived_once(&self) {
        for (name, bytes) in &self.segments {
            assert!(self.fetched(name) == *bytes, "{name} differs");
        }
        let index = self.env.home.join("other/wals/index/p");
        let mut indexed: Vec<String> = std::fs::read_dir(&index)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        indexed.sort();
        let names: Vec<String> = self.segments.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(indexed, names);
        let errors = self.env.home.join("other/errors");
        let conflicts = std::fs::read_dir(&errors).map_or(0, |rd| rd.count());
        assert_eq!(conflicts, 0, "conflicts in {}", errors.display());
        assert_eq!(self.acknowledged(), Vec::<String>::new());
    }
}

/// Runs archive-wal for the first segment with a pause at `point`, kills it there (SIGKILL)
/// and returns what it printed before.
fn kill_at(s: &Setup, point: &str) {
    let first = s.path(&s.segments[0].0);
    let mut child = s.env.spawn_env(
        &["archive-wal", "other", &first],
        &[("PGBAK_TEST_PAUSE_AT", point)],
    );
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("PGBAK_TEST_PAUSED"), "{line}");
    // The banner names pgbak's own PID (the child is runuser).
    let pid = line.split_whitespace().last().unwrap();
    let status = Command::new("kill").args(["-9", pid]).status().unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

#[test]
fn killed_while_archiving_ahead_nothing_is_lost_or_stored_twice() {
    let s = setup(5);

    // Killed with every worker's compressed copy written but not committed: nothing was
    // acknowledged, and PostgreSQL's calls archive every segment.
    kill_at(&s, "archive-wal:before-commit");
    assert_eq!(s.acknowledged(), Vec::<String>::new());
    // Killed again, after an acknowledgement: whatever is acknowledged is already durable.
    kill_at(&s, "archive-wal:after-ack");
    let acks = s.acknowledged();
    assert!(!acks.is_empty(), "nothing acknowledged before the kill");
    for name in &acks {
        let original = &s.segments.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            s.fetched(name) == *original,
            "{name} acknowledged but not archived"
        );
        assert_ne!(name, &s.segments[0].0, "the asked segment is never queued");
    }
    s.archive_in_order();
    s.assert_archived_once();
}

#[test]
fn an_acknowledgement_is_trusted_only_for_the_same_bytes() {
    let s = setup(3);
    let (first, second) = (&s.segments[0].0, &s.segments[1].0);
    s.env.run(&["archive-wal", "other", &s.path(first)]).ok();
    assert_eq!(
        s.acknowledged(),
        vec![second.clone(), s.segments[2].0.clone()]
    );
    // The file PostgreSQL hands over for the second segment is not the one archived ahead:
    // the acknowledgement does not answer for it, and the archive refuses other content.
    let path = s.pg_wal.join(second);
    let mut changed = s.segments[1].1.clone();
    changed[20_000] ^= 0x01;
    std::fs::write(&path, &changed).unwrap();
    let out = s.env.run(&["archive-wal", "other", &s.path(second)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("different content"), "{}", out.stderr);
    assert!(
        s.fetched(second) == s.segments[1].1,
        "the archived copy is untouched"
    );
    assert!(
        !s.acknowledged().contains(second),
        "the acknowledgement was used up"
    );
    // The third one is answered from its acknowledgement, and a stale one before a later call
    // is dropped.
    std::fs::write(&path, &s.segments[1].1).unwrap();
    s.env.run(&["archive-wal", "other", &s.path(second)]).ok();
    s.env
        .run(&["archive-wal", "other", &s.path(&s.segments[2].0)])
        .ok();
    assert_eq!(s.acknowledged(), Vec::<String>::new());
}

#[test]
fn a_server_archiving_four_at_a_time_restores_to_a_point_in_time() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        "compression = zstd\ncloud_wal_archive_parallel = 4\n",
        ClusterOptions::default(),
    );
    // The archive calls log to a file, which says when they archived ahead.
    let log = env.home.join("pgbak.log");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen(
        "[pgbak]\n",
        &format!("[pgbak]\nlog_file = {}\n", log.display()),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    cluster.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    cluster.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);
    // Several segments become ready while archiving is held back (as on a server writing faster
    // than one call at a time keeps up); when it resumes, the first call archives ahead.
    cluster.psql("ALTER SYSTEM SET archive_command = 'false'");
    cluster.psql("SELECT pg_reload_conf()");
    for i in 0..6 {
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            10_000 + i * 20_000,
            10_000 + i * 20_000 + 19_999
        ));
        cluster.psql("SELECT pg_switch_wal()");
    }
    cluster.psql("ALTER SYSTEM RESET archive_command");
    cluster.psql("SELECT pg_reload_conf()");
    let target = cluster.psql("SELECT clock_timestamp()::text");
    let expected = cluster.psql("SELECT count(*) || ':' || sum(id) FROM t");
    std::thread::sleep(std::time::Duration::from_millis(20));
    cluster.psql("DELETE FROM t WHERE id > 100000");
    env.switch_wal_archived();
    let restored = recover_and_start(
        &env,
        "pitr",
        &["--target-time", &target, "--target-action", "promote"],
    );
    assert_eq!(
        restored.psql("SELECT count(*) || ':' || sum(id) FROM t"),
        expected
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("following segments"),
        "no call archived ahead:\n{logged}"
    );
}
