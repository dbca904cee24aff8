//! The async replication-protocol client: one connection opened with `replication=true`, over TCP
//! (encrypted as `sslmode` says, see [`crate::tls`]) or a Unix socket, authenticated like libpq
//! (trust, password, md5, SCRAM-SHA-256 and, over TLS, SCRAM-SHA-256-PLUS with channel binding;
//! a client certificate when the server asks for one).
//!
//! Message framing and decoding live in [`crate::protocol`] and `postgres-protocol`; this module
//! only sequences them over a socket. Streams are passed on chunk by chunk as they arrive: memory
//! use does not depend on the size of the database. WAL streaming (START_REPLICATION) is in
//! `stream`, slot and timeline commands in `slots`.

use crate::conninfo::ChannelBindingMode;
use crate::error::DbError;
use crate::protocol::{
    parse_copy_both_response, parse_error_fields, parse_server_version, parse_size_setting,
    peek_frame, CopyBothResponse, COPY_BOTH_RESPONSE_TAG, ERROR_RESPONSE_TAG, NOTICE_RESPONSE_TAG,
};
use crate::tls::{Encryption, TlsConnector};
use crate::{ConnParams, Error, Lsn, Result};
use base_backup::BaseBackupFlow;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::backend::{DataRowBody, Message};
use postgres_protocol::message::frontend;
use std::collections::HashMap;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Bytes asked from the socket per read: large reads keep system calls rare during BASE_BACKUP.
const READ_CHUNK: usize = 256 * 1024;

/// Answer of IDENTIFY_SYSTEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    /// The cluster's system identifier (decimal text as PostgreSQL prints it).
    pub systemid: String,
    /// Current timeline.
    pub timeline: u32,
    /// Current WAL flush location.
    pub xlogpos: Lsn,
    /// Database connected to, if any.
    pub dbname: Option<String>,
}

/// One tablespace as BASE_BACKUP announces it. `oid`/`location` are `None` for the main data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceInfo {
    /// OID of the tablespace (`None` for the data directory).
    pub oid: Option<u32>,
    /// Directory of the tablespace on the server (`None` for the data directory).
    pub location: Option<String>,
    /// Estimated size in kB (only with PROGRESS).
    pub size_kb: Option<i64>,
}

/// Options of a BASE_BACKUP command. WAL is never included: pgbak takes it from its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupOptions {
    /// Backup label, written into `backup_label`.
    pub label: String,
    /// Ask for size estimates and progress reports.
    pub progress: bool,
    /// Request an immediate checkpoint instead of a spread one.
    pub fast_checkpoint: bool,
    /// Ask for a backup manifest.
    pub manifest: bool,
    /// Manifest checksum algorithm (`CRC32C` by default on the server).
    pub manifest_checksums: Option<String>,
    /// Include `tablespace_map` in the data directory archive.
    pub tablespace_map: bool,
    /// Throttle the server to this many kB/s (the server accepts 32 to 1048576).
    pub max_rate_kbps: Option<u32>,
    /// Verify data page checksums while reading (the server's default).
    pub verify_checksums: bool,
    /// When false, NOWAIT: the server does not wait for the end WAL segment to be archived.
    pub wait_for_wal_archive: bool,
    /// Have the server compress the tar archives (PostgreSQL 15 and later); the manifest still
    /// arrives uncompressed and each archive's name gains the method's suffix (`base.tar.zst`).
    pub server_compression: Option<ServerCompression>,
    /// An incremental backup (PostgreSQL 17 and later): only the blocks changed since the backup
    /// whose manifest was sent with [`ReplicationClient::upload_manifest`] on the same connection.
    pub incremental: bool,
}

/// Compression done by the server before the archives leave it (BASE_BACKUP's `COMPRESSION` and
/// `COMPRESSION_DETAIL`), which saves network bandwidth and the client's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCompression {
    /// `gzip`, `lz4` or `zstd`.
    pub method: String,
    /// The server's detail string, e.g. `level=1,workers=2` (`workers` is zstd only).
    pub detail: Option<String>,
}

