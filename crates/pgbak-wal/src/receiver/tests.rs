//! The receiver against a scripted server: segments cut at the right bytes, flush positions that
//! never run ahead of the files, timeline switches, stops, server shutdowns and broken streams.

use super::*;
use crate::test_server::{
    complete, connect, copy_both, copy_done, keepalive, ready, result_set, xlog_data, Step,
};
use std::sync::{Arc, Mutex};

const SEG: u64 = 1 << 20;
const START: u64 = 0x100_0000;

/// The byte at WAL position `lsn` of the fake stream.
fn byte_at(lsn: u64) -> u8 {
    (lsn % 251) as u8
}

fn wal(from: u64, len: u64) -> Vec<u8> {
    (from..from + len).map(byte_at).collect()
}

/// XLogData messages carrying `[from, to)` in chunks of `chunk` bytes (not aligned to segments).
fn wal_messages(from: u64, to: u64, chunk: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let n = chunk.min(to - at);
        out.extend(xlog_data(at, &wal(at, n)));
        at += n;
    }
    out
}

#[derive(Clone, Default)]
struct Files(Arc<Mutex<Vec<ReceivedFile>>>);

impl ReceiverHandler for Files {
    fn file_ready(&mut self, file: ReceivedFile) {
        self.0.lock().unwrap().push(file);
    }
}

impl Files {
    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|f| {
                let kind = match f {
                    ReceivedFile::Segment(_) => "segment",
                    ReceivedFile::History(_) => "history",
                    ReceivedFile::TimelinePartial(_) => "partial",
                };
                format!("{kind} {}", f.path().file_name().unwrap().to_str().unwrap())
            })
            .collect()
    }
}

/// Bytes of WAL present in `dir` for timeline `tli` from `START`: whole segments count fully,
/// the partial one by its length.
fn bytes_on_disk(dir: &Path, tli: u32) -> u64 {
    let prefix = format!("{tli:08X}");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            (name.starts_with(&prefix) && !name.ends_with(".history"))
                .then(|| e.metadata().unwrap().len())
        })
        .sum()
}

fn options(dir: &Path) -> ReceiverOptions {
    ReceiverOptions::new(dir, Some("s".into()))
}

/// A status check that fails the test when a flush position is not backed by the files, and
/// raises `stop` once `stop_at` is reported flushed.
fn durability_check(
    dir: PathBuf,
    tli: u32,
    stop: Arc<watch::Sender<bool>>,
    stop_at: u64,
) -> crate::test_server::StatusCheck {
    Box::new(move |u| {
        if u.flush.is_valid() {
            let on_disk = START + bytes_on_disk(&dir, tli);
            assert!(
                u.flush.0 <= on_disk,
                "flush {} reported with only {on_disk:X} on disk",
                u.flush
            );
            assert!(
                u.flush <= u.write,
                "flush {} beyond write {}",
                u.flush,
                u.write
            );
        }
        if u.flush.0 >= stop_at {
            let _ = stop.send(true);
        }
    })
}

