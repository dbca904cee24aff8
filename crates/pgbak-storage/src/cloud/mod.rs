//! What every cloud backend shares: the runtime the blocking trait waits on, one retry layer,
//! one multipart upload layer with bounded memory, one streaming reader, and the classification
//! of store answers into the few cases pgbak decides on.

pub(crate) mod digest;
#[cfg(feature = "http")]
pub(crate) mod http;
pub(crate) mod multipart;
pub(crate) mod reader;
pub(crate) mod retry;
pub(crate) mod runtime;

use crate::{Error, ObjectRef};
use std::fmt;
use std::time::Duration;

/// What a store's answer means to pgbak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// No such object.
    NotFound,
    /// No such bucket or container.
    NoSuchBucket,
    /// A condition (`If-None-Match: *`, `ifGenerationMatch=0`) failed: the key is taken.
    Exists,
    /// Credentials refused or insufficient.
    Auth,
    /// Slow down: 429, 503 SlowDown, ServerBusy.
    Throttled,
    /// A 5xx answer.
    Server,
    /// No answer in time.
    Timeout,
    /// Connection refused or reset, DNS failure, a body cut short.
    Connection,
    /// The bytes that arrived do not match their checksum: sent again.
    Checksum,
    /// A stored object does not match what was sent, and it cannot be sent again.
    Corrupt,
    /// Anything else (4xx, unparseable answers, configuration).
    Other,
}

/// An error of one request to a store, before it is given the repository's context.
#[derive(Debug, Clone)]
pub(crate) struct CloudError {
    pub class: Class,
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub attempts: u32,
}

impl CloudError {
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        CloudError {
            class,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            attempts: 1,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Whether the same request may succeed when sent again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.class,
            Class::Throttled | Class::Server | Class::Timeout | Class::Connection | Class::Checksum
        )
    }

    /// The class of an HTTP status with no more specific code.
    pub fn class_of_status(status: u16) -> Class {
        match status {
            404 => Class::NotFound,
            409 | 412 => Class::Exists,
            401 | 403 => Class::Auth,
            408 => Class::Timeout,
            429 | 503 => Class::Throttled,
            500..=599 => Class::Server,
            _ => Class::Other,
        }
    }

    /// The crate error, with the repository, operation and key.
    pub fn into_error(self, repo: &str, op: &'static str, key: Option<&str>) -> Error {
        let detail = self.to_string();
        let object = || ObjectRef::new(repo, key.unwrap_or_default());
        match self.class {
            Class::NotFound if key.is_some() => Error::NotFound(object()),
            Class::Exists if key.is_some() => Error::AlreadyExists(object()),
            Class::NoSuchBucket => Error::NoSuchBucket {
                repo: repo.to_string(),
                detail,
            },
            Class::Auth => Error::PermissionDenied {
                repo: repo.to_string(),
                op,
                key: key.map(str::to_string),
                detail,
            },
            Class::Timeout | Class::Connection => Error::Unreachable {
                repo: repo.to_string(),
                op,
                key: key.map(str::to_string),
                detail,
            },
            Class::Checksum | Class::Corrupt if key.is_some() => Error::Corrupt {
                object: object(),
                detail,
            },
            _ => Error::Remote {
                repo: repo.to_string(),
                op,
                key: key.map(str::to_string),
                detail,
            },
        }
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.code) {
            (Some(s), Some(c)) => write!(f, "{s} {c}: ")?,
            (Some(s), None) => write!(f, "HTTP {s}: ")?,
            (None, Some(c)) => write!(f, "{c}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// Joins the repository prefix and a key.
pub(crate) fn full_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

/// The prefix a listing asks the store for.
pub(crate) fn full_prefix(prefix: &str, sub: &str) -> String {
    if prefix.is_empty() {
        sub.to_string()
    } else {
        format!("{prefix}/{sub}")
    }
}

/// Turns a stored name back into a key of the repository (`None` for names outside it).
pub(crate) fn strip_prefix<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        Some(name)
    } else {
        name.strip_prefix(prefix)?.strip_prefix('/')
    }
}

/// Checks the listing prefix: "" or a relative name (it may end with '/').
pub(crate) fn validate_prefix(prefix: &str) -> crate::Result<()> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return if prefix.is_empty() {
            Ok(())
        } else {
            crate::validate_key(prefix)
        };
    }
    crate::validate_key(trimmed)
}

/// Installs ring as the process's TLS crypto provider unless one is installed already (reqwest
/// and Google's credential code use the process default).
pub(crate) fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(CloudError::class_of_status(503), Class::Throttled);
        assert_eq!(CloudError::class_of_status(500), Class::Server);
        assert_eq!(CloudError::class_of_status(412), Class::Exists);
        assert_eq!(CloudError::class_of_status(403), Class::Auth);
        assert!(CloudError::new(Class::Connection, "reset").is_transient());
        assert!(!CloudError::new(Class::Auth, "no").is_transient());
    }

    #[test]
    fn keys_and_prefixes_join() {
        assert_eq!(full_key("", "a"), "a");
        assert_eq!(full_key("p/q", "a"), "p/q/a");
        assert_eq!(strip_prefix("p", "p/a/b"), Some("a/b"));
        assert_eq!(strip_prefix("p", "pa/b"), None);
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("base/").is_ok());
        assert!(validate_prefix("base/2024").is_ok());
        assert!(validate_prefix("../").is_err());
        assert!(validate_prefix("/").is_err());
    }

    #[test]
    fn errors_get_the_repository_context() {
        let e = CloudError::new(Class::Exists, "taken")
            .with_status(412)
            .into_error("s3://b/p", "commit", Some("wals/1"));
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
        let e = CloudError::new(Class::Connection, "refused").into_error("gs://b", "list", None);
        assert_eq!(e.kind(), crate::ErrorKind::Unreachable);
        assert!(e.to_string().contains("gs://b"), "{e}");
    }
}
