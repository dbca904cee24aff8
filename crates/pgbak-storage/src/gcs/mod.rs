//! Google Cloud Storage: `gs://bucket/prefix`, with service-account JSON or application default
//! credentials (`google-cloud-auth`, Google's official crate), over the JSON API through a small
//! client of pgbak's own. Google's official storage crate lists and deletes through a gRPC API
//! that no emulator available here serves; the JSON API lets every operation pgbak performs be
//! tested against fake-gcs-server (see docs/decisions.md).
//!
//! - Listings use the objects list (1000 names a page), one level with the `/` delimiter.
//! - `delete_many` deletes up to 16 objects at once.
//! - Interrupted resumable uploads are cancelled by the writer; sessions GCS never hears from
//!   again expire after a week, and nothing is visible meanwhile: `cleanup_incomplete_uploads`
//!   has nothing to do.

mod client;
mod read;
mod write;

use crate::cloud::multipart::{MultipartWriter, UploadPool};
use crate::cloud::reader::open_reader;
use crate::cloud::retry::{retry, RetryPolicy};
use crate::cloud::runtime::Runtime;
use crate::cloud::{full_key, full_prefix, strip_prefix, validate_prefix, Class, CloudError};
use crate::location::redact_url;
use crate::options::env;
use crate::{
    validate_key, CloudOptions, CommitMode, Error, Listing, Location, ObjectMeta, ObjectWriter,
    Result, StorageBackend,
};
use client::{GcsAuth, GcsInner, ObjectResource, ObjectsPage};
use futures_util::StreamExt;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A repository in a GCS bucket.
pub struct GcsStorage {
    inner: Arc<GcsInner>,
    rt: Arc<Runtime>,
    pool: Arc<UploadPool>,
}

impl GcsStorage {
    /// Opens the repository at a `gs://` location. Does not contact the store.
    pub fn open(location: &Location, opts: &CloudOptions) -> Result<GcsStorage> {
        let Location::Gcs { bucket, prefix } = location else {
            return Err(Error::Config {
                repo: location.to_string(),
                detail: "not a gs:// location".into(),
            });
        };
        let config = |detail: String| Error::Config {
            repo: location.to_string(),
            detail,
        };
        let rt = Arc::new(
            Runtime::new("gcs")
                .map_err(|e| config(format!("cannot start the I/O runtime: {e}")))?,
        );
        crate::cloud::init_tls();
        let o = opts.clone();
        // Building credentials may start background refresh tasks: inside the runtime.
        let (endpoint, auth) = rt
            .block_on(
                async move { client::resolve(&o).map_err(|m| CloudError::new(Class::Other, m)) },
            )
            .map_err(|e| config(e.message))?;
        let mut repo = location.to_string();
        if endpoint != "https://storage.googleapis.com" {
            repo = format!("{repo} at {}", redact_url(&endpoint));
        }
        let http = crate::cloud::http::client(opts).map_err(|e| config(e.message))?;
        let policy = RetryPolicy::from_options(opts);
        Ok(GcsStorage {
            inner: Arc::new(GcsInner {
                http,
                endpoint,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                repo,
                auth,
                policy: policy.clone(),
                page_size: opts.list_page_size(1000),
                bucket_seen: Default::default(),
            }),
            rt,
            pool: UploadPool::new(opts.part_size(), 1, policy.request_timeout),
        })
    }

    /// The most bytes the part buffers of this repository's uploads have held at once.
    pub fn peak_upload_buffer(&self) -> u64 {
        self.pool.peak_buffered()
    }

