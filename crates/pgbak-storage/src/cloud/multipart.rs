//! The one multipart upload layer of the cloud backends. A [`MultipartWriter`] cuts the byte
//! stream into parts of `part_size`, uploads up to `upload_concurrency` parts at once (across
//! all the uploads of one repository: one semaphore per backend), and completes the upload on
//! commit. An object no larger than one part goes in a single request.
//!
//! Memory is bounded: a writer holds the part it is filling, and at most `upload_concurrency`
//! parts are in flight per repository, so one upload never holds more than
//! (`upload_concurrency` + 1) parts and a repository never more than (open uploads +
//! `upload_concurrency`) parts. Small objects never allocate a whole part.
//!
//! A writer dropped before its commit cancels its part uploads and aborts the upload (S3
//! AbortMultipartUpload, GCS session cancel; Azure's uncommitted blocks expire by themselves),
//! so nothing ever appears under the key.

use crate::cloud::digest::{Running, Wanted, Whole};
use crate::cloud::runtime::Runtime;
use crate::cloud::{Class, CloudError};
use crate::{CommitMode, Error, FailureWatch, ObjectWriter, Result};
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub(crate) type BoxFut<T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, CloudError>> + Send>>;

/// One upload to one key, as a store does it. Each method is one logical step, retried inside.
pub(crate) trait UploadTarget: Send + Sync + 'static {
    /// The upload in progress (upload id, session URL...).
    type Session: Send + Sync + 'static;
    /// What a finished part leaves for the completion (ETag, block id...).
    type Part: Send + 'static;

    /// Whether parts may be uploaded concurrently (GCS resumable uploads go in order).
    fn parallel(&self) -> bool;
    /// The most parts an upload may have, if the store limits it (S3: 10,000).
    fn max_parts(&self) -> Option<u32>;
    /// The whole-object digests the completion needs.
    fn wanted(&self) -> Wanted;
    /// Uploads a whole object in one request.
    fn put_whole(self: Arc<Self>, data: Bytes, whole: Whole, mode: CommitMode) -> BoxFut<()>;
    /// Starts a multipart upload; `hint` is the commit mode when the caller gave it up front.
    fn start(self: Arc<Self>, hint: Option<CommitMode>) -> BoxFut<Self::Session>;
    /// Uploads part `index` (from 0), which starts at byte `offset` of the object.
    fn upload_part(
        self: Arc<Self>,
        session: Arc<Self::Session>,
        index: u32,
        offset: u64,
        data: Bytes,
    ) -> BoxFut<Self::Part>;
    /// Uploads the last bytes (`tail`, maybe empty, starting at `offset`) and completes the
    /// upload from `parts` (in order).
    #[allow(clippy::too_many_arguments)]
    fn complete(
        self: Arc<Self>,
        session: Arc<Self::Session>,
        parts: Vec<Self::Part>,
        tail: Bytes,
        offset: u64,
        whole: Whole,
        mode: CommitMode,
    ) -> BoxFut<()>;
    /// Abandons the upload and what its parts left in the store.
    fn abort(self: Arc<Self>, session: Arc<Self::Session>) -> BoxFut<()>;
}

/// Shared by the writers of one backend: the in-flight gate and the accounting of part buffers.
pub(crate) struct UploadPool {
    pub gate: Arc<Semaphore>,
    pub part_size: usize,
    pub abort_timeout: Duration,
    buffered: AtomicU64,
    peak: AtomicU64,
    /// Part buffers given back by finished uploads, reused rather than freed: the allocator
    /// then never fragments under a stream of part-sized allocations.
    free: Mutex<Vec<Vec<u8>>>,
    max_free: usize,
}

impl UploadPool {
    pub fn new(part_size: u64, concurrency: usize, abort_timeout: Duration) -> Arc<Self> {
        Arc::new(UploadPool {
            gate: Arc::new(Semaphore::new(concurrency)),
            part_size: part_size as usize,
            abort_timeout,
            buffered: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            free: Mutex::new(Vec::new()),
            max_free: concurrency + 1,
        })
    }

    /// An empty buffer of capacity `cap`, reused when one is free.
    fn take_buffer(&self, cap: usize) -> Vec<u8> {
        let mut free = self.free.lock().expect("pool lock");
        if let Some(i) = free.iter().position(|b| b.capacity() == cap) {
            let mut b = free.swap_remove(i);
            b.clear();
            return b;
        }
        drop(free);
        self.add(cap);
        Vec::with_capacity(cap)
    }

