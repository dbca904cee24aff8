//! The parts of `receive-wal` that need no PostgreSQL: configuration checks, connection naming,
//! which failures are retried, and how `streaming/` is emptied into the archive (stored,
//! duplicates, clashes, partial segments of ended timelines).

use super::archiver::sweep_now;
use super::*;
use crate::config::Config;
use pgbak_wal::DbError;

const SEG: u64 = 1 << 20;

fn server(extra: &str) -> (tempfile::TempDir, Server) {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost port=5999 user=u\n{extra}\n",
        d.path().display()
    );
    let cfg = Config::parse_str(&text, &d.path().join("pgbak.conf")).unwrap();
    let s = Server::new(&cfg, "main").unwrap();
    (d, s)
}

/// A 1 MiB segment whose long header matches its name.
fn segment(name: &str, fill: u8) -> Vec<u8> {
    let seg = SegmentName::parse(name, SEG).unwrap();
    let mut v = vec![fill; SEG as usize];
    v[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    v[2..4].copy_from_slice(&0x0002u16.to_le_bytes());
    v[4..8].copy_from_slice(&seg.tli.to_le_bytes());
    v[8..16].copy_from_slice(&seg.start_lsn(SEG).0.to_le_bytes());
    v[24..32].copy_from_slice(&7u64.to_le_bytes());
    v[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
    v
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn configuration_is_checked_before_anything_runs() {
    let (_d, s) = server("");
    let err = check_config(&s).unwrap_err().to_string();
    assert!(err.contains("streaming_archiver is off"), "{err}");
    let (_d, s) = server("streaming_archiver = on\n");
    let err = check_config(&s).unwrap_err().to_string();
    assert!(err.contains("no slot_name"), "{err}");
    let (_d, s) = server("streaming_archiver = on\narchiver = on\n");
    check_config(&s).unwrap();
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\n");
    check_config(&s).unwrap();
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\nactive = false\n");
    assert!(check_config(&s)
        .unwrap_err()
        .to_string()
        .contains("not active"));
    // receive-wal itself refuses before taking any lock or connecting.
    let (d, s) = server("");
    assert!(matches!(
        receive_wal(&s, &ReceiveWalOptions::default()),
        Err(Error::Usage(_))
    ));
    assert!(!s.config.streaming_wals_directory.exists());
    drop(d);
}

#[test]
fn streaming_connection_names_itself() {
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\n");
    let p = streaming_params(&s).unwrap();
    assert_eq!(p.application_name.as_deref(), Some("pgbak_receive_wal"));
    assert_eq!(p.port, 5999);
    let (_d, s) = server(
        "streaming_archiver = on\nslot_name = pgbak\nstreaming_archiver_name = barman_receive_wal\n\
         streaming_conninfo = host=localhost port=6000 user=u\nwal_streaming_conninfo = host=localhost port=6001 user=u\n",
    );
    let p = streaming_params(&s).unwrap();
    assert_eq!(p.application_name.as_deref(), Some("barman_receive_wal"));
    assert_eq!(p.port, 6001, "wal_streaming_conninfo wins");
}

fn server_error(code: &str) -> Error {
    Error::Wal(pgbak_wal::Error::Server {
        server: "h:1".into(),
        error: Box::new(DbError {
            severity: "ERROR".into(),
            code: code.into(),
            message: "m".into(),
            detail: None,
            hint: None,
        }),
    })
}

#[test]
fn only_connection_failures_are_retried() {
    for code in ["57P01", "57P03", "55006", "08006", "53300"] {
        assert!(transient(&server_error(code)), "{code}");
    }
    for code in ["58P01", "42704", "28P01", "42601"] {
        assert!(!transient(&server_error(code)), "{code}");
    }
    let io = Error::Wal(pgbak_wal::Error::Io {
        context: "reading from server".into(),
        source: std::io::Error::other("reset"),
    });
    assert!(transient(&io));
    let file = Error::Wal(pgbak_wal::Error::File {
        op: "write",
        path: "/x".into(),
        source: std::io::Error::other("disk full"),
    });
    assert!(!transient(&file), "local disk failures stop the receiver");
    assert!(!transient(&Error::Other("systemid".into())));
}

#[test]
fn sweep_archives_complete_files_and_keeps_the_newest_partial() {
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\ncompression = zstd\n");
    let dir = s.config.streaming_wals_directory.clone();
    let a = "000000010000000000000003";
    let b = "000000010000000000000004";
    put(&dir, a, &segment(a, 1));
    put(&dir, b, &segment(b, 2));
    put(
        &dir,
        "00000002.history",
        b"1\t0/500000\tno recovery target specified\n",
    );
    // The last segment of timeline 1, and the one being written on timeline 2.
    put(
        &dir,
        "000000010000000000000005.partial",
        &segment("000000010000000000000005", 3)[..5000],
    );
    put(
        &dir,
        "000000020000000000000005.partial",
        &segment("000000020000000000000005", 4)[..9000],
    );
    put(&dir, ".000000020000000000000006.tmp", b"half");
    let archive = s.wal_archive().unwrap();
    let stats = sweep_now(&s, &archive, &dir);
    assert_eq!(stats.stored, 4, "{stats:?}");
    assert!(stats.errors.is_empty(), "{stats:?}");
    assert_eq!(
        names(&dir),
        [
            ".000000020000000000000006.tmp",
            "000000020000000000000005.partial"
        ]
    );
    assert_eq!(archive.segment_names().unwrap(), [a, b]);
    assert!(archive.contains("00000002.history").unwrap());
    assert!(archive
        .contains("000000010000000000000005.partial")
        .unwrap());
    assert_eq!(
        archive.stored_compression(a).unwrap(),
        pgbak_compress::Compression::Zstd
    );
    let out = s.config.backup_directory.join("out");
    archive.fetch(b, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), segment(b, 2));
}

#[test]
fn with_archive_command_on_ended_timeline_partials_wait_for_the_servers_copy() {
    let (_d, s) = server("streaming_archiver = on\narchiver = on\nslot_name = pgbak\n");
    let dir = s.config.streaming_wals_directory.clone();
    let old = "000000010000000000000005.partial";
    put(&dir, old, &segment("000000010000000000000005", 3)[..5000]);
    put(&dir, "000000020000000000000005.partial", &[]);
    let archive = s.wal_archive().unwrap();
    let stats = sweep_now(&s, &archive, &dir);
    assert_eq!((stats.stored, stats.partials_waiting), (0, 1));
    assert!(names(&dir).contains(&old.to_string()));
    // Once archive_command has delivered the server's copy, ours is simply dropped.
    let server_copy = s.config.backup_directory.join(old);
    std::fs::write(&server_copy, segment("000000010000000000000005", 3)).unwrap();
    archive.archive_file(&server_copy).unwrap();
    let stats = sweep_now(&s, &archive, &dir);
    assert_eq!((stats.stored, stats.partials_waiting), (0, 0));
    assert_eq!(names(&dir), ["000000020000000000000005.partial"]);
}

#[test]
fn duplicates_from_archive_command_are_kept_once_and_clashes_go_to_errors() {
    let (_d, s) =
        server("streaming_archiver = on\narchiver = on\nslot_name = pgbak\ncompression = gzip\n");
    let dir = s.config.streaming_wals_directory.clone();
    let archive = s.wal_archive().unwrap();
    let same = "000000010000000000000007";
    let clash = "000000010000000000000008";
    // What archive_command delivered first.
    let incoming = s.config.backup_directory.join("from_archive_command");
    for (name, fill) in [(same, 7u8), (clash, 8u8)] {
        put(&incoming, name, &segment(name, fill));
        archive.archive_file(&incoming.join(name)).unwrap();
    }
    put(&dir, same, &segment(same, 7));
    put(&dir, clash, &segment(clash, 9));
    let stats = sweep_now(&s, &archive, &dir);
    assert_eq!(stats.already_archived, 1, "{stats:?}");
    assert_eq!(stats.conflicts.len(), 1, "{stats:?}");
    assert!(stats.conflicts[0].starts_with(clash), "{stats:?}");
    assert!(
        names(&dir).is_empty(),
        "both streamed copies leave streaming/"
    );
    let errors = names(&s.config.errors_directory);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(clash), "{errors:?}");
    // The index has exactly one line per name: the duplicate added nothing.
    let lines: Vec<String> = archive
        .index_entries()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(lines, [same, clash]);
    let out = s.config.backup_directory.join("out");
    archive.fetch(clash, &out).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        segment(clash, 8),
        "the first copy stays"
    );
}

