//! Ordinary SQL to a PostgreSQL server through `tokio-postgres`, with libpq's connection inputs
//! (conninfo strings or URIs, `PG*` variables, `~/.pgpass`) resolved by [`pgbak_wal::ConnParams`]
//! and libpq's TLS semantics from [`pgbak_wal::tls`], shared with the replication client.
//! The workflows are synchronous, so each connection owns a small current-thread runtime.

use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_wal::conninfo::ChannelBindingMode;
use pgbak_wal::tls::{Encryption, MaybeTls, TlsConnector};
use pgbak_wal::{ConnParams, Lsn};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Time allowed for connecting and authenticating when the connection string sets none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A SQL connection to one server.
pub struct PgConnection {
    server: String,
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    _conn: tokio::task::JoinHandle<()>,
}

/// Builds a tokio-postgres configuration from resolved libpq parameters.
///
/// tokio-postgres's own TLS negotiation knows only disable, prefer and require. It is told
/// "require, direct" so that it hands the fresh socket straight to [`WalTls`], which runs libpq's
/// negotiation (SSLRequest or direct, or nothing for a cleartext attempt) and certificate checks;
/// tokio-postgres then does channel binding with the stream's `tls-server-end-point` data.
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
    c.connect_timeout(p.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
    if let Some(o) = &p.options {
        c.options(o);
    }
    c.ssl_mode(tokio_postgres::config::SslMode::Require);
    c.ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
    c.channel_binding(match p.ssl.channel_binding {
        ChannelBindingMode::Disable => tokio_postgres::config::ChannelBinding::Disable,
        ChannelBindingMode::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
        ChannelBindingMode::Require => tokio_postgres::config::ChannelBinding::Require,
    });
    c
}

/// tokio-postgres's TLS hook, running pgbak-wal's negotiation for one attempt.
#[derive(Clone)]
struct WalTls {
    connector: TlsConnector,
    encryption: Encryption,
    /// Set when the negotiated stream is encrypted.
    encrypted: Arc<AtomicBool>,
}

/// The negotiated stream, cleartext or encrypted.
struct Negotiated<S>(MaybeTls<S>);

impl<S> tokio_postgres::tls::TlsConnect<S> for WalTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Negotiated<S>;
    type Error = pgbak_wal::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Negotiated<S>, pgbak_wal::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.negotiate(stream, self.encryption).await?;
            self.encrypted
                .store(stream.is_encrypted(), Ordering::SeqCst);
            Ok(Negotiated(stream))
        })
    }
}

impl tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> for WalTls {
    type Stream = Negotiated<tokio_postgres::Socket>;
    type TlsConnect = WalTls;
    type Error = pgbak_wal::Error;

    /// The host name for certificate checks and SNI comes from the resolved parameters (`host`,
    /// not `hostaddr`), not from tokio-postgres.
    fn make_tls_connect(&mut self, _domain: &str) -> std::result::Result<WalTls, Self::Error> {
        Ok(self.clone())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Negotiated<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        match self.0.tls_server_end_point() {
            Some(data) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(data),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Negotiated<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Negotiated<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// One connection attempt: the client, the task driving the connection, and whether TLS is on.
type Attempt = (tokio_postgres::Client, tokio::task::JoinHandle<()>, bool);

/// Makes one attempt; a failure also says whether the server refused the session (an
/// ErrorResponse), which lets `sslmode=allow` try again with TLS.
async fn attempt(
    server: &str,
    params: &ConnParams,
    config: &tokio_postgres::Config,
    connector: &TlsConnector,
    encryption: Encryption,
) -> std::result::Result<Attempt, (Error, bool)> {
    let tls = WalTls {
        connector: connector.clone(),
        encryption,
        encrypted: Arc::new(AtomicBool::new(false)),
    };
    let encrypted = tls.encrypted.clone();
    let sql_err = |e: tokio_postgres::Error| {
        let rejected = e.as_db_error().is_some();
        (
            Error::Sql {
                server: server.to_string(),
                message: describe(&e),
            },
            rejected,
        )
    };
    let limit = params.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let timed_out = || {
        (
            Error::Sql {
                server: server.to_string(),
                message: format!(
                    "timed out after {} s connecting to the server",
                    limit.as_secs()
                ),
            },
            false,
        )
    };
    let (client, handle) = match params.socket_path() {
        Some(path) => {
            let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                let message = format!("cannot connect to socket {}: {e}", path.display());
                (
                    Error::Sql {
                        server: server.to_string(),
                        message,
                    },
                    false,
                )
            })?;
            let (client, conn) = tokio::time::timeout(limit, config.connect_raw(stream, tls))
                .await
                .map_err(|_| timed_out())?
                .map_err(sql_err)?;
            let handle = tokio::spawn(async move {
                let _ = conn.await;
            });
            (client, handle)
        }
        None => {
            // tokio-postgres's connect_timeout covers the TCP connection; this covers the TLS
            // negotiation and authentication too, as libpq's does.
            let (client, conn) = tokio::time::timeout(limit, config.connect(tls))
                .await
                .map_err(|_| timed_out())?
                .map_err(sql_err)?;
            let handle = tokio::spawn(async move {
                let _ = conn.await;
            });
            (client, handle)
        }
    };
    Ok((client, handle, encrypted.load(Ordering::SeqCst)))
}

impl PgConnection {
    /// Connects to the server named `server` with a libpq conninfo string.
    pub fn connect(server: &str, conninfo: &str) -> Result<Self> {
        let params = ConnParams::resolve(conninfo)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot start runtime: {e}")))?;
        let config = tokio_config(&params);
        let connector = TlsConnector::new(&params);
        let (client, conn, encrypted) = rt.block_on(async {
            let first = connector.first_attempt();
            match attempt(server, &params, &config, &connector, first).await {
                Ok(a) => Ok(a),
                Err((e, rejected)) => match connector.next_attempt(rejected) {
                    Some(next) => {
                        tracing::info!(
                            server,
                            "{e}; trying again {} (sslmode={})",
                            if next == Encryption::Plain {
                                "without SSL"
                            } else {
                                "with SSL"
                            },
                            connector.mode()
                        );
                        attempt(server, &params, &config, &connector, next)
                            .await
                            .map_err(|(e, _)| e)
                    }
                    None => Err(e),
                },
            }
        })?;
        tracing::debug!(server, tls = encrypted, "connected");
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
        v.parse().map_err(|_| {
            Error::kind_of(
                ErrorKind::Connection,
                format!("unexpected server_version_num '{v}'"),
            )
        })
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
            .ok_or_else(|| {
                Error::kind_of(ErrorKind::Connection, "pg_switch_wal returned nothing")
            })?;
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

/// The server's own message when there is one, else the client's (pgbak's own TLS errors
/// without tokio-postgres's "error performing TLS handshake" around them).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        if let Some(ours) = inner.downcast_ref::<pgbak_wal::Error>() {
            return ours.to_string();
        }
        src = inner.source();
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
