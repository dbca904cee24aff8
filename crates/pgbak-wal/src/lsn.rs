//! Log sequence numbers: byte positions in the WAL stream, written `X/Y` as PostgreSQL prints them.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A position in the WAL (`XLogRecPtr`). Ordered like the WAL itself.
///
/// ```
/// use pgbak_wal::Lsn;
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// assert_eq!(lsn.segno(16 * 1024 * 1024), 0x16B3);
/// assert!("16/B374D848 ".parse::<Lsn>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `InvalidXLogRecPtr`: PostgreSQL's "no position".
    pub const INVALID: Lsn = Lsn(0);

    /// Whether this is a real position (not [`Lsn::INVALID`]).
    pub fn is_valid(self) -> bool {
        self != Lsn::INVALID
    }

    /// Number of the WAL segment containing this position (`XLByteToSeg`).
    ///
    /// `seg_size` must be a valid segment size (see [`crate::validate_segment_size`]); a zero size is
    /// treated as one byte rather than dividing by zero.
    pub fn segno(self, seg_size: u64) -> u64 {
        self.0 / seg_size.max(1)
    }

    /// Offset of this position inside its segment (`XLogSegmentOffset`).
    pub fn segment_offset(self, seg_size: u64) -> u64 {
        self.0 % seg_size.max(1)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(v: Lsn) -> Self {
        v.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    /// Parses `X/Y` like `pg_lsn_in`: each half 1 to 8 hexadecimal digits (either case), nothing else.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidLsn {
            text: s.to_string(),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(invalid)?;
        let half = |h: &str| -> Option<u64> {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(h, 16).ok()
        };
        let hi = half(hi).ok_or_else(invalid)?;
        let lo = half(lo).ok_or_else(invalid)?;
        Ok(Lsn((hi << 32) | lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_like_postgresql() {
        let lsn: Lsn = "0/2000028".parse().unwrap();
        assert_eq!(lsn, Lsn(0x0200_0028));
        assert_eq!(lsn.to_string(), "0/2000028");
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("ffffffff/ffffffff".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!("00000000/00000001".parse::<Lsn>().unwrap(), Lsn(1));
        assert_eq!(Lsn::INVALID.to_string(), "0/0");
        assert!(!Lsn::INVALID.is_valid());
        assert!(Lsn(1).is_valid());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "123456789/0",
            "0/123456789",
            "g/0",
            " 0/0",
            "0/0 ",
            "+1/0",
            "-1/0",
            "0x1/0",
            "1/ 0",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn segment_arithmetic() {
        let mib16 = 16 * 1024 * 1024;
        let lsn: Lsn = "1/2000028".parse().unwrap();
        assert_eq!(lsn.segno(mib16), 0x102);
        assert_eq!(lsn.segment_offset(mib16), 0x28);
        assert_eq!(lsn.segno(1024 * 1024), 0x1020);
        assert_eq!(lsn.segno(1 << 30), 4);
        assert_eq!(lsn.segment_offset(1 << 30), 0x0200_0028);
        // Never divides by zero.
        assert_eq!(lsn.segno(0), lsn.0);
        assert_eq!(lsn.segment_offset(0), 0);
    }

    proptest! {
        #[test]
        fn display_round_trips(v in any::<u64>()) {
            let lsn = Lsn(v);
            prop_assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        }

        #[test]
        fn lowercase_is_accepted(v in any::<u64>()) {
            let lsn = Lsn(v);
            prop_assert_eq!(lsn.to_string().to_lowercase().parse::<Lsn>().unwrap(), lsn);
        }

        #[test]
        fn ordering_follows_value(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(Lsn(a).cmp(&Lsn(b)), a.cmp(&b));
        }
    }
}
