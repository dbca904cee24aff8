//! Azure Blob Storage: `azure://container/prefix` (the account from the connection string or
//! the options) and `https://ACCOUNT.blob.core.windows.net/container/prefix`, with account keys,
//! SAS tokens, connection strings and Entra ID, through a small REST client of pgbak's own (see
//! docs/decisions.md for why not an SDK).
//!
//! - Listings use List Blobs (5000 names a page), one level with the `/` delimiter.
//! - `delete_many` deletes up to 16 blobs at once (Blob Batch is not used: Azurite's support
//!   for it is partial).
//! - Interrupted uploads leave only uncommitted blocks, which are invisible and which Azure
//!   garbage-collects after seven days: `cleanup_incomplete_uploads` has nothing to do.

mod auth;
mod client;
mod read;
mod write;

use crate::cloud::http::http_date;
use crate::cloud::multipart::{MultipartWriter, UploadPool};
use crate::cloud::reader::open_reader;
use crate::cloud::retry::{retry, RetryPolicy};
use crate::cloud::runtime::Runtime;
use crate::cloud::{full_key, full_prefix, strip_prefix, validate_prefix, Class, CloudError};
use crate::location::redact_url;
use crate::{
    validate_key, CloudOptions, Error, Listing, Location, ObjectMeta, ObjectWriter, Result,
    StorageBackend,
};
use client::{AzureInner, Req};
use futures_util::StreamExt;
use reqwest::Method;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A repository in an Azure Blob container.
pub struct AzureStorage {
    inner: Arc<AzureInner>,
    rt: Arc<Runtime>,
    pool: Arc<UploadPool>,
}

impl AzureStorage {
    /// Opens the repository at an Azure location. Does not contact the store.
    pub fn open(location: &Location, opts: &CloudOptions) -> Result<AzureStorage> {
        let Location::Azure {
            account,
            endpoint,
            container,
            prefix,
        } = location
        else {
            return Err(Error::Config {
                repo: location.to_string(),
                detail: "not an Azure location".into(),
            });
        };
        let config = |detail: String| Error::Config {
            repo: location.to_string(),
            detail,
        };
        let resolved =
            auth::resolve(account.as_deref(), endpoint.as_deref(), opts).map_err(config)?;
        let mut repo = location.to_string();
        if location_endpoint_differs(location, &resolved.endpoint) {
            repo = format!("{repo} at {}", redact_url(&resolved.endpoint));
        }
        let rt = Arc::new(
            Runtime::new("azure")
                .map_err(|e| config(format!("cannot start the I/O runtime: {e}")))?,
        );
        let http = crate::cloud::http::client(opts).map_err(|e| config(e.message))?;
        let policy = RetryPolicy::from_options(opts);
        Ok(AzureStorage {
            inner: Arc::new(AzureInner {
                http,
                endpoint: resolved.endpoint,
                container: container.clone(),
                prefix: prefix.clone(),
                repo,
                auth: resolved.auth,
                policy: policy.clone(),
                page_size: opts.list_page_size(5000),
                container_seen: Default::default(),
            }),
            rt,
            pool: UploadPool::new(
                opts.part_size(),
                opts.upload_concurrency(),
                policy.request_timeout,
            ),
        })
    }

    /// The most bytes the part buffers of this repository's uploads have held at once.
    pub fn peak_upload_buffer(&self) -> u64 {
        self.pool.peak_buffered()
    }

    /// Creates the container if it does not exist; returns whether it did not.
    pub fn create_container(&self) -> Result<bool> {
        let inner = self.inner.clone();
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                let r = retry(&p, "create container", |_| {
                    inner.send(Req::new(Method::PUT, None).query("restype", "container"))
                })
                .await;
                match r {
                    Ok(_) => Ok(true),
                    Err(e) if e.class == Class::Exists => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| e.into_error(&self.inner.repo, "create container", None))
    }

