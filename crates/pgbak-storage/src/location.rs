//! Repository URLs: which store, which bucket or container, which prefix. Parsed in every build,
//! so that a build without a backend can still say which feature it lacks.

use crate::{validate_key, Error, Result};
use std::fmt;
use std::path::PathBuf;

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A folder on a local filesystem.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
    /// `azure://container/prefix` (the account comes from the credentials or options), or
    /// `https://ACCOUNT.blob.core.windows.net/container/prefix` (`account` and `endpoint` set).
    Azure {
        account: Option<String>,
        endpoint: Option<String>,
        container: String,
        prefix: String,
    },
    /// `gs://bucket/prefix`.
    Gcs { bucket: String, prefix: String },
}

impl Location {
    /// Parses a repository URL or local path.
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |detail: &str| Error::Config {
            repo: redact_url(url),
            detail: detail.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest).map_err(|d| bad(&d))?;
            check_bucket(&bucket, "S3 bucket", 3, 63, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
            })
            .map_err(|d| bad(&d))?;
            return Ok(Location::S3 { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = split_bucket(rest).map_err(|d| bad(&d))?;
            check_bucket(&bucket, "GCS bucket", 3, 222, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_'
            })
            .map_err(|d| bad(&d))?;
            return Ok(Location::Gcs { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("azure://") {
            let (container, prefix) = split_bucket(rest).map_err(|d| bad(&d))?;
            check_container(&container).map_err(|d| bad(&d))?;
            return Ok(Location::Azure {
                account: None,
                endpoint: None,
                container,
                prefix,
            });
        }
        if let Some(rest) = url.strip_prefix("https://") {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let Some((account, _)) = host
                .split_once(".blob.core.")
                .filter(|(a, _)| !a.is_empty() && !a.contains('.'))
            else {
                return Err(bad("an https:// repository must be an Azure Blob URL \
                     (https://ACCOUNT.blob.core.windows.net/container/prefix)"));
            };
            if !account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return Err(bad(
                    "the Azure storage account name must be lowercase letters and digits",
                ));
            }
            let (container, prefix) = split_bucket(path).map_err(|d| bad(&d))?;
            check_container(&container).map_err(|d| bad(&d))?;
            return Ok(Location::Azure {
                account: Some(account.to_string()),
                endpoint: Some(format!("https://{host}")),
                container,
                prefix,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return local(path).map_err(|d| bad(&d));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(&format!(
                "unknown repository scheme {scheme:?} (expected a local path, s3://, azure://, \
                 https://ACCOUNT.blob.core.windows.net/ or gs://)"
            )));
        }
        local(url).map_err(|d| bad(&d))
    }

    /// The prefix (no leading or trailing '/') under which the repository's keys live.
    pub fn prefix(&self) -> &str {
        match self {
            Location::Local(_) => "",
            Location::S3 { prefix, .. }
            | Location::Azure { prefix, .. }
            | Location::Gcs { prefix, .. } => prefix,
        }
    }

    /// The name of the store, for messages.
    pub fn service(&self) -> &'static str {
        match self {
            Location::Local(_) => "local filesystem",
            Location::S3 { .. } => "Amazon S3",
            Location::Azure { .. } => "Azure Blob Storage",
            Location::Gcs { .. } => "Google Cloud Storage",
        }
    }

    /// The cargo feature of `pgbak-storage` that provides this backend.
    pub fn feature(&self) -> &'static str {
        match self {
            Location::Local(_) => "",
            Location::S3 { .. } => "s3",
            Location::Azure { .. } => "azure",
            Location::Gcs { .. } => "gcs",
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, head: String, prefix: &str| {
            if prefix.is_empty() {
                write!(f, "{head}")
            } else {
                write!(f, "{head}/{prefix}")
            }
        };
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } => join(f, format!("s3://{bucket}"), prefix),
            Location::Gcs { bucket, prefix } => join(f, format!("gs://{bucket}"), prefix),
            Location::Azure {
                endpoint: Some(endpoint),
                container,
                prefix,
                ..
            } => join(f, format!("{endpoint}/{container}"), prefix),
            Location::Azure {
                container, prefix, ..
            } => join(f, format!("azure://{container}"), prefix),
        }
    }
}

/// `url` without a query string or user info (where SAS tokens and passwords would be).
pub(crate) fn redact_url(url: &str) -> String {
    let mut s = url.split(['?', '#']).next().unwrap_or_default().to_string();
    if let Some(i) = s.find("://") {
        let after = &s[i + 3..];
        let host_end = after.find('/').unwrap_or(after.len());
        if let Some(at) = after[..host_end].rfind('@') {
            s = format!("{}{}", &s[..i + 3], &after[at + 1..]);
        }
    }
    s
}

fn local(path: &str) -> std::result::Result<Location, String> {
    if path.is_empty() {
        return Err("empty repository path".into());
    }
    if !path.starts_with('/') {
        return Err("a local repository path must be absolute".into());
    }
    Ok(Location::Local(PathBuf::from(path)))
}

fn split_bucket(rest: &str) -> std::result::Result<(String, String), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket or container name".into());
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        validate_key(prefix).map_err(|e| format!("bad prefix: {e}"))?;
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

fn check_bucket(
    name: &str,
    what: &str,
    min: usize,
    max: usize,
    ok: impl Fn(char) -> bool,
) -> std::result::Result<(), String> {
    if name.len() < min || name.len() > max || !name.chars().all(ok) {
        return Err(format!(
            "{what} name {name:?} is not valid ({min} to {max} lowercase letters, digits, '-', '.')"
        ));
    }
    Ok(())
}

fn check_container(name: &str) -> std::result::Result<(), String> {
    check_bucket(name, "Azure container", 3, 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            Location::parse("s3://my-bucket/pg/main/").unwrap(),
            Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "pg/main".into()
            }
        );
        assert_eq!(
            Location::parse("gs://b_1").unwrap(),
            Location::Gcs {
                bucket: "b_1".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Location::parse("azure://backups/x").unwrap(),
            Location::Azure {
                account: None,
                endpoint: None,
                container: "backups".into(),
                prefix: "x".into()
            }
        );
        let l = Location::parse("https://acct1.blob.core.windows.net/cont/a/b?sv=secret").unwrap();
        assert_eq!(
            l,
            Location::Azure {
                account: Some("acct1".into()),
                endpoint: Some("https://acct1.blob.core.windows.net".into()),
                container: "cont".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            l.to_string(),
            "https://acct1.blob.core.windows.net/cont/a/b"
        );
        assert_eq!(
            Location::parse("/var/lib/pgbak").unwrap(),
            Location::Local("/var/lib/pgbak".into())
        );
        assert_eq!(
            Location::parse("file:///srv/x").unwrap(),
            Location::Local("/srv/x".into())
        );
    }

    #[test]
    fn refuses_bad_urls_without_echoing_secrets() {
        for url in [
            "s3://",
            "s3://A",
            "s3://bucket/../x",
            "gs://b/a//c",
            "azure://UP/x",
            "ftp://x/y",
            "relative/path",
            "https://example.com/c/p",
        ] {
            assert!(Location::parse(url).is_err(), "{url} accepted");
        }
        let e = Location::parse("https://evil.example.com/c?sig=SECRET").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert_eq!(
            redact_url("https://user:pw@host/path?sig=x"),
            "https://host/path"
        );
    }
}
