//! The one streaming reader of the cloud backends. A download runs as a task on the backend's
//! runtime and hands its chunks to the blocking [`Read`] side through a small bounded channel,
//! so memory stays a few chunks whatever the object's size. A download cut short (reset,
//! stalled longer than the read timeout) resumes where it stopped, pinned to the same version of
//! the object; a whole-object read is checked against the store's digest when it gives one.

use crate::cloud::digest::{Running, Wanted, Whole};
use crate::cloud::multipart::BoxFut;
use crate::cloud::retry::{retry, RetryPolicy};
use crate::cloud::runtime::Runtime;
use crate::cloud::{Class, CloudError};
use crate::Result;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::io::{self, Read};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An open download.
pub(crate) struct Opened {
    /// The bytes, in order.
    pub body: BoxStream<'static, std::result::Result<Bytes, CloudError>>,
    /// The object's version (ETag or generation): a resumed download must see the same one.
    pub version: Option<String>,
    /// How many bytes this answer carries, when the store says.
    pub length: Option<u64>,
    /// The whole object's digests, when the store gives them (only checked on whole reads).
    pub expected: Whole,
}

/// Where downloads come from: one store and one key.
pub(crate) trait ReadSource: Send + Sync + 'static {
    /// Opens the object from byte `start` to `end` (exclusive) or its end. `version` pins a
    /// resumed download to the version seen first. A missing object is [`Class::NotFound`]; a
    /// start at or past the end gives an empty body.
    fn open(
        self: Arc<Self>,
        start: u64,
        end: Option<u64>,
        version: Option<String>,
    ) -> BoxFut<Opened>;
}

/// Chunks waiting between the download task and the reader.
const CHANNEL_CHUNKS: usize = 8;

/// Opens `source` (with retries) and returns a blocking reader of it.
pub(crate) fn open_reader<S: ReadSource>(
    rt: &Arc<Runtime>,
    policy: &RetryPolicy,
    source: Arc<S>,
    start: u64,
    end: Option<u64>,
    err: impl Fn(CloudError) -> crate::Error + Send + 'static,
) -> Result<Box<dyn Read + Send>> {
    let p = policy.clone();
    let src = source.clone();
    let opened = rt
        .block_on(async move { retry(&p, "open", |_| src.clone().open(start, end, None)).await })
        .map_err(&err)?;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let policy = policy.clone();
    let whole_read = start == 0 && end.is_none();
    let task = rt
        .handle()
        .spawn(pump(source, policy, opened, start, end, whole_read, tx));
    Ok(Box::new(StreamReader {
        rx,
        current: Bytes::new(),
        done: false,
        task,
        _rt: rt.clone(),
        err: Box::new(err),
    }))
}

