//! The `rsync` and `local-rsync` backup methods: the parts of `pgbak backup` that differ from
//! the streaming method. [`prepare`] checks SSH and rsync before anything is written,
//! [`RsyncBackup::copy`] takes the files between `pg_backup_start` and `pg_backup_stop` (held by
//! [`ConcurrentBackup`] on one SQL session), and [`RsyncBackup::record`] adds what was copied
//! and what was reused to the metadata.

use crate::backup::BackupOptions;
use crate::catalogue::{BackupInfo, BackupStatus};
use crate::config::{BackupMethod, ServerConfig};
use crate::pg::PgConnection;
use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_copy::rsync::{
    BackupSession, BackupStart, BackupStop, Host, RetryPolicy, ReuseFrom, ReuseMode, RsyncCopy,
    RsyncCopyOptions, RsyncCopyStats, RsyncSettings, SourceTablespace, SshCommand, SshMaster,
};
use pgbak_copy::{CopyOutcome, CopyProgress};
use pgbak_wal::Lsn;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Barman's `mode` for concurrent rsync backups (both `rsync` and `local-rsync`).
pub const MODE: &str = "rsync-concurrent";

/// How long to wait for an SSH connection.
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An rsync backup ready to run: SSH is up and rsync answers on both hosts.
pub struct RsyncBackup {
    server: String,
    conninfo: String,
    host: Host,
    options: RsyncCopyOptions,
    reuse_backup_id: Option<String>,
    stats: Option<RsyncCopyStats>,
}

/// The rsync program to run here: the first `rsync` in `path_prefix`, else the one on PATH.
pub fn rsync_program(cfg: &ServerConfig) -> PathBuf {
    cfg.path_prefix
        .iter()
        .map(|d| d.join("rsync"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("rsync"))
}

/// The host holding the server's files: over SSH for `rsync`, this one for `local-rsync`.
pub fn source_host(cfg: &ServerConfig) -> Result<Host> {
    match cfg.backup_method {
        BackupMethod::LocalRsync => Ok(Host::Local),
        BackupMethod::Rsync => {
            let text = cfg.ssh_command.as_deref().ok_or_else(|| {
                Error::Usage(format!(
                    "server '{}': backup_method = rsync needs ssh_command",
                    cfg.name
                ))
            })?;
            let command = SshCommand::parse(text)
                .map_err(|e| Error::Usage(format!("server '{}': ssh_command: {e}", cfg.name)))?;
            let master = SshMaster::connect(command, SSH_CONNECT_TIMEOUT).map_err(|e| {
                Error::kind_of(
                    ErrorKind::Connection,
                    format!(
                        "server '{}': cannot reach the database host (check ssh_command): {e}",
                        cfg.name
                    ),
                )
            })?;
            Ok(Host::Remote(Arc::new(master)))
        }
        m @ (BackupMethod::Postgres | BackupMethod::LocalToCloud) => Err(Error::Usage(format!(
            "server '{}': backup_method = {m} copies nothing over SSH",
            cfg.name
        ))),
    }
}

/// Parses `tablespace_bandwidth_limit` (`name:kbps name2:kbps`, Barman's format).
pub fn tablespace_bandwidth_limits(text: &str) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for item in text.split_whitespace() {
        let (name, kbps) = item
            .rsplit_once(':')
            .and_then(|(n, k)| Some((n, k.parse::<u64>().ok()?)))
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "tablespace_bandwidth_limit: '{item}' is not NAME:KBPS"
                ))
            })?;
        if kbps > 0 {
            out.insert(name.to_string(), kbps);
        }
    }
    Ok(out)
}

/// `reuse_backup` / `--reuse-backup`: `off`, `copy` or `link`.
fn reuse_mode(word: Option<&str>) -> Result<Option<ReuseMode>> {
    match word.map(|w| w.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(w) if w == "off" => Ok(None),
        Some(w) => ReuseMode::parse(&w)
            .map(Some)
            .ok_or_else(|| Error::Usage(format!("invalid reuse_backup '{w}' (off, copy or link)"))),
    }
}

/// The newest usable backup to reuse files from: DONE, taken by an rsync method, plain, with
/// its data folder present.
fn reference_backup(server: &Server) -> Result<Option<BackupInfo>> {
    let cat = server.catalogue();
    let (all, _) = cat.list()?;
    Ok(all
        .into_iter()
        .rev()
        .filter(|b| b.status == BackupStatus::Done && b.mode == MODE && b.backup_format == "plain")
        .find(|b| {
            server
                .local_backup_dir(&b.backup_id)
                .is_some_and(|d| d.join("data").is_dir())
        }))
}

