//! GCS downloads: the media of an object with a `Range`, resumed ones pinned to the generation
//! seen first; a whole read is checked against the object's CRC-32C and MD5 (`X-Goog-Hash`).

use crate::cloud::digest::Whole;
use crate::cloud::http::{body_stream, header};
use crate::cloud::multipart::BoxFut;
use crate::cloud::reader::{Opened, ReadSource};
use crate::cloud::{Class, CloudError};
use crate::gcs::client::GcsInner;
use crate::gcs::write::goog_hash;
use futures_util::StreamExt;
use std::sync::Arc;

pub(crate) struct GcsRead {
    pub inner: Arc<GcsInner>,
    pub name: String,
}

impl ReadSource for GcsRead {
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
            let mut q = vec![("alt", "media".to_string())];
            if let Some(g) = &version {
                q.push(("ifGenerationMatch", g.clone()));
            }
            let mut rb = self
                .inner
                .http
                .get(self.inner.object_url(&self.name))
                .query(&q);
            match end {
                Some(e) => rb = rb.header("range", format!("bytes={start}-{}", e - 1)),
                None if start > 0 => rb = rb.header("range", format!("bytes={start}-")),
                None => {}
            }
            let resp = match self.inner.send(rb).await {
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
            let generation = header(h, "x-goog-generation").map(str::to_string);
            let expected = header(h, "x-goog-hash").map(goog_hash).unwrap_or_default();
            let length = header(h, "content-length").and_then(|v| v.parse().ok());
            Ok(Opened {
                body: body_stream(resp),
                version: generation,
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