    /// Takes back a buffer from [`UploadPool::take_buffer`].
    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().expect("pool lock");
        if free.len() < self.max_free && buf.capacity() == self.part_size {
            free.push(buf);
        } else {
            drop(free);
            self.sub(buf.capacity());
        }
    }

    fn add(&self, n: usize) {
        let now = self.buffered.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn sub(&self, n: usize) {
        self.buffered.fetch_sub(n as u64, Ordering::SeqCst);
    }

    /// The most bytes part buffers of this backend have held at once.
    pub fn peak_buffered(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }

    /// The bytes part buffers hold now.
    #[cfg(test)]
    pub fn buffered(&self) -> u64 {
        self.buffered.load(Ordering::SeqCst)
    }
}

/// A part buffer from the pool, owned by the `Bytes` an upload sends: given back to the pool
/// when the last copy of those bytes is gone.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<UploadPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// Gives a small buffer's bytes back to the pool's accounting when the buffer is gone.
struct Held {
    pool: Arc<UploadPool>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pool.sub(self.bytes);
    }
}

/// The smallest first allocation of a writer: small objects stay small.
const FIRST_BUFFER: usize = 64 << 10;

type PartTask<P> = JoinHandle<std::result::Result<(u32, P), CloudError>>;

pub(crate) struct MultipartWriter<T: UploadTarget> {
    target: Arc<T>,
    rt: Arc<Runtime>,
    pool: Arc<UploadPool>,
    repo: String,
    key: String,
    buf: Vec<u8>,
    /// `buf` came from the pool (else it is a small first buffer of `held` bytes).
    pooled: bool,
    held: usize,
    digests: Running,
    session: Option<Arc<T::Session>>,
    in_flight: VecDeque<PartTask<T::Part>>,
    done: Vec<(u32, T::Part)>,
    next_index: u32,
    offset: u64,
    failed: Option<Error>,
    /// Set by a part that fails in the background.
    watch: FailureWatch,
    finished: bool,
    mode_hint: Option<CommitMode>,
}

impl<T: UploadTarget> MultipartWriter<T> {
    pub fn new(
        target: Arc<T>,
        rt: Arc<Runtime>,
        pool: Arc<UploadPool>,
        repo: String,
        key: String,
    ) -> Self {
        let digests = Running::new(target.wanted());
        MultipartWriter {
            target,
            rt,
            pool,
            repo,
            key,
            buf: Vec::new(),
            pooled: false,
            held: 0,
            digests,
            session: None,
            in_flight: VecDeque::new(),
            done: Vec::new(),
            next_index: 0,
            offset: 0,
            failed: None,
            watch: FailureWatch::default(),
            finished: false,
            mode_hint: None,
        }
    }

    /// Tells the store the commit mode at the start of the upload.
    pub fn with_mode_hint(mut self, mode: CommitMode) -> Self {
        self.mode_hint = Some(mode);
        self
    }

    fn error(&self, op: &'static str, e: CloudError) -> Error {
        e.into_error(&self.repo, op, Some(&self.key))
    }

    /// The size of part `index`: the configured size, doubled each quarter of the store's part
    /// limit so that objects far larger than `part_size` × limit still fit.
    fn part_size_for(&self, index: u32) -> usize {
        match self.target.max_parts() {
            Some(max) => {
                let quarter = (max / 4).max(1);
                let shift = (index / quarter).min(8);
                self.pool.part_size << shift
            }
            None => self.pool.part_size,
        }
    }

    fn reserve(&mut self, want: usize) {
        if self.buf.capacity() >= want {
            return;
        }
        let target = self.part_size_for(self.next_index);
        if self.next_index == 0 && !self.pooled && want <= FIRST_BUFFER.min(target) {
            let before = self.buf.capacity();
            self.buf
                .reserve_exact(FIRST_BUFFER.min(target) - self.buf.len());
            let grown = self.buf.capacity() - before;
            self.pool.add(grown);
            self.held += grown;
            return;
        }
        let mut full = self.pool.take_buffer(target.max(want));
        full.extend_from_slice(&self.buf);
        self.release_buf();
        self.buf = full;
        self.pooled = true;
    }

    /// Gives `buf` back (to the pool, or to the accounting).
    fn release_buf(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if self.pooled {
            self.pool.give_back(buf);
        } else {
            self.pool.sub(self.held);
        }
        self.pooled = false;
        self.held = 0;
    }

