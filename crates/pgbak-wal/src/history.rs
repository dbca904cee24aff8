//! Timeline history files (`0000000N.history`): which timelines a timeline descends from, and at
//! which LSN each one was left. Needed to pick the right WAL segments when recovering across a
//! promotion.

use crate::{Error, Lsn, Result};

/// One line of a history file: timeline `parent_tli` was left at `switchpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The earlier timeline.
    pub parent_tli: u32,
    /// First LSN that belongs to the next timeline (the end of `parent_tli` on this branch).
    pub switchpoint: Lsn,
    /// Free text PostgreSQL wrote (e.g. `no recovery target specified`).
    pub reason: String,
}

/// The contents of the history file of timeline `tli`, oldest ancestor first.
///
/// ```
/// use pgbak_wal::TimelineHistory;
/// let h = TimelineHistory::parse(2, "1\t0/3000158\tno recovery target specified\n").unwrap();
/// assert_eq!(h.timeline_of("0/3000157".parse().unwrap()), 1);
/// assert_eq!(h.timeline_of("0/3000158".parse().unwrap()), 2);
/// assert_eq!(h.switchpoint_of(1), Some("0/3000158".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistory {
    /// The timeline this history is for (the newest one).
    pub tli: u32,
    /// Its ancestors, oldest first.
    pub entries: Vec<HistoryEntry>,
}

impl TimelineHistory {
    /// Parses a history file as PostgreSQL's `readTimeLineHistory` does: one
    /// `parentTLI<TAB>switchpoint<TAB>reason` per line, blank lines and `#` comments skipped. Parent
    /// timelines must increase strictly and stay below `tli`; switchpoints must not decrease.
    pub fn parse(tli: u32, text: &str) -> Result<Self> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let bad = |reason: &str| Error::InvalidHistory {
                tli,
                line: idx + 1,
                text: raw.to_string(),
                reason: reason.to_string(),
            };
            let line = raw.trim_start();
            if line.trim_end().is_empty() || line.starts_with('#') {
                continue;
            }
            // Fields are separated by a tab in files PostgreSQL writes; like its sscanf-based reader,
            // accept any run of white space.
            let (tli_text, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let parent_tli: u32 = tli_text
                .parse()
                .map_err(|_| bad("expected a numeric timeline ID as first field"))?;
            let rest = rest.trim_start();
            let (lsn_text, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if lsn_text.is_empty() {
                return Err(bad("expected a write-ahead log switchpoint location"));
            }
            let switchpoint: Lsn = lsn_text
                .parse()
                .map_err(|_| bad("invalid write-ahead log switchpoint location"))?;
            if let Some(last) = entries.last() {
                if parent_tli <= last.parent_tli {
                    return Err(bad("timeline IDs must be in increasing sequence"));
                }
                if switchpoint < last.switchpoint {
                    return Err(bad("switchpoints must not decrease"));
                }
            }
            if parent_tli >= tli {
                return Err(bad(
                    "timeline IDs must be less than the child timeline's ID",
                ));
            }
            entries.push(HistoryEntry {
                parent_tli,
                switchpoint,
                reason: reason.trim().to_string(),
            });
        }
        Ok(TimelineHistory { tli, entries })
    }

    /// The timeline of this history that contains `lsn`: the first ancestor whose switchpoint lies
    /// after `lsn`, or `tli` itself when `lsn` is at or past the last switchpoint.
    pub fn timeline_of(&self, lsn: Lsn) -> u32 {
        self.entries
            .iter()
            .find(|e| lsn < e.switchpoint)
            .map(|e| e.parent_tli)
            .unwrap_or(self.tli)
    }

    /// The LSN at which `parent_tli` was left on the way to this timeline, if it is an ancestor.
    pub fn switchpoint_of(&self, parent_tli: u32) -> Option<Lsn> {
        self.entries
            .iter()
            .find(|e| e.parent_tli == parent_tli)
            .map(|e| e.switchpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    const THREE: &str = "1\t0/3000158\tno recovery target specified\n\
                         \n\
                         # a comment\n\
                         2\t0/5000000\tbefore 2024-01-01 10:00:00+00\n";

    #[test]
    fn parses_postgresql_format() {
        let h = TimelineHistory::parse(3, THREE).unwrap();
        assert_eq!(h.tli, 3);
        assert_eq!(
            h.entries,
            vec![
                HistoryEntry {
                    parent_tli: 1,
                    switchpoint: lsn("0/3000158"),
                    reason: "no recovery target specified".into()
                },
                HistoryEntry {
                    parent_tli: 2,
                    switchpoint: lsn("0/5000000"),
                    reason: "before 2024-01-01 10:00:00+00".into()
                },
            ]
        );
    }

    #[test]
    fn timeline_of_follows_switchpoints() {
        let h = TimelineHistory::parse(3, THREE).unwrap();
        assert_eq!(h.timeline_of(Lsn(0)), 1);
        assert_eq!(h.timeline_of(lsn("0/3000157")), 1);
        assert_eq!(h.timeline_of(lsn("0/3000158")), 2);
        assert_eq!(h.timeline_of(lsn("0/4FFFFFF")), 2);
        assert_eq!(h.timeline_of(lsn("0/5000000")), 3);
        assert_eq!(h.timeline_of(Lsn(u64::MAX)), 3);
        assert_eq!(h.switchpoint_of(1), Some(lsn("0/3000158")));
        assert_eq!(h.switchpoint_of(2), Some(lsn("0/5000000")));
        assert_eq!(h.switchpoint_of(3), None);
    }

    #[test]
    fn empty_history_is_the_timeline_itself() {
        let h = TimelineHistory::parse(1, "").unwrap();
        assert!(h.entries.is_empty());
        assert_eq!(h.timeline_of(lsn("5/0")), 1);
    }

    #[test]
    fn tolerates_spaces_crlf_and_missing_reason() {
        let h = TimelineHistory::parse(5, "  1 0/10\r\n4   0/20   why not \r\n").unwrap();
        assert_eq!(h.entries[0].parent_tli, 1);
        assert_eq!(h.entries[0].reason, "");
        assert_eq!(h.entries[1].switchpoint, Lsn(0x20));
        assert_eq!(h.entries[1].reason, "why not");
    }

    #[test]
    fn rejects_bad_files() {
        let cases = [
            ("x\t0/1\tr\n", "numeric timeline"),
            ("1\n", "switchpoint location"),
            ("1\tzz\tr\n", "invalid write-ahead log"),
            ("2\t0/1\tr\n1\t0/2\tr\n", "increasing"),
            ("1\t0/1\tr\n1\t0/2\tr\n", "increasing"),
            ("1\t0/5\tr\n2\t0/4\tr\n", "must not decrease"),
            ("3\t0/5\tr\n", "less than the child"),
            ("-1\t0/5\tr\n", "numeric timeline"),
        ];
        for (text, want) in cases {
            let err = TimelineHistory::parse(3, text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{text:?}: {msg}");
            assert!(matches!(err, Error::InvalidHistory { tli: 3, .. }));
        }
        let err = TimelineHistory::parse(4, "1\t0/1\tok\n\n2\tbad\tr\n").unwrap_err();
        assert!(
            matches!(err, Error::InvalidHistory { line: 3, ref text, .. } if text == "2\tbad\tr")
        );
    }

    #[test]
    fn equal_switchpoints_are_allowed() {
        let h = TimelineHistory::parse(3, "1\t0/10\ta\n2\t0/10\tb\n").unwrap();
        assert_eq!(h.timeline_of(Lsn(0xF)), 1);
        assert_eq!(h.timeline_of(Lsn(0x10)), 3);
    }
}
