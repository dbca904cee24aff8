//! Checksums of uploaded and downloaded bytes: MD5 (what S3 ETags, `Content-MD5` and Azure
//! use) and CRC-32C (what GCS and S3's newer checksums use).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};

/// Base64 of `bytes`, as checksum headers carry them.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64, `None` when it is not.
pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 of `data`.
pub(crate) fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The digests of a whole object, computed while it streams.
#[derive(Clone, Default)]
pub(crate) struct Running {
    md5: Option<Md5>,
    crc32c: Option<u32>,
}

/// Which whole-object digests a backend wants.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wanted {
    pub md5: bool,
    pub crc32c: bool,
}

/// Finished whole-object digests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Whole {
    pub md5: Option<[u8; 16]>,
    pub crc32c: Option<u32>,
}

impl Running {
    pub fn new(wanted: Wanted) -> Self {
        Running {
            md5: wanted.md5.then(Md5::new),
            crc32c: wanted.crc32c.then_some(0),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.md5 {
            m.update(data);
        }
        if let Some(c) = &mut self.crc32c {
            *c = crc32c::crc32c_append(*c, data);
        }
    }

    pub fn finish(self) -> Whole {
        Whole {
            md5: self.md5.map(|m| m.finalize().into()),
            crc32c: self.crc32c,
        }
    }
}

/// The ETag S3 gives a multipart object made of parts with these MD5s (when the object is not
/// encrypted with KMS or customer keys): MD5 of the concatenated part MD5s, a dash, the count.
pub(crate) fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut all = Vec::with_capacity(part_md5s.len() * 16);
    for m in part_md5s {
        all.extend_from_slice(m);
    }
    format!("{}-{}", hex(&md5(&all)), part_md5s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        let mut r = Running::new(Wanted {
            md5: true,
            crc32c: true,
        });
        r.update(b"1234");
        r.update(b"56789");
        let w = r.finish();
        assert_eq!(w.crc32c, Some(0xe306_9283));
        assert_eq!(w.md5, Some(md5(b"123456789")));
        assert_eq!(b64(&0xe306_9283u32.to_be_bytes()), "4waSgw==");
        assert_eq!(unb64("4waSgw==").unwrap(), 0xe306_9283u32.to_be_bytes());
        assert!(multipart_etag(&[md5(b"a"), md5(b"b")]).ends_with("-2"));
    }
}
