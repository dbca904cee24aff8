//! Timelines in the archive: which timeline a recovery follows (`--target-tli` N, `current`,
//! `latest`), the stretch of WAL each timeline contributes on the way there, and so which archived
//! segments a recovery or a backup needs when the history forks.
//!
//! PostgreSQL reads segment `S` from the newest timeline on its path whose stretch begins at or
//! before `S`; a timeline's segments after its switchpoint belong to another branch and must not be
//! handed to a recovery that follows this one.

use crate::backups::BackupInfo;
use crate::wal::WalArchive;
use crate::{Error, Result};
use pgbak_wal::{segments_between, Lsn, SegmentName, TimelineHistory, WalFileName};
use std::fmt;
use std::str::FromStr;

/// Largest history file accepted (PostgreSQL's are a line per promotion).
const MAX_HISTORY_BYTES: usize = 1 << 20;

/// The timeline a recovery should end on (`recovery_target_timeline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetTimeline {
    /// The timeline of the backup.
    Current,
    /// The newest timeline in the archive (PostgreSQL's default since 12).
    Latest,
    /// This timeline.
    Id(u32),
}

impl FromStr for TargetTimeline {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "current" => Ok(TargetTimeline::Current),
            "latest" => Ok(TargetTimeline::Latest),
            _ => match s.parse::<u32>() {
                Ok(n) if n > 0 => Ok(TargetTimeline::Id(n)),
                _ => Err(Error::Usage(format!(
                    "invalid target timeline '{s}' (a number, 'current' or 'latest')"
                ))),
            },
        }
    }
}

impl fmt::Display for TargetTimeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetTimeline::Current => f.write_str("current"),
            TargetTimeline::Latest => f.write_str("latest"),
            TargetTimeline::Id(n) => write!(f, "{n}"),
        }
    }
}

/// The WAL one timeline contributes to a path: from `begin` up to `end` (exclusive; `None` = no end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineSpan {
    /// The timeline.
    pub tli: u32,
    /// First LSN read from it.
    pub begin: Lsn,
    /// Where the path leaves it for the next timeline.
    pub end: Option<Lsn>,
}

impl TimelineSpan {
    /// Whether the segment `seg` of this span's timeline holds WAL of the span.
    pub fn contains_segment(&self, seg: SegmentName, seg_size: u64) -> bool {
        if seg.tli != self.tli || seg.segno < self.begin.segno(seg_size) {
            return false;
        }
        match self.end {
            None => true,
            Some(end) if end <= self.begin => false,
            Some(end) => seg.segno <= Lsn(end.0 - 1).segno(seg_size),
        }
    }
}

/// The timelines a recovery starting on `start_tli` at `start` passes through to reach the timeline
/// of `target` (the history of the target timeline), oldest first.
///
/// Fails when the start is not on the target's history: the start timeline is not among its
/// ancestors, or it was left before `start` (the backup is on another branch).
pub fn timeline_path(
    start_tli: u32,
    start: Lsn,
    target: &TimelineHistory,
) -> Result<Vec<TimelineSpan>> {
    if target.tli == start_tli {
        return Ok(vec![TimelineSpan {
            tli: start_tli,
            begin: start,
            end: None,
        }]);
    }
    if target.tli < start_tli {
        return Err(Error::Usage(format!(
            "target timeline {} is older than timeline {start_tli} of the backup",
            target.tli
        )));
    }
    let Some(left_at) = target.switchpoint_of(start_tli) else {
        return Err(Error::Usage(format!(
            "timeline {} does not descend from timeline {start_tli} (its history: {})",
            target.tli,
            describe(target)
        )));
    };
    if left_at < start {
        return Err(Error::Usage(format!(
            "timeline {} left timeline {start_tli} at {left_at}, before the backup starts ({start}): the backup is on another branch",
            target.tli
        )));
    }
    let mut spans = Vec::new();
    let mut begin = start;
    for e in target.entries.iter().filter(|e| e.parent_tli >= start_tli) {
        spans.push(TimelineSpan {
            tli: e.parent_tli,
            begin,
            end: Some(e.switchpoint),
        });
        begin = e.switchpoint;
    }
    spans.push(TimelineSpan {
        tli: target.tli,
        begin,
        end: None,
    });
    Ok(spans)
}

