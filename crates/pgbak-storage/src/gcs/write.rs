//! GCS uploads: a multipart (metadata + data) upload for objects of one part, else a resumable
//! upload sent part by part, in order. The single-request upload declares the MD5 and CRC-32C
//! in its metadata and the last chunk of a resumable upload sends them in `X-Goog-Hash`, both of
//! which GCS verifies; the digests of the object GCS made are compared with them as well (an
//! emulator may not verify), and a mismatching object is deleted.
//!
//! `CreateNew` sends `ifGenerationMatch=0`: on the single-request upload, and on the start of a
//! resumable session when the commit mode was given up front
//! ([`crate::StorageBackend::put_with_mode`]). A resumable upload also checks, just before its
//! last chunk, that the key is still free (the only guard when the mode comes at commit time,
//! and what makes fake-gcs-server 1.54, which ignores the condition on resumable uploads,
//! behave).
//!
//! A writer dropped before its commit cancels its session (DELETE of the session URI); GCS
//! also expires unfinished sessions after a week.

use crate::cloud::digest::{b64, unb64, Wanted, Whole};
use crate::cloud::http::{header, send_error};
use crate::cloud::multipart::{BoxFut, UploadTarget};
use crate::cloud::retry::retry;
use crate::cloud::{Class, CloudError};
use crate::gcs::client::{error_of, GcsInner, ObjectResource};
use crate::CommitMode;
use bytes::Bytes;
use std::sync::Arc;

pub(crate) struct GcsUpload {
    pub inner: Arc<GcsInner>,
    /// The object's full name.
    pub name: String,
}

const BOUNDARY: &str = "pgbak-7d1f0c5e9a2b4c38";

fn hashes(whole: &Whole) -> (String, String) {
    (
        whole.md5.map(|m| b64(&m)).unwrap_or_default(),
        whole
            .crc32c
            .map(|c| b64(&c.to_be_bytes()))
            .unwrap_or_default(),
    )
}

