//! [`StreamingCopy`]: a backup taken with the replication protocol's BASE_BACKUP, as
//! `pg_basebackup` does, with nothing installed on the database host.
//!
//! The socket is read on a current-thread tokio runtime (the calling thread); every chunk goes
//! through a bounded channel to a writer thread that compresses or extracts it, so receiving and
//! compressing overlap and memory stays at a few megabytes whatever the database size.

use crate::durable::SyncMethod;
use crate::strategy::{BackupDestination, CopyOutcome, CopyPhases, CopyProgress, CopyStrategy};
use crate::writer::{self, Job, Target, UploadWatches, WriterOutput};
use crate::{Error, Result};
use pgbak_compress::Compression;
use pgbak_wal::{
    BaseBackupEnd, BaseBackupOptions, BaseBackupSink, ConnParams, Lsn, ReplicationClient,
    TablespaceInfo,
};
use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

/// Bytes gathered from the server's CopyData messages before they go to the writer thread.
const CHUNK_SIZE: usize = 1 << 20;

/// Chunks in flight between the receiving and the writing thread (so at most about
/// `CHANNEL_DEPTH + 2` MiB of backup data are in memory at once). Four absorb the writer's
/// pauses (a commit, an fsync) as well as eight did, for half the memory (issue 13).
const CHANNEL_DEPTH: usize = 4;

/// Takes a backup with BASE_BACKUP over a replication connection.
#[derive(Debug, Clone)]
pub struct StreamingCopy {
    /// Where the server is.
    pub conninfo: ConnParams,
    /// The BASE_BACKUP options (label, fast checkpoint, manifest, ...).
    pub options: BaseBackupOptions,
    /// For an incremental backup (`options.incremental`): the parent backup's
    /// `backup_manifest`, sent with UPLOAD_MANIFEST before BASE_BACKUP.
    pub parent_manifest: Option<Arc<Vec<u8>>>,
}

impl StreamingCopy {
    /// A strategy that connects with `conninfo` and runs BASE_BACKUP with `options`.
    pub fn new(conninfo: ConnParams, options: BaseBackupOptions) -> Self {
        StreamingCopy {
            conninfo,
            options,
            parent_manifest: None,
        }
    }
}

impl CopyStrategy for StreamingCopy {
    fn name(&self) -> &'static str {
        "postgres"
    }

    /// Runs the backup on the calling thread. It builds its own tokio runtime, so it must not be
    /// called from inside one (use `spawn_blocking`); doing so is an error, not a panic.
    fn copy(
        &self,
        dest: &BackupDestination,
        progress: &mut dyn CopyProgress,
    ) -> Result<CopyOutcome> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Aborted(
                "StreamingCopy::copy was called from inside an async runtime; call it from a blocking thread".into(),
            ));
        }
        let server_compression = self.server_compression()?;
        let target = match dest {
            BackupDestination::Plain {
                data_dir,
                tablespaces_root,
            } => {
                // Fail before connecting rather than after a checkpoint.
                writer::ensure_empty_or_missing(data_dir)?;
                Target::Plain {
                    data_dir: data_dir.clone(),
                    tablespaces_root: tablespaces_root.clone(),
                    sync: SyncMethod::default(),
                }
            }
            BackupDestination::Tar {
                storage,
                prefix,
                compressor,
                encryptor,
            } => {
                // Compressing what the server already compressed only burns CPU, and a reader
                // would have to undo two layers.
                if server_compression.is_some() && compressor.compression() != Compression::None {
                    return Err(Error::Config(format!(
                        "the server compresses this backup; its tar destination must not compress again ({})",
                        compressor.compression().name()
                    )));
                }
                Target::Tar {
                    storage: storage.clone(),
                    prefix: prefix.clone(),
                    compressor: compressor.clone(),
                    encryptor: encryptor.clone(),
                    uploads: UploadWatches::default(),
                }
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::stream("start", "async runtime", e))?;
        runtime.block_on(self.run(target, server_compression, progress))
    }
}

impl StreamingCopy {
    /// The format of the archives when the options ask the server to compress them.
    fn server_compression(&self) -> Result<Option<Compression>> {
        let Some(c) = &self.options.server_compression else {
            return Ok(None);
        };
        match c.method.as_str() {
            "gzip" => Ok(Some(Compression::Gzip)),
            "lz4" => Ok(Some(Compression::Lz4)),
            "zstd" => Ok(Some(Compression::Zstd)),
            other => Err(Error::Config(format!(
                "PostgreSQL compresses on the server only with gzip, lz4 or zstd, not {other:?}"
            ))),
        }
    }