    /// Creates the bucket if it does not exist (in the project of `GOOGLE_CLOUD_PROJECT`, or
    /// any project for an emulator); returns whether it did not.
    pub fn create_bucket(&self) -> Result<bool> {
        let inner = self.inner.clone();
        let project = env("GOOGLE_CLOUD_PROJECT").or_else(|| env("CLOUDSDK_CORE_PROJECT"));
        let project = match (&inner.auth, project) {
            (_, Some(p)) => p,
            (GcsAuth::Anonymous, None) => "pgbak".to_string(),
            (GcsAuth::Google(_), None) => {
                return Err(Error::Config {
                    repo: inner.repo.clone(),
                    detail: "creating a bucket needs a project: set GOOGLE_CLOUD_PROJECT".into(),
                })
            }
        };
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                if Self::bucket_exists(&inner).await.is_ok() {
                    return Ok(false);
                }
                retry(&p, "create bucket", |_| {
                    let rb = inner
                        .http
                        .post(format!("{}/storage/v1/b", inner.endpoint))
                        .query(&[("project", project.as_str())])
                        .json(&serde_json::json!({ "name": inner.bucket }));
                    let inner = inner.clone();
                    async move {
                        match inner.send(rb).await {
                            Ok(_) => Ok(true),
                            Err(e) if e.class == Class::Exists => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
            })
            .map_err(|e| e.into_error(&self.inner.repo, "create bucket", None))
    }

    /// A 404 does not say whether the object or the bucket is missing: ask once.
    async fn bucket_exists(inner: &GcsInner) -> std::result::Result<(), CloudError> {
        if inner.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let p = inner.policy.clone();
        let url = format!(
            "{}/storage/v1/b/{}",
            inner.endpoint,
            client::enc(&inner.bucket)
        );
        let r = retry(&p, "get bucket", |_| inner.send(inner.http.get(&url))).await;
        match r {
            Ok(_) => {
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
            let p = inner.policy.clone();
            let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
            let mut token: Option<String> = None;
            loop {
                let t = token.clone();
                let page: ObjectsPage = retry(&p, "list", |_| {
                    let mut q = vec![
                        ("prefix", full.clone()),
                        ("maxResults", inner.page_size.to_string()),
                        (
                            "fields",
                            "items(name,size,updated),prefixes,nextPageToken".to_string(),
                        ),
                    ];
                    if delimiter {
                        q.push(("delimiter", "/".into()));
                    }
                    if let Some(t) = &t {
                        q.push(("pageToken", t.clone()));
                    }
                    let rb = inner.http.get(inner.objects_url()).query(&q);
                    let inner = inner.clone();
                    async move {
                        match inner.send(rb).await {
                            Ok(r) => r.json().await.map_err(crate::cloud::http::send_error),
                            Err(e) if e.class == Class::NotFound => Err(CloudError::new(
                                Class::NoSuchBucket,
                                format!("bucket {:?} does not exist", inner.bucket),
                            )
                            .with_status(404)),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await?;
                inner.bucket_seen.store(true, Ordering::Relaxed);
                for o in &page.items {
                    if let Some(k) = strip_prefix(&inner.prefix, &o.name) {
                        objects.push(ObjectMeta {
                            key: k.to_string(),
                            size: o.size(),
                            modified: o.modified(),
                        });
                    }
                }
                for pfx in &page.prefixes {
                    if let Some(k) = strip_prefix(&inner.prefix, pfx) {
                        prefixes.push(k.to_string());
                    }
                }
                token = page.next_page_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
            objects.sort_by(|a: &ObjectMeta, b: &ObjectMeta| a.key.cmp(&b.key));
            prefixes.sort();
            prefixes.dedup();
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
        let source = Arc::new(read::GcsRead {
            inner: self.inner.clone(),
            name: full_key(&self.inner.prefix, key),
        });
        let repo = self.inner.repo.clone();
        let k = key.to_string();
        let inner = self.inner.clone();
        let rt = self.rt.clone();
        open_reader(&self.rt, &self.inner.policy, source, start, end, move |e| {
            e.into_error(&repo, "get", Some(&k))
        })
        .or_else(|e| {
            // A 404 on a download may mean the bucket is missing.
            if matches!(e, Error::NotFound(_)) {
                let i = inner.clone();
                rt.block_on(async move { Self::bucket_exists(&i).await })
                    .map_err(|be| be.into_error(&inner.repo, "get", Some(key)))?;
            }
            Err(e)
        })
    }

    async fn delete_one(inner: Arc<GcsInner>, name: String) -> std::result::Result<(), CloudError> {
        let p = inner.policy.clone();
        let r = retry(&p, "delete", |_| {
            inner.send(inner.http.delete(inner.object_url(&name)))
        })
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.class == Class::NotFound => Self::bucket_exists(&inner).await,
            Err(e) => Err(e),
        }
    }

    fn writer(&self, key: &str, mode: Option<CommitMode>) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        let target = Arc::new(write::GcsUpload {
            inner: self.inner.clone(),
            name: full_key(&self.inner.prefix, key),
        });
        let mut w = MultipartWriter::new(
            target,
            self.rt.clone(),
            self.pool.clone(),
            self.inner.repo.clone(),
            key.to_string(),
        );
        if let Some(m) = mode {
            w = w.with_mode_hint(m);
        }
        Ok(Box::new(w))
    }
}

impl StorageBackend for GcsStorage {
    fn put(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        self.writer(key, None)
    }

    fn put_with_mode(&self, key: &str, mode: CommitMode) -> Result<Box<dyn ObjectWriter>> {
        self.writer(key, Some(mode))
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
        let name = full_key(&inner.prefix, key);
        let k = key.to_string();
        self.rt
            .block_on(async move {
                let p = inner.policy.clone();
                let r = retry(&p, "stat", |_| {
                    let rb = inner.http.get(inner.object_url(&name));
                    let inner = inner.clone();
                    async move {
                        let resp = inner.send(rb).await?;
                        resp.json::<ObjectResource>()
                            .await
                            .map_err(crate::cloud::http::send_error)
                    }
                })
                .await;
                match r {
                    Ok(o) => {
                        inner.bucket_seen.store(true, Ordering::Relaxed);
                        Ok(Some(ObjectMeta {
                            key: k,
                            size: o.size(),
                            modified: o.modified(),
                        }))
                    }
                    Err(e) if e.class == Class::NotFound => {
                        Self::bucket_exists(&inner).await?;
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
        let name = full_key(&inner.prefix, key);
        self.rt
            .block_on(Self::delete_one(inner, name))
            .map_err(|e| e.into_error(&self.inner.repo, "delete", Some(key)))
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for k in keys {
            validate_key(k)?;
        }
        let inner = self.inner.clone();
        let names: Vec<String> = keys.iter().map(|k| full_key(&inner.prefix, k)).collect();
        self.rt
            .block_on(async move {
                let results: Vec<_> = futures_util::stream::iter(names)
                    .map(|n| Self::delete_one(inner.clone(), n))
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
