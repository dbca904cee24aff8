//! The header of an incremental file (PostgreSQL's `basebackup_incremental.c`): in the byte
//! order of the server, the magic number, the count of blocks the file holds, the length the
//! relation segment had (`truncation_block_length`, in blocks) and the block numbers; then, when
//! there are blocks, zero padding to a multiple of `BLCKSZ` so that the block images that follow
//! are aligned. Block numbers are relative to the segment file.

/// `INCREMENTAL_MAGIC` of PostgreSQL 17 and 18.
pub const INCREMENTAL_MAGIC: u32 = 0xd3ae_1f0d;

/// The prefix that marks an incremental file in a backup (`base/5/INCREMENTAL.16384`).
pub const INCREMENTAL_PREFIX: &str = "INCREMENTAL.";

/// PostgreSQL's page size. pgbak restores servers built with the default; an incremental file of
/// another page size fails the size check of [`IncrementalHeader::expected_size`].
pub const BLCKSZ: u64 = 8192;

/// Blocks per relation segment file (1 GiB of 8 kB pages): the most a header may announce.
pub const RELSEG_SIZE: u32 = 131_072;

/// The parsed header of an incremental file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncrementalHeader {
    /// The length of the segment when the backup was taken, in blocks: the restored file holds
    /// no block at or past it except those this file carries.
    pub truncation_block_length: u32,
    /// The blocks this file carries, in the order of their images.
    pub blocks: Vec<u32>,
}

impl IncrementalHeader {
    /// Bytes before the first block image.
    pub fn header_len(&self) -> u64 {
        header_len(self.blocks.len() as u32)
    }

    /// The size the whole file must have.
    pub fn expected_size(&self) -> u64 {
        self.header_len() + self.blocks.len() as u64 * BLCKSZ
    }

    /// The length of the restored file in blocks: `truncation_block_length`, or more when this
    /// file carries blocks past it (as `pg_combinebackup` computes it).
    pub fn reconstructed_blocks(&self) -> u32 {
        self.blocks
            .iter()
            .map(|b| b + 1)
            .fold(self.truncation_block_length, u32::max)
    }
}

/// Bytes before the first block image of a file carrying `nblocks` blocks.
fn header_len(nblocks: u32) -> u64 {
    let raw = 12 + 4 * nblocks as u64;
    if nblocks > 0 && !raw.is_multiple_of(BLCKSZ) {
        raw + BLCKSZ - raw % BLCKSZ
    } else {
        raw
    }
}

/// Why a header is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("bad incremental magic number 0x{0:08x} (expected 0x{INCREMENTAL_MAGIC:08x})")]
    Magic(u32),
    #[error("block count {0} exceeds the segment size of {RELSEG_SIZE} blocks")]
    TooManyBlocks(u32),
    #[error("truncation block length {0} exceeds the segment size of {RELSEG_SIZE} blocks")]
    TruncationLength(u32),
    #[error("block number {0} is outside a segment of {RELSEG_SIZE} blocks")]
    BlockNumber(u32),
    #[cfg(test)]
    #[error("the file ends inside its header")]
    Truncated,
}

/// Collects a header from the bytes of a file as they arrive, in pieces of any size.
#[derive(Debug, Default)]
pub struct HeaderReader {
    buf: Vec<u8>,
    need: usize,
}

impl HeaderReader {
    /// A reader at the start of a file.
    pub fn new() -> Self {
        HeaderReader {
            buf: Vec::new(),
            need: 12,
        }
    }

