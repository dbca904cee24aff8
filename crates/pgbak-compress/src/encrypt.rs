//! The seam for encryption at rest: a stage of the same streaming pipeline as compression,
//! applied after it when storing and before decompression when reading back (compressed data
//! does not compress once encrypted, and an encrypted file's format cannot be probed).

use std::io::{self, Read, Write};

/// Streaming encryption to a set of recipients, and decryption of what it wrote.
///
/// The implementation pgbak ships is GPG (through gpgme), compatible with files Barman encrypts
/// with `encryption = gpg`. Implementations must be usable from several threads at once: one
/// value serves every file of a backup.
pub trait Encryptor: Send + Sync {
    /// A short name for logs and catalogues, such as `"gpg"`.
    fn name(&self) -> &'static str;

    /// The key that new data is encrypted to, for catalogues (a GPG key id); `None` when the
    /// encryptor has no such name.
    fn key_id(&self) -> Option<String> {
        None
    }

    /// Whether new data can be encrypted now (for `check`): the key is there and usable.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// Wraps `inner` so that whatever is written comes out encrypted.
    ///
    /// The ciphertext is complete only after [`crate::FinishWrite::finish`]; a writer dropped
    /// before that must leave output that fails to decrypt.
    fn encrypt<'a>(
        &self,
        inner: Box<dyn Write + Send + 'a>,
    ) -> io::Result<Box<dyn crate::FinishWrite + 'a>>;

    /// Wraps `inner` so that reading yields the plaintext.
    ///
    /// Ciphertext that was tampered with, truncated, or encrypted for no key available here is an
    /// error (`InvalidData`, `UnexpectedEof` or `PermissionDenied`), never a short read.
    fn decrypt<'a>(
        &self,
        inner: Box<dyn Read + Send + 'a>,
    ) -> io::Result<Box<dyn Read + Send + 'a>>;
}
