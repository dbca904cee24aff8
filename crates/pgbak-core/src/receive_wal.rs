//! `pgbak receive-wal SERVER`: stream WAL from the server over a replication connection into
//! `streaming_wals_directory`, and move every completed segment (and history file) into the WAL
//! archive with the server's compression, exactly as `archive-wal` stores files, so that WAL
//! from `archive_command` and from streaming end up once in `wals/`.
//!
//! One process per server, guarded by the receive-wal lock. The slot only advances for WAL that
//! is durable in `streaming/` (the receiver reports the fsynced position), so neither a crash of
//! this process nor of the host loses WAL the server has already recycled. SIGTERM and SIGINT stop
//! it cleanly: what was received is fsynced and reported, and the process exits 0.
//!
//! The operations around it (`--create-slot`, `--drop-slot`, `--reset`, `--stop`, and cron
//! starting it) are in `control`; moving files into the archive is in `archiver`.

mod archiver;
mod control;

pub use archiver::ArchiverStats;
pub use control::{
    create_slot, cron_receive_wal, drop_slot, reset, running_receiver, stop, CronAction,
    ProcessLauncher, ReceiverLauncher, ResetReport, SlotCreation, StopOutcome,
};

use crate::locks::LockName;
use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_wal::receiver::{choose_start, StartPoint};
use pgbak_wal::{
    ConnParams, Lsn, ReceivedFile, ReceiverHandler, ReceiverOptions, ReplicationClient, RunEnd,
    SegmentName, SlotInfo, WalFileName, WalReceiver,
};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Default `application_name` of the streaming connection (Barman's `streaming_archiver_name`).
pub const DEFAULT_STREAMING_ARCHIVER_NAME: &str = "pgbak_receive_wal";

/// How `receive-wal` works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveWalOptions {
    /// Longest time received WAL stays without fsync (see
    /// [`pgbak_wal::receiver::DEFAULT_FSYNC_INTERVAL`]).
    pub fsync_interval: Duration,
    /// Longest time between two status updates to the server.
    pub status_interval: Duration,
    /// Silence after which the connection is given up as dead (see
    /// [`pgbak_wal::ReceiverOptions::receive_timeout`]).
    pub receive_timeout: Duration,
    /// How long connection failures are retried, counted from the last time streaming worked,
    /// before the process gives up (cron starts a new one).
    pub retry_for: Duration,
    /// How often files left in `streaming/` (an earlier failure to archive) are tried again.
    pub sweep_interval: Duration,
}

