//! S3 uploads: PutObject for objects of one part, else CreateMultipartUpload, UploadPart and
//! CompleteMultipartUpload. Every request carries `Content-MD5` (and, unless checksums are
//! "when_required", a CRC-32C the SDK adds), and the ETag S3 answers is compared with the MD5
//! pgbak computed, so that a store that does not verify checksums is caught as well.
//! `CreateNew` sends `If-None-Match: *` on PutObject and CompleteMultipartUpload; with
//! `s3_no_conditional_writes` a HEAD just before stands in for it.

use crate::cloud::digest::{b64, hex, md5, multipart_etag, Wanted, Whole};
use crate::cloud::multipart::{BoxFut, UploadTarget};
use crate::cloud::retry::retry;
use crate::cloud::{Class, CloudError};
use crate::s3::client::{classify, S3Inner};
use crate::{CommitMode, S3Encryption};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use bytes::Bytes;
use std::sync::Arc;

pub(crate) struct S3Upload {
    pub inner: Arc<S3Inner>,
    /// The full key in the bucket.
    pub key: String,
}

pub(crate) struct S3Part {
    number: i32,
    etag: String,
    md5: [u8; 16],
    crc32c: Option<String>,
}

fn sse(inner: &S3Inner) -> (Option<ServerSideEncryption>, Option<String>) {
    match inner.encryption {
        Some(S3Encryption::Aes256) => (Some(ServerSideEncryption::Aes256), None),
        Some(S3Encryption::AwsKms) => {
            (Some(ServerSideEncryption::AwsKms), inner.kms_key_id.clone())
        }
        None => (None, None),
    }
}

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