#[tokio::test]
async fn segments_are_cut_renamed_and_only_durable_positions_reported() {
    let d = tempfile::tempdir().unwrap();
    let end = START + 2 * SEG + SEG / 2;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send(copy_both()),
        // 300 000-byte messages: several of them straddle a segment boundary.
        Step::Send(wal_messages(START, end, 300_000)),
        Step::Send(keepalive(end, true)),
        Step::WaitFlush(end),
        Step::WaitCopyDone,
        Step::Send(
            [
                copy_done(),
                complete("COPY 0"),
                complete("START_STREAMING"),
                ready(),
            ]
            .concat(),
        ),
    ];
    let check = durability_check(d.path().to_path_buf(), 1, stop_tx.clone(), end);
    let (mut client, server) = connect("15.4", steps, check).await;
    let mut files = Files::default();
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let outcome = r
        .run(&mut client, Lsn(START + 12345), 1, &mut files, &mut stop_rx)
        .await
        .unwrap();
    assert_eq!(outcome, RunEnd::Stopped);
    assert_eq!(r.flushed(), Lsn(end));
    assert_eq!(r.bytes_received(), end - START);
    assert_eq!(
        files.names(),
        [
            "segment 000000010000000000000010",
            "segment 000000010000000000000011"
        ]
    );
    for (name, from, len) in [
        ("000000010000000000000010", START, SEG),
        ("000000010000000000000011", START + SEG, SEG),
        ("000000010000000000000012.partial", START + 2 * SEG, SEG / 2),
    ] {
        let got = std::fs::read(d.path().join(name)).unwrap();
        assert!(got == wal(from, len), "content of {name}");
    }
    assert_eq!(
        r.newest_in_dir().unwrap(),
        Some((
            SegmentName {
                tli: 1,
                segno: 0x12
            },
            true
        ))
    );
    drop(client);
    let rec = server.await.unwrap();
    let last = rec.statuses.last().unwrap();
    assert_eq!((last.write, last.flush), (Lsn(end), Lsn(end)));
    assert_eq!(last.apply, Lsn::INVALID);
    // Reported flush positions never go backwards within a run.
    let flushes: Vec<_> = rec
        .statuses
        .iter()
        .map(|u| u.flush)
        .filter(|f| f.is_valid())
        .collect();
    assert!(flushes.windows(2).all(|w| w[0] <= w[1]), "{flushes:?}");
}

#[tokio::test]
async fn a_timeline_switch_keeps_the_old_partial_and_writes_the_history() {
    let d = tempfile::tempdir().unwrap();
    let switch = START + SEG / 2;
    let end2 = START + SEG + SEG / 4;
    let history: &[u8] = b"1\t0/1080000\tno recovery target specified\n";
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send([copy_both(), wal_messages(START, switch, 100_000)].concat()),
        Step::Send(copy_done()),
        Step::WaitCopyDone,
        Step::Send(
            [
                result_set(
                    &["next_tli", "next_tli_startpos"],
                    &[&[Some(b"2"), Some(b"0/1080000")]],
                ),
                complete("START_STREAMING"),
                ready(),
            ]
            .concat(),
        ),
        Step::Query("TIMELINE_HISTORY 2".into()),
        Step::Send(
            [
                result_set(
                    &["filename", "content"],
                    &[&[Some(b"00000002.history"), Some(history)]],
                ),
                ready(),
            ]
            .concat(),
        ),
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 2".into()),
        Step::Send([copy_both(), wal_messages(START, end2, 200_000)].concat()),
        Step::Send(keepalive(end2, true)),
        Step::WaitFlush(end2),
        Step::WaitCopyDone,
        Step::Send([copy_done(), complete("START_STREAMING"), ready()].concat()),
    ];
    // On timeline 2 the flush check counts the files of timeline 2 only.
    let check = durability_check(d.path().to_path_buf(), 2, stop_tx.clone(), end2);
    let (mut client, server) = connect("15.4", steps, check).await;
    let mut files = Files::default();
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let outcome = r
        .run(&mut client, Lsn(START), 1, &mut files, &mut stop_rx)
        .await
        .unwrap();
    assert_eq!(outcome, RunEnd::Stopped);
    assert_eq!(r.timeline(), 2);
    assert_eq!(
        files.names(),
        [
            "partial 000000010000000000000010.partial",
            "history 00000002.history",
            "segment 000000020000000000000010",
        ]
    );
    assert_eq!(
        std::fs::read(d.path().join("00000002.history")).unwrap(),
        history
    );
    assert!(
        std::fs::read(d.path().join("000000010000000000000010.partial")).unwrap()
            == wal(START, SEG / 2)
    );
    assert!(
        std::fs::read(d.path().join("000000020000000000000011.partial")).unwrap()
            == wal(START + SEG, SEG / 4)
    );
    assert_eq!(
        r.newest_in_dir().unwrap(),
        Some((
            SegmentName {
                tli: 2,
                segno: 0x11
            },
            true
        ))
    );
    drop(client);
    let rec = server.await.unwrap();
    assert_eq!(rec.copy_dones, 2);
}