/// For the rsync methods: connects SSH and checks the programs, before anything is written.
/// `None` for the other methods.
pub fn prepare(server: &Server, opts: &BackupOptions) -> Result<Option<RsyncBackup>> {
    let cfg = &server.config;
    if !matches!(
        cfg.backup_method,
        BackupMethod::Rsync | BackupMethod::LocalRsync
    ) {
        return Ok(None);
    }
    let backup_options: Vec<&str> = cfg.backup_options.split(',').map(str::trim).collect();
    if backup_options.contains(&"exclusive_backup") {
        return Err(Error::Usage(format!(
            "server '{}': exclusive_backup is not supported (PostgreSQL 15 removed it); use backup_options = concurrent_backup",
            cfg.name
        )));
    }
    let host = source_host(cfg)?;
    let rsync = RsyncSettings {
        program: rsync_program(cfg),
        remote_program: None,
        compress: cfg.network_compression,
        bwlimit_kbps: cfg.bandwidth_limit,
    };
    pgbak_copy::rsync::check_programs(&host, &rsync)
        .map_err(|e| Error::Other(format!("server '{}': {e}", cfg.name)))?;
    let tablespace_bwlimit = match cfg.raw.get("tablespace_bandwidth_limit") {
        Some(t) => tablespace_bandwidth_limits(t)
            .map_err(|e| Error::Usage(format!("server '{}': {e}", cfg.name)))?,
        None => HashMap::new(),
    };
    let mode = reuse_mode(opts.reuse_backup.as_deref().or(cfg.reuse_backup.as_deref()))?;
    let mut reuse = None;
    let mut reuse_backup_id = None;
    if let Some(mode) = mode {
        let reference = reference_backup(server)?.and_then(|prev| {
            let dir = server.local_backup_dir(&prev.backup_id)?;
            Some((prev, dir))
        });
        if let Some((prev, dir)) = reference {
            reuse = Some(ReuseFrom {
                mode,
                data_dir: dir.join("data"),
                tablespaces_root: dir,
                horizon: prev.server_begin_time.map(|t| t.timestamp()),
                until: prev.server_end_time.map(|t| t.timestamp()),
            });
            reuse_backup_id = Some(prev.backup_id);
        }
    }
    let jobs = opts.jobs.unwrap_or(cfg.parallel_jobs).max(1) as usize;
    Ok(Some(RsyncBackup {
        server: cfg.name.clone(),
        conninfo: cfg.conninfo.clone(),
        host,
        options: RsyncCopyOptions {
            label: String::new(),
            fast_checkpoint: opts
                .immediate_checkpoint
                .unwrap_or(cfg.immediate_checkpoint),
            jobs,
            retry: RetryPolicy {
                times: opts.retry_times.unwrap_or(cfg.basebackup_retry_times),
                sleep: Duration::from_secs(opts.retry_sleep.unwrap_or(cfg.basebackup_retry_sleep)),
            },
            rsync,
            tablespace_bwlimit,
            reuse,
            keepalive_interval: (cfg.keepalive_interval > 0)
                .then(|| Duration::from_secs(cfg.keepalive_interval)),
            copy_external_config: !backup_options.contains(&"external_configuration"),
        },
        reuse_backup_id,
        stats: None,
    }))
}

