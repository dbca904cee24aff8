//! Azure downloads: Get Blob with `x-ms-range`, resumed ones pinned with `If-Match` to the ETag
//! seen first; a whole read is checked against the blob's MD5 when it has one.

use crate::azure::client::{AzureInner, Req};
use crate::cloud::digest::{unb64, Whole};
use crate::cloud::http::{body_stream, header};
use crate::cloud::multipart::BoxFut;
use crate::cloud::reader::{Opened, ReadSource};
use crate::cloud::{Class, CloudError};
use futures_util::StreamExt;
use reqwest::Method;
use std::sync::Arc;

pub(crate) struct AzureRead {
    pub inner: Arc<AzureInner>,
    pub blob: String,
}

impl ReadSource for AzureRead {
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
            let mut req = Req::new(Method::GET, Some(&self.blob));
            match end {
                Some(e) => req = req.header("x-ms-range", format!("bytes={start}-{}", e - 1)),
                None if start > 0 => req = req.header("x-ms-range", format!("bytes={start}-")),
                None => {}
            }
            if let Some(v) = &version {
                req = req.header("if-match", v.clone());
            }
            let resp = match self.inner.send(req).await {
                Ok(r) => r,
                Err(e) if e.status == Some(416) => return Ok(empty(version)),
                Err(e) if e.status == Some(412) => {
                    return Err(CloudError::new(
                        Class::Other,
                        "the object changed while it was being read",
                    ))
                }
                Err(e) => return Err(e),
            };
            let h = resp.headers();
            let etag = header(h, "etag").map(str::to_string);
            let whole_md5 = header(h, "x-ms-blob-content-md5")
                .or_else(|| {
                    if start == 0 && end.is_none() {
                        header(h, "content-md5")
                    } else {
                        None
                    }
                })
                .and_then(unb64)
                .and_then(|v| <[u8; 16]>::try_from(v).ok());
            let length = header(h, "content-length").and_then(|v| v.parse().ok());
            Ok(Opened {
                body: body_stream(resp),
                version: etag,
                length,
                expected: Whole {
                    md5: whole_md5,
                    crc32c: None,
                },
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
