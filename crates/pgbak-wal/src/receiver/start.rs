//! Where streaming starts: from what the receiver's directory already holds (pg_receivewal's
//! `FindStreamingStart`), else from the slot, else from the archive, else from the server's
//! current position. Always at the start of a segment, so that each file is written whole.

use crate::protocol::stream::SlotInfo;
use crate::{IdentifySystem, Lsn, SegmentName, WalFileName};
use std::fmt;

/// Why streaming starts where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartSource {
    /// After (or at, for a `.partial`) the newest segment in the receiver's directory.
    Directory {
        /// The file that decided it.
        file: String,
    },
    /// At the slot's restart LSN.
    Slot,
    /// After the newest segment already in the archive.
    Archive,
    /// At the server's current WAL position (nothing was known).
    ServerPosition,
}

impl fmt::Display for StartSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartSource::Directory { file } => write!(f, "resuming from {file}"),
            StartSource::Slot => f.write_str("from the replication slot's restart position"),
            StartSource::Archive => f.write_str("after the newest archived segment"),
            StartSource::ServerPosition => f.write_str("from the server's current position"),
        }
    }
}

/// A position to start streaming from: the start of a segment, on a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPoint {
    /// Start of a segment.
    pub lsn: Lsn,
    /// Timeline to ask for.
    pub tli: u32,
    /// Why.
    pub source: StartSource,
}

/// The newest WAL segment in a directory listing, as pg_receivewal's `FindStreamingStart` picks
/// it: the highest segment number, then the highest timeline, a complete file winning over a
/// `.partial` of the same segment. Complete segments whose size is not `seg_size` are skipped (a
/// copy that was cut short); `.partial` files count whatever their size. Other names are ignored.
///
/// Returns the segment and whether it is partial.
pub fn newest_segment<'a>(
    files: impl IntoIterator<Item = (&'a str, u64)>,
    seg_size: u64,
) -> Option<(SegmentName, bool)> {
    let mut best: Option<(SegmentName, bool)> = None;
    for (name, size) in files {
        let (seg, partial) = match WalFileName::parse(name) {
            Ok(f @ WalFileName::Segment { .. }) => match f.segment(seg_size) {
                Some(s) if size == seg_size => (s, false),
                Some(_) => {
                    tracing::warn!(
                        file = name,
                        size,
                        "WAL segment in the streaming directory has the wrong size; ignored"
                    );
                    continue;
                }
                None => continue,
            },
            Ok(f @ WalFileName::Partial { .. }) => match f.segment(seg_size) {
                Some(s) => (s, true),
                None => continue,
            },
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((b, b_partial)) => {
                seg.segno > b.segno
                    || (seg.segno == b.segno && seg.tli > b.tli)
                    || (seg.segno == b.segno && seg.tli == b.tli && b_partial && !partial)
            }
        };
        if better {
            best = Some((seg, partial));
        }
    }
    best
}

