//! A WAL receiver in the manner of `pg_receivewal`: streams WAL from a server into a directory,
//! the segment being received as `<segment>.partial`, renamed to its final name once whole and
//! durable; follows timeline switches (writing each new timeline's history file); and reports to
//! the server only what is durable, so that a replication slot never lets the server drop WAL that
//! the receiver could still lose.
//!
//! Durability: WAL is fsynced at least every [`ReceiverOptions::fsync_interval`], at every segment
//! end, before answering a server that asks for a reply, and when stopping. The flush position
//! sent in status updates is the end of what was fsynced, never more.
//!
//! The receiver does not archive anything itself: it hands every completed file to a
//! [`ReceiverHandler`], which may move it elsewhere.

mod files;
mod start;

pub use start::{choose_start, newest_segment, StartPoint, StartSource};

use crate::protocol::stream::{pg_timestamp, StandbyStatusUpdate};
use crate::replication::{ReplicationMessage, ReplicationStream, StreamEnd};
use crate::{Error, Lsn, ReplicationClient, Result, SegmentName};
use files::{write_file_durably, PartialSegment};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// Default for [`ReceiverOptions::fsync_interval`].
///
/// One second bounds what an operating-system crash can take from the receiver to one second of
/// WAL and keeps the slot (and `pg_stat_replication.flush_lsn`) at most about a second behind,
/// for the price of one `fdatasync` per second, which is negligible next to the WAL itself.
/// `pg_receivewal` fsyncs only at segment ends unless `--synchronous`; that would let a slot lag
/// a whole segment and lose up to a segment on a crash.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Default for [`ReceiverOptions::status_interval`]: `pg_receivewal`'s 10 s, well inside the
/// server's default `wal_sender_timeout` of 60 s.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Default for [`ReceiverOptions::receive_timeout`]: PostgreSQL's `wal_receiver_timeout`.
pub const DEFAULT_RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the receiver works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverOptions {
    /// The directory WAL is written into (created if missing).
    pub dir: PathBuf,
    /// The replication slot to stream from.
    pub slot: Option<String>,
    /// Longest time received WAL stays without fsync.
    pub fsync_interval: Duration,
    /// Longest time between two status updates, even when nothing changed.
    pub status_interval: Duration,
    /// A connection from which nothing arrived for this long is given up as dead (a silent
    /// network failure would otherwise keep the receiver waiting for ever). Halfway through, the
    /// receiver asks the server for a reply, as PostgreSQL's own WAL receiver does.
    pub receive_timeout: Duration,
    /// Send the flush position in status updates. Needed for a slot to advance; without a slot,
    /// `pg_receivewal` leaves it out so that a server listing every standby in
    /// `synchronous_standby_names` does not wait for the receiver.
    pub report_flush: bool,
}

impl ReceiverOptions {
    /// Options for `dir` and `slot` with the defaults: flush reported when a slot is used.
    pub fn new(dir: impl Into<PathBuf>, slot: Option<String>) -> Self {
        ReceiverOptions {
            dir: dir.into(),
            report_flush: slot.is_some(),
            slot,
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            status_interval: DEFAULT_STATUS_INTERVAL,
            receive_timeout: DEFAULT_RECEIVE_TIMEOUT,
        }
    }
}

/// A file the receiver finished, durable in its directory under this path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceivedFile {
    /// A whole segment under its final name.
    Segment(PathBuf),
    /// A timeline history file.
    History(PathBuf),
    /// The last, incomplete segment of a timeline that ended, still named `.partial`.
    TimelinePartial(PathBuf),
}

impl ReceivedFile {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            ReceivedFile::Segment(p)
            | ReceivedFile::History(p)
            | ReceivedFile::TimelinePartial(p) => p,
        }
    }
}

/// Receives the files the receiver finishes. Called on the receiving task: return quickly (hand
/// slow work such as compression to another thread).
pub trait ReceiverHandler: Send {
    /// `file` is complete and durable.
    fn file_ready(&mut self, file: ReceivedFile);
}