    async fn run(
        &self,
        target: Target,
        server_compression: Option<Compression>,
        progress: &mut dyn CopyProgress,
    ) -> Result<CopyOutcome> {
        let connected = Instant::now();
        let mut client = ReplicationClient::connect(&self.conninfo).await?;
        let server_version_num = client.server_version_num();
        let system = client.identify_system().await?;
        let wal_segment_size = client.wal_segment_size().await?;
        match (&self.parent_manifest, self.options.incremental) {
            (Some(manifest), true) => client.upload_manifest(manifest).await?,
            (None, false) => {}
            _ => {
                return Err(Error::Config(
                    "an incremental backup needs its parent's manifest, and only an incremental backup takes one".into(),
                ))
            }
        }

        let (tx, rx) = sync_channel(CHANNEL_DEPTH);
        let (recycle_tx, recycle_rx) = sync_channel(CHANNEL_DEPTH + 2);
        // Told when the writer fails, and watching the uploads it started: a backup whose
        // storage stopped ends now rather than when the server has sent everything (at the end
        // the server waits for its WAL to be archived, perhaps into the same unreachable store).
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
        let uploads = match &target {
            Target::Tar { uploads, .. } => uploads.clone(),
            Target::Plain { .. } => UploadWatches::default(),
        };
        let worker = std::thread::Builder::new()
            .name("pgbak-copy-writer".into())
            .spawn(move || {
                let written = writer::run(target, server_compression, rx, recycle_tx);
                if written.is_err() {
                    let _ = failed_tx.send(());
                }
                written
            })
            .map_err(|e| Error::stream("start", "backup writer thread", e))?;

        let mut sink = Sink::new(tx, recycle_rx, progress, server_version_num);
        sink.archive_suffix = server_compression.map_or("", |c| c.tar_suffix());
        let streamed = tokio::select! {
            streamed = client.base_backup(&self.options, &mut sink) => streamed,
            () = writer_failed(failed_rx) => Err(pgbak_wal::Error::Io {
                context: "base backup".into(),
                source: writer_gone(),
            }),
            e = upload_failed(&uploads) => Err(pgbak_wal::Error::Io {
                context: "base backup".into(),
                source: e.into_io(),
            }),
        };
        let ended = Instant::now();
        let finished = match streamed {
            Ok(_) => sink.finish(),
            Err(_) => Ok(()),
        };
        let Sink {
            tx,
            failure,
            tablespaces,
            bytes_received,
            began,
            last_data,
            ..
        } = sink;
        // Closing the channel tells a writer still waiting for data that the backup is over.
        drop(tx);
        let written = worker
            .join()
            .unwrap_or_else(|_| Err(Error::Aborted("the backup writer thread panicked".into())));
        let (end, out) = pick_outcome(streamed, finished, failure, written)?;
        let began = began.unwrap_or(ended);
        let last_data = last_data.unwrap_or(ended).max(began);
        let phases = CopyPhases {
            start: began - connected,
            copy: last_data - began,
            stop: ended.saturating_duration_since(last_data),
            durable: ended.elapsed(),
        };
        // The backup is complete; a failure to say goodbye changes nothing about it.
        let _ = client.close().await;
        let bytes_written = out.files.iter().map(|f| f.size).sum();
        Ok(CopyOutcome {
            start_lsn: end.start_lsn,
            start_tli: end.start_tli,
            end_lsn: end.end_lsn,
            end_tli: end.end_tli,
            tablespaces: tablespaces
                .into_iter()
                .filter(|t| t.oid.is_some())
                .collect(),
            backup_label: out.backup_label,
            tablespace_map: out.tablespace_map,
            bytes_received,
            bytes_written,
            files: out.files,
            has_manifest: out.has_manifest,
            server_version_num,
            systemid: system.systemid,
            wal_segment_size,
            phases,
        })
    }
}

/// Resolves when the writer reports a failure; never when it ends well.
async fn writer_failed(failed: tokio::sync::oneshot::Receiver<()>) {
    if failed.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves with the failure of an upload of the writer, checked every second.
async fn upload_failed(uploads: &UploadWatches) -> pgbak_storage::Error {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Some(e) = uploads.failure() {
            return e;
        }
    }
}

