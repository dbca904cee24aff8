//! Shared data generators for the benchmarks: bytes shaped like what pgbak really moves (heap
//! pages of a PostgreSQL table, WAL segments), so that compression ratios and speeds resemble a
//! real server's rather than those of all-zero or all-random buffers.
//!
//! Everything is deterministic for a given seed, so runs compare like with like.

/// Size of a PostgreSQL page (`BLCKSZ`).
pub const PAGE_SIZE: usize = 8192;

/// Size of a WAL segment (the default `wal_segment_size`).
pub const WAL_SEGMENT_SIZE: usize = 16 << 20;

/// `xlp_magic` of PostgreSQL 15 WAL pages.
pub const WAL_PAGE_MAGIC_PG15: u16 = 0xD110;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A small, fast pseudo-random generator (xorshift64*): good enough to shape test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Words for the free-text column: real tables repeat a small vocabulary.
const WORDS: [&str; 24] = [
    "pending",
    "shipped",
    "delivered",
    "returned",
    "cancelled",
    "customer",
    "order",
    "invoice",
    "warehouse",
    "express",
    "standard",
    "priority",
    "refund",
    "payment",
    "card",
    "transfer",
    "Berlin",
    "Lisbon",
    "Osaka",
    "Toronto",
    "note:",
    "gift",
    "fragile",
    "review",
];

/// `bytes` of heap pages (rounded up to whole 8 KiB pages) of an imaginary `orders` table:
///
/// ```sql
/// CREATE TABLE orders (id bigint, created timestamptz, amount integer, status smallint,
///                      token text /* md5 hex */, payload bytea /* 4-20 random bytes, often NULL */,
///                      note text /* a few words */);
/// ```
///
/// Each page has a page header (LSN, checksum, pd_lower/pd_upper), line pointers, tuples with
/// heap tuple headers, and the free space a fill factor of 70-100 % leaves; about 2 % of pages are
/// new, all-zero pages. zstd at level 1 compresses it about 2.5 to 3 times, as it does real
/// tables of this kind.
pub fn pg_page_data(bytes: usize, seed: u64) -> Vec<u8> {
    let pages = bytes.div_ceil(PAGE_SIZE);
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; pages * PAGE_SIZE];
    let mut table = TableState::new(&mut rng);
    for (blkno, page) in out.chunks_exact_mut(PAGE_SIZE).enumerate() {
        if rng.below(50) == 0 {
            continue; // A page extended but never written: all zeros, as PostgreSQL leaves it.
        }
        write_heap_page(page, blkno as u32, &mut table, &mut rng);
    }
    out.truncate(bytes);
    out
}

/// What successive rows of the imaginary table have in common.
struct TableState {
    next_id: i64,
    /// `created`, in microseconds since 2000-01-01.
    clock_us: i64,
    xid: u32,
    lsn: u64,
}

impl TableState {
    fn new(rng: &mut Rng) -> Self {
        TableState {
            next_id: 1 + rng.below(1_000_000) as i64,
            // Late 2026.
            clock_us: 1_793_000_000_000_000 - PG_EPOCH_OFFSET_US,
            xid: 700_000 + rng.below(100_000) as u32,
            lsn: 0x3_2000_0000 + rng.below(1 << 30),
        }
    }
}

