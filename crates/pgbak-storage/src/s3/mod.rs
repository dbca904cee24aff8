//! Amazon S3 and S3-compatible servers, with the official `aws-sdk-s3`: `s3://bucket/prefix`,
//! the standard AWS credential chain and profiles, a custom endpoint (path-style addressing
//! unless asked otherwise), server-side encryption, and checksums on every upload.
//!
//! - Listings use ListObjectsV2 (1000 keys a page), one level with the `/` delimiter.
//! - `delete_many` uses DeleteObjects in batches of `delete_batch_size`, and falls back to one
//!   DeleteObject per key on servers that lack it.
//! - `cleanup_incomplete_uploads` aborts the multipart uploads under the prefix that were
//!   started before the given age (ListMultipartUploads + AbortMultipartUpload); a lifecycle
//!   rule `AbortIncompleteMultipartUpload` does the same on the bucket side.

mod client;
mod read;
mod write;

use crate::cloud::multipart::{MultipartWriter, UploadPool};
use crate::cloud::reader::open_reader;
use crate::cloud::retry::{retry, RetryPolicy};
use crate::cloud::runtime::Runtime;
use crate::cloud::{full_key, full_prefix, strip_prefix, validate_prefix, Class, CloudError};
use crate::{
    validate_key, CloudOptions, Error, Listing, Location, ObjectMeta, ObjectWriter, Result,
    StorageBackend,
};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use client::{classify, S3Inner};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A repository in an S3 bucket.
pub struct S3Storage {
    inner: Arc<S3Inner>,
    rt: Arc<Runtime>,
    pool: Arc<UploadPool>,
}

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|d| SystemTime::try_from(*d).ok())
        .unwrap_or(UNIX_EPOCH)
}

