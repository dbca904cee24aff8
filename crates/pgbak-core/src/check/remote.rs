//! What the checks need to know about the live PostgreSQL server, gathered once: settings,
//! privileges, the archiver's statistics, the replication slot, and what a replication
//! connection says. Each item fails on its own; a missing item makes only its check fail.

use crate::pg::PgConnection;
use crate::server::Server;
use pgbak_wal::{ConnParams, ReplicationClient};

/// `pg_stat_archiver`, as text.
#[derive(Clone, Debug, Default)]
pub(crate) struct ArchiverStat {
    pub failed_count: u64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    /// No failure, or the last failure is older than the last success.
    pub is_archiving: bool,
}

/// A replication slot.
#[derive(Clone, Debug)]
pub(crate) struct SlotStat {
    pub active: bool,
    pub restart_lsn: Option<String>,
}

/// The live server, as far as it could be seen.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    /// Why the SQL connection failed (`None` when connected).
    pub conn_error: Option<String>,
    pub server_version: Option<String>,
    pub version_num: Option<u32>,
    pub is_superuser: Option<bool>,
    pub backup_privileges: Option<bool>,
    pub monitoring_privileges: Option<bool>,
    pub wal_level: Option<String>,
    pub archive_mode: Option<String>,
    pub archive_command: Option<String>,
    pub in_recovery: Option<bool>,
    pub systemid: Option<String>,
    pub archiver: Option<ArchiverStat>,
    /// `Some(None)`: the configured slot does not exist.
    pub slot: Option<Option<SlotStat>>,
    /// Whether a replication connection was tried, and what it gave: the system identifier, or
    /// why it failed.
    pub streaming: Option<Result<String, String>>,
}

fn flag(v: Option<String>) -> Option<bool> {
    v.map(|s| s == "t" || s == "on" || s == "true")
}

impl Remote {
    /// Gathers everything; never fails.
    pub(crate) fn gather(server: &Server) -> Remote {
        let mut r = Remote::default();
        let cfg = &server.config;
        match server.connect() {
            Err(e) => r.conn_error = Some(describe_connect_error(&e)),
            Ok(conn) => r.read_sql(&conn, cfg.slot_name.as_deref()),
        }
        if cfg.backup_method.streams() || cfg.streaming_archiver {
            r.streaming = Some(identify(&cfg.streaming_conninfo));
        }
        r
    }

    fn read_sql(&mut self, conn: &PgConnection, slot_name: Option<&str>) {
        let value = |sql: &str| conn.query_value(sql).ok().flatten();
        self.server_version = conn.setting("server_version").ok();
        self.version_num = conn.server_version_num().ok();
        self.is_superuser = flag(conn.setting("is_superuser").ok());
        let v15 = self.version_num.unwrap_or(0) >= 150000;
        let (start, stop) = if v15 {
            ("pg_backup_start(text,boolean)", "pg_backup_stop(boolean)")
        } else {
            (
                "pg_start_backup(text,boolean,boolean)",
                "pg_stop_backup(boolean,boolean)",
            )
        };
        self.backup_privileges = flag(value(&format!(
            "SELECT (current_setting('is_superuser')::boolean OR \
             (has_function_privilege(current_user, '{start}', 'EXECUTE') \
              AND has_function_privilege(current_user, '{stop}', 'EXECUTE') \
              AND has_function_privilege(current_user, 'pg_switch_wal()', 'EXECUTE')))::text"
        )));
        self.monitoring_privileges = flag(value(
            "SELECT (current_setting('is_superuser')::boolean \
             OR pg_has_role(current_user, 'pg_monitor', 'MEMBER') \
             OR (pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER') \
                 AND pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')))::text",
        ));
        self.wal_level = conn.setting("wal_level").ok();
        self.archive_mode = conn.setting("archive_mode").ok();
        self.archive_command = conn.setting("archive_command").ok();
        self.in_recovery = conn.is_in_recovery().ok();
        self.systemid = value("SELECT system_identifier::text FROM pg_control_system()");
        if let Ok(rows) = conn.query_text(
            "SELECT failed_count::text, last_failed_wal, last_failed_time::text, \
             last_archived_wal, last_archived_time::text, \
             (last_failed_wal IS NULL OR (last_archived_time IS NOT NULL \
              AND last_failed_time < last_archived_time))::text \
             FROM pg_stat_archiver",
        ) {
            if let Some(row) = rows.into_iter().next() {
                let col = |i: usize| row.get(i).cloned().flatten();
                self.archiver = Some(ArchiverStat {
                    failed_count: col(0).and_then(|v| v.parse().ok()).unwrap_or(0),
                    last_failed_wal: col(1),
                    last_failed_time: col(2),
                    last_archived_wal: col(3),
                    last_archived_time: col(4),
                    is_archiving: flag(col(5)).unwrap_or(false),
                });
            }
        }
        if let Some(slot) = slot_name {
            // The name passed the configuration's check ([0-9a-z_]+), so it is safe to quote.
            if let Ok(rows) = conn.query_text(&format!(
                "SELECT active::text, restart_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
            )) {
                self.slot = Some(rows.into_iter().next().map(|row| SlotStat {
                    active: flag(row.first().cloned().flatten()).unwrap_or(false),
                    restart_lsn: row.get(1).cloned().flatten(),
                }));
            }
        }
    }
}

/// The server's message without pgbak's "PostgreSQL server 'x': " prefix, which the check line
/// already implies.
fn describe_connect_error(e: &crate::Error) -> String {
    match e {
        crate::Error::Sql { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// IDENTIFY_SYSTEM over a replication connection.
fn identify(conninfo: &str) -> Result<String, String> {
    let params = ConnParams::resolve(conninfo).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    rt.block_on(async {
        let mut client = ReplicationClient::connect(&params)
            .await
            .map_err(|e| e.to_string())?;
        let id = client.identify_system().await.map_err(|e| e.to_string())?;
        let _ = client.close().await;
        Ok(id.systemid)
    })
}