async fn pump<S: ReadSource>(
    source: Arc<S>,
    policy: RetryPolicy,
    mut opened: Opened,
    start: u64,
    end: Option<u64>,
    whole_read: bool,
    tx: mpsc::Sender<std::result::Result<Bytes, CloudError>>,
) {
    let version = opened.version.clone();
    let expected = opened.expected;
    let mut running = Running::new(Wanted {
        md5: whole_read && expected.md5.is_some(),
        crc32c: whole_read && expected.crc32c.is_some(),
    });
    let mut pos = start;
    let mut expect_end = opened.length.map(|l| start + l);
    let mut failures = 0;
    loop {
        let next = tokio::time::timeout(policy.request_timeout, opened.body.next()).await;
        let failure = match next {
            Ok(Some(Ok(chunk))) => {
                if chunk.is_empty() {
                    continue;
                }
                failures = 0;
                pos += chunk.len() as u64;
                running.update(&chunk);
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the reader is gone
                }
                continue;
            }
            Ok(None) => match expect_end {
                Some(e) if pos < e => CloudError::new(
                    Class::Connection,
                    format!("the download ended at byte {pos} of {e}"),
                ),
                _ => {
                    if whole_read {
                        if let Some(e) = check(&expected, running.finish()) {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                    return;
                }
            },
            Ok(Some(Err(e))) => e,
            Err(_) => CloudError::new(
                Class::Timeout,
                format!(
                    "the download stalled for {:?} (read_timeout)",
                    policy.request_timeout
                ),
            ),
        };
        failures += 1;
        if !failure.is_transient() || failures >= policy.max_attempts {
            let mut failure = failure;
            failure.attempts = failures;
            let _ = tx.send(Err(failure)).await;
            return;
        }
        tokio::time::sleep(policy.delay(failures + 1, failure.retry_after)).await;
        let src = source.clone();
        let v = version.clone();
        let reopened = retry(&policy, "resume", |_| src.clone().open(pos, end, v.clone())).await;
        match reopened {
            Ok(o) if version.is_some() && o.version.is_some() && o.version != version => {
                let _ = tx
                    .send(Err(CloudError::new(
                        Class::Other,
                        "the object changed while it was being read",
                    )))
                    .await;
                return;
            }
            Ok(o) => {
                expect_end = o.length.map(|l| pos + l);
                opened = o;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

fn check(expected: &Whole, got: Whole) -> Option<CloudError> {
    if let (Some(e), Some(g)) = (expected.crc32c, got.crc32c) {
        if e != g {
            return Some(CloudError::new(
                Class::Checksum,
                format!("CRC-32C of the downloaded bytes is {g:08x}, the store says {e:08x}"),
            ));
        }
    }
    if let (Some(e), Some(g)) = (expected.md5, got.md5) {
        if e != g {
            return Some(CloudError::new(
                Class::Checksum,
                "MD5 of the downloaded bytes differs from the store's",
            ));
        }
    }
    None
}

struct StreamReader {
    rx: mpsc::Receiver<std::result::Result<Bytes, CloudError>>,
    current: Bytes,
    done: bool,
    task: tokio::task::JoinHandle<()>,
    // Keeps the runtime alive while the download runs, even if the backend is dropped first.
    _rt: Arc<Runtime>,
    err: Box<dyn Fn(CloudError) -> crate::Error + Send>,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match futures_executor::block_on(self.rx.recv()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    self.done = true;
                    return Err((self.err)(e).into_io());
                }
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// An object in memory whose first `cuts` downloads break after `cut_at` bytes.
    struct Flaky {
        data: Bytes,
        cut_at: usize,
        cuts: AtomicU32,
        opens: AtomicU32,
        claimed: Whole,
    }

    impl ReadSource for Flaky {
        fn open(
            self: Arc<Self>,
            start: u64,
            end: Option<u64>,
            _: Option<String>,
        ) -> BoxFut<Opened> {
            Box::pin(async move {
                self.opens.fetch_add(1, Ordering::SeqCst);
                let end = end
                    .unwrap_or(self.data.len() as u64)
                    .min(self.data.len() as u64) as usize;
                let start = (start as usize).min(end);
                let slice = self.data.slice(start..end);
                let cut = self.cuts.load(Ordering::SeqCst) > 0;
                if cut {
                    self.cuts.fetch_sub(1, Ordering::SeqCst);
                }
                let cut_at = self.cut_at.min(slice.len());
                let chunks: Vec<std::result::Result<Bytes, CloudError>> = if cut {
                    vec![
                        Ok(slice.slice(..cut_at)),
                        Err(CloudError::new(Class::Connection, "reset by peer")),
                    ]
                } else {
                    slice
                        .chunks(1000)
                        .map(|c| Ok(Bytes::copy_from_slice(c)))
                        .collect()
                };
                Ok(Opened {
                    body: futures_util::stream::iter(chunks).boxed(),
                    version: Some("v1".into()),
                    length: Some(slice.len() as u64),
                    expected: self.claimed,
                })
            })
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            request_timeout: Duration::from_secs(5),
        }
    }

    fn flaky(cuts: u32, claimed: Option<u32>) -> Arc<Flaky> {
        flaky_at(cuts, claimed, 12_345)
    }

    fn flaky_at(cuts: u32, claimed: Option<u32>, cut_at: usize) -> Arc<Flaky> {
        let data: Bytes = (0..50_000u32)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<_>>()
            .into();
        let crc = crc32c::crc32c(&data);
        Arc::new(Flaky {
            data,
            cut_at,
            cuts: AtomicU32::new(cuts),
            opens: AtomicU32::new(0),
            claimed: Whole {
                md5: None,
                crc32c: Some(claimed.unwrap_or(crc)),
            },
        })
    }

    fn err(e: CloudError) -> crate::Error {
        e.into_error("mem://", "get", Some("k"))
    }

    #[test]
    fn a_cut_download_resumes_where_it_stopped() {
        let rt = Arc::new(Runtime::new("test").unwrap());
        let src = flaky(2, None);
        let mut r = open_reader(&rt, &policy(), src.clone(), 0, None, err).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, src.data);
        assert_eq!(src.opens.load(Ordering::SeqCst), 3);

        let src = flaky(1, None);
        let mut r = open_reader(&rt, &policy(), src.clone(), 100, Some(20_100), err).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, src.data[100..20_100]);
    }

    #[test]
    fn a_whole_read_with_a_wrong_digest_fails() {
        let rt = Arc::new(Runtime::new("test").unwrap());
        let mut r = open_reader(&rt, &policy(), flaky(0, Some(1)), 0, None, err).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(matches!(
            crate::Error::from_io(&e),
            Some(crate::Error::Corrupt { .. })
        ));
    }

    #[test]
    fn too_many_cuts_fail_the_read() {
        let rt = Arc::new(Runtime::new("test").unwrap());
        // Each resumed download breaks before giving a byte.
        let mut r = open_reader(&rt, &policy(), flaky_at(10, None, 0), 0, None, err).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("reset by peer"), "{e}");
    }
}
