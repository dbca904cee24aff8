//! S3 downloads: GetObject with a byte range, resumed ones pinned with `If-Match` to the ETag
//! seen first. A whole read of a single-part object without KMS is checked against its ETag
//! (the MD5 of its bytes).

use crate::cloud::digest::Whole;
use crate::cloud::multipart::BoxFut;
use crate::cloud::reader::{Opened, ReadSource};
use crate::cloud::{Class, CloudError};
use crate::s3::client::{classify, S3Inner};
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::types::ServerSideEncryption;
use futures_util::StreamExt;
use std::sync::Arc;

pub(crate) struct S3Read {
    pub inner: Arc<S3Inner>,
    pub key: String,
}

/// The MD5 an ETag stands for, when it is one.
fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let h = etag.trim_matches('"');
    if h.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ReadSource for S3Read {
    fn open(
        self: Arc<Self>,
        start: u64,
        end: Option<u64>,
        version: Option<String>,
    ) -> BoxFut<Opened> {
        Box::pin(async move {
            if end.is_some_and(|e| e <= start) {
                return Ok(empty(version));
            }
            let mut req = self
                .inner
                .client
                .get_object()
                .bucket(&self.inner.bucket)
                .key(&self.key);
            match end {
                Some(e) => req = req.range(format!("bytes={start}-{}", e - 1)),
                None if start > 0 => req = req.range(format!("bytes={start}-")),
                None => {}
            }
            if let Some(v) = &version {
                req = req.if_match(v);
            }
            // The SDK's own response validation cannot check the composite checksum of an
            // object uploaded in parts, and warns on stderr at every such download; on a
            // single-part object without KMS the ETag below checks the same bytes. It is left
            // off: what pgbak promises is its own check (docs/storage.md), and the WAL and
            // backup files carry their own checksums above this layer.
            let out = match req
                .customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default()
                        .response_checksum_validation(ResponseChecksumValidation::WhenRequired),
                )
                .send()
                .await
                .map_err(classify)
            {
                Ok(o) => o,
                Err(e) if e.status == Some(416) => return Ok(empty(version)),
                Err(e) if e.status == Some(412) => {
                    return Err(CloudError::new(
                        Class::Other,
                        "the object changed while it was being read",
                    ))
                }
                Err(e) => return Err(e),
            };
            let etag = out.e_tag().map(str::to_string);
            let kms = out.server_side_encryption() == Some(&ServerSideEncryption::AwsKms);
            let expected = Whole {
                md5: if kms {
                    None
                } else {
                    etag.as_deref().and_then(etag_md5)
                },
                crc32c: None,
            };
            let length = out.content_length().map(|l| l.max(0) as u64);
            let body = futures_util::stream::unfold(out.body, |mut b| async move {
                b.next().await.map(|r| {
                    (
                        r.map_err(|e| CloudError::new(Class::Connection, e.to_string())),
                        b,
                    )
                })
            })
            .boxed();
            Ok(Opened {
                body,
                version: etag,
                length,
                expected,
            })
        })
    }
}

fn empty(version: Option<String>) -> Opened {
    Opened {
        body: futures_util::stream::empty().boxed(),
        version,
        length: Some(0),
        expected: Whole::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_that_are_md5s() {
        assert_eq!(
            etag_md5("\"d41d8cd98f00b204e9800998ecf8427e\""),
            Some(crate::cloud::digest::md5(b""))
        );
        assert_eq!(etag_md5("\"d41d8cd98f00b204e9800998ecf8427e-2\""), None);
        assert_eq!(etag_md5("zz1d8cd98f00b204e9800998ecf8427e"), None);
    }
}
