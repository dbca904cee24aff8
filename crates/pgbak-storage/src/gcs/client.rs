//! A small client of the GCS JSON API over reqwest, with credentials from Google's official
//! `google-cloud-auth` (service-account JSON, application default credentials, metadata
//! server), or none for an emulator (`STORAGE_EMULATOR_HOST`, as Google's own clients do).

use crate::cloud::http::{retry_after, send_error};
use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Class, CloudError};
use crate::options::env;
use crate::CloudOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::sync::atomic::AtomicBool;

/// What every request of one repository shares.
pub(crate) struct GcsInner {
    pub http: reqwest::Client,
    /// `https://storage.googleapis.com` or the emulator's URL.
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub repo: String,
    pub auth: GcsAuth,
    pub policy: RetryPolicy,
    pub page_size: u32,
    pub bucket_seen: AtomicBool,
}

pub(crate) enum GcsAuth {
    /// An emulator: no credentials.
    Anonymous,
    /// Google credentials (they cache and refresh their tokens).
    Google(google_cloud_auth::credentials::Credentials),
}

const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// Object names are one path segment in the JSON API: everything but unreserved characters is
/// escaped, '/' included.
const NAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NAME).to_string()
}

/// The emulator host from the options or `STORAGE_EMULATOR_HOST`, as a URL.
pub(crate) fn emulator(opts: &CloudOptions) -> Option<String> {
    let host = opts
        .gcs_emulator_host
        .clone()
        .or_else(|| env("STORAGE_EMULATOR_HOST"))?;
    let host = host.trim_end_matches('/');
    Some(if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    })
}

/// The endpoint and the credentials.
pub(crate) fn resolve(opts: &CloudOptions) -> Result<(String, GcsAuth), String> {
    use google_cloud_auth::credentials;
    if let Some(e) = emulator(opts) {
        return Ok((e, GcsAuth::Anonymous));
    }
    let endpoint = opts
        .endpoint_url
        .clone()
        .unwrap_or_else(|| "https://storage.googleapis.com".into())
        .trim_end_matches('/')
        .to_string();
    let creds = match &opts.gcp_credentials_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            let built = match json["type"].as_str() {
                Some("service_account") => credentials::service_account::Builder::new(json)
                    .with_access_specifier(
                        credentials::service_account::AccessSpecifier::from_scopes([SCOPE]),
                    )
                    .build(),
                Some("authorized_user") => credentials::user_account::Builder::new(json)
                    .with_scopes([SCOPE])
                    .build(),
                Some("external_account") => credentials::external_account::Builder::new(json)
                    .with_scopes([SCOPE])
                    .build(),
                other => {
                    return Err(format!(
                        "{}: unsupported credentials type {other:?}",
                        path.display()
                    ))
                }
            };
            built.map_err(|e| format!("credentials {}: {e}", path.display()))?
        }
        // Application default credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the
        // metadata server.
        None => credentials::Builder::default()
            .with_scopes([SCOPE])
            .build()
            .map_err(|e| format!("application default credentials: {e}"))?,
    };
    Ok((endpoint, GcsAuth::Google(creds)))
}

impl GcsInner {
    /// URL of an object's metadata (JSON API).
    pub fn object_url(&self, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            enc(&self.bucket),
            enc(name)
        )
    }

    /// URL of the bucket's objects.
    pub fn objects_url(&self) -> String {
        format!("{}/storage/v1/b/{}/o", self.endpoint, enc(&self.bucket))
    }

    /// URL of uploads into the bucket.
    pub fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.endpoint,
            enc(&self.bucket)
        )
    }

    /// Adds the credentials to a request.
    pub async fn authorize(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, CloudError> {
        match &self.auth {
            GcsAuth::Anonymous => Ok(rb),
            GcsAuth::Google(c) => {
                use google_cloud_auth::credentials::CacheableResource;
                match c.headers(http_types::Extensions::new()).await {
                    Ok(CacheableResource::New { data, .. }) => Ok(rb.headers(data)),
                    Ok(CacheableResource::NotModified) => Ok(rb),
                    Err(e) => Err(CloudError::new(
                        if e.is_transient() {
                            Class::Connection
                        } else {
                            Class::Auth
                        },
                        format!("cannot get Google credentials: {e}"),
                    )),
                }
            }
        }
    }

    /// Sends a request (no retry) and returns the answer when it is a success (2xx, or 308 for
    /// resumable uploads).
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, CloudError> {
        let rb = self.authorize(rb).await?;
        let resp = rb.send().await.map_err(send_error)?;
        let s = resp.status().as_u16();
        if resp.status().is_success() || s == 308 {
            return Ok(resp);
        }
        Err(error_of(resp).await)
    }
}

/// The error an unsuccessful answer means.
pub(crate) async fn error_of(resp: reqwest::Response) -> CloudError {
    let status = resp.status().as_u16();
    let ra = retry_after(resp.headers());
    let body = resp.text().await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let message = json["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let b = body.trim();
            if b.is_empty() || b.len() > 300 {
                format!("HTTP {status}")
            } else {
                b.to_string()
            }
        });
    let reason = json["error"]["errors"][0]["reason"]
        .as_str()
        .map(str::to_string);
    let lower = message.to_ascii_lowercase();
    let class = if status == 400 && lower.contains("hash") && lower.contains("match") {
        Class::Checksum
    } else {
        CloudError::class_of_status(status)
    };
    let mut e = CloudError::new(class, message).with_status(status);
    e.code = reason;
    e.retry_after = ra;
    e
}

/// An object resource of the JSON API, as far as pgbak reads it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ObjectResource {
    pub name: String,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default, rename = "md5Hash")]
    pub md5_hash: Option<String>,
    #[serde(default)]
    pub crc32c: Option<String>,
    #[serde(default)]
    pub generation: Option<String>,
}

impl ObjectResource {
    pub fn size(&self) -> u64 {
        self.size
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    pub fn modified(&self) -> std::time::SystemTime {
        self.updated
            .as_deref()
            .and_then(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
            .map(Into::into)
            .unwrap_or(std::time::UNIX_EPOCH)
    }
}

/// A page of a listing.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ObjectsPage {
    #[serde(default)]
    pub items: Vec<ObjectResource>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_segment() {
        assert_eq!(
            enc("wals/0000000100000000/a b"),
            "wals%2F0000000100000000%2Fa%20b"
        );
    }

    #[test]
    fn emulator_hosts_become_urls() {
        let mut o = CloudOptions {
            gcs_emulator_host: Some("127.0.0.1:4443".into()),
            ..Default::default()
        };
        assert_eq!(emulator(&o).as_deref(), Some("http://127.0.0.1:4443"));
        o.gcs_emulator_host = Some("http://h:1/".into());
        assert_eq!(emulator(&o).as_deref(), Some("http://h:1"));
    }
}