/// Receives the streams of a BASE_BACKUP, in order. Calls may block (back-pressure).
pub trait BaseBackupSink {
    /// The backup started at `start` on timeline `tli`; `tablespaces` as the server listed them.
    fn begin(&mut self, start: Lsn, tli: u32, tablespaces: &[TablespaceInfo]) -> io::Result<()>;
    /// A new tar archive begins: `base.tar` for the data directory or `<oid>.tar` for a tablespace.
    fn archive_start(&mut self, name: &str, tablespace_location: Option<&str>) -> io::Result<()>;
    /// Bytes of the current tar archive.
    fn archive_data(&mut self, data: &[u8]) -> io::Result<()>;
    /// The current archive is complete.
    fn archive_end(&mut self) -> io::Result<()>;
    /// Bytes of the backup manifest (after all archives).
    fn manifest_data(&mut self, data: &[u8]) -> io::Result<()>;
    /// Total bytes streamed so far, as the server reports them.
    fn progress(&mut self, bytes_done: u64) -> io::Result<()>;
}

/// Where the backup started and ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBackupEnd {
    /// First WAL position the backup needs.
    pub start_lsn: Lsn,
    /// Timeline at the start.
    pub start_tli: u32,
    /// WAL position at which the backup becomes consistent.
    pub end_lsn: Lsn,
    /// Timeline at the end.
    pub end_tli: u32,
}

/// Anything the client can read and write bytes on.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// One backend message, with the kinds `postgres-protocol` does not decode for us already decoded.
enum Incoming {
    Message(Message),
    Error(DbError),
    Notice(DbError),
    CopyBoth(CopyBothResponse),
}

/// A name for a backend message in protocol-violation errors.
fn message_name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationOk => "AuthenticationOk",
        Message::AuthenticationCleartextPassword
        | Message::AuthenticationMd5Password(_)
        | Message::AuthenticationSasl(_)
        | Message::AuthenticationSaslContinue(_)
        | Message::AuthenticationSaslFinal(_)
        | Message::AuthenticationGss
        | Message::AuthenticationGssContinue(_)
        | Message::AuthenticationKerberosV5
        | Message::AuthenticationScmCredential
        | Message::AuthenticationSspi => "Authentication request",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::CommandComplete(_) => "CommandComplete",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::RowDescription(_) => "RowDescription",
        _ => "an extended-protocol message",
    }
}

/// START_REPLICATION is the only command answered with CopyBothResponse.
fn unexpected_copy_both(r: &CopyBothResponse, during: &str) -> Error {
    unexpected(
        &format!("CopyBothResponse ({} columns)", r.column_formats.len()),
        during,
    )
}

fn unexpected(what: &str, during: &str) -> Error {
    Error::protocol(format!("unexpected {what} during {during}"))
}

/// Decodes a DataRow as raw bytes: TIMELINE_HISTORY sends a file's content, which need not be
/// UTF-8.
fn decode_row_bytes(row: &DataRowBody) -> Result<Vec<Option<Vec<u8>>>> {
    let buf = row.buffer();
    let mut out = Vec::new();
    let mut ranges = row.ranges();
    while let Some(range) = ranges
        .next()
        .map_err(|e| Error::protocol(format!("malformed DataRow: {e}")))?
    {
        out.push(match range {
            None => None,
            Some(r) => Some(
                buf.get(r)
                    .ok_or_else(|| Error::protocol("DataRow column outside the message"))?
                    .to_vec(),
            ),
        });
    }
    Ok(out)
}

/// Decodes a DataRow as text columns (the simple query protocol always sends text).
fn decode_row(row: &DataRowBody) -> Result<Vec<Option<String>>> {
    let buf = row.buffer();
    let mut out = Vec::new();
    let mut ranges = row.ranges();
    while let Some(range) = ranges
        .next()
        .map_err(|e| Error::protocol(format!("malformed DataRow: {e}")))?
    {
        out.push(match range {
            None => None,
            Some(r) => {
                let bytes = buf
                    .get(r)
                    .ok_or_else(|| Error::protocol("DataRow column outside the message"))?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| Error::protocol("DataRow column is not valid UTF-8"))?;
                Some(text.to_string())
            }
        });
    }
    Ok(out)
}

/// Notices are not errors, but a WARNING (e.g. a page checksum failure during BASE_BACKUP) must
/// reach the operator.
fn log_notice(server: &str, notice: &DbError) {
    if notice.severity == "WARNING" {
        tracing::warn!(server, "{notice}");
    } else {
        tracing::info!(server, "{notice}");
    }
}

