//! TLS for both of pgbak's connection kinds (the SQL connection through tokio-postgres and the
//! replication client), with libpq's semantics written once:
//!
//! - which attempts an `sslmode` makes, and when a failed first attempt allows a second one
//!   (`prefer`: TLS, then cleartext if TLS failed; `allow`: cleartext, then TLS if the server
//!   refused it) — [`TlsConnector::first_attempt`], [`TlsConnector::next_attempt`];
//! - SSLRequest or direct negotiation (`sslnegotiation=direct`, ALPN `postgresql`, PostgreSQL 17+)
//!   and the handshake — [`TlsConnector::negotiate`];
//! - what is checked of the server certificate (chain and revocation when there are trusted roots,
//!   host name for `verify-full`), the client certificate and its key file;
//! - the `tls-server-end-point` data for SCRAM-SHA-256-PLUS — [`MaybeTls::tls_server_end_point`].
//!
//! Unix-socket connections are never encrypted, whatever `sslmode` says, as with libpq.

mod cert;
mod config;
#[cfg(test)]
mod tests;
mod verify;

use crate::conninfo::{SslCertMode, SslMode, SslNegotiation, SslParams};
use crate::protocol::parse_error_fields;
use crate::{ConnParams, Error, Result};
use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What one connection attempt does about encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// No TLS.
    Plain,
    /// TLS when the server offers it, else cleartext on the same connection.
    TlsIfOffered,
    /// TLS or failure.
    TlsRequired,
}

/// The code of PostgreSQL's SSLRequest packet.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// An ErrorResponse to SSLRequest longer than this is not believed (libpq's limit is similar).
const MAX_NEGOTIATION_ERROR: usize = 30_000;

/// Sets up TLS for the connection attempts to one server.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    ssl: SslParams,
    /// host:port, for messages.
    server: String,
    /// The name SNI sends and `verify-full` checks (`host`), or `hostaddr` alone.
    host_name: Option<String>,
    /// The address connected to, used as rustls's server name when there is no host name.
    address: String,
    unix_socket: bool,
    /// Whether the current attempt got as far as a TLS handshake.
    tls_attempted: Arc<AtomicBool>,
}

impl TlsConnector {
    /// A connector for `params`. Nothing is read yet: certificate and key files are read when an
    /// attempt starts TLS, as libpq does.
    pub fn new(params: &ConnParams) -> Self {
        TlsConnector {
            ssl: params.ssl.clone(),
            server: params.server_display(),
            host_name: params.server_name.clone(),
            address: params.host.clone(),
            unix_socket: params.is_unix_socket(),
            tls_attempted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.ssl.mode
    }

    /// The first attempt's encryption.
    pub fn first_attempt(&self) -> Encryption {
        if self.unix_socket {
            return Encryption::Plain;
        }
        match self.ssl.mode {
            SslMode::Disable | SslMode::Allow => Encryption::Plain,
            SslMode::Prefer => Encryption::TlsIfOffered,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Encryption::TlsRequired,
        }
    }

    /// After the first attempt failed: the second attempt libpq would make, if any. `prefer`
    /// retries in cleartext when the failure came after TLS had started (a failed handshake,
    /// or a server that refused the encrypted session); `allow` retries with TLS when the
    /// server refused the cleartext session (`server_rejected`: it sent an ErrorResponse).
    pub fn next_attempt(&self, server_rejected: bool) -> Option<Encryption> {
        if self.unix_socket {
            return None;
        }
        match self.ssl.mode {
            SslMode::Prefer if self.tls_attempted() => Some(Encryption::Plain),
            SslMode::Allow if server_rejected && !self.tls_attempted() => {
                Some(Encryption::TlsIfOffered)
            }
            _ => None,
        }
    }

    /// Whether the last [`negotiate`](Self::negotiate) got as far as starting a TLS handshake.
    pub fn tls_attempted(&self) -> bool {
        self.tls_attempted.load(Ordering::SeqCst)
    }

    fn tls_error(&self, message: impl Into<String>) -> Error {
        Error::Tls {
            server: self.server.clone(),
            message: message.into(),
        }
    }

    fn rustls_server_name(&self) -> Result<ServerName<'static>> {
        let name = self.host_name.as_deref().unwrap_or(&self.address);
        ServerName::try_from(name.to_string())
            .map_err(|_| self.tls_error(format!("host name \"{name}\" cannot be used for TLS")))
    }