impl Default for ReceiveWalOptions {
    fn default() -> Self {
        ReceiveWalOptions {
            fsync_interval: pgbak_wal::receiver::DEFAULT_FSYNC_INTERVAL,
            status_interval: pgbak_wal::receiver::DEFAULT_STATUS_INTERVAL,
            receive_timeout: pgbak_wal::receiver::DEFAULT_RECEIVE_TIMEOUT,
            retry_for: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// What a `receive-wal` run did.
#[derive(Clone, Debug, Default)]
pub struct ReceiveWalReport {
    /// The server.
    pub server: String,
    /// Where streaming first started, and why there.
    pub start: Option<String>,
    /// WAL bytes received.
    pub bytes_received: u64,
    /// End of the WAL durable in `streaming/` when the run ended.
    pub flushed: Option<String>,
    /// The timeline streamed last.
    pub timeline: u32,
    /// Files moved into the archive.
    pub archive: ArchiverStats,
    /// Connection failures that were retried.
    pub reconnects: u32,
}

/// Connect timeout of the streaming connection when the connection string sets none: a daemon
/// must not hang on an unreachable host for as long as the operating system would let it.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The `application_name` and connection of the streaming connection: `wal_streaming_conninfo`
/// when set, else `streaming_conninfo`; the name is `streaming_archiver_name`; the connect
/// timeout is 30 s unless the connection string sets one.
pub fn streaming_params(server: &Server) -> Result<ConnParams> {
    let cfg = &server.config;
    let conninfo = cfg
        .raw
        .get("wal_streaming_conninfo")
        .filter(|c| !c.trim().is_empty())
        .unwrap_or(&cfg.streaming_conninfo);
    let mut params = ConnParams::resolve(conninfo)?;
    params.application_name = Some(
        cfg.raw
            .get("streaming_archiver_name")
            .cloned()
            .unwrap_or_else(|| DEFAULT_STREAMING_ARCHIVER_NAME.to_string()),
    );
    params
        .connect_timeout
        .get_or_insert(DEFAULT_CONNECT_TIMEOUT);
    Ok(params)
}

/// Refuses configurations under which `receive-wal` must not run.
fn check_config(server: &Server) -> Result<()> {
    let cfg = &server.config;
    if !cfg.active {
        return Err(Error::Usage(format!("server '{}' is not active", cfg.name)));
    }
    if !cfg.streaming_archiver {
        return Err(Error::Usage(format!(
            "server '{}': streaming_archiver is off; set streaming_archiver = on to stream WAL with receive-wal",
            cfg.name
        )));
    }
    if cfg.slot_name.is_none() && !cfg.archiver {
        return Err(Error::Usage(format!(
            "server '{}': streaming is the only WAL source (archiver is off) but no slot_name is set; without a replication slot the server may recycle WAL before it is received",
            cfg.name
        )));
    }
    Ok(())
}

/// Runs `receive-wal` in the foreground until SIGTERM/SIGINT, or until the server cannot be
/// reached for [`ReceiveWalOptions::retry_for`]. Must not be called from inside an async runtime.
pub fn receive_wal(server: &Server, opts: &ReceiveWalOptions) -> Result<ReceiveWalReport> {
    check_config(server)?;
    let _lock = server
        .locks()
        .try_lock(&LockName::ServerReceiveWal(server.name().to_string()))?;
    let params = streaming_params(server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.block_on(watch_signals(stop_tx))?;

    let archive = server.wal_archive()?;
    let dir = server.config.streaming_wals_directory.clone();
    let (tx, rx) = mpsc::channel::<ReceivedFile>();
    let mut report = ReceiveWalReport {
        server: server.name().to_string(),
        ..Default::default()
    };
    let streamed = std::thread::scope(|scope| {
        let archiver = std::thread::Builder::new()
            .name("pgbak-wal-archiver".into())
            .spawn_scoped(scope, || {
                archiver::run(server, &archive, &dir, rx, opts.sweep_interval)
            })
            .map_err(|e| Error::Other(format!("cannot start the archiver thread: {e}")))?;
        let mut handler = ChannelHandler(tx);
        let streamed = runtime.block_on(stream(
            server,
            &params,
            opts,
            &mut handler,
            stop_rx,
            &mut report,
        ));
        // Closing the channel lets the archiver finish what is queued and end.
        drop(handler);
        match archiver.join() {
            Ok(stats) => report.archive = stats,
            Err(_) => return Err(Error::Other("the WAL archiver thread panicked".into())),
        }
        streamed
    });
    streamed?;
    Ok(report)
}

/// Turns SIGTERM and SIGINT into a stop request.
async fn watch_signals(stop: watch::Sender<bool>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let err = |e: std::io::Error| Error::Other(format!("cannot handle signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested; making received WAL durable");
        let _ = stop.send(true);
    });
    Ok(())
}

/// Hands completed files to the archiver thread.
struct ChannelHandler(mpsc::Sender<ReceivedFile>);

impl ReceiverHandler for ChannelHandler {
    fn file_ready(&mut self, file: ReceivedFile) {
        // The archiver only goes away at the end; a file it misses stays in streaming/ and is
        // picked up by the next run's sweep.
        let _ = self.0.send(file);
    }
}

/// Whether a failure of the replication connection is worth retrying.
fn transient(e: &Error) -> bool {
    let Error::Wal(w) = e else {
        return false;
    };
    match w {
        pgbak_wal::Error::Io { .. }
        | pgbak_wal::Error::ConnectTimeout { .. }
        | pgbak_wal::Error::ConnectionBroken { .. }
        | pgbak_wal::Error::Protocol { .. } => true,
        pgbak_wal::Error::Server { error, .. } => {
            // Shutdown, startup, too many connections, a slot still held by the walsender of a
            // receiver that just died, connection exceptions.
            matches!(
                error.code.as_str(),
                "57P01" | "57P02" | "57P03" | "53300" | "55006"
            ) || error.code.starts_with("08")
        }
        _ => false,
    }
}

/// Streams, reconnecting after transient failures, until stopped.
async fn stream(
    server: &Server,
    params: &ConnParams,
    opts: &ReceiveWalOptions,
    handler: &mut ChannelHandler,
    mut stop: watch::Receiver<bool>,
    report: &mut ReceiveWalReport,
) -> Result<()> {
    let mut receiver: Option<WalReceiver> = None;
    let mut last_success = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            break;
        }
        let mut streamed = false;
        let outcome = session(
            server,
            params,
            opts,
            &mut receiver,
            handler,
            &mut stop,
            report,
            &mut streamed,
        )
        .await;
        if let Some(r) = &receiver {
            report.bytes_received = r.bytes_received();
            report.flushed = Some(r.flushed().to_string());
            report.timeline = r.timeline();
        }
        if streamed {
            // Streaming worked until just now (however idle the server was): the retry window
            // starts at this failure.
            last_success = Instant::now();
            delay = Duration::from_secs(1);
        }
        let why = match outcome {
            Ok(RunEnd::Stopped) => break,
            Ok(RunEnd::ServerStopped) => "the server is shutting down".to_string(),
            Ok(RunEnd::ServerFinished) => "the server ended streaming".to_string(),
            // A connection failing while stopping: what was received is durable; stop.
            Err(e) if transient(&e) && *stop.borrow() => break,
            Err(e) if transient(&e) => e.to_string(),
            Err(e) => return Err(e),
        };
        if last_success.elapsed() >= opts.retry_for {
            return Err(Error::kind_of(
                ErrorKind::Timeout,
                format!(
                    "server '{}': WAL streaming failed for {} s ({why}); giving up",
                    server.name(),
                    opts.retry_for.as_secs()
                ),
            ));
        }
        tracing::warn!(
            server = server.name(),
            "WAL streaming interrupted: {why}; reconnecting in {} s",
            delay.as_secs()
        );
        report.reconnects += 1;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    Ok(())
}

/// One connection: checks, start position, then streaming until it ends. `streamed` is set once
/// the checks passed and streaming began.
#[allow(clippy::too_many_arguments)]
async fn session(
    server: &Server,
    params: &ConnParams,
    opts: &ReceiveWalOptions,
    receiver: &mut Option<WalReceiver>,
    handler: &mut ChannelHandler,
    stop: &mut watch::Receiver<bool>,
    report: &mut ReceiveWalReport,
    streamed: &mut bool,
) -> Result<RunEnd> {
    let cfg = &server.config;
    // A stop must not wait for an unreachable server.
    let mut client = tokio::select! {
        c = ReplicationClient::connect(params) => c?,
        _ = stop.changed() => return Ok(RunEnd::Stopped),
    };
    let system = client.identify_system().await?;
    let seg_size = client.wal_segment_size().await?;
    let version = client.server_version_num();
    check_system(server, &system.systemid, version, seg_size)?;
    let slot = match &cfg.slot_name {
        Some(name) => Some(ensure_slot(server, &mut client, name).await?),
        None => None,
    };
    if receiver.is_none() {
        let mut ro = ReceiverOptions::new(&cfg.streaming_wals_directory, cfg.slot_name.clone());
        ro.fsync_interval = opts.fsync_interval;
        ro.status_interval = opts.status_interval;
        ro.receive_timeout = opts.receive_timeout;
        *receiver = Some(WalReceiver::new(ro, seg_size)?);
    }
    let Some(receiver) = receiver.as_mut() else {
        return Err(Error::Other("the WAL receiver was not set up".into()));
    };
    if receiver.segment_size() != seg_size {
        return Err(Error::kind_of(ErrorKind::Refused, format!(
            "server '{}': wal_segment_size changed from {} to {seg_size} bytes while receive-wal ran",
            server.name(),
            receiver.segment_size()
        )));
    }
    let dir_newest = receiver.newest_in_dir()?;
    let archive_newest =
        if dir_newest.is_none() && slot.as_ref().and_then(|s| s.restart_lsn).is_none() {
            newest_archived(server, seg_size)?
        } else {
            None
        };
    let start: StartPoint =
        choose_start(dir_newest, slot.as_ref(), archive_newest, &system, seg_size);
    if start.tli > system.timeline {
        return Err(Error::kind_of(ErrorKind::Refused, format!(
            "server '{}': streaming would start on timeline {} ({}), but the server is on timeline {}; if the server was restored or replaced, move {} aside or run `pgbak receive-wal --reset {}`",
            server.name(),
            start.tli,
            start.source,
            system.timeline,
            cfg.streaming_wals_directory.display(),
            server.name()
        )));
    }
    let message = format!("{} on timeline {} ({})", start.lsn, start.tli, start.source);
    tracing::info!(server = server.name(), "streaming WAL from {message}");
    report.start.get_or_insert(message);
    *streamed = true;
    let result = receiver
        .run(&mut client, start.lsn, start.tli, handler, stop)
        .await;
    match result {
        Err(pgbak_wal::Error::Server { error, server: host }) if error.code == "58P01" => {
            Err(Error::kind_of(ErrorKind::NotFound, format!(
                "server '{}' ({host}): {}; the WAL needed to continue from {} is gone from the server. Run `pgbak receive-wal --reset {}` to continue from what the server still has (the archive will have a gap)",
                server.name(),
                error.message,
                start.lsn,
                server.name()
            )))
        }
        Err(e) => Err(e.into()),
        Ok(end) => {
            if end != RunEnd::ServerStopped {
                let _ = client.close().await;
            }
            Ok(end)
        }
    }
}

/// Checks that the server is the cluster this catalogue belongs to: its system identifier must
/// match the recorded identity (recorded now when there is none), the newest WAL in `streaming/`
/// and the newest segment of the archive. Writes nothing on a mismatch.
fn check_system(server: &Server, systemid: &str, version: u32, seg_size: u64) -> Result<()> {
    let cfg = &server.config;
    let mismatch = |what: String, other: String| {
        Error::kind_of(ErrorKind::Refused, format!(
            "server '{}': the PostgreSQL server has system identifier {systemid}, but {what} belongs to system {other}: conninfo/streaming_conninfo point at another cluster. Nothing was written",
            cfg.name
        ))
    };
    if let Some(id) = crate::identity::read_identity(server.stores().meta.as_ref())? {
        if id.systemid != systemid {
            return Err(mismatch(
                format!(
                    "the catalogue ({})",
                    crate::identity::identity_location(server.stores().meta.as_ref())
                ),
                id.systemid,
            ));
        }
    }
    if let Some((name, sysid)) = newest_streamed_system(&cfg.streaming_wals_directory, seg_size)? {
        if sysid.to_string() != systemid {
            return Err(mismatch(
                format!("{name} in {}", cfg.streaming_wals_directory.display()),
                sysid.to_string(),
            ));
        }
    }
    let archive = server.wal_archive()?;
    if let Some(newest) = archive
        .segment_names()?
        .into_iter()
        .max_by(|a, b| (&a[8..], &a[..8]).cmp(&(&b[8..], &b[..8])))
    {
        let sysid = archive.segment_system_id(&newest)?;
        if sysid.to_string() != systemid {
            return Err(mismatch(
                format!("archived segment {newest}"),
                sysid.to_string(),
            ));
        }
    }
    crate::identity::record_identity(server.stores().meta.as_ref(), systemid, version)?;
    Ok(())
}

/// The system identifier in the header of the newest WAL file of `dir` that has one.
fn newest_streamed_system(dir: &Path, seg_size: u64) -> Result<Option<(String, u64)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    let mut candidates: Vec<(SegmentName, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seg = WalFileName::parse(&name).ok()?.segment(seg_size)?;
            Some((seg, name))
        })
        .collect();
    candidates.sort_by_key(|(s, _)| (s.segno, s.tli));
    for (_, name) in candidates.into_iter().rev() {
        let path = dir.join(&name);
        let mut head = [0u8; 64];
        let n = std::fs::File::open(&path)
            .and_then(|mut f| {
                use std::io::Read;
                f.read(&mut head)
            })
            .map_err(|e| Error::io("read", &path, e))?;
        if let Some(h) = crate::wal_archive::parse_segment_header(&head[..n]) {
            return Ok(Some((name, h.sysid)));
        }
    }
    Ok(None)
}

