//! WAL streaming end to end, against real clusters and replication slots: a server whose only WAL
//! source is `receive-wal` is backed up and restored to a point in time; a receiver killed with
//! SIGKILL in the middle of a segment resumes without gap or duplicate while its slot never runs
//! ahead of what is on disk; `archive_command` and streaming together archive every segment once;
//! bad slots and clusters are refused without writing anything; the slot, reset, stop and cron
//! operations; and the throughput of a 1 GB burst of WAL (ignored by default).

use pgbak_tests::{
    command_as_owner, receiver_pid, recover_and_start, Cluster, ClusterOptions, PgbakEnv, Receiver,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SEG: u64 = 16 << 20;

const STREAMING: &str = "streaming_archiver = on\nslot_name = pgbak\ncreate_slot = auto\n";

fn ids(c: &Cluster) -> Vec<i64> {
    c.psql("SELECT id FROM t ORDER BY id")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect()
}

/// A cluster that does not archive (archive_mode = off): streaming is its only WAL source.
fn streaming_only(extra: &str) -> (PgbakEnv, Cluster) {
    let env = PgbakEnv::new();
    let mut cluster = Cluster::init(ClusterOptions::default());
    env.write_config(&cluster, extra);
    cluster.start_now();
    (env, cluster)
}

fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.trim().split_once('/').expect("LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn segno(name: &str) -> u64 {
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    log * (0x1_0000_0000 / SEG) + seg
}

fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn list(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    (
                        e.file_name().into_string().unwrap(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Archived segment names (wals/<dir>/<name>), sorted.
fn archived(env: &PgbakEnv) -> Vec<String> {
    let wals = env.server_dir().join("wals");
    let mut out = Vec::new();
    for (d, _) in std::fs::read_dir(&wals)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| (e.path(), 0))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    {
        out.extend(
            list(&d)
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| is_segment(n)),
        );
    }
    out.sort();
    out
}

/// Names in the WAL index, with how many lines each has.
fn index_counts(env: &PgbakEnv) -> BTreeMap<String, usize> {
    let text = env.index_text();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = line.split('\t').next() {
            *m.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    m
}

/// End of the WAL the receiver has on disk: streamed files first (a file moves from streaming/
/// into wals/, never back, so reading in this order never misses one), then the archive.
fn on_disk_end(env: &PgbakEnv) -> u64 {
    let mut end = 0;
    for (name, len) in list(&env.server_dir().join("streaming")) {
        if is_segment(&name) {
            end = end.max((segno(&name) + 1) * SEG);
        } else if let Some(base) = name.strip_suffix(".partial") {
            end = end.max(segno(base) * SEG + len);
        }
    }
    for name in archived(env) {
        end = end.max((segno(&name) + 1) * SEG);
    }
    end
}

fn slot_restart_lsn(c: &Cluster) -> Option<u64> {
    let v = c.psql("SELECT coalesce(restart_lsn::text, '') FROM pg_replication_slots WHERE slot_name = 'pgbak'");
    (!v.is_empty()).then(|| lsn(&v))
}

/// The slot's restart LSN, read before what is on disk: it must never be ahead of it.
fn assert_slot_not_ahead(env: &PgbakEnv, c: &Cluster) -> u64 {
    let restart = slot_restart_lsn(c).expect("slot");
    let disk = on_disk_end(env);
    assert!(
        restart <= disk,
        "slot restart_lsn {restart:X} is ahead of the WAL on disk (ends at {disk:X})"
    );
    restart
}

/// Checks that every segment from the first to the last archived is there, each once in the index,
/// and that nothing went to errors/.
fn assert_contiguous_once(env: &PgbakEnv) -> Vec<String> {
    let names = archived(env);
    assert!(!names.is_empty());
    for w in names.windows(2) {
        assert_eq!(
            segno(&w[1]),
            segno(&w[0]) + 1,
            "gap between {} and {}: {names:?}",
            w[0],
            w[1]
        );
    }
    let counts = index_counts(env);
    for n in &names {
        assert_eq!(counts.get(n), Some(&1), "{n} in the WAL index: {counts:?}");
    }
    assert!(
        counts.values().all(|&c| c == 1),
        "a name indexed twice: {counts:?}"
    );
    let errors = list(&env.server_dir().join("errors"));
    assert!(errors.is_empty(), "errors/: {errors:?}");
    names
}

fn switch_and_wait(env: &PgbakEnv) {
    env.run(&[
        "switch-wal",
        "main",
        "--force",
        "--archive",
        "--archive-timeout",
        "120",
    ])
    .ok();
}

#[test]
fn streaming_only_server_backup_and_point_in_time_recovery() {
    let (env, cluster) = streaming_only(&format!("{STREAMING}compression = zstd\n"));
    let receiver = Receiver::start(&env, "a");
    assert_eq!(
        cluster.psql(
            "SELECT slot_type || ' ' || active FROM pg_replication_slots WHERE slot_name = 'pgbak'"
        ),
        "physical true",
        "create_slot = auto made the slot and receive-wal uses it"
    );
    cluster.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())",
    );
    cluster.psql("INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);

    for id in 10001..=10010 {
        cluster.psql(&format!("INSERT INTO t (id, v) VALUES ({id}, 'x')"));
    }
    let target_lsn = cluster.psql("SELECT pg_current_wal_lsn()");
    let at_lsn = ids(&cluster);
    for id in 10011..=10020 {
        cluster.psql(&format!("INSERT INTO t (id, v) VALUES ({id}, 'y')"));
    }
    std::thread::sleep(Duration::from_millis(20));
    let target_time = cluster.psql("SELECT clock_timestamp()::text");
    let at_time = ids(&cluster);
    std::thread::sleep(Duration::from_millis(20));
    for id in 10021..=10030 {
        cluster.psql(&format!("INSERT INTO t (id, v) VALUES ({id}, 'z')"));
    }
    cluster.psql("DELETE FROM t WHERE id <= 100");
    switch_and_wait(&env);
    assert_slot_not_ahead(&env, &cluster);
    assert_contiguous_once(&env);

    let r = recover_and_start(
        &env,
        "by_time",
        &["--target-time", &target_time, "--target-action", "promote"],
    );
    assert_eq!(ids(&r), at_time, "recovery to time {target_time}");
    drop(r);
    let r = recover_and_start(
        &env,
        "by_lsn",
        &[
            "--target-lsn",
            &target_lsn,
            "--target-action",
            "promote",
            "--get-wal",
        ],
    );
    assert_eq!(ids(&r), at_lsn, "recovery to LSN {target_lsn}");
    drop(r);

    let report = receiver.stop();
    assert!(report["archived"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    // A clean stop leaves at most the segment being received in streaming/.
    let left = list(&env.server_dir().join("streaming"));
    assert!(
        left.len() <= 1 && left.iter().all(|(n, _)| n.ends_with(".partial")),
        "{left:?}"
    );
}

#[test]
fn killed_receiver_resumes_without_gap_and_slot_never_ahead_of_disk() {
    let (env, cluster) = streaming_only(STREAMING);
    let receiver = Receiver::start(&env, "b1");
    cluster.psql("CREATE TABLE big (id bigint, v text)");
    let mut next = 0i64;
    let mut write = |rows: i64| {
        cluster.psql(&format!(
            "INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series({}, {}) g",
            next + 1,
            next + rows
        ));
        next += rows;
    };
    // About 40 MB of WAL, checking the slot against the disk as it goes.
    for _ in 0..20 {
        write(6000);
        assert_slot_not_ahead(&env, &cluster);
        std::thread::sleep(Duration::from_millis(150));
    }
    // Kill it while a segment is half received.
    let start = Instant::now();
    loop {
        let partial = list(&env.server_dir().join("streaming"))
            .into_iter()
            .find(|(n, _)| n.ends_with(".partial"));
        if let Some((_, len)) = partial {
            if len > 0 && len < SEG {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no partial segment"
        );
        write(500);
        std::thread::sleep(Duration::from_millis(100));
    }
    receiver.kill();
    let restart_at_kill = assert_slot_not_ahead(&env, &cluster);
    // WAL written while no receiver runs is kept by the slot.
    for _ in 0..5 {
        write(6000);
    }
    assert_eq!(slot_restart_lsn(&cluster), Some(restart_at_kill));

    let receiver = Receiver::start(&env, "b2");
    assert!(
        receiver.log().contains("resuming from"),
        "resumed from the streaming directory:\n{}",
        receiver.log()
    );
    for _ in 0..10 {
        write(6000);
        assert_slot_not_ahead(&env, &cluster);
    }
    switch_and_wait(&env);
    // The switched segment is archived; the slot catches up with what is durable.
    let end = lsn(&cluster.psql("SELECT pg_current_wal_lsn()"));
    let start = Instant::now();
    while slot_restart_lsn(&cluster).unwrap() < end - end % SEG {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "slot did not advance"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_slot_not_ahead(&env, &cluster);
    let report = receiver.stop();
    let names = assert_contiguous_once(&env);
    assert!(names.len() >= 5, "{names:?}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    // Every segment of the stream, from before the kill to after the restart, in a restorable
    // backup-less check: the newest archived segment is the one the switch closed.
    let closed = cluster.psql(&format!(
        "SELECT pg_walfile_name('{:X}/{:X}')",
        (end - 1) >> 32,
        (end - 1) & 0xFFFF_FFFF
    ));
    assert!(names.contains(&closed), "{closed} in {names:?}");
}

#[test]
fn archive_command_and_streaming_together_archive_each_segment_once() {
    let env = PgbakEnv::new();
    let cluster = env.cluster(
        &format!("{STREAMING}archiver = on\ncompression = gzip\n"),
        ClusterOptions::default(),
    );
    let receiver = Receiver::start(&env, "c");
    cluster.psql("CREATE TABLE t (id bigint, v text)");
    let mut last = String::new();
    for round in 0..6 {
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            round * 20000,
            round * 20000 + 19999
        ));
        last = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        cluster.psql("SELECT pg_switch_wal()");
    }
    // Both paths have delivered the last segment: archive_command reports it archived, and the
    // receiver has moved it out of streaming/.
    cluster.wait_for(
        &format!("SELECT coalesce(last_archived_wal, '') >= '{last}' FROM pg_stat_archiver"),
        "t",
        Duration::from_secs(120),
    );
    let start = Instant::now();
    loop {
        let streamed: Vec<_> = list(&env.server_dir().join("streaming"))
            .into_iter()
            .filter(|(n, _)| is_segment(n) && n.as_str() <= last.as_str())
            .collect();
        let received = on_disk_end(&env) > segno(&last) * SEG;
        if streamed.is_empty() && received && archived(&env).contains(&last) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "streaming did not catch up: {streamed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = receiver.stop();
    let names = assert_contiguous_once(&env);
    assert!(names.contains(&last));
    let stored = report["archived"].as_u64().unwrap();
    let duplicates = report["already_archived"].as_u64().unwrap();
    assert!(stored + duplicates >= 6, "{report}");
    assert!(
        duplicates > 0,
        "archive_command delivered segments the receiver then found archived: {report}"
    );
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    let failed = cluster.psql("SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(
        failed, "0",
        "archive_command never failed on a streamed duplicate"
    );
}

#[test]
fn bad_slots_and_foreign_clusters_are_refused_without_writing() {
    let streaming_dir = |env: &PgbakEnv| list(&env.server_dir().join("streaming"));
    // A logical slot under the configured name.
    let env = PgbakEnv::new();
    let mut cluster = Cluster::init(ClusterOptions {
        extra_conf: vec!["wal_level = logical".into()],
        ..Default::default()
    });
    env.write_config(&cluster, STREAMING);
    cluster.start_now();
    cluster.psql("SELECT pg_create_logical_replication_slot('pgbak', 'test_decoding')");
    let out = env.run(&["receive-wal", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("'pgbak' is a logical slot"),
        "{}",
        out.stderr
    );
    assert!(streaming_dir(&env).is_empty());
    assert!(archived(&env).is_empty());

    // A missing slot with create_slot = manual.
    env.write_config(&cluster, "streaming_archiver = on\nslot_name = other\n");
    let out = env.run(&["receive-wal", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("replication slot 'other' does not exist")
            && out.stderr.contains("--create-slot"),
        "{}",
        out.stderr
    );
    assert_eq!(
        cluster.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'other'"),
        "0"
    );

    // Slot names PostgreSQL would refuse never reach it.
    env.write_config(&cluster, "streaming_archiver = on\nslot_name = Bad-Name\n");
    let out = env.run(&["receive-wal", "main"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("slot_name"), "{}", out.stderr);

    // receive-wal needs streaming_archiver.
    env.write_config(&cluster, "slot_name = pgbak\n");
    let out = env.run(&["receive-wal", "main"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("streaming_archiver is off"),
        "{}",
        out.stderr
    );
    drop(cluster);

    // The catalogue holds WAL of one cluster; the configuration now points at another.
    let env = PgbakEnv::new();
    let first = env.cluster("", ClusterOptions::default());
    switch_and_wait(&env);
    let before = archived(&env);
    assert!(!before.is_empty());
    let other = Cluster::start(ClusterOptions::default());
    env.write_config(&other, STREAMING);
    let out = env.run(&["receive-wal", "main"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("system identifier") && out.stderr.contains("another cluster"),
        "{}",
        out.stderr
    );
    assert!(streaming_dir(&env).is_empty());
    assert_eq!(archived(&env), before);
    assert_eq!(
        other.psql("SELECT count(*) FROM pg_replication_slots"),
        "0",
        "no slot was created on the wrong cluster"
    );
    drop(first);
}

#[test]
fn slot_operations_lock_reset_stop_and_cron() {
    let (env, cluster) = streaming_only("streaming_archiver = on\nslot_name = pgbak\n");
    let out = env.run(&["receive-wal", "main", "--create-slot"]).ok();
    assert!(
        out.stdout.contains("Created replication slot 'pgbak'"),
        "{out:?}"
    );
    let out = env.run(&["receive-wal", "main", "--create-slot"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    env.run(&["receive-wal", "main", "--create-slot", "--if-not-exists"])
        .ok();
    assert_ne!(
        cluster.psql(
            "SELECT restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'pgbak'"
        ),
        "f",
        "the slot reserves WAL at once"
    );

    let receiver = Receiver::start(&env, "e1");
    let pid = receiver_pid(&env).unwrap();
    // status shows the receiver and its slot.
    let st = env.run(&["-f", "json", "status", "main"]).ok().json();
    assert_eq!(st["receive_wal"], format!("running (pid {pid})"), "{st}");
    let slot = st["replication_slot"].as_str().unwrap_or_default();
    assert!(slot.starts_with("pgbak (active, wal_status "), "{st}");
    assert!(
        st["replication_slot_lag"]
            .as_str()
            .is_some_and(|l| l.ends_with('B')),
        "{st}"
    );
    // One receiver per server: a second one fails fast and names the first.
    let t = Instant::now();
    let second = env.run(&["receive-wal", "main"]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains("receive-wal lock") && second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    // Reset is refused while it runs; dropping the slot in use too.
    assert_eq!(env.run(&["receive-wal", "main", "--reset"]).code, 1);
    let out = env.run(&["receive-wal", "main", "--drop-slot"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
    cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g");
    receiver.stop();
    assert_eq!(
        env.run(&["receive-wal", "main", "--stop"])
            .ok()
            .stdout
            .trim(),
        "No receive-wal process runs for server 'main'"
    );
    let st = env.run(&["-f", "json", "status", "main"]).ok().json();
    assert!(
        st["receive_wal"]
            .as_str()
            .is_some_and(|r| r.starts_with("FAILED (not running")),
        "{st}"
    );
    assert!(
        st["replication_slot"]
            .as_str()
            .is_some_and(|s| s.starts_with("pgbak (inactive")),
        "{st}"
    );

    // Reset: the .partial goes, an empty marker at the slot's position replaces it.
    let before = list(&env.server_dir().join("streaming"));
    assert_eq!(before.len(), 1, "{before:?}");
    let out = env
        .run(&["-f", "json", "receive-wal", "main", "--reset"])
        .ok();
    let j = out.json();
    assert_eq!(j["removed"], serde_json::json!([before[0].0]), "{j}");
    let marker = j["marker"].as_str().unwrap().to_string();
    assert_eq!(
        list(&env.server_dir().join("streaming")),
        vec![(marker.clone(), 0)]
    );
    let restart = cluster.psql(
        "SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots WHERE slot_name = 'pgbak'",
    );
    // pg_walfile_name of a segment's first byte names the previous segment.
    assert!(
        marker.starts_with(&restart) || segno(&marker) == segno(&restart) + 1,
        "{marker} vs slot at {restart}"
    );

    // cron starts a receiver when none runs, and leaves a running one alone.
    let out = env.run(&["cron"]).ok();
    assert!(out.stdout.contains("main: started receive-wal"), "{out:?}");
    let start = Instant::now();
    while receiver_pid(&env).is_none() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    let cron_pid = receiver_pid(&env).unwrap();
    let out = env.run(&["cron"]).ok();
    assert!(!out.stdout.contains("started receive-wal"), "{out:?}");
    // It resumes from the reset marker.
    cluster.psql("SELECT pg_switch_wal()");
    let start = Instant::now();
    loop {
        let log =
            std::fs::read_to_string(env.server_dir().join("receive-wal.log")).unwrap_or_default();
        if log.contains(&format!("resuming from {marker}")) {
            // stderr redirected to a file gets no colour escapes.
            assert!(
                !log.contains('\x1b'),
                "ANSI escapes in receive-wal.log:\n{log:?}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = env.run(&["receive-wal", "main", "--stop"]).ok();
    assert!(out.stdout.contains(&format!("pid {cron_pid}")), "{out:?}");
    env.run(&["receive-wal", "main", "--drop-slot"]).ok();
    assert_eq!(
        cluster.psql("SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
    let out = env.run(&["receive-wal", "main", "--drop-slot"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

/// A fast shutdown of the server waits for the receiver to confirm what it flushed; the receiver
/// answers at once, reconnects when the server is back, and the archive has no gap.
#[test]
fn server_restart_is_confirmed_and_survived() {
    let (env, mut cluster) = streaming_only(STREAMING);
    let receiver = Receiver::start(&env, "r");
    cluster.psql("CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 200000) g");
    let t = Instant::now();
    cluster.stop();
    let shutdown = t.elapsed();
    assert!(
        shutdown < Duration::from_secs(10),
        "shutdown took {shutdown:?}: the walsender waited for the receiver"
    );
    // Everything the server wrote, up to its shutdown checkpoint, is durable on the receiver.
    let end_before = on_disk_end(&env);
    cluster.start_now();
    let start = Instant::now();
    while !receiver.log().contains("reconnecting") || slot_restart_lsn(&cluster).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            receiver.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.psql("INSERT INTO t SELECT g, 'after restart' FROM generate_series(200001, 300000) g");
    switch_and_wait(&env);
    assert_slot_not_ahead(&env, &cluster);
    let report = receiver.stop();
    assert!(report["reconnects"].as_u64().unwrap() >= 1, "{report}");
    assert_contiguous_once(&env);
    assert!(on_disk_end(&env) > end_before);
}

/// Failover: the receiver streamed timeline 1 from the primary; the standby is promoted and the
/// configuration now points at it. The receiver resumes on timeline 1 from what it has, the new
/// primary ends that timeline at its switch point, and the receiver follows timeline 2, archiving
/// its history file; a restore of the backup taken on timeline 1 then reaches the rows written on
/// timeline 2.
#[test]
fn receiver_follows_a_promotion_to_the_next_timeline() {
    let (env, mut primary) = streaming_only(STREAMING);
    let receiver = Receiver::start(&env, "f1");
    primary.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text)");
    primary.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    let out = env.backup_wait();
    assert_eq!(out.json()["status"], "DONE", "{}", out.stdout);

    // A standby of the primary.
    let holder = pgbak_tests::postgres_tempdir();
    let standby_dir = holder.path().join("standby");
    pgbak_tests::run_ok(
        command_as_owner(pgbak_tests::pg_bin("pg_basebackup"))
            .arg("-D")
            .arg(&standby_dir)
            .args([
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(primary.port.to_string()),
    );
    let standby = Cluster::start_existing(&standby_dir, &[]);
    primary.psql("INSERT INTO t SELECT g, 'timeline 1' FROM generate_series(1001, 1100) g");
    let end1 = primary.psql("SELECT pg_current_wal_lsn()");
    standby.wait_for(
        &format!("SELECT pg_last_wal_replay_lsn() >= '{end1}'"),
        "t",
        Duration::from_secs(60),
    );
    receiver.stop();
    primary.stop();
    standby.psql("SELECT pg_promote()");
    standby.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(60));
    assert_eq!(
        standby.psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
        "00000002"
    );

    env.write_config(&standby, STREAMING);
    let receiver = Receiver::start(&env, "f2");
    standby.psql("INSERT INTO t SELECT g, 'timeline 2' FROM generate_series(1101, 1200) g");
    switch_and_wait(&env);
    let log = receiver.log();
    assert!(
        log.contains("timeline ended; following the next one"),
        "the receiver crossed the timeline switch:\n{log}"
    );
    let report = receiver.stop();
    assert_eq!(report["timeline"], 2, "{report}");
    assert_eq!(report["conflicts"], serde_json::json!([]), "{report}");
    let wals = env.server_dir().join("wals");
    assert!(
        wals.join("00000002.history").is_file(),
        "history file archived"
    );
    let names = archived(&env);
    assert!(
        names.iter().any(|n| n.starts_with("00000002")),
        "timeline 2 segments archived: {names:?}"
    );
    assert!(list(&env.server_dir().join("errors")).is_empty());

    let r = recover_and_start(&env, "after_promotion", &["--target-tli", "latest"]);
    assert_eq!(ids(&r), ids(&standby), "the restore followed timeline 2");
    assert_eq!(ids(&r).len(), 1200);
}

/// Throughput and lag for a 1 GB burst of WAL. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn throughput_of_a_one_gigabyte_burst() {
    // PGBAK_BENCH_COMPRESSION=zstd (or any codec) measures archiving with compression too.
    let compression = std::env::var("PGBAK_BENCH_COMPRESSION").unwrap_or_else(|_| "none".into());
    let (env, cluster) = streaming_only(&format!("{STREAMING}compression = {compression}\n"));
    let receiver = Receiver::start(&env, "bench");
    cluster.psql("CREATE TABLE b (x text)");
    cluster.psql("ALTER TABLE b ALTER COLUMN x SET STORAGE EXTERNAL");
    let begin = lsn(&cluster.psql("SELECT pg_current_wal_lsn()"));
    let t0 = Instant::now();
    // Sample the lag while the burst runs.
    let sampler_conn = cluster.conninfo();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let port = cluster.port;
    let sampler = std::thread::spawn(move || {
        let _ = sampler_conn;
        let mut max_lag = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = std::process::Command::new(pgbak_tests::pg_bin("psql"))
                .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p", &port.to_string(), "-c",
                    "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), 0)::bigint FROM pg_stat_replication WHERE application_name = 'pgbak_receive_wal'"])
                .output()
                .unwrap();
            if let Ok(v) = String::from_utf8_lossy(&out.stdout).trim().parse::<u64>() {
                max_lag = max_lag.max(v);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        max_lag
    });
    cluster
        .psql("INSERT INTO b SELECT repeat(md5(g::text), 30) FROM generate_series(1, 1000000) g");
    let t1 = t0.elapsed();
    let end = lsn(&cluster.psql("SELECT pg_current_wal_lsn()"));
    let start = Instant::now();
    while slot_restart_lsn(&cluster).unwrap() < end {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "receiver did not catch up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t2 = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_lag = sampler.join().unwrap();
    cluster.psql("SELECT pg_switch_wal()");
    let last = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)");
    let start = Instant::now();
    while !archived(&env).iter().any(|n| n.as_str() >= last.as_str()) {
        assert!(start.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(50));
    }
    let t3 = t0.elapsed();
    let bytes = end - begin;
    let mb = bytes as f64 / 1e6;
    eprintln!(
        "burst (compression {compression}): {mb:.0} MB of WAL generated in {:.1} s ({:.0} MB/s); durable on the receiver after {:.1} s \
         ({:.0} MB/s end to end, {:.2} s after the burst ended); max flush lag during the burst {:.1} MB; \
         all archived after {:.1} s",
        t1.as_secs_f64(),
        mb / t1.as_secs_f64(),
        t2.as_secs_f64(),
        mb / t2.as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        max_lag as f64 / 1e6,
        t3.as_secs_f64()
    );
    receiver.stop();
    assert_contiguous_once(&env);
}