#[tokio::test]
async fn server_shutdown_is_confirmed_then_reported() {
    let d = tempfile::tempdir().unwrap();
    let end = START + 5000;
    let (_stop_tx, mut stop_rx) = watch::channel(false);
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send(
            [
                copy_both(),
                wal_messages(START, end, 1000),
                keepalive(end, true),
            ]
            .concat(),
        ),
        // A server shutting down waits for this confirmation before it goes.
        Step::WaitFlush(end),
        Step::Send(complete("COPY 0")),
        Step::HangUp,
    ];
    let (mut client, server) = connect("15.4", steps, Box::new(|_| {})).await;
    let mut files = Files::default();
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let outcome = r
        .run(&mut client, Lsn(START), 1, &mut files, &mut stop_rx)
        .await
        .unwrap();
    assert_eq!(outcome, RunEnd::ServerStopped);
    assert_eq!(r.flushed(), Lsn(end));
    assert!(
        std::fs::read(d.path().join("000000010000000000000010.partial")).unwrap()
            == wal(START, 5000)
    );
    server.await.unwrap();
}

#[tokio::test]
async fn without_a_slot_no_flush_is_reported_and_idle_streams_still_send_status() {
    let d = tempfile::tempdir().unwrap();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let steps = vec![
        Step::Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send([copy_both(), wal_messages(START, START + 10, 10)].concat()),
        // Nothing more arrives: the status timer alone must produce updates.
        Step::WaitStatus,
        Step::WaitStatus,
        Step::WaitCopyDone,
        Step::Send([copy_done(), complete("START_STREAMING"), ready()].concat()),
    ];
    let stopper = stop_tx.clone();
    let seen = Arc::new(Mutex::new(0));
    let seen2 = seen.clone();
    let check: crate::test_server::StatusCheck = Box::new(move |u| {
        assert_eq!(u.flush, Lsn::INVALID, "no slot: no flush position");
        assert_eq!(u.write, Lsn(START + 10));
        let mut n = seen2.lock().unwrap();
        *n += 1;
        if *n == 2 {
            let _ = stopper.send(true);
        }
    });
    let (mut client, server) = connect("15.4", steps, check).await;
    let mut opts = ReceiverOptions::new(d.path(), None);
    opts.status_interval = Duration::from_millis(100);
    opts.fsync_interval = Duration::from_millis(50);
    assert!(!opts.report_flush);
    let mut r = WalReceiver::new(opts, SEG).unwrap();
    let outcome = r
        .run(
            &mut client,
            Lsn(START),
            1,
            &mut Files::default(),
            &mut stop_rx,
        )
        .await
        .unwrap();
    assert_eq!(outcome, RunEnd::Stopped);
    // The fsync timer made the bytes durable even though no flush was reported.
    assert_eq!(r.flushed(), Lsn(START + 10));
    drop(client);
    let rec = server.await.unwrap();
    assert!(rec.statuses.len() >= 3, "{:?}", rec.statuses);
}

