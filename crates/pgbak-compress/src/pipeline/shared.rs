//! A stage that the stage above it writes into (or reads from) but that the pipeline still has to
//! reach: the encoders of [`crate::Compressor`] and [`crate::Encryptor`] take their inner writer
//! by value, while the pipeline must finish the encryptor after the codec and take the sink back
//! at the end. The lock is never contended (one stream, one thread at a time) and is taken once per
//! write of the stage above, which buffers into large writes.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// A stage owned jointly by the pipeline and the stage above it; `None` once taken out.
pub(super) type Shared<T> = Arc<Mutex<Option<T>>>;

pub(super) fn shared<T>(value: T) -> Shared<T> {
    Arc::new(Mutex::new(Some(value)))
}

pub(super) fn lock<T>(s: &Shared<T>) -> io::Result<MutexGuard<'_, Option<T>>> {
    s.lock()
        .map_err(|_| io::Error::other("a pipeline stage panicked"))
}

/// Takes the stage out, for its last use by the pipeline.
pub(super) fn take<T>(s: &Shared<T>) -> io::Result<T> {
    lock(s)?
        .take()
        .ok_or_else(|| io::Error::other("pipeline stage already finished"))
}

/// What the stage above sees.
pub(super) struct Handle<T>(pub(super) Shared<T>);

fn gone() -> io::Error {
    io::Error::other("pipeline stage already finished")
}

impl<T: Write> Write for Handle<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0)?.as_mut().ok_or_else(gone)?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        lock(&self.0)?.as_mut().ok_or_else(gone)?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.0)?.as_mut().ok_or_else(gone)?.flush()
    }
}

impl<T: Read> Read for Handle<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.0)?.as_mut().ok_or_else(gone)?.read(buf)
    }
}