/// A replication connection.
pub struct ReplicationClient {
    socket: Box<dyn Socket>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// host:port or socket path, for messages.
    server: String,
    parameters: HashMap<String, String>,
    server_version_num: u32,
    /// Set while an exchange is in flight; still set after a failure that left the protocol in an
    /// unknown state, so that later calls fail clearly instead of misreading leftover messages.
    busy: bool,
    /// Whether the connection is encrypted.
    encrypted: bool,
    /// The `tls-server-end-point` channel-binding data of an encrypted connection.
    tls_end_point: Option<Vec<u8>>,
    /// Set when the server answered the startup with an ErrorResponse (for `sslmode=allow`).
    server_rejected: bool,
}

impl ReplicationClient {
    /// Connects with `replication=true` and authenticates.
    ///
    /// `connect_timeout` covers connecting and authenticating, fallback attempts included. TLS
    /// follows `sslmode` and the other `ssl*` settings as libpq does (on a Unix socket they are
    /// ignored, as libpq does).
    pub async fn connect(params: &ConnParams) -> Result<Self> {
        let server = params.server_display();
        let attempt = Self::connect_and_authenticate(params, server.clone());
        match params.connect_timeout {
            Some(limit) => {
                tokio::time::timeout(limit, attempt)
                    .await
                    .map_err(|_| Error::ConnectTimeout {
                        server,
                        seconds: limit.as_secs(),
                    })?
            }
            None => attempt.await,
        }
    }

    async fn connect_and_authenticate(params: &ConnParams, server: String) -> Result<Self> {
        let tls = TlsConnector::new(params);
        match Self::attempt(params, &server, &tls, tls.first_attempt()).await {
            Ok(client) => Ok(client),
            Err((err, server_rejected)) => match tls.next_attempt(server_rejected) {
                Some(next) => {
                    tracing::info!(
                        server,
                        "{err}; trying again {} (sslmode={})",
                        if next == Encryption::Plain {
                            "without SSL"
                        } else {
                            "with SSL"
                        },
                        tls.mode()
                    );
                    Self::attempt(params, &server, &tls, next)
                        .await
                        .map_err(|(e, _)| e)
                }
                None => Err(err),
            },
        }
    }

    /// One connection attempt; on failure also says whether the server refused the session.
    async fn attempt(
        params: &ConnParams,
        server: &str,
        tls: &TlsConnector,
        encryption: Encryption,
    ) -> std::result::Result<Self, (Error, bool)> {
        let fail = |e| (e, false);
        match params.socket_path() {
            Some(path) => {
                let unix = UnixStream::connect(&path)
                    .await
                    .map_err(|e| fail(Error::io(format!("connecting to server {server}"), e)))?;
                Self::establish(unix, params, server, tls, Encryption::Plain).await
            }
            None => {
                let tcp = TcpStream::connect((params.host.as_str(), params.port))
                    .await
                    .map_err(|e| fail(Error::io(format!("connecting to server {server}"), e)))?;
                // Small commands must not wait for Nagle's algorithm.
                tcp.set_nodelay(true).map_err(|e| {
                    fail(Error::io(format!("configuring connection to {server}"), e))
                })?;
                Self::establish(tcp, params, server, tls, encryption).await
            }
        }
    }