impl S3Upload {
    /// The ETag of the object under the key, or `None` when there is none.
    async fn head_etag(&self) -> Result<Option<String>, CloudError> {
        let r = self
            .inner
            .client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(&self.key)
            .send()
            .await;
        match r {
            Ok(o) => Ok(Some(unquote(o.e_tag().unwrap_or_default()).to_string())),
            Err(e) => {
                let e = classify(e);
                if e.class == Class::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// For stores without conditional writes: refuse when the key is taken.
    async fn check_absent(&self) -> Result<(), CloudError> {
        let p = self.inner.policy.clone();
        match retry(&p, "head", |_| self.head_etag()).await? {
            Some(_) => Err(CloudError::new(Class::Exists, "the key exists").with_status(412)),
            None => Ok(()),
        }
    }

    /// After a retried create-new found the key taken: success when the object there has the
    /// ETag this upload would give it (an earlier attempt of ours that got no answer).
    async fn ours_after_retry(&self, expected_etag: &str) -> Result<bool, CloudError> {
        if !self.inner.etags_are_md5() {
            return Ok(false);
        }
        let p = self.inner.policy.clone();
        let etag = retry(&p, "head", |_| self.head_etag()).await?;
        Ok(etag.as_deref() == Some(expected_etag))
    }

    async fn delete_corrupt(&self) {
        let _ = self
            .inner
            .client
            .delete_object()
            .bucket(&self.inner.bucket)
            .key(&self.key)
            .send()
            .await;
    }
}

impl UploadTarget for S3Upload {
    type Session = String;
    type Part = S3Part;

    fn parallel(&self) -> bool {
        true
    }

    fn max_parts(&self) -> Option<u32> {
        Some(10_000)
    }

    fn wanted(&self) -> Wanted {
        Wanted::default()
    }

    fn put_whole(self: Arc<Self>, data: Bytes, _: Whole, mode: CommitMode) -> BoxFut<()> {
        Box::pin(async move {
            let digest = md5(&data);
            let want_etag = hex(&digest);
            let create_new = mode == CommitMode::CreateNew;
            if create_new && !self.inner.conditional_writes {
                self.check_absent().await?;
            }
            let p = self.inner.policy.clone();
            retry(&p, "put", |attempt| {
                let this = self.clone();
                let data = data.clone();
                let want_etag = want_etag.clone();
                async move {
                    let (sse, kms) = sse(&this.inner);
                    let mut req = this
                        .inner
                        .client
                        .put_object()
                        .bucket(&this.inner.bucket)
                        .key(&this.key)
                        .content_length(data.len() as i64)
                        .content_md5(b64(&digest))
                        .content_type("application/octet-stream")
                        .set_server_side_encryption(sse)
                        .set_ssekms_key_id(kms)
                        .body(ByteStream::from(data));
                    if this.inner.crc {
                        req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
                    }
                    if create_new && this.inner.conditional_writes {
                        req = req.if_none_match("*");
                    }
                    match req.send().await.map_err(classify) {
                        Ok(out) => {
                            let etag = unquote(out.e_tag().unwrap_or_default());
                            if this.inner.etags_are_md5() && etag != want_etag {
                                this.delete_corrupt().await;
                                return Err(CloudError::new(
                                    Class::Checksum,
                                    format!("S3 stored ETag {etag}, the bytes sent have MD5 {want_etag}"),
                                ));
                            }
                            Ok(())
                        }
                        Err(e) if e.class == Class::Exists && attempt > 1 => {
                            if this.ours_after_retry(&want_etag).await? {
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

    fn start(self: Arc<Self>, _: Option<CommitMode>) -> BoxFut<String> {
        Box::pin(async move {
            let p = self.inner.policy.clone();
            retry(&p, "create multipart upload", |_| {
                let (sse, kms) = sse(&self.inner);
                let mut req = self
                    .inner
                    .client
                    .create_multipart_upload()
                    .bucket(&self.inner.bucket)
                    .key(&self.key)
                    .content_type("application/octet-stream")
                    .set_server_side_encryption(sse)
                    .set_ssekms_key_id(kms);
                if self.inner.crc {
                    req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
                }
                async move {
                    let out = req.send().await.map_err(classify)?;
                    out.upload_id()
                        .map(str::to_string)
                        .ok_or_else(|| CloudError::new(Class::Other, "no upload id in the answer"))
                }
            })
            .await
        })
    }

    fn upload_part(
        self: Arc<Self>,
        session: Arc<String>,
        index: u32,
        _offset: u64,
        data: Bytes,
    ) -> BoxFut<S3Part> {
        Box::pin(async move {
            let number = index as i32 + 1;
            let digest = md5(&data);
            let want_etag = hex(&digest);
            let p = self.inner.policy.clone();
            retry(&p, "upload part", |_| {
                let mut req = self
                    .inner
                    .client
                    .upload_part()
                    .bucket(&self.inner.bucket)
                    .key(&self.key)
                    .upload_id(session.as_str())
                    .part_number(number)
                    .content_length(data.len() as i64)
                    .content_md5(b64(&digest))
                    .body(ByteStream::from(data.clone()));
                if self.inner.crc {
                    req = req.checksum_algorithm(ChecksumAlgorithm::Crc32C);
                }
                let check = self.inner.etags_are_md5();
                let want_etag = want_etag.clone();
                async move {
                    let out = req.send().await.map_err(classify)?;
                    let etag = unquote(out.e_tag().unwrap_or_default()).to_string();
                    if check && etag != want_etag {
                        return Err(CloudError::new(
                            Class::Checksum,
                            format!("S3 stored part {number} with ETag {etag}, the bytes sent have MD5 {want_etag}"),
                        ));
                    }
                    Ok(S3Part {
                        number,
                        etag,
                        md5: digest,
                        crc32c: out.checksum_crc32_c().map(str::to_string),
                    })
                }
            })
            .await
        })
    }

    fn complete(
        self: Arc<Self>,
        session: Arc<String>,
        mut parts: Vec<S3Part>,
        tail: Bytes,
        offset: u64,
        _: Whole,
        mode: CommitMode,
    ) -> BoxFut<()> {
        Box::pin(async move {
            if !tail.is_empty() {
                let index = parts.len() as u32;
                let last = self
                    .clone()
                    .upload_part(session.clone(), index, offset, tail)
                    .await?;
                parts.push(last);
            }
            let create_new = mode == CommitMode::CreateNew;
            if create_new && !self.inner.conditional_writes {
                self.check_absent().await?;
            }
            let md5s: Vec<[u8; 16]> = parts.iter().map(|p| p.md5).collect();
            let want_etag = multipart_etag(&md5s);
            let completed = CompletedMultipartUpload::builder()
                .set_parts(Some(
                    parts
                        .iter()
                        .map(|p| {
                            CompletedPart::builder()
                                .part_number(p.number)
                                .e_tag(&p.etag)
                                .set_checksum_crc32_c(p.crc32c.clone())
                                .build()
                        })
                        .collect(),
                ))
                .build();
            let p = self.inner.policy.clone();
            retry(&p, "complete multipart upload", |attempt| {
                let mut req = self
                    .inner
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.inner.bucket)
                    .key(&self.key)
                    .upload_id(session.as_str())
                    .multipart_upload(completed.clone());
                if create_new && self.inner.conditional_writes {
                    req = req.if_none_match("*");
                }
                let this = self.clone();
                let want_etag = want_etag.clone();
                async move {
                    match req.send().await.map_err(classify) {
                        Ok(out) => {
                            let etag = unquote(out.e_tag().unwrap_or_default());
                            if this.inner.etags_are_md5() && !etag.is_empty() && etag != want_etag {
                                this.delete_corrupt().await;
                                // The parts are spent: this cannot be retried.
                                return Err(CloudError::new(
                                    Class::Corrupt,
                                    format!(
                                        "S3 assembled ETag {etag}, the parts sent give {want_etag}"
                                    ),
                                ));
                            }
                            Ok(())
                        }
                        // A retry whose first attempt went through: the upload is gone or the
                        // key is taken by the object this upload made.
                        Err(e)
                            if attempt > 1
                                && matches!(e.class, Class::Exists | Class::NotFound) =>
                        {
                            if this.ours_after_retry(&want_etag).await? {
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
            let p = self.inner.policy.clone();
            let r = retry(&p, "abort multipart upload", |_| {
                let req = self
                    .inner
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.inner.bucket)
                    .key(&self.key)
                    .upload_id(session.as_str());
                async move { req.send().await.map(|_| ()).map_err(classify) }
            })
            .await;
            match r {
                Err(e) if e.class == Class::NotFound => Ok(()),
                other => other,
            }
        })
    }
}