fn describe(h: &TimelineHistory) -> String {
    if h.entries.is_empty() {
        return "no parent".into();
    }
    h.entries
        .iter()
        .map(|e| format!("{} until {}", e.parent_tli, e.switchpoint))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest timeline PostgreSQL finds from `start_tli`: it probes `start_tli + 1`, `+ 2`, ... while
/// a history file exists (`findNewestTimeLine`).
pub fn newest_timeline(start_tli: u32, history_tlis: &[u32]) -> u32 {
    let mut newest = start_tli;
    while let Some(next) = newest.checked_add(1) {
        if history_tlis.contains(&next) {
            newest = next;
        } else {
            break;
        }
    }
    newest
}

/// What a recovery of one backup reads from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalPlan {
    /// The timeline the recovery ends on.
    pub target_tli: u32,
    /// The timelines on the way, oldest first.
    pub spans: Vec<TimelineSpan>,
    /// Archived segments on the path, in replay order.
    pub segments: Vec<String>,
    /// Archived history files (all of them: PostgreSQL reads the target's and probes for newer ones).
    pub histories: Vec<String>,
}

impl WalArchive {
    /// Reads and parses the archived history file of timeline `tli`; `None` when it is not archived.
    pub fn read_history(&self, tli: u32) -> Result<Option<TimelineHistory>> {
        let name = format!("{tli:08X}.history");
        let mut buf = LimitedBuf::new(MAX_HISTORY_BYTES);
        let label = self.location(&name);
        match self.fetch_to(&name, &mut buf, &label) {
            Ok(_) => {}
            Err(Error::WalNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let text = String::from_utf8(buf.data).map_err(|_| Error::Corrupt {
            what: format!("history file {label}"),
            detail: "not text".into(),
        })?;
        Ok(Some(TimelineHistory::parse(tli, &text)?))
    }

    /// Timelines that have an archived history file.
    pub fn history_timelines(&self) -> Result<Vec<u32>> {
        Ok(self
            .history_names()?
            .iter()
            .filter_map(|n| match WalFileName::parse(n) {
                Ok(WalFileName::History { tli }) => Some(tli),
                _ => None,
            })
            .collect())
    }

    /// The history that leads to `tli`: the archived history file, or an empty one for timeline 1
    /// and for the start timeline itself.
    fn history_or_root(&self, tli: u32, start_tli: u32) -> Result<TimelineHistory> {
        if tli == start_tli || tli == 1 {
            return Ok(TimelineHistory {
                tli,
                entries: Vec::new(),
            });
        }
        self.read_history(tli)?.ok_or_else(|| {
            Error::Usage(format!(
                "timeline {tli} has no history file {tli:08X}.history in the archive of server '{}'",
                self.server_name()
            ))
        })
    }

    /// Resolves `target` for a recovery starting on `start_tli` at `start` and lists the archived
    /// segments of the path from the segment of `start` on.
    pub fn recovery_plan(
        &self,
        start_tli: u32,
        start: Lsn,
        seg_size: u64,
        target: TargetTimeline,
    ) -> Result<WalPlan> {
        let target_tli = match target {
            TargetTimeline::Current => start_tli,
            TargetTimeline::Id(n) => n,
            TargetTimeline::Latest => newest_timeline(start_tli, &self.history_timelines()?),
        };
        let history = self.history_or_root(target_tli, start_tli)?;
        let spans = timeline_path(start_tli, start, &history)?;
        let mut segments = Vec::new();
        for name in self.segment_names()? {
            let Ok(seg) = SegmentName::parse(&name, seg_size) else {
                continue;
            };
            if spans.iter().any(|s| s.contains_segment(seg, seg_size)) {
                segments.push((seg.segno, seg.tli, name));
            }
        }
        segments.sort();
        Ok(WalPlan {
            target_tli,
            spans,
            segments: segments.into_iter().map(|(_, _, n)| n).collect(),
            histories: self.history_names()?,
        })
    }

    /// The plan for recovering `backup` to `target` (`None` = PostgreSQL's default, `latest`).
    pub fn backup_recovery_plan(
        &self,
        backup: &BackupInfo,
        target: Option<TargetTimeline>,
    ) -> Result<WalPlan> {
        let (tli, begin, seg_size) = backup_start(backup)?;
        self.recovery_plan(
            tli,
            begin,
            seg_size,
            target.unwrap_or(TargetTimeline::Latest),
        )
    }

    /// The segments a backup needs to be consistent (begin to end), following the history of its
    /// end timeline when it ended on another timeline than it began (a standby promoted while it
    /// was copied).
    pub fn backup_required_segments(&self, backup: &BackupInfo) -> Result<Vec<String>> {
        let end_tli = backup.end_timeline.or(backup.timeline);
        match (backup.timeline, end_tli) {
            (Some(a), Some(b)) if a != b => match self.read_history(b)? {
                Some(history) => backup_segments_across(backup, &history),
                // Until the history file is archived the backup waits for it like for a segment.
                None => Ok(vec![format!("{b:08X}.history")]),
            },
            _ => required_segments(backup),
        }
    }
}

/// The start timeline, start LSN and segment size of a backup.
fn backup_start(backup: &BackupInfo) -> Result<(u32, Lsn, u64)> {
    let missing = |what: &str| Error::Backup {
        server: backup.server_name.clone(),
        problem: crate::BackupProblem::Unusable,
        message: format!("backup {} has no {what}", backup.backup_id),
    };
    let tli = backup.timeline.ok_or_else(|| missing("timeline"))?;
    let begin: Lsn = backup
        .begin_lsn
        .as_deref()
        .ok_or_else(|| missing("begin LSN"))?
        .parse()?;
    let seg_size = backup
        .wal_segment_size
        .unwrap_or(pgbak_wal::DEFAULT_SEGMENT_SIZE);
    Ok((tli, begin, seg_size))
}

/// The segments from a backup's begin to its end along `end_history` (the history of its end
/// timeline).
pub fn backup_segments_across(
    backup: &BackupInfo,
    end_history: &TimelineHistory,
) -> Result<Vec<String>> {
    let (tli, begin, seg_size) = backup_start(backup)?;
    let end: Lsn = match backup.end_lsn.as_deref() {
        Some(e) => e.parse()?,
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for span in timeline_path(tli, begin, end_history)? {
        if span.begin >= end && !out.is_empty() {
            break;
        }
        let stop = span.end.map_or(end, |e| e.min(end));
        for s in pgbak_wal::segments_between(span.tli, span.begin, stop, seg_size) {
            out.push(s.file_name(seg_size));
        }
    }
    Ok(out)
}

/// A `Write` that keeps at most `limit` bytes and fails beyond that (history files are small; a
/// huge one is not a history file).
struct LimitedBuf {
    data: Vec<u8>,
    limit: usize,
}

impl LimitedBuf {
    fn new(limit: usize) -> Self {
        LimitedBuf {
            data: Vec::new(),
            limit,
        }
    }
}

impl std::io::Write for LimitedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.data.len() + buf.len() > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {} bytes", self.limit),
            ));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The WAL segment names a backup needs, from its begin to its end.
pub fn required_segments(info: &BackupInfo) -> Result<Vec<String>> {
    let (Some(b), Some(e), Some(tli), Some(seg)) = (
        &info.begin_lsn,
        &info.end_lsn,
        info.timeline,
        info.wal_segment_size,
    ) else {
        return Ok(Vec::new());
    };
    let begin: Lsn = b.parse()?;
    let end: Lsn = e.parse()?;
    Ok(segments_between(tli, begin, end, seg)
        .into_iter()
        .map(|s| s.file_name(seg))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::archive::tests::segment;
    use pgbak_compress::{Codec, Compression};

    const SEG: u64 = 1 << 20;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn seg(tli: u32, segno: u64) -> String {
        SegmentName { tli, segno }.file_name(SEG)
    }

    #[test]
    fn target_timeline_parses() {
        assert_eq!(
            "current".parse::<TargetTimeline>().unwrap(),
            TargetTimeline::Current
        );
        assert_eq!(
            "latest".parse::<TargetTimeline>().unwrap(),
            TargetTimeline::Latest
        );
        assert_eq!(
            "3".parse::<TargetTimeline>().unwrap(),
            TargetTimeline::Id(3)
        );
        for bad in ["0", "-1", "newest", "", "1.5"] {
            assert!(bad.parse::<TargetTimeline>().is_err(), "{bad}");
        }
    }

    #[test]
    fn path_follows_switchpoints() {
        let h = TimelineHistory::parse(3, "1\t0/300000\tx\n2\t0/500000\ty\n").unwrap();
        let p = timeline_path(1, lsn("0/100028"), &h).unwrap();
        assert_eq!(
            p,
            vec![
                TimelineSpan {
                    tli: 1,
                    begin: lsn("0/100028"),
                    end: Some(lsn("0/300000"))
                },
                TimelineSpan {
                    tli: 2,
                    begin: lsn("0/300000"),
                    end: Some(lsn("0/500000"))
                },
                TimelineSpan {
                    tli: 3,
                    begin: lsn("0/500000"),
                    end: None
                },
            ]
        );
        // Starting on timeline 2 skips timeline 1.
        let p = timeline_path(2, lsn("0/400000"), &h).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].tli, 2);
        // A backup on timeline 1 taken after timeline 2 branched off is on another branch.
        let err = timeline_path(1, lsn("0/400000"), &h)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another branch"), "{err}");
        // Timeline 4 is not an ancestor of 3.
        let h5 = TimelineHistory::parse(5, "1\t0/300000\tx\n").unwrap();
        assert!(timeline_path(4, lsn("0/400000"), &h5).is_err());
        assert!(
            timeline_path(4, lsn("0/1"), &h).is_err(),
            "target older than start"
        );
    }