#[test]
fn a_file_that_cannot_be_archived_stays_for_the_next_sweep() {
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\n");
    let dir = s.config.streaming_wals_directory.clone();
    let name = "000000010000000000000009";
    // Cut short: the archive refuses it as corrupt.
    put(&dir, name, &segment(name, 1)[..4096]);
    let stats = sweep_now(&s, &s.wal_archive().unwrap(), &dir);
    assert_eq!(stats.errors.len(), 1, "{stats:?}");
    assert!(stats.errors[0].contains(name), "{stats:?}");
    assert_eq!(names(&dir), [name]);
}

#[test]
fn newest_streamed_file_names_its_system() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        newest_streamed_system(&d.path().join("none"), SEG).unwrap(),
        None
    );
    put(
        d.path(),
        "000000010000000000000003",
        &segment("000000010000000000000003", 0),
    );
    // An empty marker written by --reset has no header: the next older file speaks.
    put(d.path(), "000000010000000000000004.partial", &[]);
    assert_eq!(
        newest_streamed_system(d.path(), SEG).unwrap(),
        Some(("000000010000000000000003".to_string(), 7))
    );
}

#[test]
fn running_receiver_is_the_lock_holder() {
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\n");
    let name = LockName::ServerReceiveWal("main".into());
    assert_eq!(running_receiver(&s).unwrap(), None);
    assert!(
        !s.lock_path(&name).unwrap().exists(),
        "looking creates no lock file"
    );
    let guard = s.locks().try_lock(&name).unwrap();
    assert_eq!(running_receiver(&s).unwrap(), Some(std::process::id()));
    // A second receiver is refused at once, naming the first.
    let err = receive_wal(&s, &ReceiveWalOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("receive-wal lock") && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(guard);
    assert_eq!(running_receiver(&s).unwrap(), None);
}

#[test]
fn stop_without_a_receiver_does_nothing() {
    let (_d, s) = server("streaming_archiver = on\nslot_name = pgbak\n");
    assert_eq!(
        stop(&s, Duration::from_millis(10)).unwrap(),
        StopOutcome::NotRunning
    );
    assert_eq!(
        CronAction::Started { pid: 12 }.to_string(),
        "started receive-wal (pid 12)"
    );
}

#[test]
fn slot_operations_need_a_slot_name() {
    let (_d, s) = server("streaming_archiver = on\narchiver = on\n");
    assert!(matches!(create_slot(&s, false), Err(Error::Usage(_))));
    assert!(matches!(drop_slot(&s), Err(Error::Usage(_))));
}