/// The result of a backup from what each side reports. The most specific error wins: the
/// writer's own failure (disk full, corrupt tar), then what the sink refused, then the protocol.
fn pick_outcome(
    streamed: pgbak_wal::Result<BaseBackupEnd>,
    finished: io::Result<()>,
    failure: Option<Error>,
    written: Result<Option<WriterOutput>>,
) -> Result<(BaseBackupEnd, WriterOutput)> {
    let written = written?;
    if let Some(e) = failure {
        return Err(e);
    }
    let end = streamed?;
    finished.map_err(|e| Error::Aborted(format!("the backup writer stopped: {e}")))?;
    let out =
        written.ok_or_else(|| Error::Aborted("the backup writer stopped before the end".into()))?;
    Ok((end, out))
}

/// The archive name's tablespace: `None` for `base.tar`, the oid for `<oid>.tar`.
fn archive_oid(name: &str) -> Option<Option<u32>> {
    if name == "base.tar" {
        return Some(None);
    }
    let digits = name.strip_suffix(".tar")?;
    // Only plain digits: the name becomes part of a file name and an object key.
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Some)
}

/// Receives BASE_BACKUP's streams on the runtime thread and hands them to the writer thread in
/// chunks of [`CHUNK_SIZE`] (the last of each stream shorter). Blocks when the writer is behind,
/// which in turn stops reading the socket: the server waits instead of memory growing.
struct Sink<'p> {
    tx: SyncSender<Job>,
    recycle: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    progress: &'p mut dyn CopyProgress,
    server_version_num: u32,
    tablespaces: Vec<TablespaceInfo>,
    bytes_received: u64,
    in_manifest: bool,
    /// What the server appends to archive names when it compresses them (`.zst`), else empty.
    archive_suffix: &'static str,
    /// Why the sink refused the stream, when it did (reported instead of the protocol error).
    failure: Option<Error>,
    /// When the server started sending (its checkpoint done).
    began: Option<Instant>,
    /// When the last archive of data ended.
    last_data: Option<Instant>,
}

fn writer_gone() -> io::Error {
    io::Error::other("the backup writer stopped")
}

impl<'p> Sink<'p> {
    fn new(
        tx: SyncSender<Job>,
        recycle: Receiver<Vec<u8>>,
        progress: &'p mut dyn CopyProgress,
        version: u32,
    ) -> Self {
        Sink {
            tx,
            recycle,
            buf: Vec::with_capacity(CHUNK_SIZE),
            progress,
            server_version_num: version,
            tablespaces: Vec::new(),
            bytes_received: 0,
            in_manifest: false,
            archive_suffix: "",
            failure: None,
            began: None,
            last_data: None,
        }
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.tx.send(job).map_err(|_| writer_gone())
    }