/// The newest complete segment in the archive (by segment number, then timeline).
fn newest_archived(server: &Server, seg_size: u64) -> Result<Option<SegmentName>> {
    Ok(server
        .wal_archive()?
        .segment_names()?
        .iter()
        .filter_map(|n| SegmentName::parse(n, seg_size).ok())
        .max_by_key(|s| (s.segno, s.tli)))
}

/// Makes sure slot `name` exists and is physical, creating it when `create_slot = auto`.
async fn ensure_slot(
    server: &Server,
    client: &mut ReplicationClient,
    name: &str,
) -> Result<SlotInfo> {
    let cfg = &server.config;
    let info = read_slot(server, client, name).await?;
    let info = match info {
        Some(i) => i,
        None if cfg.create_slot == crate::config::CreateSlot::Auto => {
            tracing::info!(server = server.name(), slot = name, "creating replication slot (create_slot = auto)");
            match client.create_physical_slot(name, true).await {
                Ok(()) => {}
                // Created by someone else in the meantime: fine, it is checked below.
                Err(e) if e.sqlstate() == Some("42710") => {}
                Err(e) => return Err(e.into()),
            }
            read_slot(server, client, name).await?.ok_or_else(|| {
                Error::kind_of(ErrorKind::NotFound, format!("server '{}': replication slot '{name}' vanished right after it was created", cfg.name))
            })?
        }
        None => {
            return Err(Error::kind_of(ErrorKind::NotFound, format!(
                "server '{}': replication slot '{name}' does not exist; create it with `pgbak receive-wal --create-slot {}` or set create_slot = auto",
                cfg.name, cfg.name
            )))
        }
    };
    if !info.is_physical() {
        return Err(Error::kind_of(ErrorKind::Usage, format!(
            "server '{}': replication slot '{name}' is a {} slot; WAL can only be streamed from a physical slot. Choose another slot_name",
            cfg.name, info.slot_type
        )));
    }
    Ok(info)
}