/// Why [`WalReceiver::run`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The stop signal was raised; everything received was made durable and reported.
    Stopped,
    /// The server is shutting down (it ended the stream and closes the connection).
    ServerStopped,
    /// The server ended the stream without a next timeline.
    ServerFinished,
}

/// Streams WAL into a directory. See the module documentation.
pub struct WalReceiver {
    opts: ReceiverOptions,
    seg_size: u64,
    current: Option<PartialSegment>,
    tli: u32,
    /// End of the WAL written to files.
    written: Lsn,
    /// End of the WAL known durable.
    flushed: Lsn,
    /// Whether anything was made durable since this run started (before that the flush position
    /// is not reported: moving a slot to a mere start position could move it backwards).
    flushed_this_run: bool,
    reported_flush: Lsn,
    last_sync: Instant,
    last_status: Instant,
    /// When the server last sent anything, and whether a reply was asked for since.
    last_received: Instant,
    pinged: bool,
    bytes_received: u64,
}

/// What the receive loop of one timeline decided.
enum TimelineEnd {
    Stop,
    EndOfStream,
}

impl WalReceiver {
    /// A receiver writing into `opts.dir` (created if missing) segments of `seg_size` bytes.
    pub fn new(opts: ReceiverOptions, seg_size: u64) -> Result<Self> {
        crate::validate_segment_size(seg_size)?;
        if let Some(slot) = &opts.slot {
            crate::protocol::stream::validate_slot_name(slot)?;
        }
        pgbak_storage::staging::create_dir_all_private(&opts.dir)
            .map_err(|e| Error::file("create directory", &opts.dir, e))?;
        let now = Instant::now();
        Ok(WalReceiver {
            opts,
            seg_size,
            current: None,
            tli: 0,
            written: Lsn::INVALID,
            flushed: Lsn::INVALID,
            flushed_this_run: false,
            reported_flush: Lsn::INVALID,
            last_sync: now,
            last_status: now,
            last_received: now,
            pinged: false,
            bytes_received: 0,
        })
    }