    /// Negotiates encryption on a fresh connection and starts the session.
    pub(crate) async fn establish<S>(
        stream: S,
        params: &ConnParams,
        server: &str,
        tls: &TlsConnector,
        encryption: Encryption,
    ) -> std::result::Result<Self, (Error, bool)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let stream = tls
            .negotiate(stream, encryption)
            .await
            .map_err(|e| (e, false))?;
        let mut client = ReplicationClient {
            encrypted: stream.is_encrypted(),
            tls_end_point: stream.tls_server_end_point(),
            socket: Box::new(stream),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            server: server.to_string(),
            parameters: HashMap::new(),
            server_version_num: 0,
            busy: true,
            server_rejected: false,
        };
        match client.startup(params).await {
            Ok(()) => Ok(client),
            Err(e) => Err((e, client.server_rejected)),
        }
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Sends the startup message, authenticates and waits for ReadyForQuery.
    async fn startup(&mut self, params: &ConnParams) -> Result<()> {
        let mut startup: Vec<(&str, &str)> = vec![
            ("user", &params.user),
            ("database", &params.dbname),
            ("replication", "true"),
            // Rows are decoded as UTF-8 text.
            ("client_encoding", "UTF8"),
        ];
        if let Some(app) = &params.application_name {
            startup.push(("application_name", app));
        }
        if let Some(options) = &params.options {
            startup.push(("options", options));
        }
        frontend::startup_message(startup.iter().copied(), &mut self.write_buf)
            .map_err(|e| Error::conninfo(format!("cannot send connection parameters: {e}")))?;
        self.flush().await?;
        self.authenticate(params).await?;

        loop {
            match self.read_incoming().await? {
                Incoming::Message(Message::ReadyForQuery(_)) => break,
                Incoming::Message(Message::ParameterStatus(p)) => self.store_parameter(&p)?,
                Incoming::Message(Message::BackendKeyData(_)) => {}
                Incoming::Message(m) => {
                    return Err(self.violation(unexpected(message_name(&m), "startup")))
                }
                Incoming::Notice(n) => log_notice(&self.server, &n),
                Incoming::Error(e) => {
                    self.server_rejected = true;
                    return Err(self.server_error(e));
                }
                Incoming::CopyBoth(r) => {
                    return Err(self.violation(unexpected_copy_both(&r, "startup")))
                }
            }
        }
        let version = self.parameter("server_version").ok_or_else(|| {
            self.violation(Error::protocol("server did not report server_version"))
        })?;
        self.server_version_num = parse_server_version(version)?;
        self.busy = false;
        Ok(())
    }

    fn store_parameter(
        &mut self,
        p: &postgres_protocol::message::backend::ParameterStatusBody,
    ) -> Result<()> {
        let name = p
            .name()
            .map_err(|e| self.violation(Error::protocol(format!("bad ParameterStatus: {e}"))))?;
        let value = p
            .value()
            .map_err(|e| self.violation(Error::protocol(format!("bad ParameterStatus: {e}"))))?;
        self.parameters.insert(name.to_string(), value.to_string());
        Ok(())
    }