impl RsyncBackup {
    /// The metadata `mode`.
    pub fn mode(&self) -> &'static str {
        MODE
    }

    /// Copies the server's files into `<dir>/data` and `<dir>/<oid>` for backup `info`.
    pub fn copy(
        &mut self,
        info: &BackupInfo,
        dir: &Path,
        label: &str,
        progress: &mut dyn CopyProgress,
    ) -> Result<CopyOutcome> {
        let session = ConcurrentBackup::connect(&self.server, &self.conninfo)?;
        let mut options = self.options.clone();
        options.label = label.to_string();
        let copy = RsyncCopy::new(self.host.clone(), Box::new(session), options);
        let (mut outcome, stats) = copy.run(&dir.join("data"), dir, progress)?;
        tracing::info!(
            "backup {}: {} bytes in {} files, {} copied, {} reused, {} rsync runs ({} retried)",
            info.backup_id,
            stats.total_bytes,
            stats.files,
            stats.copied_bytes,
            stats.reused_bytes,
            stats.runs,
            stats.retried_runs
        );
        // For a file copy the data to restore is every file, sent or reused.
        outcome.bytes_received = stats.total_bytes;
        self.stats = Some(stats);
        Ok(outcome)
    }

    /// Adds the copy's numbers to the metadata.
    pub fn record(&self, info: &mut BackupInfo) {
        let Some(s) = &self.stats else { return };
        info.copied_bytes = Some(s.copied_bytes);
        info.reused_bytes = Some(s.reused_bytes);
        info.network_bytes = Some(s.network_bytes);
        info.reuse_mode = self
            .options
            .reuse
            .as_ref()
            .map(|r| r.mode.as_str().to_string());
        info.reuse_backup_id = self.reuse_backup_id.clone();
        info.server_begin_time = chrono::DateTime::from_timestamp(s.server_time, 0);
        info.server_end_time = s
            .server_end_time
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
        info.data_size = s.total_bytes;
        // Hard links take no space: the backup adds only what was sent.
        info.size = match self.options.reuse.as_ref().map(|r| r.mode) {
            Some(ReuseMode::Link) => s.copied_bytes,
            _ => s.total_bytes,
        };
    }
}

/// The concurrent backup API on one SQL session, open from `pg_backup_start` to
/// `pg_backup_stop` (PostgreSQL 15 names; `pg_start_backup`/`pg_stop_backup` in non-exclusive
/// mode on 13 and 14).
pub struct ConcurrentBackup {
    server: String,
    conn: PgConnection,
    version: u32,
    started: bool,
}

fn session_error(e: Error) -> pgbak_copy::Error {
    pgbak_copy::Error::Session(e.to_string())
}

/// Quotes a SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl ConcurrentBackup {
    /// Opens the session.
    pub fn connect(server: &str, conninfo: &str) -> Result<ConcurrentBackup> {
        let conn = PgConnection::connect(server, conninfo)?;
        let version = conn.server_version_num()?;
        if version < 130000 {
            return Err(Error::Usage(format!(
                "server '{server}': PostgreSQL {version} is not supported by the rsync method (13 or later is needed)"
            )));
        }
        Ok(ConcurrentBackup {
            server: server.to_string(),
            conn,
            version,
            started: false,
        })
    }

    fn value(&self, sql: &str) -> Result<String> {
        self.conn.query_value(sql)?.ok_or_else(|| {
            Error::kind_of(
                ErrorKind::Connection,
                format!("server '{}': no value returned by {sql}", self.server),
            )
        })
    }

    fn describe(&self) -> Result<BackupStart> {
        let row = self
            .conn
            .query_text(
                "SELECT current_setting('data_directory'), \
                 (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), \
                 current_setting('config_file'), current_setting('hba_file'), \
                 current_setting('ident_file'), \
                 floor(extract(epoch FROM clock_timestamp()))::bigint::text",
            )?
            .into_iter()
            .next()
            .unwrap_or_default();
        let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let data_directory = col(0);
        if !data_directory.starts_with('/') {
            return Err(Error::kind_of(ErrorKind::Connection, format!(
                "server '{}': cannot read data_directory (got '{data_directory}'); the backup user needs superuser or pg_read_all_settings",
                self.server
            )));
        }
        let wal_segment_size = col(1).parse().map_err(|_| {
            Error::kind_of(
                ErrorKind::Connection,
                format!(
                    "server '{}': unexpected wal_segment_size '{}'",
                    self.server,
                    col(1)
                ),
            )
        })?;
        let inside = |f: &str| Path::new(f).starts_with(&data_directory);
        let external_config_files = [col(2), col(3), col(4)]
            .into_iter()
            .filter(|f| f.starts_with('/') && !inside(f))
            .collect();
        // Without pg_control_system() rights the identifier comes from the copied control file.
        let systemid = self
            .conn
            .query_value("SELECT system_identifier::text FROM pg_control_system()")
            .ok()
            .flatten();
        let tablespaces = self
            .conn
            .tablespaces()?
            .into_iter()
            // In-place tablespaces (a relative location) live inside pg_tblspc and are copied
            // with the data directory.
            .filter(|(_, _, location)| location.starts_with('/'))
            .map(|(name, oid, location)| SourceTablespace {
                name,
                oid,
                location,
            })
            .collect();
        Ok(BackupStart {
            start_lsn: Lsn(0),
            server_version_num: self.version,
            systemid,
            wal_segment_size,
            data_directory,
            tablespaces,
            external_config_files,
            server_time: col(5).parse().unwrap_or(0),
        })
    }

    fn start_backup(&mut self, label: &str, fast: bool) -> Result<BackupStart> {
        // A long copy must not be cut by the server's own session timeouts.
        self.conn.query_text("SET statement_timeout = 0")?;
        if self.version >= 140000 {
            self.conn.query_text("SET idle_session_timeout = 0")?;
        }
        let mut start = self.describe()?;
        let sql = if self.version >= 150000 {
            format!("SELECT pg_backup_start({}, {fast})::text", literal(label))
        } else {
            format!(
                "SELECT pg_start_backup({}, {fast}, false)::text",
                literal(label)
            )
        };
        let lsn = self.value(&sql)?;
        self.started = true;
        start.start_lsn = lsn.parse()?;
        Ok(start)
    }

    fn stop_backup(&mut self) -> Result<BackupStop> {
        let sql = if self.version >= 150000 {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)"
        };
        let row = self
            .conn
            .query_text(sql)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::kind_of(
                    ErrorKind::Connection,
                    format!("server '{}': pg_backup_stop returned no row", self.server),
                )
            })?;
        self.started = false;
        let col = |i: usize| row.get(i).cloned().flatten();
        let end_lsn: Lsn = col(0).unwrap_or_default().parse()?;
        let backup_label = col(1).ok_or_else(|| {
            Error::kind_of(
                ErrorKind::Connection,
                format!(
                    "server '{}': pg_backup_stop returned no backup_label",
                    self.server
                ),
            )
        })?;
        // On a primary the segment name says the timeline; a standby cannot name segments.
        let end_tli = self
            .conn
            .query_value(&format!("SELECT pg_walfile_name('{end_lsn}')"))
            .ok()
            .flatten()
            .and_then(|name| u32::from_str_radix(name.get(..8)?, 16).ok());
        // Rounded up: every file time of this backup's copies is at or before it.
        let server_time = self
            .conn
            .query_value("SELECT ceil(extract(epoch FROM clock_timestamp()))::bigint::text")
            .ok()
            .flatten()
            .and_then(|t| t.parse().ok());
        Ok(BackupStop {
            end_lsn,
            end_tli,
            backup_label,
            tablespace_map: col(2),
            server_time,
        })
    }
}