    /// Negotiates encryption on a fresh connection, before the startup packet: sends SSLRequest
    /// (or starts TLS directly with `sslnegotiation=direct`) and runs the handshake.
    pub async fn negotiate<S>(&self, mut stream: S, encryption: Encryption) -> Result<MaybeTls<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.tls_attempted.store(false, Ordering::SeqCst);
        if encryption == Encryption::Plain || self.unix_socket {
            return Ok(MaybeTls::Plain(stream));
        }
        let direct = self.ssl.negotiation == SslNegotiation::Direct;
        if !direct {
            let io_err =
                |e: io::Error| Error::io(format!("SSL negotiation with {}", self.server), e);
            stream.write_all(&SSL_REQUEST).await.map_err(io_err)?;
            stream.flush().await.map_err(io_err)?;
            // Exactly one byte: anything the server sends before the handshake must not be
            // taken for part of the encrypted session.
            let mut answer = [0u8; 1];
            stream.read_exact(&mut answer).await.map_err(io_err)?;
            match answer[0] {
                b'S' => {}
                b'N' if encryption == Encryption::TlsRequired => {
                    return Err(Error::TlsRequired {
                        server: self.server.clone(),
                        sslmode: self.ssl.mode,
                    })
                }
                b'N' => return Ok(MaybeTls::Plain(stream)),
                b'E' => return Err(self.negotiation_error(&mut stream).await),
                other => {
                    return Err(Error::protocol(format!(
                        "received invalid response to SSL negotiation: {:?}",
                        char::from(other)
                    ))
                    .at_server(&self.server))
                }
            }
        }
        self.tls_attempted.store(true, Ordering::SeqCst);
        let built =
            config::build(&self.ssl, self.host_name.as_deref()).map_err(|m| self.tls_error(m))?;
        let name = self.rustls_server_name()?;
        let tls = tokio_rustls::TlsConnector::from(built.config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| {
                let mut message = built
                    .failure
                    .take()
                    .unwrap_or_else(|| format!("SSL handshake failed: {e}"));
                if direct {
                    message.push_str(
                        " (sslnegotiation=direct needs a PostgreSQL 17 or later server; older \
                         servers close the connection on a direct TLS handshake)",
                    );
                }
                self.tls_error(message)
            })?;
        let (_, session) = tls.get_ref();
        if direct && session.alpn_protocol() != Some(config::ALPN_POSTGRESQL) {
            return Err(self.tls_error(
                "direct SSL connection was established without ALPN protocol negotiation extension",
            ));
        }
        if self.ssl.certmode == SslCertMode::Require && !built.cert_requested.load(Ordering::SeqCst)
        {
            return Err(
                self.tls_error("server did not request an SSL certificate (sslcertmode=require)")
            );
        }
        Ok(MaybeTls::Tls(Box::new(tls)))
    }

    /// Reads the ErrorResponse a server sent instead of answering SSLRequest.
    async fn negotiation_error<S: AsyncRead + Unpin>(&self, stream: &mut S) -> Error {
        let mut len = [0u8; 4];
        let fallback = || {
            Error::protocol("server sent an error response during SSL exchange")
                .at_server(&self.server)
        };
        if stream.read_exact(&mut len).await.is_err() {
            return fallback();
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(4..=MAX_NEGOTIATION_ERROR).contains(&len) {
            return fallback();
        }
        let mut body = vec![0; len - 4];
        if stream.read_exact(&mut body).await.is_err() {
            return fallback();
        }
        match parse_error_fields(&body) {
            Ok(e) => Error::Server {
                server: self.server.clone(),
                error: Box::new(e),
            },
            Err(_) => fallback(),
        }
    }
}

/// A connection that may be encrypted.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// Cleartext.
    Plain(S),
    /// Encrypted.
    Tls(Box<tokio_rustls::client::TlsStream<S>>),
}

impl<S> MaybeTls<S> {
    /// Whether the connection is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The `tls-server-end-point` channel-binding data (RFC 5929) of an encrypted connection:
    /// the hash of the server's certificate. `None` in cleartext, or when the certificate's
    /// signature algorithm defines no hash for it.
    pub fn tls_server_end_point(&self) -> Option<Vec<u8>> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(t) => {
                let certs = t.get_ref().1.peer_certificates()?;
                cert::tls_server_end_point(certs.first()?)
            }
        }
    }

    /// The negotiated TLS version (`TLSv1.3`, ...), for reports.
    pub fn protocol_version(&self) -> Option<&'static str> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(t) => t.get_ref().1.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
                _ => "TLS",
            }),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
}