    /// Takes bytes from `data`; returns how many it used and, once complete, the header (the
    /// bytes after it are the first block images).
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Option<IncrementalHeader>), HeaderError> {
        let mut used = 0;
        loop {
            let take = (self.need - self.buf.len()).min(data.len() - used);
            self.buf.extend_from_slice(&data[used..used + take]);
            used += take;
            if self.buf.len() < self.need {
                return Ok((used, None));
            }
            let word = |i: usize| {
                u32::from_le_bytes(self.buf[4 * i..4 * i + 4].try_into().unwrap_or_default())
            };
            let magic = word(0);
            if magic != INCREMENTAL_MAGIC {
                return Err(HeaderError::Magic(magic));
            }
            let nblocks = word(1);
            if nblocks > RELSEG_SIZE {
                return Err(HeaderError::TooManyBlocks(nblocks));
            }
            let truncation = word(2);
            if truncation > RELSEG_SIZE {
                return Err(HeaderError::TruncationLength(truncation));
            }
            let full = header_len(nblocks) as usize;
            if self.need < full {
                self.need = full;
                continue;
            }
            let blocks: Vec<u32> = (0..nblocks as usize).map(|i| word(3 + i)).collect();
            if let Some(b) = blocks.iter().find(|b| **b >= RELSEG_SIZE) {
                return Err(HeaderError::BlockNumber(*b));
            }
            return Ok((
                used,
                Some(IncrementalHeader {
                    truncation_block_length: truncation,
                    blocks,
                }),
            ));
        }
    }
}

/// Parses a whole header from the start of `bytes`.
#[cfg(test)]
pub fn parse(bytes: &[u8]) -> Result<IncrementalHeader, HeaderError> {
    match HeaderReader::new().feed(bytes)? {
        (_, Some(h)) => Ok(h),
        (_, None) => Err(HeaderError::Truncated),
    }
}

/// The bytes of an incremental file with `blocks` (number, image).
#[cfg(test)]
pub fn encode(truncation_block_length: u32, blocks: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&INCREMENTAL_MAGIC.to_le_bytes());
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    out.extend_from_slice(&truncation_block_length.to_le_bytes());
    for (b, _) in blocks {
        out.extend_from_slice(&b.to_le_bytes());
    }
    out.resize(header_len(blocks.len() as u32) as usize, 0);
    for (_, image) in blocks {
        out.extend_from_slice(image);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_a_file_without_blocks_is_not_padded() {
        let bytes = encode(7, &[]);
        assert_eq!(bytes.len(), 12);
        let h = parse(&bytes).unwrap();
        assert_eq!(h.truncation_block_length, 7);
        assert!(h.blocks.is_empty());
        assert_eq!(h.expected_size(), 12);
        assert_eq!(h.reconstructed_blocks(), 7);
    }

    #[test]
    fn block_images_start_at_a_page_boundary() {
        let bytes = encode(2, &[(5, vec![1; 8192]), (0, vec![2; 8192])]);
        let h = parse(&bytes).unwrap();
        assert_eq!(h.blocks, vec![5, 0]);
        assert_eq!(h.header_len(), 8192);
        assert_eq!(h.expected_size(), 3 * 8192);
        assert_eq!(bytes.len() as u64, h.expected_size());
        // A block past the truncation length makes the restored file longer.
        assert_eq!(h.reconstructed_blocks(), 6);
        // 2046 block numbers fill the first page exactly: 12 + 4 * 2045 = 8192.
        assert_eq!(header_len(2045), 8192);
        assert_eq!(header_len(2046), 16384);
    }

    #[test]
    fn header_read_one_byte_at_a_time() {
        let bytes = encode(3, &[(1, vec![9; 8192])]);
        let mut r = HeaderReader::new();
        let mut got = None;
        let mut at = 0;
        while got.is_none() {
            let (used, h) = r.feed(&bytes[at..at + 1]).unwrap();
            at += used;
            got = h;
        }
        assert_eq!(at, 8192);
        assert_eq!(got.unwrap().blocks, vec![1]);
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut bytes = encode(3, &[]);
        bytes[0] ^= 1;
        assert!(matches!(parse(&bytes), Err(HeaderError::Magic(_))));
        let mut bytes = encode(3, &[]);
        bytes[4..8].copy_from_slice(&(RELSEG_SIZE + 1).to_le_bytes());
        assert_eq!(
            parse(&bytes),
            Err(HeaderError::TooManyBlocks(RELSEG_SIZE + 1))
        );
        let mut bytes = encode(3, &[]);
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(HeaderError::TruncationLength(_))
        ));
        let bytes = encode(3, &[(RELSEG_SIZE, vec![0; 8192])]);
        assert!(matches!(parse(&bytes), Err(HeaderError::BlockNumber(_))));
        assert_eq!(parse(&encode(3, &[])[..8]), Err(HeaderError::Truncated));
    }
}
