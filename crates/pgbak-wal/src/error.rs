//! The one error type of this crate: every failure names what was being read (the offending text,
//! the file, the server) so that an operator can act on the message alone.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A message sent by the server in an ErrorResponse (or NoticeResponse).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbError {
    /// Severity as the server sent it (`ERROR`, `FATAL`, `PANIC`, `NOTICE`, ...), non-localized when
    /// the server provided that form.
    pub severity: String,
    /// SQLSTATE code, e.g. `28P01`.
    pub code: String,
    /// Primary message.
    pub message: String,
    /// Optional detail line.
    pub detail: Option<String>,
    /// Optional hint line.
    pub hint: Option<String>,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(detail) = &self.detail {
            write!(f, "; DETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; HINT: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Text that should have been an LSN (`X/Y`, hexadecimal).
    #[error(
        "invalid LSN {text:?}: expected two hexadecimal numbers of 1 to 8 digits separated by '/'"
    )]
    InvalidLsn {
        /// The offending text.
        text: String,
    },

    /// A WAL segment size that PostgreSQL cannot have.
    #[error(
        "invalid WAL segment size {size} bytes: must be a power of two between 1 MiB and 1 GiB"
    )]
    InvalidSegmentSize {
        /// The offending size in bytes.
        size: u64,
    },

    /// A file name that is not a WAL segment, partial segment, backup history or timeline history file.
    #[error("invalid WAL file name {name:?}: {reason}")]
    InvalidWalFileName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A timeline history file that does not follow PostgreSQL's format.
    #[error("invalid history file of timeline {tli}, line {line}: {reason}: {text:?}")]
    InvalidHistory {
        /// Timeline the history file is for.
        tli: u32,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A backup_label that cannot be understood.
    #[error("invalid backup label: {reason}{}", text.as_ref().map(|t| format!(": {t:?}")).unwrap_or_default())]
    InvalidBackupLabel {
        /// What is wrong.
        reason: String,
        /// The offending line, when one is to blame.
        text: Option<String>,
    },

    /// A connection string or connection setting that libpq would also reject. Never contains a password.
    #[error("invalid connection parameters: {reason}")]
    InvalidConninfo {
        /// What is wrong, naming the keyword or variable.
        reason: String,
    },

    /// A BASE_BACKUP or other command that cannot be built for this server.
    #[error("unsupported PostgreSQL server version {version}: {reason}")]
    UnsupportedServerVersion {
        /// `server_version_num` of the server, or the version text when it could not be parsed.
        version: String,
        /// Why it is not supported.
        reason: String,
    },

    /// An I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (and on which file or server).
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The server answered with an ErrorResponse.
    #[error("server {server}: {error}")]
    Server {
        /// The server (host:port or socket path).
        server: String,
        /// What the server said.
        error: Box<DbError>,
    },

    /// A command argument that cannot be sent (e.g. a label with a NUL byte, a malformed setting name).
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// What the argument is.
        option: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The server sent something the protocol does not allow at this point.
    #[error("protocol violation{}: {message}", from_server(server))]
    Protocol {
        /// The server (host:port or socket path).
        server: String,
        /// What was unexpected.
        message: String,
    },

    /// The server rejected the credentials, or the SCRAM exchange failed.
    #[error("authentication of user {user:?} failed on server {server}: {message}")]
    Authentication {
        /// The server (host:port or socket path).
        server: String,
        /// The user name sent.
        user: String,
        /// The server's message (e.g. `password authentication failed for user "x"`).
        message: String,
    },

    /// The server asks for a password and none was found (conninfo, PGPASSWORD, password file).
    #[error(
        "server {server} requested {method} authentication for user {user:?} but no password was supplied \
         (set it in the connection string, PGPASSWORD or the password file)"
    )]
    PasswordRequired {
        /// The server (host:port or socket path).
        server: String,
        /// The user name sent.
        user: String,
        /// The authentication method the server asked for.
        method: String,
    },

    /// The server asks for an authentication method this client does not implement.
    #[error("server {server} requested unsupported authentication method {method}")]
    UnsupportedAuthentication {
        /// The server (host:port or socket path).
        server: String,
        /// The method (e.g. `GSSAPI`, `SASL mechanisms [...]`).
        method: String,
    },

    /// TLS could not be set up with the server (files, handshake), or its certificate was
    /// refused.
    #[error("SSL connection to server {server} failed: {message}")]
    Tls {
        /// The server (host:port).
        server: String,
        /// What went wrong, naming the file or the certificate check.
        message: String,
    },

    /// The server does not offer TLS although the connection settings demand it.
    #[error(
        "server {server} does not support SSL, but sslmode={sslmode} requires an encrypted connection"
    )]
    TlsRequired {
        /// The server (host:port).
        server: String,
        /// The sslmode that was asked for.
        sslmode: crate::conninfo::SslMode,
    },

    /// Connecting and authenticating took longer than connect_timeout.
    #[error("timed out after {seconds} s connecting to server {server}")]
    ConnectTimeout {
        /// The server (host:port or socket path).
        server: String,
        /// The timeout that expired.
        seconds: u64,
    },

    /// The connection is unusable after an earlier failure left it in the middle of an exchange.
    #[error("connection to server {server} is no longer usable after an earlier error")]
    ConnectionBroken {
        /// The server (host:port or socket path).
        server: String,
    },

    /// A file of the WAL receiver's directory could not be created, written, synced or renamed.
    #[error("cannot {op} {}: {source}", path.display())]
    File {
        /// What was being done (`write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The SQLSTATE code when the server reported the error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Server { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A local file operation of the WAL receiver failed.
    pub(crate) fn file(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::File {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn conninfo(reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        Error::InvalidConninfo {
            // Messages never quote a password, and this keeps it so if one ever did.
            reason: crate::redact::redact(&reason).into_owned(),
        }
    }

    /// A protocol violation found by a pure parser, which does not know the server yet.
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol {
            server: String::new(),
            message: message.into(),
        }
    }

    /// Names the server in errors raised by pure parsers.
    pub(crate) fn at_server(self, name: &str) -> Self {
        match self {
            Error::Protocol { server, message } if server.is_empty() => Error::Protocol {
                server: name.to_string(),
                message,
            },
            other => other,
        }
    }
}

fn from_server(server: &str) -> String {
    if server.is_empty() {
        String::new()
    } else {
        format!(" from server {server}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_display_has_code_detail_and_hint() {
        let e = Error::Server {
            server: "127.0.0.1:5432".into(),
            error: Box::new(DbError {
                severity: "ERROR".into(),
                code: "42704".into(),
                message: "unrecognized configuration parameter \"x\"".into(),
                detail: Some("d".into()),
                hint: Some("h".into()),
            }),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("server 127.0.0.1:5432: ERROR: unrecognized"),
            "{s}"
        );
        assert!(s.contains("SQLSTATE 42704"), "{s}");
        assert!(s.contains("DETAIL: d") && s.contains("HINT: h"), "{s}");
        assert_eq!(e.sqlstate(), Some("42704"));
    }

    #[test]
    fn backup_label_error_shows_line_when_known() {
        let e = Error::InvalidBackupLabel {
            reason: "bad".into(),
            text: Some("X: y".into()),
        };
        assert_eq!(e.to_string(), "invalid backup label: bad: \"X: y\"");
        let e = Error::InvalidBackupLabel {
            reason: "bad".into(),
            text: None,
        };
        assert_eq!(e.to_string(), "invalid backup label: bad");
    }

    #[test]
    fn protocol_errors_gain_the_server_name() {
        let e = Error::protocol("unexpected message");
        assert_eq!(e.to_string(), "protocol violation: unexpected message");
        let e = e.at_server("db:5432");
        assert_eq!(
            e.to_string(),
            "protocol violation from server db:5432: unexpected message"
        );
    }

    #[test]
    fn errors_are_small() {
        // Result<T, Error> travels through every call: keep it cheap to move.
        assert!(std::mem::size_of::<Error>() <= 128);
    }
}