    /// `buf` as bytes to send; its memory goes back when the last copy is dropped.
    fn take_bytes(&mut self) -> (Bytes, Option<Held>) {
        let buf = std::mem::take(&mut self.buf);
        let r = if self.pooled {
            (
                Bytes::from_owner(Pooled {
                    buf,
                    pool: self.pool.clone(),
                }),
                None,
            )
        } else {
            (
                Bytes::from(buf),
                Some(Held {
                    pool: self.pool.clone(),
                    bytes: self.held,
                }),
            )
        };
        self.pooled = false;
        self.held = 0;
        r
    }

    /// Collects the parts that have finished, without waiting.
    fn reap(&mut self, wait_all: bool) -> std::result::Result<(), CloudError> {
        while let Some(h) = self.in_flight.front() {
            if !wait_all && !h.is_finished() {
                break;
            }
            let h = self.in_flight.pop_front().expect("front exists");
            match futures_executor::block_on(h) {
                Ok(Ok(part)) => self.done.push(part),
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(CloudError::new(Class::Other, "part upload cancelled")),
            }
        }
        Ok(())
    }

    /// Sends the full buffer as the next part.
    fn ship(&mut self) -> std::result::Result<(), CloudError> {
        if self.session.is_none() {
            let target = self.target.clone();
            let s = self.rt.block_on(target.start(self.mode_hint))?;
            self.session = Some(Arc::new(s));
        }
        self.reap(!self.target.parallel())?;
        let gate = self.pool.gate.clone();
        let permit = self.rt.block_on(async move {
            gate.acquire_owned()
                .await
                .map_err(|_| CloudError::new(Class::Other, "upload gate closed"))
        })?;
        let (data, held) = self.take_bytes();
        let index = self.next_index;
        let offset = self.offset;
        self.next_index += 1;
        self.offset += data.len() as u64;
        let target = self.target.clone();
        let session = self.session.clone().expect("session started");
        let (watch, repo, key) = (self.watch.clone(), self.repo.clone(), self.key.clone());
        let task = self.rt.handle().spawn(async move {
            let r = target.upload_part(session, index, offset, data).await;
            drop(held);
            drop(permit);
            if let Err(e) = &r {
                let e = e.clone();
                watch.fail(move || e.clone().into_error(&repo, "put", Some(key.as_str())));
            }
            r.map(|p| (index, p))
        });
        self.in_flight.push_back(task);
        Ok(())
    }

    fn abort_now(&mut self) {
        for h in self.in_flight.drain(..) {
            h.abort();
        }
        if let Some(session) = self.session.take() {
            let target = self.target.clone();
            if let Err(e) = self
                .rt
                .block_on_for(self.pool.abort_timeout, target.abort(session))
            {
                tracing::debug!("aborting the upload of {:?} failed: {e}", self.key);
            }
        }
    }

    fn commit_inner(&mut self, mode: CommitMode) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let whole = std::mem::take(&mut self.digests).finish();
        let (tail, _held) = self.take_bytes();
        let target = self.target.clone();
        match self.session.clone() {
            None => self
                .rt
                .block_on(target.put_whole(tail, whole, mode))
                .map_err(|e| self.error("put", e)),
            Some(session) => {
                self.reap(true).map_err(|e| self.error("put", e))?;
                let mut parts = std::mem::take(&mut self.done);
                parts.sort_by_key(|(i, _)| *i);
                let parts = parts.into_iter().map(|(_, p)| p).collect();
                let r = self.rt.block_on(target.complete(
                    session,
                    parts,
                    tail,
                    self.offset,
                    whole,
                    mode,
                ));
                r.map_err(|e| self.error("commit", e))
            }
        }
    }
}

impl<T: UploadTarget> Write for MultipartWriter<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(format!("an earlier write failed: {e}")));
        }
        let mut rest = data;
        while !rest.is_empty() {
            let size = self.part_size_for(self.next_index);
            if self.buf.len() >= size {
                // Sent only once more bytes come: an object of exactly one part takes one request.
                if let Err(e) = self.ship() {
                    self.failed = Some(self.error("put", e.clone()));
                    self.abort_now();
                    return Err(self.error("put", e).into_io());
                }
            }
            let n = rest.len().min(size - self.buf.len());
            self.reserve(self.buf.len() + n);
            self.buf.extend_from_slice(&rest[..n]);
            self.digests.update(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(data.len())
    }

    /// Reports a part that has failed so far, without waiting for the others, so that a writer
    /// fed slowly learns early that its upload is lost. Nothing becomes visible before commit.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(format!("an earlier write failed: {e}")));
        }
        if let Err(e) = self.reap(false) {
            self.failed = Some(self.error("put", e.clone()));
            self.abort_now();
            return Err(self.error("put", e).into_io());
        }
        Ok(())
    }
}

