//! Writing on a thread of its own: [`write_behind`] wraps an object whose writes are synchronous
//! (a local file) so that the caller's thread hands over full buffers and goes on compressing
//! while another thread makes the `write` calls. Memory stays bounded: one buffer being filled,
//! one queued, one being written.
//!
//! Nothing about durability changes: the bytes become durable and visible at
//! [`ObjectWriter::commit`], which first waits for every queued buffer to be written.

use crate::{CommitMode, Error, FailureWatch, ObjectWriter, Result};
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Size of the buffers handed to the writing thread.
pub const BUFFER_SIZE: usize = 1 << 20;

/// Buffers queued for the writing thread beyond the one it is writing.
const QUEUE_DEPTH: usize = 1;

/// `object` with its writes made on a thread of its own, when they are synchronous; an object
/// that already sends its bytes in the background (it has a [`FailureWatch`]) is returned as it
/// is. `what` names the object in a failure reported through the watch.
pub fn write_behind(object: Box<dyn ObjectWriter>, what: &str) -> Result<Box<dyn ObjectWriter>> {
    if object.failure_watch().is_some() {
        return Ok(object);
    }
    Ok(Box::new(WriteBehind::start(object, what.to_string())?))
}

/// What the writing thread ends with: the object, and how its last write went.
type Written = (Box<dyn ObjectWriter>, io::Result<()>);

enum Message {
    Data(Vec<u8>),
    /// Flush the object and answer.
    Flush(SyncSender<io::Result<()>>),
}

struct WriteBehind {
    buf: Vec<u8>,
    /// `None` once the thread has been joined.
    tx: Option<SyncSender<Message>>,
    /// Buffers the thread has written, for reuse.
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Written>>,
    watch: FailureWatch,
    /// The thread's failure, once learnt (reported again by every later call).
    failed: Option<(io::ErrorKind, String)>,
    /// The object, for errors.
    what: String,
}

impl WriteBehind {
    fn start(mut object: Box<dyn ObjectWriter>, what: String) -> Result<WriteBehind> {
        let (tx, rx) = mpsc::sync_channel::<Message>(QUEUE_DEPTH);
        let (spare_tx, spare) = mpsc::sync_channel::<Vec<u8>>(QUEUE_DEPTH + 1);
        let watch = FailureWatch::default();
        let thread_watch = watch.clone();
        let thread_what = what.clone();
        let thread = thread::Builder::new()
            .name("pgbak-write".into())
            .spawn(move || {
                for message in rx {
                    let result = match message {
                        Message::Data(buf) => {
                            let r = object.write_all(&buf);
                            let _ = spare_tx.try_send(buf);
                            r
                        }
                        Message::Flush(answer) => {
                            let r = object.flush();
                            let failed = r.as_ref().err().map(|e| (e.kind(), e.to_string()));
                            let _ = answer.send(r);
                            match failed {
                                Some((kind, text)) => Err(io::Error::new(kind, text)),
                                None => Ok(()),
                            }
                        }
                    };
                    if let Err(e) = result {
                        let (kind, text, what) = (e.kind(), e.to_string(), thread_what.clone());
                        thread_watch.fail(move || {
                            Error::io("write", what.clone(), io::Error::new(kind, text.clone()))
                        });
                        return (object, Err(e));
                    }
                }
                (object, Ok(()))
            })
            .map_err(|e| Error::io("start a writing thread for", what.clone(), e))?;
        Ok(WriteBehind {
            buf: Vec::with_capacity(BUFFER_SIZE),
            tx: Some(tx),
            spare,
            thread: Some(thread),
            watch,
            failed: None,
            what,
        })
    }

    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }

    /// Joins the thread after it stopped: its failure, or an error saying it is gone.
    fn join(&mut self) -> io::Error {
        self.tx = None;
        let failure = match self.thread.take().map(JoinHandle::join) {
            Some(Ok((_, Err(e)))) => (e.kind(), e.to_string()),
            Some(Ok((_, Ok(())))) | None => (
                io::ErrorKind::BrokenPipe,
                "the writing thread stopped".to_string(),
            ),
            Some(Err(_)) => (
                io::ErrorKind::Other,
                "the writing thread panicked".to_string(),
            ),
        };
        self.failed = Some(failure);
        self.failure().expect("just set")
    }

    fn send(&mut self, message: Message) -> io::Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(message).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.join())
        }
    }

    /// Hands the filled buffer to the thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(BUFFER_SIZE),
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Message::Data(full))
    }
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let n = data.len().min(BUFFER_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BUFFER_SIZE {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()?;
        let (answer, answered) = mpsc::sync_channel(1);
        self.send(Message::Flush(answer))?;
        match answered.recv() {
            Ok(result) => result,
            Err(_) => Err(self.join()),
        }
    }
}

