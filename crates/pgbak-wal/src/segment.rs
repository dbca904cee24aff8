//! WAL segment numbers and the file names PostgreSQL gives to segments, partial segments, backup
//! history files and timeline history files.
//!
//! A segment file name is `TTTTTTTTLLLLLLLLSSSSSSSS`: timeline, then the segment number split into a
//! "log" part (`segno / segments_per_xlogid`) and a "seg" part (`segno % segments_per_xlogid`), where
//! `segments_per_xlogid = 2^32 / segment_size`. The split depends on the segment size, so every
//! conversion takes it.

use crate::{Error, Lsn, Result};
use std::fmt;

/// PostgreSQL's default WAL segment size (16 MiB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

const MIN_SEGMENT_SIZE: u64 = 1024 * 1024;
const MAX_SEGMENT_SIZE: u64 = 1024 * 1024 * 1024;
const XLOGID_SPAN: u64 = 0x1_0000_0000;

/// Checks that `size` is a segment size initdb accepts: a power of two from 1 MiB to 1 GiB.
pub fn validate_segment_size(size: u64) -> Result<()> {
    if size.is_power_of_two() && (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::InvalidSegmentSize { size })
    }
}

/// Segments per 4 GiB "xlogid". Clamped so that an invalid size cannot divide by zero; callers are
/// expected to have validated the size.
fn segs_per_xlogid(seg_size: u64) -> u64 {
    XLOGID_SPAN / seg_size.clamp(1, XLOGID_SPAN)
}

/// One WAL segment of one timeline.
///
/// ```
/// use pgbak_wal::{Lsn, SegmentName, DEFAULT_SEGMENT_SIZE};
/// let seg = SegmentName::from_lsn(1, "0/2000028".parse::<Lsn>().unwrap(), DEFAULT_SEGMENT_SIZE);
/// assert_eq!(seg.file_name(DEFAULT_SEGMENT_SIZE), "000000010000000000000002");
/// assert_eq!(seg.hash_dir(DEFAULT_SEGMENT_SIZE), "0000000100000000");
/// assert_eq!(SegmentName::parse("000000010000000000000002", DEFAULT_SEGMENT_SIZE).unwrap(), seg);
/// ```
///
/// Ordered by timeline first, then segment number (the order of their file names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Timeline.
    pub tli: u32,
    /// Segment number (`XLogSegNo`): the LSN divided by the segment size.
    pub segno: u64,
}

impl SegmentName {
    /// The segment of timeline `tli` that contains `lsn`.
    pub fn from_lsn(tli: u32, lsn: Lsn, seg_size: u64) -> Self {
        SegmentName {
            tli,
            segno: lsn.segno(seg_size),
        }
    }

    /// The 24-character upper-case file name (`XLogFileName`).
    pub fn file_name(self, seg_size: u64) -> String {
        let per = segs_per_xlogid(seg_size);
        format!(
            "{:08X}{:08X}{:08X}",
            self.tli,
            self.segno / per,
            self.segno % per
        )
    }

    /// Parses a 24-character segment file name for the given segment size.
    pub fn parse(name: &str, seg_size: u64) -> Result<Self> {
        validate_segment_size(seg_size)?;
        let parsed = WalFileName::parse(name)?;
        if !matches!(parsed, WalFileName::Segment { .. }) {
            return Err(invalid_name(name, "not a WAL segment file name"));
        }
        parsed.segment(seg_size).ok_or_else(|| {
            invalid_name(
                name,
                &format!(
                    "segment part is out of range for {} MiB segments",
                    seg_size / MIN_SEGMENT_SIZE
                ),
            )
        })
    }

    /// The first LSN of this segment (saturates at the end of the address space).
    pub fn start_lsn(self, seg_size: u64) -> Lsn {
        Lsn(self.segno.saturating_mul(seg_size))
    }

    /// The following segment on the same timeline (saturates at the last possible number).
    pub fn next(self) -> Self {
        SegmentName {
            tli: self.tli,
            segno: self.segno.saturating_add(1),
        }
    }

