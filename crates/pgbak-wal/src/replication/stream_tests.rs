//! START_REPLICATION, slots and timeline histories against a scripted server: exact message
//! sequences for a timeline that ends, a start at the very end of a timeline, a server shutting
//! down, a client that stops, server errors, and cancellation in the middle of a message.

use super::*;
use crate::protocol::stream::{SlotInfo, StandbyStatusUpdate};
use crate::test_server::{
    complete, connect, copy_both, copy_done, error, frame, keepalive, ready, result_set, xlog_data,
    Step,
};
use std::time::Duration;

fn no_check() -> crate::test_server::StatusCheck {
    Box::new(|_| {})
}

fn q(s: &str) -> Step {
    Step::Query(s.to_string())
}

fn end_of_timeline(tli: &str, lsn: &str) -> Vec<u8> {
    [
        result_set(
            &["next_tli", "next_tli_startpos"],
            &[&[Some(tli.as_bytes()), Some(lsn.as_bytes())]],
        ),
        complete("START_STREAMING"),
        ready(),
    ]
    .concat()
}

#[tokio::test]
async fn timeline_ends_after_copy_done_exchange() {
    let steps = vec![
        q("START_REPLICATION SLOT \"pgbak\" PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send(
            [
                copy_both(),
                xlog_data(0x100_0000, b"abc"),
                keepalive(0x100_0003, true),
            ]
            .concat(),
        ),
        Step::WaitStatus,
        Step::Send(copy_done()),
        Step::WaitCopyDone,
        Step::Send(end_of_timeline("2", "0/1000003")),
        q("SHOW wal_segment_size"),
        Step::Send(
            [
                result_set(&["wal_segment_size"], &[&[Some(b"16MB")]]),
                ready(),
            ]
            .concat(),
        ),
    ];
    let (mut client, server) = connect("15.4", steps, no_check()).await;
    let mut stream = client
        .start_replication(Some("pgbak"), Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let ReplicationMessage::XLogData { header, data } = stream.next_message().await.unwrap() else {
        panic!("XLogData expected")
    };
    assert_eq!(header.start, Lsn(0x100_0000));
    assert_eq!(&data[..], b"abc");
    let ReplicationMessage::Keepalive(k) = stream.next_message().await.unwrap() else {
        panic!("keepalive expected")
    };
    assert!(k.reply_requested);
    assert_eq!(k.wal_end, Lsn(0x100_0003));
    let status = StandbyStatusUpdate {
        write: Lsn(0x100_0003),
        flush: Lsn(0x100_0003),
        apply: Lsn::INVALID,
        client_time: 42,
        reply_requested: false,
    };
    stream.send_status(&status).await.unwrap();
    assert_eq!(
        stream.next_message().await.unwrap(),
        ReplicationMessage::EndOfStream
    );
    // Once ended, the stream keeps saying so.
    assert_eq!(
        stream.next_message().await.unwrap(),
        ReplicationMessage::EndOfStream
    );
    assert_eq!(
        stream.finish().await.unwrap(),
        StreamEnd::TimelineEnded {
            next_tli: 2,
            next_start: Lsn(0x100_0003)
        }
    );
    // The connection is ready for the next command.
    assert_eq!(client.wal_segment_size().await.unwrap(), 16 << 20);
    drop(client);
    let rec = server.await.unwrap();
    assert_eq!(rec.statuses, vec![status]);
    assert_eq!(rec.copy_dones, 1);
}

#[tokio::test]
async fn start_at_the_end_of_a_timeline_skips_streaming() {
    let steps = vec![
        q("START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1"),
        Step::Send(end_of_timeline("3", "0/3000000")),
    ];
    let (mut client, server) = connect("15.4", steps, no_check()).await;
    let mut stream = client
        .start_replication(None, Lsn(0x300_0000), 1)
        .await
        .unwrap();
    assert_eq!(
        stream.next_message().await.unwrap(),
        ReplicationMessage::EndOfStream
    );
    assert_eq!(
        stream.finish().await.unwrap(),
        StreamEnd::TimelineEnded {
            next_tli: 3,
            next_start: Lsn(0x300_0000)
        }
    );
    drop(client);
    assert_eq!(server.await.unwrap().copy_dones, 0, "no COPY mode to end");
}

#[tokio::test]
async fn server_shutdown_ends_the_stream_and_the_connection() {
    let steps = vec![
        q("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send([copy_both(), xlog_data(0x100_0000, b"x"), complete("COPY 0")].concat()),
        Step::HangUp,
    ];
    let (mut client, server) = connect("15.4", steps, no_check()).await;
    let mut stream = client
        .start_replication(None, Lsn(0x100_0000), 1)
        .await
        .unwrap();
    assert!(matches!(
        stream.next_message().await.unwrap(),
        ReplicationMessage::XLogData { .. }
    ));
    assert_eq!(
        stream.next_message().await.unwrap(),
        ReplicationMessage::EndOfStream
    );
    let err = stream
        .send_status(&StandbyStatusUpdate {
            write: Lsn(1),
            flush: Lsn(1),
            apply: Lsn(0),
            client_time: 0,
            reply_requested: false,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
    assert_eq!(stream.finish().await.unwrap(), StreamEnd::ServerStopped);
    assert!(matches!(
        client.identify_system().await.unwrap_err(),
        Error::ConnectionBroken { .. }
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn client_stop_discards_wal_in_flight_and_keeps_the_connection() {
    let steps = vec![
        q("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send(copy_both()),
        Step::WaitCopyDone,
        Step::Send(
            [
                xlog_data(0x100_0000, b"in flight"),
                copy_done(),
                complete("COPY 0"),
                complete("START_STREAMING"),
                ready(),
            ]
            .concat(),
        ),
        q("SHOW wal_segment_size"),
        Step::Send(
            [
                result_set(&["wal_segment_size"], &[&[Some(b"1GB")]]),
                ready(),
            ]
            .concat(),
        ),
    ];
    let (mut client, server) = connect("16.2", steps, no_check()).await;
    let stream = client
        .start_replication(Some("s"), Lsn(0x100_0000), 1)
        .await
        .unwrap();
    assert_eq!(stream.finish().await.unwrap(), StreamEnd::Finished);
    assert_eq!(client.wal_segment_size().await.unwrap(), 1 << 30);
    drop(client);
    assert_eq!(server.await.unwrap().copy_dones, 1);
}

#[tokio::test]
async fn refused_start_is_a_server_error_and_the_connection_survives() {
    let steps = vec![
        q("START_REPLICATION SLOT \"gone\" PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send(
            [
                error("42704", "replication slot \"gone\" does not exist"),
                ready(),
            ]
            .concat(),
        ),
        q("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send(
            [
                copy_both(),
                error(
                    "58P01",
                    "requested WAL segment 000000010000000000000001 has already been removed",
                ),
            ]
            .concat(),
        ),
    ];
    let (mut client, server) = connect("15.4", steps, no_check()).await;
    let err = client
        .start_replication(Some("gone"), Lsn(0x100_0000), 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.sqlstate(), Some("42704"));
    let mut stream = client
        .start_replication(None, Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let err = stream.next_message().await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("58P01"));
    assert!(err.to_string().contains("already been removed"), "{err}");
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn hostile_or_broken_stream_messages_are_refused() {
    let bad_payload = frame(b'd', b"zzz");
    let steps = vec![
        q("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send([copy_both(), bad_payload].concat()),
    ];
    let (mut client, _server) = connect("15.4", steps, no_check()).await;
    let mut stream = client
        .start_replication(None, Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let err = stream.next_message().await.unwrap_err();
    assert!(
        err.to_string().contains("unknown message type 'z'"),
        "{err}"
    );
    assert!(err.to_string().contains("fake:5432"), "{err}");
    assert!(matches!(
        client.show("x").await.unwrap_err(),
        Error::ConnectionBroken { .. }
    ));

    // A START_REPLICATION that neither streams nor names a next timeline.
    let steps = vec![
        q("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send([complete("START_STREAMING"), ready()].concat()),
    ];
    let (mut client, _server) = connect("15.4", steps, no_check()).await;
    let err = client
        .start_replication(None, Lsn(0x100_0000), 1)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("without streaming"), "{err}");
}

#[tokio::test]
async fn next_message_survives_cancellation_mid_message() {
    let whole = xlog_data(0x100_0000, &[7u8; 1000]);
    let (head, tail) = whole.split_at(300);
    let steps = vec![
        q("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Step::Send([copy_both(), head.to_vec()].concat()),
        Step::Pause(Duration::from_millis(300)),
        Step::Send(tail.to_vec()),
    ];
    let (mut client, _server) = connect("15.4", steps, no_check()).await;
    let mut stream = client
        .start_replication(None, Lsn(0x100_0000), 1)
        .await
        .unwrap();
    let mut timeouts = 0;
    let msg = loop {
        match tokio::time::timeout(Duration::from_millis(20), stream.next_message()).await {
            Ok(m) => break m.unwrap(),
            Err(_) => timeouts += 1,
        }
    };
    assert!(timeouts > 0, "the message arrived in two parts");
    let ReplicationMessage::XLogData { data, .. } = msg else {
        panic!("XLogData expected")
    };
    assert_eq!(&data[..], &[7u8; 1000][..]);
}

#[tokio::test]
async fn slots_and_timeline_histories() {
    let history: &[u8] = b"1\t0/3000158\tbefore 'caf\xe9'\n";
    let steps = vec![
        q("CREATE_REPLICATION_SLOT \"pgbak\" PHYSICAL (RESERVE_WAL)"),
        Step::Send(
            [
                result_set(
                    &[
                        "slot_name",
                        "consistent_point",
                        "snapshot_name",
                        "output_plugin",
                    ],
                    &[&[Some(b"pgbak"), Some(b"0/0"), None, None]],
                ),
                ready(),
            ]
            .concat(),
        ),
        q("CREATE_REPLICATION_SLOT \"pgbak\" PHYSICAL (RESERVE_WAL)"),
        Step::Send(
            [
                error("42710", "replication slot \"pgbak\" already exists"),
                ready(),
            ]
            .concat(),
        ),
        q("READ_REPLICATION_SLOT \"pgbak\""),
        Step::Send(
            [
                result_set(
                    &["slot_type", "restart_lsn", "restart_tli"],
                    &[&[Some(b"physical"), Some(b"0/3000060"), Some(b"1")]],
                ),
                ready(),
            ]
            .concat(),
        ),
        q("READ_REPLICATION_SLOT \"other\""),
        Step::Send(
            [
                result_set(
                    &["slot_type", "restart_lsn", "restart_tli"],
                    &[&[None, None, None]],
                ),
                ready(),
            ]
            .concat(),
        ),
        q("TIMELINE_HISTORY 2"),
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
        q("TIMELINE_HISTORY 3"),
        Step::Send(
            [
                result_set(
                    &["filename", "content"],
                    &[&[Some(b"../00000003.history"), Some(history)]],
                ),
                ready(),
            ]
            .concat(),
        ),
        q("DROP_REPLICATION_SLOT \"pgbak\" WAIT"),
        Step::Send([complete("DROP_REPLICATION_SLOT"), ready()].concat()),
    ];
    let (mut client, server) = connect("15.4", steps, no_check()).await;
    client.create_physical_slot("pgbak", true).await.unwrap();
    let err = client
        .create_physical_slot("pgbak", true)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42710"));
    assert!(matches!(
        client
            .create_physical_slot("Bad-Name", true)
            .await
            .unwrap_err(),
        Error::InvalidOption { .. }
    ));
    assert_eq!(
        client.read_replication_slot("pgbak").await.unwrap(),
        Some(SlotInfo {
            slot_type: "physical".into(),
            restart_lsn: Some(Lsn(0x300_0060)),
            restart_tli: Some(1)
        })
    );
    assert_eq!(client.read_replication_slot("other").await.unwrap(), None);
    let (name, content) = client.timeline_history(2).await.unwrap();
    assert_eq!(name, "00000002.history");
    assert_eq!(content, history, "content is kept byte for byte");
    let err = client.timeline_history(3).await.unwrap_err();
    assert!(err.to_string().contains("file name"), "{err}");
    client.drop_slot("pgbak", true).await.unwrap();
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn read_replication_slot_needs_postgresql_15() {
    let steps = vec![
        q("CREATE_REPLICATION_SLOT \"s\" PHYSICAL RESERVE_WAL"),
        Step::Send([complete("CREATE_REPLICATION_SLOT"), ready()].concat()),
    ];
    let (mut client, server) = connect("14.9", steps, no_check()).await;
    assert!(matches!(
        client.read_replication_slot("s").await.unwrap_err(),
        Error::UnsupportedServerVersion { .. }
    ));
    client.create_physical_slot("s", true).await.unwrap();
    drop(client);
    let rec = server.await.unwrap();
    assert_eq!(
        rec.queries.len(),
        1,
        "nothing was sent for the refused command"
    );
}

/// The streaming futures are driven from spawned tasks: they must be `Send`.
#[allow(dead_code)]
fn futures_are_send(client: &mut ReplicationClient) {
    fn is_send<T: Send>(_: T) {}
    is_send(client.start_replication(None, Lsn(0), 1));
    is_send(client.create_physical_slot("s", true));
    is_send(client.drop_slot("s", true));
    is_send(client.read_replication_slot("s"));
    is_send(client.timeline_history(2));
}

#[allow(dead_code)]
fn stream_futures_are_send(stream: &mut ReplicationStream<'_>, u: &StandbyStatusUpdate) {
    fn is_send<T: Send>(_: T) {}
    is_send(stream.next_message());
    is_send(stream.send_status(u));
}