    fn password<'p>(&self, params: &'p ConnParams, method: &str) -> Result<&'p str> {
        params
            .password
            .as_deref()
            .ok_or_else(|| Error::PasswordRequired {
                server: self.server.clone(),
                user: params.user.clone(),
                method: method.to_string(),
            })
    }

    /// Refuses an authentication request that `channel_binding=require` does not allow, before
    /// anything (a password) is sent.
    fn require_binding(&self, params: &ConnParams) -> Result<()> {
        if params.ssl.channel_binding == ChannelBindingMode::Require {
            return Err(self.auth_failed(
                params,
                "channel binding required but not supported by server's authentication request",
            ));
        }
        Ok(())
    }

    /// Answers authentication requests until AuthenticationOk.
    async fn authenticate(&mut self, params: &ConnParams) -> Result<()> {
        let mut scram: Option<ScramSha256> = None;
        // Whether a SCRAM-SHA-256-PLUS exchange bound to this TLS session completed.
        let mut bound = false;
        let mut plus_in_progress = false;
        loop {
            let msg = match self.read_incoming().await? {
                Incoming::Message(m) => m,
                Incoming::Notice(n) => {
                    log_notice(&self.server, &n);
                    continue;
                }
                Incoming::Error(e) => {
                    self.server_rejected = true;
                    // Class 28: invalid authorization (bad password, no pg_hba.conf entry, ...).
                    if e.code.starts_with("28") {
                        return Err(Error::Authentication {
                            server: self.server.clone(),
                            user: params.user.clone(),
                            message: e.message,
                        });
                    }
                    return Err(self.server_error(e));
                }
                Incoming::CopyBoth(r) => {
                    return Err(self.violation(unexpected_copy_both(&r, "authentication")))
                }
            };
            match msg {
                Message::AuthenticationOk => {
                    if scram.is_some() {
                        return Err(self.auth_failed(
                            params,
                            "server accepted SCRAM without sending its final message",
                        ));
                    }
                    if params.ssl.channel_binding == ChannelBindingMode::Require && !bound {
                        return Err(self.auth_failed(
                            params,
                            "channel binding required, but server authenticated client without channel binding",
                        ));
                    }
                    return Ok(());
                }
                Message::AuthenticationCleartextPassword => {
                    self.require_binding(params)?;
                    let pw = self.password(params, "password")?;
                    frontend::password_message(pw.as_bytes(), &mut self.write_buf)
                        .map_err(|e| Error::conninfo(format!("cannot send password: {e}")))?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    self.require_binding(params)?;
                    let pw = self.password(params, "md5")?;
                    let hash = md5_hash(params.user.as_bytes(), pw.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(|e| Error::conninfo(format!("cannot send password: {e}")))?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = Vec::new();
                    let mut iter = body.mechanisms();
                    while let Some(m) = iter.next().map_err(|e| {
                        self.violation(Error::protocol(format!("bad SASL mechanism list: {e}")))
                    })? {
                        mechanisms.push(m.to_string());
                    }
                    let offered = |m: &str| mechanisms.iter().any(|x| x == m);
                    let end_point = match params.ssl.channel_binding {
                        ChannelBindingMode::Disable => None,
                        _ => self.tls_end_point.clone(),
                    };
                    // libpq's choice: PLUS when offered and bindable; "y" (supported, not
                    // offered) over TLS; "n" without binding data.
                    let (mechanism, binding) = match end_point {
                        Some(data) if offered(SCRAM_SHA_256_PLUS) => (
                            SCRAM_SHA_256_PLUS,
                            ChannelBinding::tls_server_end_point(data),
                        ),
                        Some(_) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
                        None => (SCRAM_SHA_256, ChannelBinding::unsupported()),
                    };
                    if params.ssl.channel_binding == ChannelBindingMode::Require
                        && mechanism != SCRAM_SHA_256_PLUS
                    {
                        let why = if !self.encrypted {
                            format!(
                                "channel binding is required (channel_binding=require), but the connection to {} is not encrypted",
                                self.server
                            )
                        } else if !offered(SCRAM_SHA_256_PLUS) {
                            "channel binding is required, but server did not offer an authentication method that supports channel binding".to_string()
                        } else {
                            "channel binding is required, but the server certificate's signature algorithm defines no hash for it".to_string()
                        };
                        return Err(self.auth_failed(params, &why));
                    }
                    if !offered(mechanism) {
                        return Err(Error::UnsupportedAuthentication {
                            server: self.server.clone(),
                            method: format!("SASL ({})", mechanisms.join(", ")),
                        });
                    }
                    let pw = self.password(params, mechanism)?;
                    let state = ScramSha256::new(pw.as_bytes(), binding);
                    frontend::sasl_initial_response(
                        mechanism,
                        state.message(),
                        &mut self.write_buf,
                    )
                    .map_err(|e| Error::io("building SASL message", e))?;
                    plus_in_progress = mechanism == SCRAM_SHA_256_PLUS;
                    scram = Some(state);
                    self.flush().await?;
                }
                Message::AuthenticationSaslContinue(body) => {
                    let state = scram.as_mut().ok_or_else(|| {
                        Error::protocol("SASL continue without SASL start").at_server(&self.server)
                    })?;
                    state.update(body.data()).map_err(|e| {
                        self.auth_failed(params, &format!("SCRAM exchange failed: {e}"))
                    })?;
                    frontend::sasl_response(state.message(), &mut self.write_buf)
                        .map_err(|e| Error::io("building SASL message", e))?;
                    self.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut state = scram.take().ok_or_else(|| {
                        Error::protocol("SASL final without SASL start").at_server(&self.server)
                    })?;
                    // Proves the server knows the password too: never skip.
                    state.finish(body.data()).map_err(|e| {
                        self.auth_failed(
                            params,
                            &format!("server's SCRAM signature is invalid: {e}"),
                        )
                    })?;
                    bound = plus_in_progress;
                    // AuthenticationOk follows; a pending `scram` is no longer expected.
                }
                Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                    return Err(self.unsupported_auth("GSSAPI"))
                }
                Message::AuthenticationSspi => return Err(self.unsupported_auth("SSPI")),
                Message::AuthenticationKerberosV5 => {
                    return Err(self.unsupported_auth("Kerberos V5"))
                }
                Message::AuthenticationScmCredential => {
                    return Err(self.unsupported_auth("SCM credentials"))
                }
                other => {
                    return Err(self.violation(unexpected(message_name(&other), "authentication")))
                }
            }
        }
    }

    fn unsupported_auth(&self, method: &str) -> Error {
        Error::UnsupportedAuthentication {
            server: self.server.clone(),
            method: method.to_string(),
        }
    }

    fn auth_failed(&self, params: &ConnParams, message: &str) -> Error {
        Error::Authentication {
            server: self.server.clone(),
            user: params.user.clone(),
            message: message.to_string(),
        }
    }

    fn violation(&self, e: Error) -> Error {
        e.at_server(&self.server)
    }

    fn server_error(&self, e: DbError) -> Error {
        Error::Server {
            server: self.server.clone(),
            error: Box::new(e),
        }
    }

    async fn flush(&mut self) -> Result<()> {
        let server = &self.server;
        self.socket
            .write_all(&self.write_buf)
            .await
            .map_err(|e| Error::io(format!("sending to server {server}"), e))?;
        self.socket
            .flush()
            .await
            .map_err(|e| Error::io(format!("sending to server {server}"), e))?;
        self.write_buf.clear();
        Ok(())
    }

    /// Reads the next backend message.
    async fn read_incoming(&mut self) -> Result<Incoming> {
        loop {
            if let Some((tag, len)) = peek_frame(&self.read_buf).map_err(|e| self.violation(e))? {
                match tag {
                    ERROR_RESPONSE_TAG | NOTICE_RESPONSE_TAG | COPY_BOTH_RESPONSE_TAG => {
                        let frame = self.read_buf.split_to(len);
                        let body = &frame[5..];
                        return match tag {
                            ERROR_RESPONSE_TAG => Ok(Incoming::Error(
                                parse_error_fields(body).map_err(|e| self.violation(e))?,
                            )),
                            NOTICE_RESPONSE_TAG => Ok(Incoming::Notice(
                                parse_error_fields(body).map_err(|e| self.violation(e))?,
                            )),
                            _ => Ok(Incoming::CopyBoth(
                                parse_copy_both_response(body).map_err(|e| self.violation(e))?,
                            )),
                        };
                    }
                    _ => {
                        return match Message::parse(&mut self.read_buf) {
                            Ok(Some(m)) => Ok(Incoming::Message(m)),
                            Ok(None) => {
                                Err(self
                                    .violation(Error::protocol("incomplete message after framing")))
                            }
                            Err(e) => Err(self.violation(Error::protocol(format!(
                                "cannot decode message of type '{}': {e}",
                                char::from(tag).escape_default()
                            )))),
                        };
                    }
                }
            }
            self.read_buf.reserve(READ_CHUNK);
            let n = self
                .socket
                .read_buf(&mut self.read_buf)
                .await
                .map_err(|e| Error::io(format!("reading from server {}", self.server), e))?;
            if n == 0 {
                return Err(
                    self.violation(Error::protocol("server closed the connection unexpectedly"))
                );
            }
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.busy {
            return Err(Error::ConnectionBroken {
                server: self.server.clone(),
            });
        }
        Ok(())
    }

    /// Sends a simple query, marking the connection busy until its ReadyForQuery.
    async fn send_query(&mut self, sql: &str) -> Result<()> {
        self.check_usable()?;
        frontend::query(sql, &mut self.write_buf).map_err(|e| Error::InvalidOption {
            option: "query".to_string(),
            reason: e.to_string(),
        })?;
        self.busy = true;
        self.flush().await
    }

    /// `server_version_num` from the startup parameters (e.g. 150018).
    pub fn server_version_num(&self) -> u32 {
        self.server_version_num
    }

    /// A startup parameter the server reported (ParameterStatus).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The server as named in messages (`host:port` or the socket path).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Runs a simple query and returns its rows as text (NULL = None). The rows of all result sets of
    /// a multi-statement query are concatenated.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.query_rows(sql, decode_row).await
    }

    /// Runs a simple query and decodes each row with `decode`.
    async fn query_rows<T>(
        &mut self,
        sql: &str,
        decode: fn(&DataRowBody) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.send_query(sql).await?;
        let mut rows = Vec::new();
        let mut failure: Option<DbError> = None;
        loop {
            match self.read_incoming().await? {
                Incoming::Message(m) => match m {
                    Message::ReadyForQuery(_) => break,
                    Message::RowDescription(_)
                    | Message::CommandComplete(_)
                    | Message::EmptyQueryResponse => {}
                    Message::DataRow(row) => {
                        rows.push(decode(&row).map_err(|e| self.violation(e))?)
                    }
                    Message::ParameterStatus(p) => self.store_parameter(&p)?,
                    other => {
                        return Err(
                            self.violation(unexpected(message_name(&other), "a simple query"))
                        )
                    }
                },
                Incoming::Error(e) => {
                    failure.get_or_insert(e);
                }
                Incoming::Notice(n) => log_notice(&self.server, &n),
                Incoming::CopyBoth(r) => {
                    return Err(self.violation(unexpected_copy_both(&r, "a simple query")))
                }
            }
        }
        self.busy = false;
        match failure {
            Some(e) => Err(self.server_error(e)),
            None => Ok(rows),
        }
    }

    /// IDENTIFY_SYSTEM.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let bad = |what: &str| {
            Error::protocol(format!("IDENTIFY_SYSTEM: {what}")).at_server(&self.server)
        };
        let [row] = rows.as_slice() else {
            return Err(bad(&format!("expected 1 row, got {}", rows.len())));
        };
        if row.len() < 4 {
            return Err(bad(&format!("expected 4 columns, got {}", row.len())));
        }
        let systemid = row[0].clone().ok_or_else(|| bad("systemid is NULL"))?;
        if systemid.is_empty() || !systemid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("systemid {systemid:?} is not a number")));
        }
        let timeline = row[1]
            .as_deref()
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| bad(&format!("timeline {:?} is not a number", row[1])))?;
        let xlogpos = row[2]
            .as_deref()
            .and_then(|t| t.parse::<Lsn>().ok())
            .ok_or_else(|| bad(&format!("xlogpos {:?} is not an LSN", row[2])))?;
        Ok(IdentifySystem {
            systemid,
            timeline,
            xlogpos,
            dbname: row[3].clone(),
        })
    }

    /// SHOW a setting (works on replication connections, e.g. `wal_segment_size`).
    ///
    /// `name` must be a plain (optionally dotted) setting name: it is sent as part of the command.
    pub async fn show(&mut self, name: &str) -> Result<String> {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !plain {
            return Err(Error::InvalidOption {
                option: "setting name".to_string(),
                reason: format!("{name:?} is not a plain setting name"),
            });
        }
        let rows = self.simple_query(&format!("SHOW {name}")).await?;
        match rows.as_slice() {
            [row] if row.len() == 1 => row[0].clone().ok_or_else(|| {
                Error::protocol(format!("SHOW {name} returned NULL")).at_server(&self.server)
            }),
            _ => {
                Err(Error::protocol(format!("SHOW {name}: expected one value"))
                    .at_server(&self.server))
            }
        }
    }

    /// The server's WAL segment size in bytes (`SHOW wal_segment_size`), validated.
    pub async fn wal_segment_size(&mut self) -> Result<u64> {
        let text = self.show("wal_segment_size").await?;
        let size = parse_size_setting(&text).ok_or_else(|| {
            Error::protocol(format!("wal_segment_size {text:?} is not a size"))
                .at_server(&self.server)
        })?;
        crate::validate_segment_size(size)?;
        Ok(size)
    }

    /// Runs BASE_BACKUP and feeds every stream to `sink`.
    ///
    /// Archives arrive in the order the server lists the tablespaces; their bytes are handed over as
    /// they are received. An error from the sink aborts the backup and leaves the connection
    /// unusable (drop it: the server then ends the backup).
    pub async fn base_backup(
        &mut self,
        opts: &BaseBackupOptions,
        sink: &mut dyn BaseBackupSink,
    ) -> Result<BaseBackupEnd> {
        let command = opts.command(self.server_version_num)?;
        self.send_query(&command).await?;
        let mut flow = BaseBackupFlow::new(self.server_version_num, opts.manifest);
        let mut failure: Option<DbError> = None;
        loop {
            match self.read_incoming().await? {
                Incoming::Message(Message::ReadyForQuery(_)) => break,
                Incoming::Message(Message::ParameterStatus(p)) => self.store_parameter(&p)?,
                // After an ErrorResponse the server only winds down: nothing more goes to the sink.
                Incoming::Message(_) if failure.is_some() => {}
                Incoming::Message(m) => flow.handle(m, sink).map_err(|e| self.violation(e))?,
                Incoming::Error(e) => {
                    failure.get_or_insert(e);
                }
                Incoming::Notice(n) => log_notice(&self.server, &n),
                Incoming::CopyBoth(r) => {
                    return Err(self.violation(unexpected_copy_both(&r, "BASE_BACKUP")))
                }
            }
        }
        self.busy = false;
        if let Some(e) = failure {
            return Err(self.server_error(e));
        }
        flow.finish().map_err(|e| self.violation(e))
    }

    /// UPLOAD_MANIFEST (PostgreSQL 17 and later): sends the manifest of the backup that the next
    /// `BASE_BACKUP ( INCREMENTAL )` on this connection is relative to. The server answers with
    /// CopyInResponse, takes the manifest as CopyData and checks it (its own checksum, that the
    /// WAL summaries since that backup are complete only when the backup starts).
    pub async fn upload_manifest(&mut self, manifest: &[u8]) -> Result<()> {
        /// Bytes of manifest per CopyData message.
        const PIECE: usize = 64 * 1024;
        if self.server_version_num < crate::protocol::INCREMENTAL_BACKUP_VERSION_NUM {
            return Err(Error::UnsupportedServerVersion {
                version: self.server_version_num.to_string(),
                reason: "incremental backups need PostgreSQL 17 or later".to_string(),
            });
        }
        self.send_query("UPLOAD_MANIFEST").await?;
        let mut failure: Option<DbError> = None;
        let mut sent = false;
        loop {
            match self.read_incoming().await? {
                Incoming::Message(Message::ReadyForQuery(_)) => break,
                Incoming::Message(Message::ParameterStatus(p)) => self.store_parameter(&p)?,
                Incoming::Message(Message::CopyInResponse(_)) if !sent && failure.is_none() => {
                    for piece in manifest.chunks(PIECE) {
                        frontend::CopyData::new(piece)
                            .map_err(|e| Error::io("sending the backup manifest", e))?
                            .write(&mut self.write_buf);
                        self.flush().await?;
                    }
                    frontend::copy_done(&mut self.write_buf);
                    self.flush().await?;
                    sent = true;
                }
                Incoming::Message(Message::CommandComplete(_)) => {}
                Incoming::Message(_) if failure.is_some() => {}
                Incoming::Message(other) => {
                    return Err(self.violation(unexpected(message_name(&other), "UPLOAD_MANIFEST")))
                }
                Incoming::Error(e) => {
                    failure.get_or_insert(e);
                }
                Incoming::Notice(n) => log_notice(&self.server, &n),
                Incoming::CopyBoth(r) => {
                    return Err(self.violation(unexpected_copy_both(&r, "UPLOAD_MANIFEST")))
                }
            }
        }
        self.busy = false;
        if let Some(e) = failure {
            return Err(self.server_error(e));
        }
        if !sent {
            return Err(self.violation(Error::protocol(
                "UPLOAD_MANIFEST ended without asking for the manifest",
            )));
        }
        Ok(())
    }

    /// Ends the session politely (Terminate) and closes the socket.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.write_buf);
        self.flush().await?;
        let _ = self.socket.shutdown().await;
        Ok(())
    }

    /// A client over an already open socket: the scripted servers of the tests and the fuzz
    /// targets play the server's side.
    pub(crate) async fn from_socket(socket: Box<dyn Socket>, params: &ConnParams) -> Result<Self> {
        let mut client = ReplicationClient {
            socket,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            server: params.server_display(),
            parameters: HashMap::new(),
            server_version_num: 0,
            busy: true,
            encrypted: false,
            tls_end_point: None,
            server_rejected: false,
        };
        client.startup(params).await?;
        Ok(client)
    }
}

mod base_backup;
mod slots;
mod stream;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use stream::{ReplicationMessage, ReplicationStream, StreamEnd};