impl S3Storage {
    /// Opens the repository at an `s3://` location. Does not contact the store.
    pub fn open(location: &Location, opts: &CloudOptions) -> Result<S3Storage> {
        let Location::S3 { bucket, prefix } = location else {
            return Err(Error::Config {
                repo: location.to_string(),
                detail: "not an s3:// location".into(),
            });
        };
        let endpoint = client::custom_endpoint(opts);
        let repo = client::describe(bucket, prefix, endpoint.as_deref());
        let config_err = |e: CloudError| Error::Config {
            repo: repo.clone(),
            detail: e.message,
        };
        let rt = Arc::new(Runtime::new("s3").map_err(|e| Error::Config {
            repo: repo.clone(),
            detail: format!("cannot start the I/O runtime: {e}"),
        })?);
        crate::cloud::init_tls();
        let o = opts.clone();
        let ep = endpoint.clone();
        let client = rt
            .block_on(async move { client::build(o, ep).await })
            .map_err(config_err)?;
        let policy = RetryPolicy::from_options(opts);
        let inner = Arc::new(S3Inner {
            client,
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            repo,
            policy: policy.clone(),
            encryption: opts.aws_encryption,
            kms_key_id: opts.aws_sse_kms_key_id.clone(),
            crc: client::sdk_checksums(opts),
            conditional_writes: !opts.s3_no_conditional_writes,
            delete_batch_size: opts.delete_batch_size(),
            page_size: opts.list_page_size(1000) as i32,
            bucket_seen: Default::default(),
        });
        Ok(S3Storage {
            inner,
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

    /// Creates the bucket if it does not exist; returns whether it did not.
    pub fn create_bucket(&self) -> Result<bool> {
        let inner = self.inner.clone();
        let r = self.rt.block_on(async move {
            let p = inner.policy.clone();
            let head = retry(&p, "head bucket", |_| {
                let req = inner.client.head_bucket().bucket(&inner.bucket);
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await;
            match head {
                Ok(()) => return Ok(false),
                Err(e) if matches!(e.class, Class::NotFound | Class::NoSuchBucket) => {}
                Err(e) => return Err(e),
            }
            let region = inner.client.config().region().map(|r| r.to_string());
            retry(&p, "create bucket", |_| {
                let mut req = inner.client.create_bucket().bucket(&inner.bucket);
                if let Some(r) = region.as_deref().filter(|r| *r != "us-east-1") {
                    req = req.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(r.into())
                            .build(),
                    );
                }
                async move {
                    match req.send().await.map_err(classify) {
                        Ok(_) => Ok(true),
                        Err(e) if e.code.as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(false),
                        Err(e) => Err(e),
                    }
                }
            })
            .await
        });
        r.map_err(|e| e.into_error(&self.inner.repo, "create bucket", None))
    }

    fn err<'a>(
        &'a self,
        op: &'static str,
        key: Option<&'a str>,
    ) -> impl Fn(CloudError) -> Error + 'a {
        move |e| e.into_error(&self.inner.repo, op, key)
    }

    /// A 404 on HEAD does not say whether the key or the bucket is missing: ask once.
    async fn bucket_exists(inner: &S3Inner) -> std::result::Result<(), CloudError> {
        if inner.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let p = inner.policy.clone();
        let r = retry(&p, "head bucket", |_| {
            let req = inner.client.head_bucket().bucket(&inner.bucket);
            async move { req.send().await.map(|_| ()).map_err(classify) }
        })
        .await;
        match r {
            Ok(()) => {
                inner.bucket_seen.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.class == Class::NotFound => Err(CloudError::new(
                Class::NoSuchBucket,
                format!("bucket {:?} does not exist", inner.bucket),
            )
            .with_status(404)),
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
            let mut objects = Vec::new();
            let mut prefixes = Vec::new();
            let mut token: Option<String> = None;
            let p = inner.policy.clone();
            loop {
                let t = token.clone();
                let page = retry(&p, "list", |_| {
                    let mut req = inner
                        .client
                        .list_objects_v2()
                        .bucket(&inner.bucket)
                        .prefix(&full)
                        .max_keys(inner.page_size)
                        .set_continuation_token(t.clone());
                    if delimiter {
                        req = req.delimiter("/");
                    }
                    async move { req.send().await.map_err(classify) }
                })
                .await?;
                inner.bucket_seen.store(true, Ordering::Relaxed);
                for o in page.contents() {
                    let Some(name) = o.key() else { continue };
                    let Some(key) = strip_prefix(&inner.prefix, name) else {
                        continue;
                    };
                    objects.push(ObjectMeta {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: to_time(o.last_modified()),
                    });
                }
                for cp in page.common_prefixes() {
                    if let Some(k) = cp.prefix().and_then(|n| strip_prefix(&inner.prefix, n)) {
                        prefixes.push(k.to_string());
                    }
                }
                token = page.next_continuation_token().map(str::to_string);
                if !page.is_truncated().unwrap_or(false) || token.is_none() {
                    break;
                }
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            prefixes.sort();
            Ok((objects, prefixes))
        })
    }
}

impl StorageBackend for S3Storage {
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        let target = Arc::new(write::S3Upload {
            inner: self.inner.clone(),
            key: full_key(&self.inner.prefix, key),
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
            .map_err(self.err("list", None))
    }

    fn list_dir(&self, prefix: &str) -> Result<Listing> {
        validate_prefix(prefix)?;
        let (objects, prefixes) = self
            .list_pages(prefix, true)
            .map_err(self.err("list", None))?;
        Ok(Listing { objects, prefixes })
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let full = full_key(&inner.prefix, key);
        let k = key.to_string();
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                let r = retry(&p, "stat", |_| {
                    let req = inner.client.head_object().bucket(&inner.bucket).key(&full);
                    async move { req.send().await.map_err(classify) }
                })
                .await;
                match r {
                    Ok(o) => {
                        inner.bucket_seen.store(true, Ordering::Relaxed);
                        Ok(Some(ObjectMeta {
                            key: k,
                            size: o.content_length().unwrap_or(0).max(0) as u64,
                            modified: to_time(o.last_modified()),
                        }))
                    }
                    Err(e) if e.class == Class::NotFound => {
                        Self::bucket_exists(&inner).await?;
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .map_err(self.err("stat", Some(key)))
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let full = full_key(&inner.prefix, key);
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                retry(&p, "delete", |_| {
                    let req = inner
                        .client
                        .delete_object()
                        .bucket(&inner.bucket)
                        .key(&full);
                    async move { req.send().await.map(|_| ()).map_err(classify) }
                })
                .await
            })
            .or_else(|e| {
                if e.class == Class::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(self.err("delete", Some(key)))
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            validate_key(k)?;
        }
        for batch in keys.chunks(self.inner.delete_batch_size) {
            let inner = self.inner.clone();
            let ids: Vec<ObjectIdentifier> = batch
                .iter()
                .filter_map(|k| {
                    ObjectIdentifier::builder()
                        .key(full_key(&inner.prefix, k))
                        .build()
                        .ok()
                })
                .collect();
            let r = self.rt.block_on(async move {
                let p = inner.policy.clone();
                let delete = Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()
                    .map_err(|e| CloudError::new(Class::Other, e.to_string()))?;
                let out = retry(&p, "delete objects", |_| {
                    let req = inner
                        .client
                        .delete_objects()
                        .bucket(&inner.bucket)
                        .delete(delete.clone());
                    async move { req.send().await.map_err(classify) }
                })
                .await?;
                match out.errors().first() {
                    Some(e) => Err(CloudError::new(
                        CloudError::class_of_status(if e.code() == Some("AccessDenied") {
                            403
                        } else {
                            500
                        }),
                        format!(
                            "{} of {} objects not deleted; first {:?}: {}",
                            out.errors().len(),
                            delete.objects().len(),
                            e.key().unwrap_or_default(),
                            e.message().or(e.code()).unwrap_or("error")
                        ),
                    )),
                    None => Ok(()),
                }
            });
            match r {
                Ok(()) => {}
                // Servers without DeleteObjects (or that want Content-MD5 on it): one by one.
                Err(e)
                    if matches!(e.status, Some(400) | Some(405) | Some(501))
                        && e.class == Class::Other =>
                {
                    for k in batch {
                        self.delete(k)?;
                    }
                }
                Err(e) => return Err(e.into_error(&self.inner.repo, "delete", None)),
            }
        }
        Ok(())
    }

    fn cleanup_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        let inner = self.inner.clone();
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(UNIX_EPOCH);
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                let prefix = full_prefix(&inner.prefix, "");
                let prefix = if prefix.is_empty() {
                    prefix
                } else {
                    format!("{}/", prefix.trim_end_matches('/'))
                };
                let mut stale = Vec::new();
                let (mut key_marker, mut id_marker): (Option<String>, Option<String>) =
                    (None, None);
                loop {
                    let (km, im) = (key_marker.clone(), id_marker.clone());
                    let page = retry(&p, "list multipart uploads", |_| {
                        let req = inner
                            .client
                            .list_multipart_uploads()
                            .bucket(&inner.bucket)
                            .prefix(&prefix)
                            .set_key_marker(km.clone())
                            .set_upload_id_marker(im.clone());
                        async move { req.send().await.map_err(classify) }
                    })
                    .await?;
                    for u in page.uploads() {
                        if to_time(u.initiated()) <= cutoff {
                            if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                                stale.push((k.to_string(), id.to_string()));
                            }
                        }
                    }
                    key_marker = page.next_key_marker().map(str::to_string);
                    id_marker = page.next_upload_id_marker().map(str::to_string);
                    if !page.is_truncated().unwrap_or(false) || key_marker.is_none() {
                        break;
                    }
                }
                let mut n = 0;
                for (k, id) in stale {
                    let r = retry(&p, "abort multipart upload", |_| {
                        let req = inner
                            .client
                            .abort_multipart_upload()
                            .bucket(&inner.bucket)
                            .key(&k)
                            .upload_id(&id);
                        async move { req.send().await.map(|_| ()).map_err(classify) }
                    })
                    .await;
                    match r {
                        Ok(()) => n += 1,
                        Err(e) if e.class == Class::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(n)
            })
            .map_err(self.err("clean up uploads", None))
    }

    fn describe(&self) -> String {
        self.inner.repo.clone()
    }
}

impl S3Storage {
    fn get_range_inner(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn Read + Send>> {
        validate_key(key)?;
        let source = Arc::new(read::S3Read {
            inner: self.inner.clone(),
            key: full_key(&self.inner.prefix, key),
        });
        let repo = self.inner.repo.clone();
        let k = key.to_string();
        open_reader(&self.rt, &self.inner.policy, source, start, end, move |e| {
            e.into_error(&repo, "get", Some(&k))
        })
    }
}
