//! Ordinary SQL to a PostgreSQL server through `tokio-postgres`, with libpq's connection inputs
//! (conninfo strings or URIs, `PG*` variables, `~/.pgpass`) resolved by [`pgbak_wal::ConnParams`].
//! The workflows are synchronous, so each connection owns a small current-thread runtime.

use crate::{Error, Result};
use pgbak_wal::{ConnParams, Lsn};
use std::time::Duration;

/// A SQL connection to one server.
pub struct PgConnection {
    server: String,
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    _conn: tokio::task::JoinHandle<()>,
}

/// Builds a tokio-postgres configuration from resolved libpq parameters.
pub fn tokio_config(p: &ConnParams) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    if p.host.starts_with('/') {
        c.host_path(&p.host);
    } else {
        c.host(&p.host);
    }
    c.port(p.port).user(&p.user).dbname(&p.dbname);
    if let Some(pw) = &p.password {
        c.password(pw);
    }
    c.application_name(p.application_name.as_deref().unwrap_or("pgbak"));
    c.connect_timeout(p.connect_timeout.unwrap_or(Duration::from_secs(30)));
    if let Some(o) = &p.options {
        c.options(o);
    }
    c
}

impl PgConnection {
    /// Connects to the server named `server` with a libpq conninfo string.
    pub fn connect(server: &str, conninfo: &str) -> Result<Self> {
        let params = ConnParams::resolve(conninfo)?;
        let sql_err = |e: tokio_postgres::Error| Error::Sql {
            server: server.to_string(),
            message: describe(&e),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot start runtime: {e}")))?;
        let config = tokio_config(&params);
        let (client, conn) = rt.block_on(async {
            if params.host.starts_with('/') {
                let path = params.socket_path().unwrap_or_default();
                let stream =
                    tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(|e| Error::Sql {
                            server: server.to_string(),
                            message: format!("cannot connect to socket {}: {e}", path.display()),
                        })?;
                let (client, conn) = config
                    .connect_raw(stream, tokio_postgres::NoTls)
                    .await
                    .map_err(sql_err)?;
                let handle = tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok::<_, Error>((client, handle))
            } else {
                let (client, conn) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(sql_err)?;
                let handle = tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok((client, handle))
            }
        })?;
        Ok(PgConnection {
            server: server.to_string(),
            rt,
            client,
            _conn: conn,
        })
    }

    fn err(&self, e: tokio_postgres::Error) -> Error {
        Error::Sql {
            server: self.server.clone(),
            message: describe(&e),
        }
    }

    /// Runs a query and returns each row's columns as text (NULL = None). Columns must be text.
    pub fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let msgs = self
            .rt
            .block_on(self.client.simple_query(sql))
            .map_err(|e| self.err(e))?;
        let mut rows = Vec::new();
        for m in msgs {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        Ok(rows)
    }

    /// The first column of the first row.
    pub fn query_value(&self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .query_text(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// `server_version_num`.
    pub fn server_version_num(&self) -> Result<u32> {
        let v = self.setting("server_version_num")?;
        v.parse()
            .map_err(|_| Error::Other(format!("unexpected server_version_num '{v}'")))
    }

    /// The value of a setting (`current_setting`).
    pub fn setting(&self, name: &str) -> Result<String> {
        let sql = format!("SELECT current_setting('{}')", name.replace('\'', "''"));
        Ok(self.query_value(&sql)?.unwrap_or_default())
    }

    /// Whether the server is a standby.
    pub fn is_in_recovery(&self) -> Result<bool> {
        Ok(self.query_value("SELECT pg_is_in_recovery()")?.as_deref() == Some("t"))
    }

    /// The current WAL write location.
    pub fn current_wal_lsn(&self) -> Result<Lsn> {
        let v = self
            .query_value("SELECT pg_current_wal_lsn()")?
            .unwrap_or_default();
        Ok(v.parse()?)
    }

    /// `pg_switch_wal()`; returns the LSN it returned and the name of the segment that was closed.
    pub fn switch_wal(&self) -> Result<(Lsn, String)> {
        let row = self
            .query_text("SELECT pg_switch_wal()::text, pg_walfile_name(pg_current_wal_lsn())")?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other("pg_switch_wal returned nothing".into()))?;
        let lsn: Lsn = row.first().cloned().flatten().unwrap_or_default().parse()?;
        Ok((lsn, row.get(1).cloned().flatten().unwrap_or_default()))
    }

    /// The WAL segment name that contains `lsn` (on the server's current timeline).
    pub fn walfile_name(&self, lsn: Lsn) -> Result<String> {
        Ok(self
            .query_value(&format!("SELECT pg_walfile_name('{lsn}')"))?
            .unwrap_or_default())
    }

    /// `CHECKPOINT`.
    pub fn checkpoint(&self) -> Result<()> {
        self.query_text("CHECKPOINT").map(|_| ())
    }

    /// Name and location of every user tablespace.
    pub fn tablespaces(&self) -> Result<Vec<(String, u32, String)>> {
        let rows = self.query_text(
            "SELECT spcname::text, oid::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid",
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let name = r.first()?.clone()?;
                let oid = r.get(1)?.clone()?.parse().ok()?;
                let loc = r.get(2)?.clone()?;
                Some((name, oid, loc))
            })
            .collect())
    }
}

/// The server's own message when there is one, else the client's.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