    /// A 404 on HEAD with no error code does not say what is missing: ask once.
    async fn container_exists(inner: &AzureInner) -> std::result::Result<(), CloudError> {
        if inner.container_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let p = inner.policy.clone();
        let r = retry(&p, "container properties", |_| {
            inner.send(Req::new(Method::HEAD, None).query("restype", "container"))
        })
        .await;
        match r {
            Ok(_) => {
                inner.container_seen.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if matches!(e.class, Class::NotFound | Class::NoSuchBucket) => {
                Err(CloudError::new(
                    Class::NoSuchBucket,
                    format!("container {:?} does not exist", inner.container),
                )
                .with_status(404))
            }
            Err(e) => Err(e),
        }
    }

    fn list_pages(
        &self,
        prefix: &str,
        delimiter: bool,
    ) -> std::result::Result<(Vec<ObjectMeta>, Vec<String>), CloudError> {
        let inner = self.inner.clone();
        let full = full_prefix(&inner.prefix, prefix);
        self.rt.block_on(async move {
            let p = inner.policy.clone();
            let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
            let mut marker: Option<String> = None;
            loop {
                let m = marker.clone();
                let body = retry(&p, "list", |_| {
                    let mut req = Req::new(Method::GET, None)
                        .query("restype", "container")
                        .query("comp", "list")
                        .query("maxresults", inner.page_size.to_string());
                    if !full.is_empty() {
                        req = req.query("prefix", full.clone());
                    }
                    if delimiter {
                        req = req.query("delimiter", "/");
                    }
                    if let Some(m) = &m {
                        req = req.query("marker", m.clone());
                    }
                    let inner = inner.clone();
                    async move {
                        let resp = inner.send(req).await?;
                        resp.text().await.map_err(crate::cloud::http::send_error)
                    }
                })
                .await?;
                inner.container_seen.store(true, Ordering::Relaxed);
                let page = client::parse_list(&body)?;
                for (name, size, modified) in page.blobs {
                    if let Some(key) = strip_prefix(&inner.prefix, &name) {
                        objects.push(ObjectMeta {
                            key: key.to_string(),
                            size,
                            modified: modified
                                .as_deref()
                                .and_then(http_date)
                                .unwrap_or(UNIX_EPOCH),
                        });
                    }
                }
                for name in page.prefixes {
                    if let Some(k) = strip_prefix(&inner.prefix, &name) {
                        prefixes.push(k.to_string());
                    }
                }
                marker = page.next_marker;
                if marker.is_none() {
                    break;
                }
            }
            objects.sort_by(|a: &ObjectMeta, b: &ObjectMeta| a.key.cmp(&b.key));
            prefixes.sort();
            Ok((objects, prefixes))
        })
    }

    fn get_range_inner(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn Read + Send>> {
        validate_key(key)?;
        let source = Arc::new(read::AzureRead {
            inner: self.inner.clone(),
            blob: full_key(&self.inner.prefix, key),
        });
        let repo = self.inner.repo.clone();
        let k = key.to_string();
        open_reader(&self.rt, &self.inner.policy, source, start, end, move |e| {
            e.into_error(&repo, "get", Some(&k))
        })
    }

    async fn delete_one(
        inner: Arc<AzureInner>,
        blob: String,
    ) -> std::result::Result<(), CloudError> {
        let p = inner.policy.clone();
        let r = retry(&p, "delete", |_| {
            inner.send(
                Req::new(Method::DELETE, Some(&blob)).header("x-ms-delete-snapshots", "include"),
            )
        })
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.class == Class::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn location_endpoint_differs(location: &Location, endpoint: &str) -> bool {
    !matches!(location, Location::Azure { endpoint: Some(e), .. } if e == endpoint)
        && !endpoint.ends_with(".blob.core.windows.net")
}

impl StorageBackend for AzureStorage {
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
            ^ (u64::from(std::process::id()) << 40)
            ^ (key.len() as u64).rotate_left(17);
        let target = Arc::new(write::AzureUpload {
            inner: self.inner.clone(),
            blob: full_key(&self.inner.prefix, key),
            nonce,
        });
        Ok(Box::new(MultipartWriter::new(
            target,
            self.rt.clone(),
            self.pool.clone(),
            self.inner.repo.clone(),
            key.to_string(),
        )))
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        self.get_range_inner(key, 0, None)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Box<dyn Read + Send>> {
        self.get_range_inner(key, offset, Some(offset.saturating_add(len)))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        self.list_pages(prefix, false)
            .map(|(o, _)| o)
            .map_err(|e| e.into_error(&self.inner.repo, "list", None))
    }

    fn list_dir(&self, prefix: &str) -> Result<Listing> {
        validate_prefix(prefix)?;
        let (objects, prefixes) = self
            .list_pages(prefix, true)
            .map_err(|e| e.into_error(&self.inner.repo, "list", None))?;
        Ok(Listing { objects, prefixes })
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let blob = full_key(&inner.prefix, key);
        let k = key.to_string();
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                let r = retry(&p, "stat", |_| {
                    inner.send(Req::new(Method::HEAD, Some(&blob)))
                })
                .await;
                match r {
                    Ok(resp) => {
                        inner.container_seen.store(true, Ordering::Relaxed);
                        let h = resp.headers();
                        Ok(Some(ObjectMeta {
                            key: k,
                            size: crate::cloud::http::header(h, "content-length")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0),
                            modified: crate::cloud::http::header(h, "last-modified")
                                .and_then(http_date)
                                .unwrap_or(UNIX_EPOCH),
                        }))
                    }
                    Err(e) if e.class == Class::NotFound => {
                        Self::container_exists(&inner).await?;
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| e.into_error(&self.inner.repo, "stat", Some(key)))
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let blob = full_key(&inner.prefix, key);
        self.rt
            .block_on(Self::delete_one(inner, blob))
            .map_err(|e| e.into_error(&self.inner.repo, "delete", Some(key)))
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            validate_key(k)?;
        }
        let inner = self.inner.clone();
        let blobs: Vec<String> = keys.iter().map(|k| full_key(&inner.prefix, k)).collect();
        self.rt
            .block_on(async move {
                let results: Vec<_> = futures_util::stream::iter(blobs)
                    .map(|b| Self::delete_one(inner.clone(), b))
                    .buffer_unordered(16)
                    .collect()
                    .await;
                results
                    .into_iter()
                    .collect::<std::result::Result<Vec<()>, _>>()?;
                Ok(())
            })
            .map_err(|e| e.into_error(&self.inner.repo, "delete", None))
    }

    fn describe(&self) -> String {
        self.inner.repo.clone()
    }
}