    #[test]
    fn span_segments_stop_at_the_switchpoint() {
        let span = TimelineSpan {
            tli: 1,
            begin: lsn("0/100028"),
            end: Some(lsn("0/300000")),
        };
        let s = |tli, segno| SegmentName { tli, segno };
        assert!(!span.contains_segment(s(1, 0), SEG));
        assert!(span.contains_segment(s(1, 1), SEG));
        assert!(span.contains_segment(s(1, 2), SEG));
        assert!(
            !span.contains_segment(s(1, 3), SEG),
            "switchpoint on a segment boundary"
        );
        assert!(!span.contains_segment(s(2, 2), SEG));
        let mid = TimelineSpan {
            tli: 1,
            begin: Lsn(0),
            end: Some(lsn("0/300100")),
        };
        assert!(
            mid.contains_segment(s(1, 3), SEG),
            "the switch segment itself"
        );
        assert!(!mid.contains_segment(s(1, 4), SEG));
        let empty = TimelineSpan {
            tli: 1,
            begin: lsn("0/300000"),
            end: Some(lsn("0/300000")),
        };
        assert!(!empty.contains_segment(s(1, 3), SEG));
    }

    #[test]
    fn newest_timeline_probes_like_postgresql() {
        assert_eq!(newest_timeline(1, &[]), 1);
        assert_eq!(newest_timeline(1, &[2, 3]), 3);
        assert_eq!(newest_timeline(1, &[2, 4]), 2, "a gap stops the probe");
        assert_eq!(newest_timeline(2, &[2, 3]), 3);
    }