impl ObjectWriter for WriteBehind {
    fn commit(mut self: Box<Self>, mode: CommitMode) -> Result<()> {
        let written = self.hand_over();
        self.tx = None;
        let joined = self.thread.take().map(JoinHandle::join);
        let what = std::mem::take(&mut self.what);
        let object = match joined {
            Some(Ok((object, Ok(())))) => object,
            Some(Ok((_, Err(e)))) => return Err(Error::io("write", what, e)),
            Some(Err(_)) | None => {
                let e = self
                    .failure()
                    .unwrap_or_else(|| io::Error::other("the writing thread stopped"));
                return Err(Error::io("write", what, e));
            }
        };
        written.map_err(|e| Error::io("write", what, e))?;
        object.commit(mode)
    }

    fn failure_watch(&self) -> Option<FailureWatch> {
        Some(self.watch.clone())
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Dropped before its commit: the thread ends and drops the object, which discards it.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStorage, StorageBackend};
    use std::io::Read;

    fn store() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        (dir, s)
    }

    fn read(s: &LocalStorage, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        s.get(key).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn bytes_written_in_odd_pieces_arrive_whole_at_commit() {
        let (_d, s) = store();
        let mut w = write_behind(s.put("a/obj").unwrap(), "a/obj").unwrap();
        let data: Vec<u8> = (0..3 * BUFFER_SIZE + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in data.chunks(65_537) {
            w.write_all(piece).unwrap();
        }
        w.flush().unwrap();
        assert!(s.get("a/obj").is_err(), "visible before its commit");
        w.commit(CommitMode::CreateNew).unwrap();
        assert_eq!(read(&s, "a/obj"), data);
    }

    #[test]
    fn a_dropped_writer_leaves_nothing() {
        let (d, s) = store();
        let mut w = write_behind(s.put("obj").unwrap(), "obj").unwrap();
        w.write_all(&vec![7u8; 2 * BUFFER_SIZE]).unwrap();
        drop(w);
        assert!(s.get("obj").is_err());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    #[test]
    fn create_new_still_refuses_an_existing_key() {
        let (_d, s) = store();
        let mut first = s.put("obj").unwrap();
        first.write_all(b"first").unwrap();
        first.commit(CommitMode::CreateNew).unwrap();
        let mut w = write_behind(s.put("obj").unwrap(), "obj").unwrap();
        w.write_all(b"second").unwrap();
        let e = w.commit(CommitMode::CreateNew).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
        assert_eq!(read(&s, "obj"), b"first");
    }

    /// An object whose writes fail after `limit` bytes, as a full disk does.
    struct Failing {
        written: usize,
        limit: usize,
    }

    impl Write for Failing {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.written + data.len() > self.limit {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device",
                ));
            }
            self.written += data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl ObjectWriter for Failing {
        fn commit(self: Box<Self>, _: CommitMode) -> Result<()> {
            panic!("a failed object must not be committed");
        }
    }

    #[test]
    fn a_failed_write_is_reported_by_the_watch_later_writes_and_commit() {
        let failing = Box::new(Failing {
            written: 0,
            limit: BUFFER_SIZE + 10,
        });
        let mut w = write_behind(failing, "base/x/base.tar").unwrap();
        let watch = w.failure_watch().expect("a watch");
        // Two full buffers: the second fails on the thread; the caller learns it at a later
        // call, and the watch tells it without a call.
        let mut seen = None;
        for _ in 0..8 {
            if let Err(e) = w.write_all(&vec![1u8; BUFFER_SIZE]) {
                seen = Some(e);
                break;
            }
        }
        let e = seen.expect("a later write fails");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        let watched = watch.failure().expect("the watch saw it");
        assert!(watched.to_string().contains("base/x/base.tar"), "{watched}");
        assert!(w.flush().is_err());
        assert!(w.commit(CommitMode::CreateNew).is_err());
    }
}