/// Chooses where to start: the directory's newest segment (a `.partial` is streamed again from its
/// start, a complete one is followed by the next), else the slot's restart LSN, else the segment
/// after `archive_newest`, else the server's current position. Every choice is moved back to the
/// start of its segment.
pub fn choose_start(
    dir_newest: Option<(SegmentName, bool)>,
    slot: Option<&SlotInfo>,
    archive_newest: Option<SegmentName>,
    server: &IdentifySystem,
    seg_size: u64,
) -> StartPoint {
    let at_segment = |lsn: Lsn| Lsn(lsn.0 - lsn.segment_offset(seg_size));
    if let Some((seg, partial)) = dir_newest {
        let from = if partial { seg } else { seg.next() };
        let file = if partial {
            format!("{}.partial", seg.file_name(seg_size))
        } else {
            seg.file_name(seg_size)
        };
        return StartPoint {
            lsn: from.start_lsn(seg_size),
            tli: seg.tli,
            source: StartSource::Directory { file },
        };
    }
    if let Some(lsn) = slot.and_then(|s| s.restart_lsn) {
        return StartPoint {
            lsn: at_segment(lsn),
            tli: slot.and_then(|s| s.restart_tli).unwrap_or(server.timeline),
            source: StartSource::Slot,
        };
    }
    if let Some(seg) = archive_newest {
        return StartPoint {
            lsn: seg.next().start_lsn(seg_size),
            tli: seg.tli,
            source: StartSource::Archive,
        };
    }
    StartPoint {
        lsn: at_segment(server.xlogpos),
        tli: server.timeline,
        source: StartSource::ServerPosition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    fn seg(name: &str) -> SegmentName {
        SegmentName::parse(name, SEG).unwrap()
    }

    fn server() -> IdentifySystem {
        IdentifySystem {
            systemid: "1".into(),
            timeline: 3,
            xlogpos: Lsn(0x7_0123_4567),
            dbname: None,
        }
    }

    #[test]
    fn newest_segment_follows_find_streaming_start() {
        let files = [
            ("000000010000000000000003", SEG),
            ("000000010000000000000004.partial", 100),
            ("00000002.history", 50),
            ("xlog.db", 1),
            (".000000010000000000000009.tmp", SEG),
        ];
        assert_eq!(
            newest_segment(files, SEG),
            Some((seg("000000010000000000000004"), true))
        );
        // The complete file wins over a partial of the same segment and timeline.
        let files = [
            ("000000010000000000000004.partial", SEG),
            ("000000010000000000000004", SEG),
        ];
        assert_eq!(
            newest_segment(files, SEG),
            Some((seg("000000010000000000000004"), false))
        );
        // A higher timeline wins for the same segment number; a higher segment wins over both.
        let files = [
            ("000000020000000000000004.partial", 0),
            ("000000010000000000000004", SEG),
        ];
        assert_eq!(
            newest_segment(files, SEG),
            Some((seg("000000020000000000000004"), true))
        );
        let files = [
            ("000000020000000000000004", SEG),
            ("000000010000000000000005.partial", 0),
        ];
        assert_eq!(
            newest_segment(files, SEG),
            Some((seg("000000010000000000000005"), true))
        );
        // A complete segment cut short is ignored; an empty directory has nothing.
        let files = [
            ("000000010000000000000003", SEG),
            ("000000010000000000000004", SEG - 1),
        ];
        assert_eq!(
            newest_segment(files, SEG),
            Some((seg("000000010000000000000003"), false))
        );
        assert_eq!(newest_segment([], SEG), None);
        // A name that is out of range for this segment size is not a segment.
        assert_eq!(
            newest_segment([("0000000100000000000001FF", SEG)], SEG),
            None
        );
    }

    #[test]
    fn directory_comes_first() {
        let slot = SlotInfo {
            slot_type: "physical".into(),
            restart_lsn: Some(Lsn(0x9_0000_0000)),
            restart_tli: Some(3),
        };
        let p = choose_start(
            Some((seg("000000010000000000000004"), true)),
            Some(&slot),
            Some(seg("000000030000000900000000")),
            &server(),
            SEG,
        );
        assert_eq!(p.lsn, Lsn(0x400_0000));
        assert_eq!(p.tli, 1);
        assert_eq!(
            p.source.to_string(),
            "resuming from 000000010000000000000004.partial"
        );
        let p = choose_start(
            Some((seg("0000000100000000000000FF"), false)),
            None,
            None,
            &server(),
            SEG,
        );
        assert_eq!(
            p.lsn,
            Lsn(0x1_0000_0000),
            "the segment after a complete one"
        );
        assert_eq!(p.tli, 1);
    }

    #[test]
    fn then_slot_then_archive_then_server() {
        let slot = SlotInfo {
            slot_type: "physical".into(),
            restart_lsn: Some(Lsn(0x2_0300_0028)),
            restart_tli: Some(2),
        };
        let p = choose_start(None, Some(&slot), None, &server(), SEG);
        assert_eq!(
            (p.lsn, p.tli, p.source),
            (Lsn(0x2_0300_0000), 2, StartSource::Slot)
        );

        // A slot without reserved WAL says nothing; its timeline is unknown without restart_tli.
        let empty = SlotInfo {
            restart_lsn: None,
            restart_tli: None,
            ..slot.clone()
        };
        let archive = Some(seg("000000020000000500000010"));
        let p = choose_start(None, Some(&empty), archive, &server(), SEG);
        assert_eq!(
            (p.lsn, p.tli, p.source),
            (Lsn(0x5_1100_0000), 2, StartSource::Archive)
        );
        let no_tli = SlotInfo {
            restart_tli: None,
            ..slot
        };
        assert_eq!(
            choose_start(None, Some(&no_tli), None, &server(), SEG).tli,
            3
        );

        let p = choose_start(None, Some(&empty), None, &server(), SEG);
        assert_eq!(
            (p.lsn, p.tli, p.source),
            (Lsn(0x7_0100_0000), 3, StartSource::ServerPosition)
        );
    }
}
