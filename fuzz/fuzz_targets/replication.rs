//! The replication client against a server that sends arbitrary bytes: startup and
//! authentication, result sets (IDENTIFY_SYSTEM, SHOW, READ_REPLICATION_SLOT, TIMELINE_HISTORY),
//! BASE_BACKUP for both server generations, and START_REPLICATION with XLogData and keepalives.
//! The first input byte picks two commands to run one after the other; the rest is what the
//! server sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::fuzzing::replication_client_over;
use pgbak_wal::protocol::stream::StandbyStatusUpdate;
use pgbak_wal::{
    BaseBackupOptions, BaseBackupSink, ConnParams, Lsn, ReplicationClient, ReplicationMessage,
    TablespaceInfo,
};
use std::io;
use std::sync::LazyLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

/// Checks the order of the sink calls and that archive names are plain file names.
#[derive(Default)]
struct Sink {
    begun: bool,
    in_archive: bool,
    manifest: bool,
}

impl BaseBackupSink for Sink {
    fn begin(&mut self, _: Lsn, _: u32, _: &[TablespaceInfo]) -> io::Result<()> {
        assert!(!self.begun, "begin twice");
        self.begun = true;
        Ok(())
    }
    fn archive_start(&mut self, name: &str, _: Option<&str>) -> io::Result<()> {
        assert!(self.begun, "archive before begin");
        assert!(!self.manifest, "archive after the manifest");
        assert!(
            !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
            "archive name {name:?} is not a plain file name"
        );
        self.in_archive = true;
        Ok(())
    }
    fn archive_data(&mut self, _: &[u8]) -> io::Result<()> {
        assert!(self.in_archive, "archive data outside an archive");
        Ok(())
    }
    fn archive_end(&mut self) -> io::Result<()> {
        assert!(self.in_archive, "archive end outside an archive");
        self.in_archive = false;
        Ok(())
    }
    fn manifest_data(&mut self, _: &[u8]) -> io::Result<()> {
        assert!(!self.in_archive, "manifest data inside an archive");
        self.manifest = true;
        Ok(())
    }
    fn progress(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

async fn command(client: &mut ReplicationClient, which: u8) {
    match which % 8 {
        0 => {
            let _ = client.identify_system().await;
        }
        1 => {
            if let Ok(size) = client.wal_segment_size().await {
                assert!(pgbak_wal::validate_segment_size(size).is_ok());
            }
        }
        2 => {
            let _ = client.read_replication_slot("pgbak").await;
        }
        3 => {
            if let Ok((name, content)) = client.timeline_history(2).await {
                assert_eq!(name, "00000002.history");
                let _ = content;
            }
        }
        4 => {
            let _ = client.create_physical_slot("pgbak", true).await;
        }
        5 | 6 => {
            let opts = BaseBackupOptions {
                label: "fuzz".into(),
                progress: true,
                fast_checkpoint: true,
                manifest: which % 8 == 5,
                manifest_checksums: None,
                tablespace_map: true,
                max_rate_kbps: None,
                verify_checksums: true,
                wait_for_wal_archive: true,
                server_compression: None,
                incremental: false,
            };
            let mut sink = Sink::default();
            if client.base_backup(&opts, &mut sink).await.is_ok() {
                assert!(sink.begun && !sink.in_archive);
            }
        }
        _ => {
            let Ok(mut stream) = client
                .start_replication(Some("pgbak"), Lsn(0x100_0000), 1)
                .await
            else {
                return;
            };
            let mut flushed = Lsn(0);
            for _ in 0..10_000 {
                match stream.next_message().await {
                    Ok(ReplicationMessage::XLogData { header, data }) => {
                        let end = header.start.0.checked_add(data.len() as u64);
                        assert!(end.is_some(), "XLogData past the end of the address space");
                        flushed = flushed.max(header.start);
                    }
                    Ok(ReplicationMessage::Keepalive(k)) => {
                        if k.reply_requested {
                            let update = StandbyStatusUpdate {
                                write: flushed,
                                flush: flushed,
                                apply: Lsn(0),
                                client_time: 0,
                                reply_requested: false,
                            };
                            if stream.send_status(&update).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(ReplicationMessage::EndOfStream) | Err(_) => break,
                }
            }
            let _ = stream.finish().await;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ops, server_bytes)) = data.split_first() else {
        return;
    };
    let server_bytes = server_bytes.to_vec();
    RUNTIME.block_on(async move {
        let (client_end, mut server_end) = tokio::io::duplex(64 * 1024);
        // The server sends its bytes, then reads (and drops) whatever the client sends until it
        // hangs up, so that the client never waits on a full pipe.
        let server = tokio::spawn(async move {
            let _ = server_end.write_all(&server_bytes).await;
            let _ = server_end.shutdown().await;
            let mut sink = vec![0u8; 16 * 1024];
            while matches!(server_end.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let params = ConnParams {
            host: "fuzz".into(),
            port: 5432,
            user: "bob".into(),
            dbname: "db".into(),
            password: Some("secret".into()),
            application_name: None,
            connect_timeout: None,
            options: None,
            server_name: Some("fuzz".into()),
            // Cleartext: the fuzzed bytes reach the protocol, not a TLS handshake.
            ssl: pgbak_wal::conninfo::SslParams {
                mode: pgbak_wal::conninfo::SslMode::Disable,
                ..Default::default()
            },
        };
        if let Ok(mut client) = replication_client_over(client_end, &params).await {
            command(&mut client, ops).await;
            command(&mut client, ops >> 3).await;
            let _ = client.close().await;
        }
        let _ = server.await;
    });
});