/// Lays out one heap page: header, line pointers growing up, tuples growing down from the end.
fn write_heap_page(page: &mut [u8], blkno: u32, table: &mut TableState, rng: &mut Rng) {
    const HEADER: usize = 24;
    let fill = 70 + rng.below(31) as usize;
    let limit = PAGE_SIZE * fill / 100;
    let mut lower = HEADER;
    let mut upper = PAGE_SIZE;
    let mut tuple = [0u8; 256];
    let mut lp = 0u16;
    loop {
        let len = heap_tuple(&mut tuple, blkno, lp + 1, table, rng);
        let aligned = len.next_multiple_of(8);
        if lower + 4 + (PAGE_SIZE - upper) + aligned > limit || upper - aligned < lower + 4 {
            break;
        }
        upper -= aligned;
        page[upper..upper + len].copy_from_slice(&tuple[..len]);
        // ItemIdData: lp_off (15 bits), lp_flags (2 bits, LP_NORMAL = 1), lp_len (15 bits).
        let item = upper as u32 | 1 << 15 | (len as u32) << 17;
        page[lower..lower + 4].copy_from_slice(&item.to_le_bytes());
        lower += 4;
        lp += 1;
    }
    table.lsn += 200 + rng.below(8000);
    page[0..4].copy_from_slice(&((table.lsn >> 32) as u32).to_le_bytes());
    page[4..8].copy_from_slice(&(table.lsn as u32).to_le_bytes());
    page[8..10].copy_from_slice(&(rng.next_u64() as u16).to_le_bytes()); // pd_checksum
    page[10..12].copy_from_slice(&0u16.to_le_bytes()); // pd_flags
    page[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
    page[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
    page[16..18].copy_from_slice(&(PAGE_SIZE as u16).to_le_bytes()); // pd_special
    page[18..20].copy_from_slice(&(PAGE_SIZE as u16 | 4).to_le_bytes()); // size | layout version
    page[20..24].copy_from_slice(&0u32.to_le_bytes()); // pd_prune_xid
}

/// Writes one heap tuple (header and data) into `buf`; returns its length.
fn heap_tuple(
    buf: &mut [u8; 256],
    blkno: u32,
    offnum: u16,
    table: &mut TableState,
    rng: &mut Rng,
) -> usize {
    buf.fill(0);
    // Rows commit in small batches of transactions.
    if rng.below(4) == 0 {
        table.xid += 1;
    }
    table.clock_us += rng.below(2_000_000) as i64;
    // HeapTupleHeaderData: xmin, xmax, cid, ctid, infomask2 (7 attributes), infomask, hoff.
    buf[0..4].copy_from_slice(&table.xid.to_le_bytes());
    buf[4..8].copy_from_slice(&0u32.to_le_bytes());
    buf[8..12].copy_from_slice(&0u32.to_le_bytes());
    buf[12..14].copy_from_slice(&((blkno >> 16) as u16).to_le_bytes());
    buf[14..16].copy_from_slice(&(blkno as u16).to_le_bytes());
    buf[16..18].copy_from_slice(&offnum.to_le_bytes());
    buf[18..20].copy_from_slice(&7u16.to_le_bytes());
    // HEAP_XMIN_COMMITTED | HEAP_XMAX_INVALID | HEAP_HASVARWIDTH
    buf[20..22].copy_from_slice(&0x0902u16.to_le_bytes());
    buf[22] = 24;
    let mut at = 24;
    // id bigint, created timestamptz, amount integer, status smallint.
    buf[at..at + 8].copy_from_slice(&table.next_id.to_le_bytes());
    table.next_id += 1;
    at += 8;
    buf[at..at + 8].copy_from_slice(&table.clock_us.to_le_bytes());
    at += 8;
    buf[at..at + 4].copy_from_slice(&((rng.below(50_000) as i32) * 5).to_le_bytes());
    at += 4;
    buf[at..at + 2].copy_from_slice(&(rng.below(5) as i16).to_le_bytes());
    at += 2;
    // token text: 32 hex digits with a 1-byte varlena header (length 33, shifted, low bit set).
    buf[at] = (33 << 1) | 1;
    at += 1;
    let hash = [rng.next_u64(), rng.next_u64()];
    for (i, slot) in buf[at..at + 32].iter_mut().enumerate() {
        let nibble = (hash[i / 16] >> ((i % 16) * 4)) & 0xF;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    at += 32;
    // payload bytea: random bytes, the part no codec can shrink; NULL in two rows of three,
    // which the null bitmap would record (left out: it does not change what codecs see).
    if rng.below(3) == 0 {
        let payload = 4 + rng.below(17) as usize;
        buf[at] = (((payload + 1) << 1) | 1) as u8;
        rng.fill(&mut buf[at + 1..at + 1 + payload]);
        at += 1 + payload;
    }
    // note text: two to five words.
    let start = at;
    at += 1;
    for i in 0..2 + rng.below(4) {
        if i > 0 {
            buf[at] = b' ';
            at += 1;
        }
        let word = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
        buf[at..at + word.len()].copy_from_slice(word);
        at += word.len();
    }
    buf[start] = (((at - start) << 1) | 1) as u8;
    at
}

/// One WAL segment (16 MiB) as a busy PostgreSQL 15 server writes it: 8 KiB pages, each with a
/// page header (magic 0xD110, the first page with the long header that records the system id and
/// segment size), filled with records whose 24-byte headers chain by `xl_prev`. Most records are
/// heap inserts and updates carrying tuple data like [`pg_page_data`]'s, some are commits, and
/// about one in forty carries a full-page image.
pub fn wal_segment_data(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut table = TableState::new(&mut rng);
    let mut out = vec![0u8; WAL_SEGMENT_SIZE];
    let segno = 0x10 + rng.below(0x1000);
    let seg_start = segno * WAL_SEGMENT_SIZE as u64;
    let sysid = 7_300_000_000_000_000_000 + rng.below(1 << 40);
    let mut prev = seg_start - 0x60;
    let mut image = vec![0u8; PAGE_SIZE];
    let mut record = Vec::with_capacity(2 * PAGE_SIZE);
    // Records are laid out in one stream and cut into pages, so that they span page boundaries
    // as real ones do.
    let mut stream = Vec::with_capacity(WAL_SEGMENT_SIZE);
    while stream.len() < WAL_SEGMENT_SIZE {
        let lsn = seg_start + stream.len() as u64;
        wal_record(&mut record, prev, &mut table, &mut image, &mut rng);
        prev = lsn;
        stream.extend_from_slice(&record);
        stream.resize(stream.len().next_multiple_of(8), 0);
    }
    let mut taken = 0;
    for (i, page) in out.chunks_exact_mut(PAGE_SIZE).enumerate() {
        let header = if i == 0 { 40 } else { 24 };
        let info: u16 = if i == 0 { 0x0002 } else { 0x0001 }; // XLP_LONG_HEADER, XLP_FIRST_IS_CONTRECORD
        page[0..2].copy_from_slice(&WAL_PAGE_MAGIC_PG15.to_le_bytes());
        page[2..4].copy_from_slice(&info.to_le_bytes());
        page[4..8].copy_from_slice(&1u32.to_le_bytes()); // timeline
        page[8..16].copy_from_slice(&(seg_start + (i * PAGE_SIZE) as u64).to_le_bytes());
        page[16..20].copy_from_slice(&(rng.below(200) as u32).to_le_bytes()); // xlp_rem_len
        if i == 0 {
            page[24..32].copy_from_slice(&sysid.to_le_bytes());
            page[32..36].copy_from_slice(&(WAL_SEGMENT_SIZE as u32).to_le_bytes());
            page[36..40].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        }
        let body = PAGE_SIZE - header;
        page[header..].copy_from_slice(&stream[taken..taken + body]);
        taken += body;
    }
    out
}

/// Writes one WAL record into `record`.
fn wal_record(
    record: &mut Vec<u8>,
    prev: u64,
    table: &mut TableState,
    image: &mut [u8],
    rng: &mut Rng,
) {
    record.clear();
    record.resize(24, 0);
    let kind = rng.below(40);
    let (rmid, info) = match kind {
        0 => (1u8, 0x00u8),    // RM_XACT_ID, XLOG_XACT_COMMIT
        1..=10 => (10, 0x20),  // RM_HEAP_ID, XLOG_HEAP_UPDATE
        11..=14 => (11, 0x00), // RM_BTREE_ID, XLOG_BTREE_INSERT_LEAF
        _ => (10, 0x00),       // RM_HEAP_ID, XLOG_HEAP_INSERT
    };
    if kind == 0 {
        table.xid += 1;
        // xl_xact_commit: commit timestamp and flags.
        table.clock_us += rng.below(50_000) as i64;
        record.extend_from_slice(&table.clock_us.to_le_bytes());
        record.extend_from_slice(&0u32.to_le_bytes());
    } else {
        // XLogRecordBlockHeader: block 0, fork 0 with BKPBLOCK_HAS_DATA, data length; then the
        // relation (tablespace 1663, database 16384, relfilenode) and block number.
        let full_page = rng.below(40) == 0;
        let fork_flags: u8 = if full_page { 0x10 | 0x20 } else { 0x20 };
        let mut tuple = [0u8; 256];
        let blkno = (table.next_id / 60) as u32;
        let len = heap_tuple(
            &mut tuple,
            blkno,
            (table.next_id % 60) as u16 + 1,
            table,
            rng,
        );
        record.extend_from_slice(&[0, fork_flags]);
        record.extend_from_slice(&(len as u16 + 5).to_le_bytes());
        if full_page {
            // XLogRecordBlockImageHeader: image length, hole offset, flags (no compression).
            write_heap_page(image, blkno, table, rng);
            let lower = u16::from_le_bytes([image[12], image[13]]) as usize;
            let upper = u16::from_le_bytes([image[14], image[15]]) as usize;
            let kept = PAGE_SIZE - (upper - lower);
            record.extend_from_slice(&(kept as u16).to_le_bytes());
            record.extend_from_slice(&(lower as u16).to_le_bytes());
            record.push(0x01); // BKPIMAGE_HAS_HOLE
            record.extend_from_slice(&image[..lower]);
            record.extend_from_slice(&image[upper..]);
        }
        for oid in [1663u32, 16384, 16390 + (rmid as u32 - 10) * 7] {
            record.extend_from_slice(&oid.to_le_bytes());
        }
        record.extend_from_slice(&blkno.to_le_bytes());
        // Main data: xl_heap_header (infomask2, infomask, hoff), then the tuple body.
        record.push(0xFF); // XLR_BLOCK_ID_DATA_SHORT
        record.push(5 + (len - 23).min(250) as u8);
        record.extend_from_slice(&tuple[18..23]);
        record.extend_from_slice(&tuple[23..len]);
    }
    let tot_len = record.len() as u32;
    record[0..4].copy_from_slice(&tot_len.to_le_bytes());
    record[4..8].copy_from_slice(&table.xid.to_le_bytes());
    record[8..16].copy_from_slice(&prev.to_le_bytes());
    record[16] = info;
    record[17] = rmid;
    // A real CRC-32C is as random as this, and costs nothing to stand in for.
    record[20..24].copy_from_slice(&(rng.next_u64() as u32).to_le_bytes());
}

/// Reads the CPU time the calling thread has used: a clock that other processes on a busy
/// machine cannot stretch, for benchmarks whose work all runs on the calling thread.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to, and the clock id is a constant that
    // clock_gettime(2) accepts on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_data_has_the_requested_size_and_valid_headers() {
        let data = pg_page_data(10 * PAGE_SIZE + 100, 1);
        assert_eq!(data.len(), 10 * PAGE_SIZE + 100);
        for page in data.chunks_exact(PAGE_SIZE) {
            if page.iter().all(|&b| b == 0) {
                continue;
            }
            let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
            let upper = u16::from_le_bytes([page[14], page[15]]) as usize;
            assert!(
                24 < lower && lower <= upper && upper < PAGE_SIZE,
                "{lower} {upper}"
            );
            assert_eq!(u16::from_le_bytes([page[18], page[19]]), 0x2004);
            // Every line pointer points inside the tuple area.
            for lp in page[24..lower].chunks_exact(4) {
                let item = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]);
                let (off, len) = ((item & 0x7FFF) as usize, (item >> 17) as usize);
                assert!(off >= upper && off + len <= PAGE_SIZE);
            }
        }
        assert_eq!(pg_page_data(4096, 9), pg_page_data(4096, 9));
        assert_ne!(pg_page_data(PAGE_SIZE, 1), pg_page_data(PAGE_SIZE, 2));
    }

    #[test]
    fn wal_segment_has_pg15_page_headers() {
        let seg = wal_segment_data(3);
        assert_eq!(seg.len(), WAL_SEGMENT_SIZE);
        let start = u64::from_le_bytes(seg[8..16].try_into().unwrap());
        assert_eq!(start % WAL_SEGMENT_SIZE as u64, 0);
        assert_eq!(
            u32::from_le_bytes(seg[32..36].try_into().unwrap()),
            WAL_SEGMENT_SIZE as u32
        );
        for (i, page) in seg.chunks_exact(PAGE_SIZE).enumerate() {
            assert_eq!(u16::from_le_bytes([page[0], page[1]]), WAL_PAGE_MAGIC_PG15);
            let addr = u64::from_le_bytes(page[8..16].try_into().unwrap());
            assert_eq!(addr, start + (i * PAGE_SIZE) as u64);
        }
    }
}
