//! The WAL archive lives in the repository layer; this module is its place in the workflows'
//! vocabulary.

pub use pgbak_repo::wal::*;

/// The size and CRC-32C of the file at `path`, read without following a link.
pub(crate) fn file_crc32c(path: &std::path::Path) -> std::io::Result<(u64, u32)> {
    use pgbak_compress::pipeline::{Digests, Meter};
    let mut f = pgbak_storage::staging::open_regular(path)?;
    let mut meter = Meter::new(Digests::CRC32C);
    std::io::copy(&mut f, &mut meter)?;
    Ok((meter.bytes(), meter.measured().crc32c.unwrap_or(0)))
}