    /// The first 16 characters of the file name (timeline and log): the `wals/` sub-folder in which
    /// Barman keeps this segment.
    pub fn hash_dir(self, seg_size: u64) -> String {
        let mut name = self.file_name(seg_size);
        name.truncate(16);
        name
    }
}

/// Every segment from the one containing `begin` up to the one containing the last byte before `end`
/// (the stop point is treated like PostgreSQL's `XLByteToPrevSeg`). When `end <= begin`, only the
/// segment containing `begin`.
///
/// The list is materialised: callers pass the bounds of one backup or one recovery range, not
/// arbitrary values.
pub fn segments_between(tli: u32, begin: Lsn, end: Lsn, seg_size: u64) -> Vec<SegmentName> {
    let first = begin.segno(seg_size);
    let last = if end <= begin {
        first
    } else {
        Lsn(end.0 - 1).segno(seg_size)
    };
    (first..=last)
        .map(|segno| SegmentName { tli, segno })
        .collect()
}

/// Any file name found in a WAL archive or `pg_wal`.
///
/// ```
/// use pgbak_wal::WalFileName;
/// let f = WalFileName::parse("000000010000000000000002.00000028.backup").unwrap();
/// assert!(matches!(f, WalFileName::Backup { tli: 1, seg: 2, offset: 0x28, .. }));
/// assert_eq!(f.to_string(), "000000010000000000000002.00000028.backup");
/// assert!(WalFileName::parse("00000002.history").unwrap().is_history());
/// assert!(WalFileName::parse("0000000100000000000000ab").is_err()); // lower case
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// A complete segment: `000000010000000000000002`.
    Segment {
        /// Timeline.
        tli: u32,
        /// "log" part (high bits of the segment number).
        log: u32,
        /// "seg" part (segment within the log).
        seg: u32,
    },
    /// A segment still being streamed: `000000010000000000000002.partial`.
    Partial {
        /// Timeline.
        tli: u32,
        /// "log" part.
        log: u32,
        /// "seg" part.
        seg: u32,
    },
    /// A backup history file: `000000010000000000000002.00000028.backup`.
    Backup {
        /// Timeline.
        tli: u32,
        /// "log" part.
        log: u32,
        /// "seg" part.
        seg: u32,
        /// Offset of the backup start inside the segment.
        offset: u32,
    },
    /// A timeline history file: `00000002.history`.
    History {
        /// The timeline the history leads to.
        tli: u32,
    },
}