impl BackupSession for ConcurrentBackup {
    fn start(&mut self, label: &str, fast_checkpoint: bool) -> pgbak_copy::Result<BackupStart> {
        self.start_backup(label, fast_checkpoint)
            .map_err(session_error)
    }

    fn keepalive(&mut self) -> pgbak_copy::Result<()> {
        self.conn.query_text("SELECT 1").map(|_| ()).map_err(|e| {
            pgbak_copy::Error::Session(format!(
                "the backup session was lost during the copy ({e}); PostgreSQL ended the backup"
            ))
        })
    }

    fn stop(&mut self) -> pgbak_copy::Result<BackupStop> {
        if !self.started {
            return Err(pgbak_copy::Error::Session(format!(
                "server '{}': no backup was started on this session",
                self.server
            )));
        }
        self.stop_backup().map_err(session_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablespace_limits() {
        let m = tablespace_bandwidth_limits("tbs1:1000  tbs2:0 my:space:20").unwrap();
        assert_eq!(m.get("tbs1"), Some(&1000));
        assert_eq!(m.get("tbs2"), None, "0 means no limit");
        assert_eq!(m.get("my:space"), Some(&20));
        assert!(tablespace_bandwidth_limits("tbs1").is_err());
        assert!(tablespace_bandwidth_limits(":5").is_err());
        assert!(tablespace_bandwidth_limits("a:x").is_err());
    }

    #[test]
    fn reuse_words() {
        assert_eq!(reuse_mode(None).unwrap(), None);
        assert_eq!(reuse_mode(Some("off")).unwrap(), None);
        assert_eq!(reuse_mode(Some("LINK")).unwrap(), Some(ReuseMode::Link));
        assert_eq!(reuse_mode(Some("copy")).unwrap(), Some(ReuseMode::Copy));
        assert!(reuse_mode(Some("hardlink")).is_err());
    }

    #[test]
    fn sql_literals() {
        assert_eq!(literal("pgbak backup x"), "'pgbak backup x'");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