impl GcsUpload {
    /// The object's metadata, or `None`.
    async fn head(&self) -> Result<Option<ObjectResource>, CloudError> {
        let rb = self.inner.http.get(self.inner.object_url(&self.name));
        match self.inner.send(rb).await {
            Ok(r) => Ok(Some(r.json().await.map_err(send_error)?)),
            Err(e) if e.class == Class::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks the object GCS made against the digests of the bytes sent; a mismatching one is
    /// deleted (only that generation).
    async fn verify(&self, obj: &ObjectResource, whole: &Whole) -> Result<(), CloudError> {
        let (md5, crc) = hashes(whole);
        let md5_ok = obj.md5_hash.as_deref().is_none_or(|m| m == md5);
        let crc_ok = obj.crc32c.as_deref().is_none_or(|c| c == crc);
        if md5_ok && crc_ok {
            return Ok(());
        }
        if let Some(g) = &obj.generation {
            let rb = self
                .inner
                .http
                .delete(self.inner.object_url(&self.name))
                .query(&[("ifGenerationMatch", g.as_str())]);
            let _ = self.inner.send(rb).await;
        }
        Err(CloudError::new(
            Class::Checksum,
            "the object GCS stored has other digests than the bytes sent",
        ))
    }

    /// After a retried create-new found the key taken: success when the object there has this
    /// upload's digests (an earlier attempt of ours whose answer was lost).
    async fn ours_after_retry(&self, whole: &Whole) -> Result<bool, CloudError> {
        let (md5, crc) = hashes(whole);
        Ok(self.head().await?.is_some_and(|o| {
            o.md5_hash.as_deref().is_none_or(|m| m == md5) && o.crc32c.as_deref() == Some(&crc)
        }))
    }
}

impl UploadTarget for GcsUpload {
    /// The resumable session URI.
    type Session = String;
    type Part = ();

    fn parallel(&self) -> bool {
        false
    }

    fn max_parts(&self) -> Option<u32> {
        None
    }

    fn wanted(&self) -> Wanted {
        Wanted {
            md5: true,
            crc32c: true,
        }
    }

    fn put_whole(self: Arc<Self>, data: Bytes, whole: Whole, mode: CommitMode) -> BoxFut<()> {
        Box::pin(async move {
            let (md5, crc) = hashes(&whole);
            let meta = serde_json::json!({
                "name": self.name,
                "contentType": "application/octet-stream",
                "md5Hash": md5,
                "crc32c": crc,
            });
            let head = Bytes::from(format!(
                "--{BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
                 --{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n"
            ));
            let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
            let len = head.len() + data.len() + tail.len();
            let p = self.inner.policy.clone();
            retry(&p, "put", |attempt| {
                let this = self.clone();
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    vec![Ok(head.clone()), Ok(data.clone()), Ok(tail.clone())];
                async move {
                    let mut q = vec![("uploadType", "multipart")];
                    if mode == CommitMode::CreateNew {
                        q.push(("ifGenerationMatch", "0"));
                    }
                    let rb = this
                        .inner
                        .http
                        .post(this.inner.upload_url())
                        .query(&q)
                        .header(
                            "content-type",
                            format!("multipart/related; boundary={BOUNDARY}"),
                        )
                        .header("content-length", len)
                        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                            chunks,
                        )));
                    match this.inner.send(rb).await {
                        Ok(resp) => {
                            let obj: ObjectResource = resp.json().await.map_err(send_error)?;
                            this.verify(&obj, &whole).await
                        }
                        Err(e) if e.class == Class::Exists && attempt > 1 => {
                            if this.ours_after_retry(&whole).await? {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        }
                        Err(e) => Err(no_bucket(e, &this.inner.bucket)),
                    }
                }
            })
            .await
        })
    }

    fn start(self: Arc<Self>, hint: Option<CommitMode>) -> BoxFut<String> {
        Box::pin(async move {
            let p = self.inner.policy.clone();
            retry(&p, "start resumable upload", |_| {
                let this = self.clone();
                async move {
                    let mut q = vec![("uploadType", "resumable"), ("name", this.name.as_str())];
                    if hint == Some(CommitMode::CreateNew) {
                        q.push(("ifGenerationMatch", "0"));
                    }
                    let rb = this
                        .inner
                        .http
                        .post(this.inner.upload_url())
                        .query(&q)
                        .header("x-upload-content-type", "application/octet-stream")
                        .json(&serde_json::json!({
                            "name": this.name,
                            "contentType": "application/octet-stream",
                        }));
                    let resp = this
                        .inner
                        .send(rb)
                        .await
                        .map_err(|e| no_bucket(e, &this.inner.bucket))?;
                    header(resp.headers(), "location")
                        .map(str::to_string)
                        .ok_or_else(|| {
                            CloudError::new(Class::Other, "no session URI in the answer")
                        })
                }
            })
            .await
        })
    }

    fn upload_part(
        self: Arc<Self>,
        session: Arc<String>,
        _index: u32,
        offset: u64,
        data: Bytes,
    ) -> BoxFut<()> {
        Box::pin(async move {
            let p = self.inner.policy.clone();
            let last = offset + data.len() as u64 - 1;
            retry(&p, "upload chunk", |_| {
                let rb = self
                    .inner
                    .http
                    .put(session.as_str())
                    .header("content-range", format!("bytes {offset}-{last}/*"))
                    .body(data.clone());
                let this = self.clone();
                async move {
                    let resp = this.inner.send(rb).await?;
                    if resp.status().as_u16() != 308 {
                        return Err(CloudError::new(
                            Class::Other,
                            format!(
                                "GCS ended the upload early (HTTP {})",
                                resp.status().as_u16()
                            ),
                        ));
                    }
                    Ok(())
                }
            })
            .await
        })
    }

    fn complete(
        self: Arc<Self>,
        session: Arc<String>,
        _parts: Vec<()>,
        tail: Bytes,
        offset: u64,
        whole: Whole,
        mode: CommitMode,
    ) -> BoxFut<()> {
        Box::pin(async move {
            let p = self.inner.policy.clone();
            if mode == CommitMode::CreateNew && retry(&p, "head", |_| self.head()).await?.is_some()
            {
                return Err(CloudError::new(Class::Exists, "the key exists").with_status(412));
            }
            let total = offset + tail.len() as u64;
            let range = if tail.is_empty() {
                format!("bytes */{total}")
            } else {
                format!("bytes {offset}-{}/{total}", total - 1)
            };
            let (md5, crc) = hashes(&whole);
            retry(&p, "finish resumable upload", |attempt| {
                let rb = self
                    .inner
                    .http
                    .put(session.as_str())
                    .header("content-range", range.clone())
                    .header("x-goog-hash", format!("crc32c={crc},md5={md5}"))
                    .body(tail.clone());
                let this = self.clone();
                async move {
                    match this.inner.send(rb).await {
                        Ok(resp) if resp.status().as_u16() == 308 => Err(CloudError::new(
                            Class::Other,
                            "GCS did not finish the upload after its last chunk",
                        )),
                        Ok(resp) => {
                            let obj: ObjectResource = resp.json().await.map_err(send_error)?;
                            this.verify(&obj, &whole).await.map_err(|mut e| {
                                // The chunks are spent: this cannot be sent again.
                                e.class = Class::Corrupt;
                                e
                            })
                        }
                        Err(e)
                            if attempt > 1
                                && matches!(e.class, Class::Exists | Class::NotFound) =>
                        {
                            if this.ours_after_retry(&whole).await? {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await
        })
    }

    fn abort(self: Arc<Self>, session: Arc<String>) -> BoxFut<()> {
        Box::pin(async move {
            let resp = self
                .inner
                .http
                .delete(session.as_str())
                .send()
                .await
                .map_err(send_error)?;
            // GCS answers 499 to a cancelled session.
            match resp.status().as_u16() {
                200..=299 | 404 | 410 | 499 => Ok(()),
                _ => Err(error_of(resp).await),
            }
        })
    }
}

/// An upload answered 404 has no bucket to go to.
fn no_bucket(e: CloudError, bucket: &str) -> CloudError {
    if e.class == Class::NotFound {
        CloudError::new(
            Class::NoSuchBucket,
            format!("bucket {bucket:?} does not exist"),
        )
        .with_status(404)
    } else {
        e
    }
}

/// Parses `X-Goog-Hash: crc32c=...,md5=...`.
pub(crate) fn goog_hash(value: &str) -> Whole {
    let mut w = Whole::default();
    for part in value.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "crc32c" => {
                w.crc32c = unb64(v)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
            }
            "md5" => w.md5 = unb64(v).and_then(|b| <[u8; 16]>::try_from(b).ok()),
            _ => {}
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goog_hash_parses() {
        let w = goog_hash("crc32c=4waSgw==,md5=JfnnlDI7RTiF9RgfG2JNCw==");
        assert_eq!(w.crc32c, Some(0xe306_9283));
        assert_eq!(w.md5, Some(crate::cloud::digest::md5(b"123456789")));
    }
}