#[tokio::test]
async fn broken_streams_are_errors() {
    // WAL that does not continue where the last message ended.
    let d = tempfile::tempdir().unwrap();
    let (_stop_tx, mut stop_rx) = watch::channel(false);
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send(
            [
                copy_both(),
                xlog_data(START, &wal(START, 100)),
                xlog_data(START + 200, &wal(START + 200, 100)),
            ]
            .concat(),
        ),
    ];
    let (mut client, _server) = connect("15.4", steps, Box::new(|_| {})).await;
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let err = r
        .run(
            &mut client,
            Lsn(START),
            1,
            &mut Files::default(),
            &mut stop_rx,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("sent WAL from 0/10000C8 but the receiver expected 0/1000064"),
        "{err}"
    );

    // A next timeline that starts after the end of what was streamed.
    let d = tempfile::tempdir().unwrap();
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send(
            [
                copy_both(),
                wal_messages(START, START + 100, 100),
                copy_done(),
            ]
            .concat(),
        ),
        Step::WaitCopyDone,
        Step::Send(
            [
                result_set(
                    &["next_tli", "next_tli_startpos"],
                    &[&[Some(b"2"), Some(b"0/1000065")]],
                ),
                complete("START_STREAMING"),
                ready(),
            ]
            .concat(),
        ),
    ];
    let (mut client, _server) = connect("15.4", steps, Box::new(|_| {})).await;
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let err = r
        .run(
            &mut client,
            Lsn(START),
            1,
            &mut Files::default(),
            &mut stop_rx,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("reported next timeline 2 to begin at 0/1000065"),
        "{err}"
    );
    // What was received is durable and resumable.
    assert_eq!(
        r.newest_in_dir().unwrap(),
        Some((
            SegmentName {
                tli: 1,
                segno: 0x10
            },
            true
        ))
    );

    // A next timeline that does not move forward.
    let d = tempfile::tempdir().unwrap();
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 3".into()),
        Step::Send(
            [
                result_set(
                    &["next_tli", "next_tli_startpos"],
                    &[&[Some(b"3"), Some(b"0/1000000")]],
                ),
                complete("START_STREAMING"),
                ready(),
            ]
            .concat(),
        ),
    ];
    let history = b"1\t0/800000\tx\n2\t0/900000\ty\n";
    let steps = [
        vec![
            Step::Query("TIMELINE_HISTORY 3".into()),
            Step::Send(
                [
                    result_set(
                        &["filename", "content"],
                        &[&[Some(b"00000003.history"), Some(history)]],
                    ),
                    ready(),
                ]
                .concat(),
            ),
        ],
        steps,
    ]
    .into_iter()
    .flatten()
    .collect();
    let (mut client, _server) = connect("15.4", steps, Box::new(|_| {})).await;
    let mut r = WalReceiver::new(options(d.path()), SEG).unwrap();
    let err = r
        .run(
            &mut client,
            Lsn(START),
            3,
            &mut Files::default(),
            &mut stop_rx,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("named timeline 3 as the next one"),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_server_is_pinged_then_given_up() {
    let d = tempfile::tempdir().unwrap();
    let (_stop_tx, mut stop_rx) = watch::channel(false);
    let steps = vec![
        Step::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into()),
        Step::Send([copy_both(), wal_messages(START, START + 100, 100)].concat()),
        // The server answers the first ping, then falls silent (a dead network).
        Step::WaitPing,
        Step::Send(keepalive(START + 100, false)),
        Step::WaitPing,
        Step::Pause(Duration::from_secs(2)),
    ];
    let (mut client, server) = connect("15.4", steps, Box::new(|_| {})).await;
    let mut opts = options(d.path());
    opts.receive_timeout = Duration::from_millis(400);
    opts.fsync_interval = Duration::from_millis(50);
    let mut r = WalReceiver::new(opts, SEG).unwrap();
    let started = Instant::now();
    let err = r
        .run(
            &mut client,
            Lsn(START),
            1,
            &mut Files::default(),
            &mut stop_rx,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("considered lost"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    // What arrived before was made durable by the fsync timer meanwhile.
    assert_eq!(r.flushed(), Lsn(START + 100));
    drop(client);
    let rec = server.await.unwrap();
    assert_eq!(rec.statuses.iter().filter(|u| u.reply_requested).count(), 2);
}

#[test]
fn bad_options_are_refused() {
    let d = tempfile::tempdir().unwrap();
    assert!(WalReceiver::new(options(d.path()), 1000).is_err());
    assert!(WalReceiver::new(ReceiverOptions::new(d.path(), Some("Bad".into())), SEG).is_err());
    let file = d.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = WalReceiver::new(options(&file.join("sub")), SEG)
        .err()
        .unwrap();
    assert!(matches!(err, Error::File { .. }), "{err}");
}
