//! The measure stage: bytes, CRC-32C and MD5 of what passes one point of a pipeline.

use md5::{Digest, Md5};

use super::{Digests, Measured};

/// Counts the bytes it is shown and keeps the digests it was asked for.
///
/// The write and read pipelines use one on each side; it is public so that code which moves bytes
/// without a pipeline (a bundle entry held in memory, a file being spooled) measures them the same
/// way.
///
/// ```
/// use pgbak_compress::pipeline::{Digests, Meter};
///
/// let mut meter = Meter::new(Digests::CRC32C);
/// meter.update(b"1234");
/// meter.update(b"56789");
/// let m = meter.measured();
/// assert_eq!((m.bytes, m.crc32c, m.md5), (9, Some(0xe306_9283), None));
/// ```
#[derive(Clone)]
pub struct Meter {
    bytes: u64,
    crc32c: Option<u32>,
    md5: Option<Md5>,
}

impl Meter {
    /// A meter that has seen nothing yet and computes `digests`.
    pub fn new(digests: Digests) -> Meter {
        Meter {
            bytes: 0,
            crc32c: digests.crc32c.then_some(0),
            md5: digests.md5.then(Md5::new),
        }
    }

    /// Takes `data` into account.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(crc) = &mut self.crc32c {
            *crc = crc32c::crc32c_append(*crc, data);
        }
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
    }

    /// The bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What was seen so far (the MD5 of a stream is final only at its end).
    pub fn measured(&self) -> Measured {
        Measured {
            bytes: self.bytes,
            crc32c: self.crc32c,
            md5: self.md5.as_ref().map(|m| m.clone().finalize().into()),
        }
    }
}

/// A meter is also a sink: `io::copy` into it measures a stream and keeps nothing.
impl std::io::Write for Meter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("bytes", &self.bytes)
            .field("crc32c", &self.crc32c)
            .field("md5", &self.md5.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let mut m = Meter::new(Digests::CRC32C_MD5);
        m.update(b"");
        m.update(b"123456789");
        let got = m.measured();
        assert_eq!(got.bytes, 9);
        // The check value of CRC-32C (Castagnoli).
        assert_eq!(got.crc32c, Some(0xe306_9283));
        // md5("123456789")
        let hex: String = got
            .md5
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "25f9e794323b453885f5181f1b624d0b");

        let none = Meter::new(Digests::NONE);
        assert_eq!(none.measured(), Measured::default());
    }

    #[test]
    fn measured_so_far_does_not_disturb_the_stream() {
        let mut m = Meter::new(Digests::CRC32C_MD5);
        m.update(b"1234");
        let _ = m.measured();
        m.update(b"56789");
        let mut whole = Meter::new(Digests::CRC32C_MD5);
        whole.update(b"123456789");
        assert_eq!(m.measured(), whole.measured());
    }
}
