//! Azure uploads: Put Blob for objects of one part, else Put Block per part and Put Block List.
//! Every request carries `Content-MD5`, which Azure verifies, and the answer's `Content-MD5` is
//! compared with it; the blob gets its whole MD5 (`x-ms-blob-content-md5`) so that downloads
//! can be checked. `CreateNew` sends `If-None-Match: *` on Put Blob and Put Block List.
//!
//! Block ids carry a random number of the upload, so two uploads of one key never mix their
//! blocks. Blocks of an upload that is never committed are not visible and Azure discards them
//! after a week: there is nothing to abort.

use crate::azure::client::{AzureInner, Req};
use crate::cloud::digest::{b64, md5, unb64, Wanted, Whole};
use crate::cloud::http::header;
use crate::cloud::multipart::{BoxFut, UploadTarget};
use crate::cloud::retry::retry;
use crate::cloud::{Class, CloudError};
use crate::CommitMode;
use bytes::Bytes;
use reqwest::Method;
use std::sync::Arc;

pub(crate) struct AzureUpload {
    pub inner: Arc<AzureInner>,
    /// The blob's full name.
    pub blob: String,
    /// Makes this upload's block ids its own.
    pub nonce: u64,
}

fn check_md5(resp: &reqwest::Response, sent: &[u8; 16]) -> Result<(), CloudError> {
    match header(resp.headers(), "content-md5").and_then(unb64) {
        Some(got) if got != sent => Err(CloudError::new(
            Class::Checksum,
            "Azure received bytes whose MD5 differs from the bytes sent",
        )),
        _ => Ok(()),
    }
}

impl AzureUpload {
    fn block_id(&self, index: u32) -> String {
        b64(format!("{:016x}{index:08}", self.nonce).as_bytes())
    }

    /// After a retried create-new found the key taken: success when the blob there has this
    /// upload's MD5 (an earlier attempt of ours whose answer was lost).
    async fn ours_after_retry(&self, md5: &[u8; 16]) -> Result<bool, CloudError> {
        let p = self.inner.policy.clone();
        let r = retry(&p, "head", |_| {
            self.inner.send(Req::new(Method::HEAD, Some(&self.blob)))
        })
        .await?;
        Ok(header(r.headers(), "content-md5")
            .and_then(unb64)
            .as_deref()
            == Some(&md5[..]))
    }
}

impl UploadTarget for AzureUpload {
    type Session = ();
    type Part = String;

    fn parallel(&self) -> bool {
        true
    }

    fn max_parts(&self) -> Option<u32> {
        Some(50_000)
    }

    fn wanted(&self) -> Wanted {
        Wanted {
            md5: true,
            crc32c: false,
        }
    }

    fn put_whole(self: Arc<Self>, data: Bytes, _: Whole, mode: CommitMode) -> BoxFut<()> {
        Box::pin(async move {
            let digest = md5(&data);
            let p = self.inner.policy.clone();
            retry(&p, "put", |attempt| {
                let mut req = Req::new(Method::PUT, Some(&self.blob))
                    .header("x-ms-blob-type", "BlockBlob")
                    .header("content-type", "application/octet-stream")
                    .header("content-md5", b64(&digest))
                    .body(data.clone());
                if mode == CommitMode::CreateNew {
                    req = req.header("if-none-match", "*");
                }
                let this = self.clone();
                async move {
                    match this.inner.send(req).await {
                        Ok(resp) => check_md5(&resp, &digest),
                        Err(e) if e.class == Class::Exists && attempt > 1 => {
                            if this.ours_after_retry(&digest).await? {
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

    fn start(self: Arc<Self>, _: Option<CommitMode>) -> BoxFut<()> {
        Box::pin(async { Ok(()) })
    }

    fn upload_part(self: Arc<Self>, _: Arc<()>, index: u32, _: u64, data: Bytes) -> BoxFut<String> {
        Box::pin(async move {
            let digest = md5(&data);
            let id = self.block_id(index);
            let p = self.inner.policy.clone();
            retry(&p, "put block", |_| {
                let req = Req::new(Method::PUT, Some(&self.blob))
                    .query("comp", "block")
                    .query("blockid", id.clone())
                    .header("content-md5", b64(&digest))
                    .body(data.clone());
                let this = self.clone();
                async move {
                    let resp = this.inner.send(req).await?;
                    check_md5(&resp, &digest)
                }
            })
            .await?;
            Ok(id)
        })
    }

    fn complete(
        self: Arc<Self>,
        session: Arc<()>,
        mut parts: Vec<String>,
        tail: Bytes,
        offset: u64,
        whole: Whole,
        mode: CommitMode,
    ) -> BoxFut<()> {
        Box::pin(async move {
            if !tail.is_empty() {
                let index = parts.len() as u32;
                parts.push(
                    self.clone()
                        .upload_part(session, index, offset, tail)
                        .await?,
                );
            }
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
            for id in &parts {
                xml.push_str("<Latest>");
                xml.push_str(id);
                xml.push_str("</Latest>");
            }
            xml.push_str("</BlockList>");
            let body = Bytes::from(xml);
            let body_md5 = md5(&body);
            let whole_md5 = whole.md5.unwrap_or_default();
            let p = self.inner.policy.clone();
            retry(&p, "put block list", |attempt| {
                let mut req = Req::new(Method::PUT, Some(&self.blob))
                    .query("comp", "blocklist")
                    .header("content-type", "application/xml")
                    .header("content-md5", b64(&body_md5))
                    .header("x-ms-blob-content-md5", b64(&whole_md5))
                    .header("x-ms-blob-content-type", "application/octet-stream")
                    .body(body.clone());
                if mode == CommitMode::CreateNew {
                    req = req.header("if-none-match", "*");
                }
                let this = self.clone();
                async move {
                    match this.inner.send(req).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.class == Class::Exists && attempt > 1 => {
                            if this.ours_after_retry(&whole_md5).await? {
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

    fn abort(self: Arc<Self>, _: Arc<()>) -> BoxFut<()> {
        Box::pin(async { Ok(()) })
    }
}