    /// The WAL segment size the receiver cuts files at.
    pub fn segment_size(&self) -> u64 {
        self.seg_size
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// The newest segment in the directory (see [`newest_segment`]).
    pub fn newest_in_dir(&self) -> Result<Option<(SegmentName, bool)>> {
        let mut files = Vec::new();
        let rd = std::fs::read_dir(&self.opts.dir)
            .map_err(|e| Error::file("read directory", &self.opts.dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::file("read directory", &self.opts.dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| Error::file("stat", entry.path(), e))?;
            if meta.is_file() {
                files.push((name, meta.len()));
            }
        }
        Ok(newest_segment(
            files.iter().map(|(n, s)| (n.as_str(), *s)),
            self.seg_size,
        ))
    }

    /// End of the WAL known durable in the directory.
    pub fn flushed(&self) -> Lsn {
        self.flushed
    }

    /// The timeline being received (0 before the first run).
    pub fn timeline(&self) -> u32 {
        self.tli
    }

    /// WAL bytes received since the receiver was created.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Streams from `start` (moved back to the start of its segment), following timeline switches,
    /// until `stop` turns true, the server ends streaming, or an error. On an error, what was
    /// written stays in the directory and a new run resumes from it.
    pub async fn run(
        &mut self,
        client: &mut ReplicationClient,
        start: Lsn,
        tli: u32,
        handler: &mut dyn ReceiverHandler,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<RunEnd> {
        // A segment left open by an earlier failed run is kept as it is: it is streamed again.
        if let Some(p) = self.current.take() {
            p.close()?;
        }
        let mut pos = Lsn(start.0 - start.segment_offset(self.seg_size));
        let mut tli = tli;
        self.written = pos;
        self.flushed = pos;
        self.reported_flush = Lsn::INVALID;
        self.flushed_this_run = false;
        loop {
            if *stop.borrow() {
                return Ok(RunEnd::Stopped);
            }
            self.tli = tli;
            if tli > 1 {
                let (name, content) = client.timeline_history(tli).await?;
                let path = write_file_durably(&self.opts.dir, &name, &content)?;
                handler.file_ready(ReceivedFile::History(path));
            }
            tracing::info!(start = %pos, tli, "starting WAL streaming");
            let mut stream = client
                .start_replication(self.opts.slot.as_deref(), pos, tli)
                .await?;
            match self.receive(&mut stream, handler, stop).await? {
                TimelineEnd::Stop => {
                    self.sync()?;
                    // The WAL is durable either way; a lost last update only leaves the slot a
                    // little behind.
                    if let Err(e) = self.send_status(&mut stream, false).await {
                        tracing::warn!("cannot send the last status update: {e}");
                    }
                    // The server answers CopyDone at once; don't let a stuck one hold the stop up.
                    let _ = tokio::time::timeout(Duration::from_secs(10), stream.finish()).await;
                    self.close_current()?;
                    return Ok(RunEnd::Stopped);
                }
                TimelineEnd::EndOfStream => {
                    // Everything received is durable before the stream is closed.
                    self.sync()?;
                    match stream.finish().await? {
                        StreamEnd::ServerStopped => {
                            self.close_current()?;
                            return Ok(RunEnd::ServerStopped);
                        }
                        StreamEnd::Finished => {
                            self.close_current()?;
                            return Ok(RunEnd::ServerFinished);
                        }
                        StreamEnd::TimelineEnded {
                            next_tli,
                            next_start,
                        } => {
                            if next_tli <= tli {
                                return Err(Error::protocol(format!(
                                    "server ended timeline {tli} and named timeline {next_tli} as the next one"
                                )));
                            }
                            if next_start > self.written {
                                return Err(Error::protocol(format!(
                                    "server stopped streaming timeline {tli} at {}, but reported next timeline {next_tli} to begin at {next_start}",
                                    self.written
                                )));
                            }
                            tracing::info!(
                                tli,
                                next_tli,
                                switchpoint = %next_start,
                                "timeline ended; following the next one"
                            );
                            if let Some(p) = self.current.take() {
                                let path = p.close()?;
                                handler.file_ready(ReceivedFile::TimelinePartial(path));
                            }
                            tli = next_tli;
                            pos = Lsn(next_start.0 - next_start.segment_offset(self.seg_size));
                            // The new timeline's first segment is rewritten from its start; what
                            // is durable on it so far is what precedes that start.
                            self.written = pos;
                            self.flushed = self.flushed.min(pos);
                        }
                    }
                }
            }
        }
    }

    /// Receives one timeline's stream until it ends or `stop` is raised.
    async fn receive(
        &mut self,
        stream: &mut ReplicationStream<'_>,
        handler: &mut dyn ReceiverHandler,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<TimelineEnd> {
        self.last_status = Instant::now();
        self.last_sync = Instant::now();
        self.last_received = Instant::now();
        self.pinged = false;
        loop {
            let deadline = self.next_deadline();
            let message = tokio::select! {
                changed = stop.changed() => {
                    // A dropped sender can never say "go on": treat it as a stop.
                    if changed.is_err() || *stop.borrow() {
                        return Ok(TimelineEnd::Stop);
                    }
                    continue;
                }
                m = stream.next_message() => Some(m?),
                _ = tokio::time::sleep_until(deadline.into()) => None,
            };
            if message.is_some() {
                self.last_received = Instant::now();
                self.pinged = false;
            }
            match message {
                Some(ReplicationMessage::XLogData { header, data }) => {
                    self.write(header.start, &data, handler)?;
                }
                Some(ReplicationMessage::Keepalive(k)) if k.reply_requested => {
                    // A server shutting down waits until the receiver confirms it has flushed
                    // everything sent: make it durable first, as pg_receivewal does.
                    self.sync()?;
                    self.send_status(stream, false).await?;
                }
                Some(ReplicationMessage::Keepalive(_)) => {}
                Some(ReplicationMessage::EndOfStream) => return Ok(TimelineEnd::EndOfStream),
                None => {}
            }
            if self.written > self.flushed && self.last_sync.elapsed() >= self.opts.fsync_interval {
                self.sync()?;
            }
            if (self.flushed > self.reported_flush && self.flushed_this_run)
                || self.last_status.elapsed() >= self.opts.status_interval
            {
                self.send_status(stream, false).await?;
            }
            let silent = self.last_received.elapsed();
            if silent >= self.opts.receive_timeout {
                return Err(Error::protocol(format!(
                    "nothing received from the server for {} s; the connection is considered lost",
                    silent.as_secs()
                )));
            }
            if !self.pinged && silent >= self.opts.receive_timeout / 2 {
                self.send_status(stream, true).await?;
                self.pinged = true;
            }
        }
    }

    /// When the loop must wake up without a message: the next fsync, status update, ping or
    /// receive timeout.
    fn next_deadline(&self) -> Instant {
        let mut at = self.last_status + self.opts.status_interval;
        if self.written > self.flushed {
            at = at.min(self.last_sync + self.opts.fsync_interval);
        }
        let silence = if self.pinged {
            self.opts.receive_timeout
        } else {
            self.opts.receive_timeout / 2
        };
        at.min(self.last_received + silence)
    }

    /// Writes WAL bytes at `start`, completing segments as they fill.
    fn write(&mut self, start: Lsn, data: &[u8], handler: &mut dyn ReceiverHandler) -> Result<()> {
        if start != self.written {
            return Err(Error::protocol(format!(
                "server sent WAL from {start} but the receiver expected {}",
                self.written
            )));
        }
        let mut rest = data;
        while !rest.is_empty() {
            let offset = self.written.segment_offset(self.seg_size);
            if self.current.is_none() {
                if offset != 0 {
                    return Err(Error::protocol(format!(
                        "received WAL at {} (offset {offset} of its segment) with no segment file open",
                        self.written
                    )));
                }
                let seg = SegmentName::from_lsn(self.tli, self.written, self.seg_size);
                self.current = Some(PartialSegment::open(&self.opts.dir, seg, self.seg_size)?);
            }
            let n = rest.len().min((self.seg_size - offset) as usize);
            let Some(current) = self.current.as_mut() else {
                return Err(Error::protocol("no segment file open for received WAL"));
            };
            current.write(&rest[..n])?;
            rest = &rest[n..];
            self.written = Lsn(self.written.0 + n as u64);
            self.bytes_received += n as u64;
            if current.is_complete() {
                if let Some(done) = self.current.take() {
                    let path = done.complete()?;
                    self.flushed = self.written;
                    self.flushed_this_run = true;
                    handler.file_ready(ReceivedFile::Segment(path));
                }
            }
        }
        Ok(())
    }

    /// Makes everything written durable.
    fn sync(&mut self) -> Result<()> {
        if let Some(p) = self.current.as_mut() {
            if self.written > self.flushed {
                p.sync()?;
            }
        }
        if self.written > self.flushed {
            self.flushed = self.written;
            self.flushed_this_run = true;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Closes the segment being written, durably, keeping it as `.partial`.
    fn close_current(&mut self) -> Result<()> {
        if let Some(p) = self.current.take() {
            debug_assert!(p.offset() <= self.seg_size);
            tracing::debug!(segment = %p.segment().file_name(self.seg_size), "closing partial segment");
            p.close()?;
        }
        Ok(())
    }

    async fn send_status(
        &mut self,
        stream: &mut ReplicationStream<'_>,
        reply_requested: bool,
    ) -> Result<()> {
        let flush = if self.opts.report_flush && self.flushed_this_run {
            self.flushed
        } else {
            Lsn::INVALID
        };
        let update = StandbyStatusUpdate {
            write: self.written,
            flush,
            apply: Lsn::INVALID,
            client_time: pg_timestamp(SystemTime::now()),
            reply_requested,
        };
        stream.send_status(&update).await?;
        self.reported_flush = self.flushed;
        self.last_status = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