    fn archive_with(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, WalArchive, ()) {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("wals"))),
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("errors"))),
            Codec::new(Compression::Lz4, None).unwrap(),
        );
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for (n, data) in files {
            std::fs::write(src.join(n), data).unwrap();
            a.archive_file(&src.join(n)).unwrap();
        }
        (d, a, ())
    }

    #[test]
    fn plans_pick_the_segments_of_the_target_branch() {
        // Timeline 1 runs to segment 6; timeline 2 branched at 0/300100 (in segment 3) and runs
        // to 5; timeline 3 branched from 2 at 0/500000 (a segment boundary).
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for n in 1..=6 {
            files.push((seg(1, n), segment(&seg(1, n), 1)));
        }
        for n in 3..=5 {
            files.push((seg(2, n), segment(&seg(2, n), 2)));
        }
        for n in 5..=6 {
            files.push((seg(3, n), segment(&seg(3, n), 3)));
        }
        files.push((
            "00000002.history".into(),
            b"1\t0/300100\tno recovery target specified\n".to_vec(),
        ));
        files.push((
            "00000003.history".into(),
            b"1\t0/300100\tno recovery target specified\n2\t0/500000\tbefore x\n".to_vec(),
        ));
        let (_d, a, _) = archive_with(&files);
        let start = lsn("0/100028");

        let latest = a
            .recovery_plan(1, start, SEG, TargetTimeline::Latest)
            .unwrap();
        assert_eq!(latest.target_tli, 3);
        assert_eq!(
            latest.segments,
            vec![
                seg(1, 1),
                seg(1, 2),
                seg(1, 3),
                seg(2, 3),
                seg(2, 4),
                seg(3, 5),
                seg(3, 6)
            ]
        );
        assert_eq!(latest.histories.len(), 2);

        let two = a
            .recovery_plan(1, start, SEG, TargetTimeline::Id(2))
            .unwrap();
        assert_eq!(
            two.segments,
            vec![
                seg(1, 1),
                seg(1, 2),
                seg(1, 3),
                seg(2, 3),
                seg(2, 4),
                seg(2, 5)
            ]
        );

        let current = a
            .recovery_plan(1, start, SEG, TargetTimeline::Current)
            .unwrap();
        assert_eq!(current.target_tli, 1);
        assert_eq!(
            current.segments,
            (1..=6).map(|n| seg(1, n)).collect::<Vec<_>>()
        );

        let err = a
            .recovery_plan(1, start, SEG, TargetTimeline::Id(7))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no history file"), "{err}");
        // A backup on timeline 1 after the fork cannot reach timeline 2.
        assert!(a
            .recovery_plan(1, lsn("0/400000"), SEG, TargetTimeline::Latest)
            .is_err());
    }

    #[test]
    fn a_history_file_that_does_not_parse_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let a = WalArchive::new(
            "main",
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("wals"))),
            std::sync::Arc::new(pgbak_storage::LocalStorage::new(d.path().join("errors"))),
            Codec::new(Compression::None, None).unwrap(),
        );
        let h = d.path().join("00000002.history");
        std::fs::write(&h, "this is not a history\n").unwrap();
        assert!(a.archive_file(&h).is_err());
        assert!(a.history_names().unwrap().is_empty(), "nothing written");
        assert!(!d.path().join("wals/00000002.history").exists());
    }

    #[test]
    fn backup_range_across_a_switch() {
        let mut b = BackupInfo::new(
            "main",
            "20240101T000000",
            "postgres",
            "tar",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        b.timeline = Some(1);
        b.end_timeline = Some(2);
        b.begin_lsn = Some("0/100028".into());
        b.end_lsn = Some("0/400100".into());
        b.wal_segment_size = Some(SEG);
        let h = TimelineHistory::parse(2, "1\t0/300100\tx\n").unwrap();
        assert_eq!(
            backup_segments_across(&b, &h).unwrap(),
            vec![seg(1, 1), seg(1, 2), seg(1, 3), seg(2, 3), seg(2, 4)]
        );
        // Same timeline: the plain range.
        b.end_timeline = Some(1);
        let h1 = TimelineHistory {
            tli: 1,
            entries: vec![],
        };
        assert_eq!(
            backup_segments_across(&b, &h1).unwrap(),
            vec![seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4)]
        );
    }
}