/// What the server says about slot `name`: READ_REPLICATION_SLOT from PostgreSQL 15, else
/// `pg_replication_slots` over an ordinary connection.
pub(crate) async fn read_slot(
    server: &Server,
    client: &mut ReplicationClient,
    name: &str,
) -> Result<Option<SlotInfo>> {
    if client.server_version_num() >= pgbak_wal::protocol::stream::READ_REPLICATION_SLOT_VERSION_NUM
    {
        return Ok(client.read_replication_slot(name).await?);
    }
    pgbak_wal::protocol::stream::validate_slot_name(name)?;
    let sql = format!(
        "SELECT slot_type::text, restart_lsn::text, NULL::text FROM pg_replication_slots WHERE slot_name = '{name}'"
    );
    // The SQL client runs its own runtime: give it a thread of its own.
    let rows = std::thread::scope(|s| {
        s.spawn(|| server.connect()?.query_text(&sql))
            .join()
            .map_err(|_| Error::Other("the slot query thread panicked".into()))?
    })?;
    Ok(match rows.first() {
        None => None,
        Some(row) => {
            pgbak_wal::protocol::stream::parse_read_replication_slot(std::slice::from_ref(row))?
        }
    })
}

/// The segment-aligned position `lsn` belongs to.
pub(crate) fn segment_start(lsn: Lsn, seg_size: u64) -> Lsn {
    Lsn(lsn.0 - lsn.segment_offset(seg_size))
}

#[cfg(test)]
mod tests;