fn invalid_name(name: &str, reason: &str) -> Error {
    Error::InvalidWalFileName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses exactly 8 upper-case hexadecimal digits (PostgreSQL writes and accepts only upper case).
fn hex8(s: &str) -> Option<u32> {
    if s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

fn hex24(s: &str) -> Option<(u32, u32, u32)> {
    if s.len() != 24 || !s.is_ascii() {
        return None;
    }
    Some((hex8(&s[0..8])?, hex8(&s[8..16])?, hex8(&s[16..24])?))
}

impl WalFileName {
    /// Recognises a WAL file name. Upper-case hexadecimal only, like PostgreSQL's `IsXLogFileName`.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = || {
            invalid_name(
                name,
                "expected 24 upper-case hexadecimal digits, optionally followed by .partial or \
                 .XXXXXXXX.backup, or XXXXXXXX.history",
            )
        };
        if !name.is_ascii() {
            return Err(bad());
        }
        if let Some(tli) = name.strip_suffix(".history") {
            return hex8(tli)
                .map(|tli| WalFileName::History { tli })
                .ok_or_else(bad);
        }
        if let Some(base) = name.strip_suffix(".partial") {
            let (tli, log, seg) = hex24(base).ok_or_else(bad)?;
            return Ok(WalFileName::Partial { tli, log, seg });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            // 24 digits, '.', 8 digits.
            if rest.len() != 33 || rest.as_bytes()[24] != b'.' {
                return Err(bad());
            }
            let (tli, log, seg) = hex24(&rest[..24]).ok_or_else(bad)?;
            let offset = hex8(&rest[25..]).ok_or_else(bad)?;
            return Ok(WalFileName::Backup {
                tli,
                log,
                seg,
                offset,
            });
        }
        let (tli, log, seg) = hex24(name).ok_or_else(bad)?;
        Ok(WalFileName::Segment { tli, log, seg })
    }

    /// The segment this file belongs to, for segment, partial and backup history files. `None` for
    /// timeline history files, for an invalid `seg_size`, and when the "seg" part is out of range for
    /// `seg_size` (such a file cannot have been written by a cluster with that segment size).
    pub fn segment(&self, seg_size: u64) -> Option<SegmentName> {
        let (tli, log, seg) = match *self {
            WalFileName::Segment { tli, log, seg }
            | WalFileName::Partial { tli, log, seg }
            | WalFileName::Backup { tli, log, seg, .. } => (tli, log, seg),
            WalFileName::History { .. } => return None,
        };
        validate_segment_size(seg_size).ok()?;
        let per = segs_per_xlogid(seg_size);
        if u64::from(seg) >= per {
            return None;
        }
        Some(SegmentName {
            tli,
            segno: u64::from(log) * per + u64::from(seg),
        })
    }

    /// The timeline named in the file name.
    pub fn tli(&self) -> u32 {
        match *self {
            WalFileName::Segment { tli, .. }
            | WalFileName::Partial { tli, .. }
            | WalFileName::Backup { tli, .. }
            | WalFileName::History { tli } => tli,
        }
    }

    /// Whether this is a timeline history file.
    pub fn is_history(&self) -> bool {
        matches!(self, WalFileName::History { .. })
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalFileName::Segment { tli, log, seg } => write!(f, "{tli:08X}{log:08X}{seg:08X}"),
            WalFileName::Partial { tli, log, seg } => {
                write!(f, "{tli:08X}{log:08X}{seg:08X}.partial")
            }
            WalFileName::Backup {
                tli,
                log,
                seg,
                offset,
            } => {
                write!(f, "{tli:08X}{log:08X}{seg:08X}.{offset:08X}.backup")
            }
            WalFileName::History { tli } => write!(f, "{tli:08X}.history"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    #[test]
    fn segment_sizes() {
        for ok in [MIB, 2 * MIB, DEFAULT_SEGMENT_SIZE, 64 * MIB, GIB] {
            validate_segment_size(ok).unwrap();
        }
        for bad in [0, 1, MIB / 2, 3 * MIB, 2 * GIB, u64::MAX, 16 * MIB + 1] {
            assert!(matches!(
                validate_segment_size(bad),
                Err(Error::InvalidSegmentSize { size }) if size == bad
            ));
        }
    }

    #[test]
    fn names_for_16_mib() {
        let s = SegmentName::from_lsn(1, lsn("0/2000028"), DEFAULT_SEGMENT_SIZE);
        assert_eq!(s.segno, 2);
        assert_eq!(
            s.file_name(DEFAULT_SEGMENT_SIZE),
            "000000010000000000000002"
        );
        // The last segment of a log is FF, then the log increments.
        let s = SegmentName::from_lsn(3, lsn("1/FF000000"), DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            s.file_name(DEFAULT_SEGMENT_SIZE),
            "0000000300000001000000FF"
        );
        assert_eq!(
            s.next().file_name(DEFAULT_SEGMENT_SIZE),
            "000000030000000200000000"
        );
        assert_eq!(s.next().start_lsn(DEFAULT_SEGMENT_SIZE), lsn("2/0"));
        assert_eq!(s.hash_dir(DEFAULT_SEGMENT_SIZE), "0000000300000001");
        let s = SegmentName::from_lsn(0xFFFF_FFFF, lsn("FFFFFFFF/FFFFFFFF"), DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            s.file_name(DEFAULT_SEGMENT_SIZE),
            "FFFFFFFFFFFFFFFF000000FF"
        );
    }

    #[test]
    fn names_for_other_sizes() {
        let l = lsn("1/2345678");
        assert_eq!(
            SegmentName::from_lsn(1, l, MIB).file_name(MIB),
            "000000010000000100000023"
        );
        assert_eq!(
            SegmentName::from_lsn(1, l, 64 * MIB).file_name(64 * MIB),
            "000000010000000100000000"
        );
        assert_eq!(
            SegmentName::from_lsn(1, lsn("1/C0000000"), 64 * MIB).file_name(64 * MIB),
            "000000010000000100000030"
        );
        assert_eq!(
            SegmentName::from_lsn(2, l, GIB).file_name(GIB),
            "000000020000000100000000"
        );
        assert_eq!(
            SegmentName::from_lsn(2, lsn("1/C0000000"), GIB).file_name(GIB),
            "000000020000000100000003"
        );
        // 1 MiB: 4096 segments per log.
        assert_eq!(
            SegmentName::from_lsn(1, lsn("0/FFFFFFFF"), MIB).file_name(MIB),
            "000000010000000000000FFF"
        );
    }

    #[test]
    fn parse_rejects_out_of_range_seg_for_size() {
        assert_eq!(
            SegmentName::parse("0000000100000001000000FF", DEFAULT_SEGMENT_SIZE).unwrap(),
            SegmentName {
                tli: 1,
                segno: 0x1FF
            }
        );
        // 0x100 segments per log at 16 MiB: 0x100 is out of range.
        assert!(SegmentName::parse("000000010000000100000100", DEFAULT_SEGMENT_SIZE).is_err());
        assert!(SegmentName::parse("000000010000000100000100", MIB).is_ok());
        assert!(SegmentName::parse("000000010000000100000004", GIB).is_err());
        assert!(SegmentName::parse("000000010000000100000003", GIB).is_ok());
        // Invalid size, other kinds of files, lower case.
        assert!(matches!(
            SegmentName::parse("000000010000000100000003", 3 * MIB),
            Err(Error::InvalidSegmentSize { .. })
        ));
        assert!(SegmentName::parse("000000010000000100000003.partial", MIB).is_err());
        assert!(SegmentName::parse("00000001.history", MIB).is_err());
        assert!(SegmentName::parse("0000000100000001000000ff", DEFAULT_SEGMENT_SIZE).is_err());
    }

    #[test]
    fn between() {
        let s = DEFAULT_SEGMENT_SIZE;
        let names = |v: Vec<SegmentName>| v.into_iter().map(|n| n.file_name(s)).collect::<Vec<_>>();
        // A backup that ends exactly at a segment boundary does not need the next segment.
        assert_eq!(
            names(segments_between(1, lsn("0/2000028"), lsn("0/4000000"), s)),
            ["000000010000000000000002", "000000010000000000000003"]
        );
        assert_eq!(
            names(segments_between(1, lsn("0/2000028"), lsn("0/4000001"), s)),
            [
                "000000010000000000000002",
                "000000010000000000000003",
                "000000010000000000000004"
            ]
        );
        assert_eq!(
            names(segments_between(1, lsn("0/2000028"), lsn("0/2000100"), s)),
            ["000000010000000000000002"]
        );
        assert_eq!(
            names(segments_between(1, lsn("0/2000028"), lsn("0/2000028"), s)),
            ["000000010000000000000002"]
        );
        assert_eq!(
            names(segments_between(1, lsn("0/5000000"), lsn("0/1000000"), s)),
            ["000000010000000000000005"]
        );
        // Crossing a log boundary.
        assert_eq!(
            names(segments_between(2, lsn("0/FF000000"), lsn("1/00000010"), s)),
            ["0000000200000000000000FF", "000000020000000100000000"]
        );
        // The segment containing `begin` is included even when begin is at its very start.
        assert_eq!(
            segments_between(1, lsn("0/1000000"), lsn("0/1000001"), s).len(),
            1
        );
    }

    #[test]
    fn wal_file_names() {
        assert_eq!(
            WalFileName::parse("000000010000000000000002").unwrap(),
            WalFileName::Segment {
                tli: 1,
                log: 0,
                seg: 2
            }
        );
        assert_eq!(
            WalFileName::parse("0000000A00000001000000FE.partial").unwrap(),
            WalFileName::Partial {
                tli: 10,
                log: 1,
                seg: 0xFE
            }
        );
        assert_eq!(
            WalFileName::parse("000000010000000000000002.00000028.backup").unwrap(),
            WalFileName::Backup {
                tli: 1,
                log: 0,
                seg: 2,
                offset: 0x28
            }
        );
        let h = WalFileName::parse("0000000C.history").unwrap();
        assert_eq!(h, WalFileName::History { tli: 12 });
        assert!(h.is_history());
        assert_eq!(h.segment(DEFAULT_SEGMENT_SIZE), None);
        assert_eq!(h.tli(), 12);

        for bad in [
            "",
            "00000001000000000000002",
            "0000000100000000000000020",
            "00000001000000000000000g",
            "0000000100000000000000ab",
            "000000010000000000000002.partia",
            "000000010000000000000002.0000028.backup",
            "000000010000000000000002-00000028.backup",
            "000000010000000000000002.0000002x.backup",
            "0000000c.history",
            "000000001.history",
            ".history",
            "00000001.HISTORY",
            "000000010000000000000002.gz",
            "00000001000000000000000é",
            "éééééééééééé",
        ] {
            let err = WalFileName::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidWalFileName { ref name, .. } if name == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn wal_file_segment_depends_on_size() {
        let f = WalFileName::parse("000000020000000300000004.00000028.backup").unwrap();
        assert_eq!(
            f.segment(DEFAULT_SEGMENT_SIZE),
            Some(SegmentName {
                tli: 2,
                segno: 3 * 256 + 4
            })
        );
        assert_eq!(f.segment(GIB), None);
        assert_eq!(f.segment(12345), None);
        assert!(!f.is_history());
    }

    fn seg_size() -> impl Strategy<Value = u64> {
        (20u32..=30).prop_map(|bits| 1u64 << bits)
    }

    proptest! {
        #[test]
        fn segment_name_round_trips(tli in any::<u32>(), size in seg_size(), raw in any::<u64>()) {
            // Any segment whose start is addressable.
            let segno = raw % (u64::MAX / size + 1);
            let s = SegmentName { tli, segno };
            let name = s.file_name(size);
            prop_assert_eq!(name.len(), 24);
            prop_assert_eq!(SegmentName::parse(&name, size).unwrap(), s);
            prop_assert_eq!(SegmentName::from_lsn(tli, s.start_lsn(size), size), s);
            prop_assert_eq!(WalFileName::parse(&name).unwrap().to_string(), name.clone());
            prop_assert_eq!(s.hash_dir(size), name[..16].to_string());
        }

        #[test]
        fn lsn_lies_in_its_segment(tli in any::<u32>(), size in seg_size(), l in any::<u64>()) {
            let s = SegmentName::from_lsn(tli, Lsn(l), size);
            prop_assert!(s.start_lsn(size).0 <= l);
            prop_assert_eq!(l - s.start_lsn(size).0, Lsn(l).segment_offset(size));
            prop_assert!(Lsn(l).segment_offset(size) < size);
        }

        #[test]
        fn segments_between_is_contiguous(
            size in seg_size(),
            begin in 0u64..(1 << 40),
            len in 0u64..(1 << 32),
        ) {
            let end = begin + len;
            let v = segments_between(1, Lsn(begin), Lsn(end), size);
            prop_assert!(!v.is_empty());
            prop_assert_eq!(v[0].segno, begin / size);
            for w in v.windows(2) {
                prop_assert_eq!(w[1], w[0].next());
            }
            let last = v[v.len() - 1];
            if end > begin {
                // The last segment holds the byte before `end`, and no further one is listed.
                prop_assert!(last.start_lsn(size).0 < end);
                prop_assert!(last.next().start_lsn(size).0 >= end);
            }
        }

        #[test]
        fn wal_file_name_round_trips(tli in any::<u32>(), log in any::<u32>(), seg in any::<u32>(), off in any::<u32>()) {
            for f in [
                WalFileName::Segment { tli, log, seg },
                WalFileName::Partial { tli, log, seg },
                WalFileName::Backup { tli, log, seg, offset: off },
                WalFileName::History { tli },
            ] {
                prop_assert_eq!(WalFileName::parse(&f.to_string()).unwrap(), f);
            }
        }
    }
}