    fn refuse(&mut self, error: Error) -> io::Error {
        let e = io::Error::other(error.to_string());
        self.failure = Some(error);
        e
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.recycle.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(CHUNK_SIZE),
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Job::Data(full))
    }

    /// Appends `data`, handing over every chunk as soon as it holds exactly [`CHUNK_SIZE`]
    /// bytes. Chunks of exactly the block size of block codecs let lz4 compress straight from
    /// them: a chunk a few kB longer made it copy every byte into its own block buffer first
    /// (14% of a backup's CPU).
    fn push(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.bytes_received += data.len() as u64;
        while !data.is_empty() {
            let room = CHUNK_SIZE - self.buf.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() == CHUNK_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Everything arrived: end the manifest, if any, and ask the writer to commit.
    fn finish(&mut self) -> io::Result<()> {
        if self.in_manifest {
            self.flush()?;
            self.send(Job::End)?;
            self.in_manifest = false;
        }
        self.send(Job::Commit)
    }
}

impl BaseBackupSink for Sink<'_> {
    fn begin(&mut self, _start: Lsn, _tli: u32, tablespaces: &[TablespaceInfo]) -> io::Result<()> {
        self.began = Some(Instant::now());
        self.tablespaces = tablespaces.to_vec();
        let total = tablespaces
            .iter()
            .map(|t| {
                t.size_kb
                    .and_then(|kb| u64::try_from(kb).ok())
                    .map(|kb| kb.saturating_mul(1024))
            })
            .sum::<Option<u64>>();
        self.progress.set_total(total);
        let tablespace_oids = tablespaces.iter().filter_map(|t| t.oid).collect();
        self.send(Job::Begin {
            server_version_num: self.server_version_num,
            tablespace_oids,
        })
    }

    fn archive_start(&mut self, name: &str, _tablespace_location: Option<&str>) -> io::Result<()> {
        if self.in_manifest {
            return Err(self.refuse(Error::Server(format!(
                "archive {name:?} after the manifest"
            ))));
        }
        // A compressing server names its archives `base.tar.zst`: the writer adds the suffix back.
        let Some((tar_name, oid)) = name
            .strip_suffix(self.archive_suffix)
            .and_then(|n| Some((n, archive_oid(n)?)))
        else {
            return Err(self.refuse(Error::Server(format!("unexpected archive name {name:?}"))));
        };
        self.send(Job::Archive {
            name: tar_name.to_string(),
            oid,
        })
    }

    fn archive_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.push(data)
    }

    fn archive_end(&mut self) -> io::Result<()> {
        self.last_data = Some(Instant::now());
        self.flush()?;
        self.send(Job::End)
    }

    fn manifest_data(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.in_manifest {
            self.send(Job::Manifest)?;
            self.in_manifest = true;
        }
        self.push(data)
    }

    fn progress(&mut self, bytes_done: u64) -> io::Result<()> {
        self.progress.set_done(bytes_done);
        if self.progress.cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the copy was cancelled by its caller",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_client_compression_are_not_combined() {
        use crate::strategy::NoProgress;
        use pgbak_compress::Codec;
        use pgbak_wal::ServerCompression;
        use std::sync::Arc;
        let tmp = tempfile::tempdir().unwrap();
        let options = BaseBackupOptions {
            label: "x".into(),
            progress: false,
            fast_checkpoint: false,
            manifest: true,
            manifest_checksums: None,
            tablespace_map: true,
            max_rate_kbps: None,
            verify_checksums: true,
            wait_for_wal_archive: true,
            server_compression: Some(ServerCompression {
                method: "zstd".into(),
                detail: None,
            }),
            incremental: false,
        };
        // Port 1 is never listened on: the refusals must come before any connection.
        let conninfo = ConnParams::resolve("host=127.0.0.1 port=1").unwrap();
        let copy = StreamingCopy::new(conninfo, options.clone());
        let dest = BackupDestination::Tar {
            storage: Arc::new(pgbak_storage::LocalStorage::new(tmp.path())),
            prefix: "b".into(),
            compressor: Arc::new(Codec::new(Compression::Zstd, None).unwrap()),
            encryptor: None,
        };
        let err = copy.copy(&dest, &mut NoProgress).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        let mut bad = options;
        bad.server_compression = Some(ServerCompression {
            method: "xz".into(),
            detail: None,
        });
        let err = StreamingCopy::new(copy.conninfo.clone(), bad)
            .copy(&dest, &mut NoProgress)
            .unwrap_err();
        assert!(err.to_string().contains("xz"), "{err}");
    }

    #[test]
    fn chunks_are_exactly_the_block_size_whatever_the_message_sizes() {
        use crate::strategy::NoProgress;
        let (tx, rx) = sync_channel(64);
        let (_recycle_tx, recycle_rx) = sync_channel(4);
        let mut progress = NoProgress;
        let mut sink = Sink::new(tx, recycle_rx, &mut progress, 150000);
        // Messages of odd sizes, as the server's CopyData may be: 3.4 chunks in all.
        let total = CHUNK_SIZE * 3 + CHUNK_SIZE / 2 - 1000;
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(65_537) {
            sink.archive_data(piece).unwrap();
        }
        sink.archive_end().unwrap();
        drop(sink);
        let mut sizes = Vec::new();
        let mut back = Vec::new();
        for job in rx.iter() {
            match job {
                Job::Data(buf) => {
                    sizes.push(buf.len());
                    back.extend_from_slice(&buf);
                }
                Job::End => break,
                other => panic!("{}", other.describe()),
            }
        }
        assert_eq!(
            sizes,
            [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE / 2 - 1000]
        );
        assert_eq!(back, data);
    }

    #[test]
    fn archive_names() {
        assert_eq!(archive_oid("base.tar"), Some(None));
        assert_eq!(archive_oid("16384.tar"), Some(Some(16384)));
        for bad in [
            "../x.tar",
            "+1.tar",
            ".tar",
            "base.tar.gz",
            "99999999999.tar",
            "1 .tar",
            "pg_wal.tar",
        ] {
            assert_eq!(archive_oid(bad), None, "{bad:?}");
        }
    }
}