impl<T: UploadTarget> ObjectWriter for MultipartWriter<T> {
    fn commit(mut self: Box<Self>, mode: CommitMode) -> Result<()> {
        let r = self.commit_inner(mode);
        if r.is_ok() {
            self.finished = true;
        }
        // On failure Drop aborts the upload.
        r
    }

    fn failure_watch(&self) -> Option<FailureWatch> {
        Some(self.watch.clone())
    }
}

impl<T: UploadTarget> Drop for MultipartWriter<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.abort_now();
        }
        self.release_buf();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in memory that records what it was asked, to check the layer's bookkeeping.
    #[derive(Default)]
    struct Fake {
        parallel: bool,
        events: Mutex<Vec<String>>,
        object: Mutex<Option<Vec<u8>>>,
        fail_part: Option<u32>,
        max_parts: Option<u32>,
    }

    impl UploadTarget for Fake {
        type Session = ();
        type Part = (u32, Vec<u8>);
        fn parallel(&self) -> bool {
            self.parallel
        }
        fn max_parts(&self) -> Option<u32> {
            self.max_parts
        }
        fn wanted(&self) -> Wanted {
            Wanted {
                md5: true,
                crc32c: true,
            }
        }
        fn put_whole(self: Arc<Self>, data: Bytes, whole: Whole, _: CommitMode) -> BoxFut<()> {
            Box::pin(async move {
                assert_eq!(whole.md5, Some(crate::cloud::digest::md5(&data)));
                self.events
                    .lock()
                    .unwrap()
                    .push(format!("whole {}", data.len()));
                *self.object.lock().unwrap() = Some(data.to_vec());
                Ok(())
            })
        }
        fn start(self: Arc<Self>, _: Option<CommitMode>) -> BoxFut<()> {
            Box::pin(async move {
                self.events.lock().unwrap().push("start".into());
                Ok(())
            })
        }
        fn upload_part(
            self: Arc<Self>,
            _: Arc<()>,
            i: u32,
            off: u64,
            d: Bytes,
        ) -> BoxFut<(u32, Vec<u8>)> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if self.fail_part == Some(i) {
                    return Err(CloudError::new(Class::Auth, "denied"));
                }
                self.events
                    .lock()
                    .unwrap()
                    .push(format!("part {i} at {off} len {}", d.len()));
                // A store keeps its own copy: the part's buffer goes back to the pool.
                Ok((i, d.to_vec()))
            })
        }
        fn complete(
            self: Arc<Self>,
            _: Arc<()>,
            parts: Vec<(u32, Vec<u8>)>,
            tail: Bytes,
            offset: u64,
            whole: Whole,
            _: CommitMode,
        ) -> BoxFut<()> {
            Box::pin(async move {
                let mut all = Vec::new();
                for (i, (n, d)) in parts.iter().enumerate() {
                    assert_eq!(i as u32, *n);
                    all.extend_from_slice(d);
                }
                assert_eq!(all.len() as u64, offset);
                all.extend_from_slice(&tail);
                assert_eq!(whole.md5, Some(crate::cloud::digest::md5(&all)));
                self.events.lock().unwrap().push(format!(
                    "complete {} parts tail {}",
                    parts.len(),
                    tail.len()
                ));
                *self.object.lock().unwrap() = Some(all);
                Ok(())
            })
        }
        fn abort(self: Arc<Self>, _: Arc<()>) -> BoxFut<()> {
            Box::pin(async move {
                self.events.lock().unwrap().push("abort".into());
                Ok(())
            })
        }
    }

    const PART: u64 = 5 << 20;

    fn writer(fake: Arc<Fake>, pool: Arc<UploadPool>) -> MultipartWriter<Fake> {
        let rt = Arc::new(Runtime::new("test").unwrap());
        MultipartWriter::new(fake, rt, pool, "mem://".into(), "k".into())
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn an_object_of_one_part_takes_one_request() {
        let fake = Arc::new(Fake::default());
        let pool = UploadPool::new(PART, 2, Duration::from_secs(1));
        let mut w = Box::new(writer(fake.clone(), pool.clone()));
        let d = data(PART as usize);
        for c in d.chunks(100_000) {
            w.write_all(c).unwrap();
        }
        w.commit(CommitMode::Replace).unwrap();
        assert_eq!(*fake.events.lock().unwrap(), [format!("whole {PART}")]);
        assert_eq!(fake.object.lock().unwrap().as_deref(), Some(&d[..]));
        // The part-sized buffer waits in the pool for the next upload.
        assert_eq!(pool.buffered(), PART);
    }

    #[test]
    fn a_large_object_goes_in_parts_with_bounded_buffers() {
        for parallel in [true, false] {
            let fake = Arc::new(Fake {
                parallel,
                ..Fake::default()
            });
            let pool = UploadPool::new(PART, 2, Duration::from_secs(1));
            let mut w = Box::new(writer(fake.clone(), pool.clone()));
            let d = data(7 * PART as usize + 12345);
            for c in d.chunks(1 << 20) {
                w.write_all(c).unwrap();
            }
            w.commit(CommitMode::CreateNew).unwrap();
            let ev = fake.events.lock().unwrap().clone();
            assert_eq!(ev.first().map(String::as_str), Some("start"));
            assert_eq!(ev.last().unwrap(), "complete 7 parts tail 12345");
            assert_eq!(fake.object.lock().unwrap().as_deref(), Some(&d[..]));
            // The part being filled plus at most two in flight.
            assert!(pool.peak_buffered() <= 3 * PART, "{}", pool.peak_buffered());
            assert!(pool.buffered() <= 3 * PART);
        }
    }

    #[test]
    fn parts_grow_past_a_quarter_of_the_part_limit() {
        let fake = Arc::new(Fake {
            max_parts: Some(8),
            ..Fake::default()
        });
        let pool = UploadPool::new(PART, 2, Duration::from_secs(1));
        let w = writer(fake, pool);
        assert_eq!(w.part_size_for(0), PART as usize);
        assert_eq!(w.part_size_for(2), 2 * PART as usize);
        assert_eq!(w.part_size_for(7), 8 * PART as usize);
    }

    #[test]
    fn a_failed_part_shows_in_the_watch_and_in_flush_before_the_commit() {
        let fake = Arc::new(Fake {
            fail_part: Some(0),
            ..Fake::default()
        });
        let pool = UploadPool::new(PART, 2, Duration::from_secs(1));
        let mut w = Box::new(writer(fake.clone(), pool));
        let watch = w.failure_watch().expect("a multipart writer has a watch");
        assert!(watch.failure().is_none());
        // Part 0 is shipped when the first byte of part 1 comes.
        w.write_all(&data(PART as usize + 1)).unwrap();
        let started = std::time::Instant::now();
        let seen = loop {
            if let Some(e) = watch.failure() {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no failure seen"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(seen.kind(), crate::ErrorKind::PermissionDenied, "{seen}");
        let e = loop {
            match w.flush() {
                Err(e) => break e,
                Ok(()) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "no failure seen"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        assert!(e.to_string().contains("denied"), "{e}");
        assert_eq!(fake.events.lock().unwrap().last().unwrap(), "abort");
        assert!(w.write_all(b"more").is_err());
        assert!(w.commit(CommitMode::Replace).is_err());
        assert!(fake.object.lock().unwrap().is_none());
    }

    #[test]
    fn a_dropped_writer_aborts_and_a_failed_part_fails_the_commit() {
        let fake = Arc::new(Fake::default());
        let pool = UploadPool::new(PART, 2, Duration::from_secs(1));
        let mut w = Box::new(writer(fake.clone(), pool.clone()));
        w.write_all(&data(2 * PART as usize + 1)).unwrap();
        drop(w);
        assert_eq!(fake.events.lock().unwrap().last().unwrap(), "abort");
        assert!(fake.object.lock().unwrap().is_none());
        assert!(pool.buffered() <= 3 * PART);

        let fake = Arc::new(Fake {
            fail_part: Some(0),
            ..Fake::default()
        });
        let mut w = Box::new(writer(fake.clone(), pool.clone()));
        w.write_all(&data(PART as usize + 1)).unwrap();
        let e = w.commit(CommitMode::Replace).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied, "{e}");
        assert_eq!(fake.events.lock().unwrap().last().unwrap(), "abort");
        assert!(fake.object.lock().unwrap().is_none());
    }
}
