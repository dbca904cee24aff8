//! The `backup_label` file that PostgreSQL 13-17 puts at the root of every base backup: where the
//! backup's WAL starts, from which checkpoint recovery begins, and on which timeline.

use crate::segment::WalFileName;
use crate::{Error, Lsn, Result};

/// The contents of a `backup_label` file.
///
/// ```
/// use pgbak_wal::BackupLabel;
/// let label = BackupLabel::parse(
///     "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
///      CHECKPOINT LOCATION: 0/2000060\n\
///      BACKUP METHOD: streamed\n\
///      BACKUP FROM: primary\n\
///      START TIME: 2024-01-01 10:00:00 UTC\n\
///      LABEL: nightly\n\
///      START TIMELINE: 1\n",
/// )
/// .unwrap();
/// assert_eq!(label.start_wal_file, "000000010000000000000002");
/// assert_eq!(label.label, "nightly");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    /// `START WAL LOCATION`: first WAL position the backup needs.
    pub start_lsn: Lsn,
    /// The segment file named next to the start location (`(file ...)`).
    pub start_wal_file: String,
    /// `CHECKPOINT LOCATION`: the checkpoint recovery starts from.
    pub checkpoint_lsn: Lsn,
    /// `BACKUP METHOD`: `streamed` or `pg_start_backup`/`pg_backup_start`.
    pub backup_method: String,
    /// `BACKUP FROM`: `primary` or `standby`.
    pub backup_from: String,
    /// `START TIME` as written by the server (e.g. `2024-01-01 10:00:00 UTC`).
    pub start_time: String,
    /// `LABEL`: the label given to the backup.
    pub label: String,
    /// `START TIMELINE`.
    pub start_timeline: u32,
}

fn bad(reason: impl Into<String>, line: Option<&str>) -> Error {
    Error::InvalidBackupLabel {
        reason: reason.into(),
        text: line.map(str::to_string),
    }
}

/// Parses `0/2000028 (file 000000010000000000000002)`.
fn parse_start_location(value: &str, line: &str) -> Result<(Lsn, String)> {
    let err = || {
        bad(
            "START WAL LOCATION must look like \"X/Y (file NAME)\"",
            Some(line),
        )
    };
    let (lsn_text, rest) = value.split_once(' ').ok_or_else(err)?;
    let lsn: Lsn = lsn_text.parse().map_err(|_| err())?;
    let file = rest
        .trim()
        .strip_prefix("(file ")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(err)?;
    match WalFileName::parse(file) {
        Ok(WalFileName::Segment { .. }) => Ok((lsn, file.to_string())),
        _ => Err(bad(
            "START WAL LOCATION names no WAL segment file",
            Some(line),
        )),
    }
}

impl BackupLabel {
    /// Parses a backup label. Every line PostgreSQL 13-17 always writes is required; lines added by
    /// later versions (such as PostgreSQL 17's `INCREMENTAL FROM ...`) are ignored, and a repeated
    /// line is an error.
    pub fn parse(text: &str) -> Result<Self> {
        let mut start: Option<(Lsn, String)> = None;
        let mut checkpoint: Option<Lsn> = None;
        let mut method: Option<String> = None;
        let mut from: Option<String> = None;
        let mut time: Option<String> = None;
        let mut label: Option<String> = None;
        let mut timeline: Option<u32> = None;

        fn set<T>(slot: &mut Option<T>, v: T, key: &str, line: &str) -> Result<()> {
            if slot.is_some() {
                return Err(bad(format!("{key} appears twice"), Some(line)));
            }
            *slot = Some(v);
            Ok(())
        }

        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
                .ok_or_else(|| bad("expected \"KEY: value\"", Some(line)))?;
            match key {
                "START WAL LOCATION" => {
                    set(&mut start, parse_start_location(value, line)?, key, line)?
                }
                "CHECKPOINT LOCATION" => {
                    let lsn = value
                        .trim()
                        .parse()
                        .map_err(|_| bad("CHECKPOINT LOCATION is not an LSN", Some(line)))?;
                    set(&mut checkpoint, lsn, key, line)?
                }
                "BACKUP METHOD" => set(&mut method, value.trim().to_string(), key, line)?,
                "BACKUP FROM" => set(&mut from, value.trim().to_string(), key, line)?,
                "START TIME" => set(&mut time, value.trim().to_string(), key, line)?,
                // The label is free text: keep it exactly, including surrounding spaces.
                "LABEL" => set(&mut label, value.to_string(), key, line)?,
                "START TIMELINE" => {
                    let tli = value
                        .trim()
                        .parse()
                        .map_err(|_| bad("START TIMELINE is not a timeline number", Some(line)))?;
                    set(&mut timeline, tli, key, line)?
                }
                _ => {}
            }
        }

        let missing = |what: &str| bad(format!("missing {what} line"), None);
        let (start_lsn, start_wal_file) = start.ok_or_else(|| missing("START WAL LOCATION"))?;
        let start_timeline = timeline.ok_or_else(|| missing("START TIMELINE"))?;
        // Same consistency check as PostgreSQL's read_backup_label.
        if let Ok(f) = WalFileName::parse(&start_wal_file) {
            if f.tli() != start_timeline {
                return Err(bad(
                    format!(
                        "START TIMELINE {start_timeline} does not match the timeline of {start_wal_file}"
                    ),
                    None,
                ));
            }
        }
        Ok(BackupLabel {
            start_lsn,
            start_wal_file,
            checkpoint_lsn: checkpoint.ok_or_else(|| missing("CHECKPOINT LOCATION"))?,
            backup_method: method.ok_or_else(|| missing("BACKUP METHOD"))?,
            backup_from: from.ok_or_else(|| missing("BACKUP FROM"))?,
            start_time: time.ok_or_else(|| missing("START TIME"))?,
            label: label.ok_or_else(|| missing("LABEL"))?,
            start_timeline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG15: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                        CHECKPOINT LOCATION: 0/2000060\n\
                        BACKUP METHOD: streamed\n\
                        BACKUP FROM: primary\n\
                        START TIME: 2024-01-01 10:00:00 UTC\n\
                        LABEL: pgbak backup 20240101T100000\n\
                        START TIMELINE: 1\n";

    #[test]
    fn parses_pg15_label() {
        let l = BackupLabel::parse(PG15).unwrap();
        assert_eq!(
            l,
            BackupLabel {
                start_lsn: "0/2000028".parse().unwrap(),
                start_wal_file: "000000010000000000000002".into(),
                checkpoint_lsn: "0/2000060".parse().unwrap(),
                backup_method: "streamed".into(),
                backup_from: "primary".into(),
                start_time: "2024-01-01 10:00:00 UTC".into(),
                label: "pgbak backup 20240101T100000".into(),
                start_timeline: 1,
            }
        );
    }

    #[test]
    fn parses_pg17_incremental_label() {
        let text = "START WAL LOCATION: 1/A0000028 (file 00000002000000010000000A)\n\
                    CHECKPOINT LOCATION: 1/A0000080\n\
                    BACKUP METHOD: streamed\n\
                    BACKUP FROM: standby\n\
                    START TIME: 2024-06-01 10:00:00 CEST\n\
                    LABEL: incr: with colon\n\
                    START TIMELINE: 2\n\
                    INCREMENTAL FROM LSN: 1/90000028\n\
                    INCREMENTAL FROM TLI: 2\n";
        let l = BackupLabel::parse(text).unwrap();
        assert_eq!(l.start_lsn, "1/A0000028".parse().unwrap());
        assert_eq!(l.start_timeline, 2);
        assert_eq!(l.backup_from, "standby");
        assert_eq!(l.label, "incr: with colon");
    }

    #[test]
    fn pg13_pg_start_backup_label() {
        let text = PG15
            .replace("streamed", "pg_start_backup")
            .replace("\n", "\r\n");
        let l = BackupLabel::parse(&text).unwrap();
        assert_eq!(l.backup_method, "pg_start_backup");
        assert_eq!(l.label, "pgbak backup 20240101T100000");
    }

    #[test]
    fn empty_label_text() {
        let l = BackupLabel::parse(&PG15.replace("LABEL: pgbak backup 20240101T100000", "LABEL: "))
            .unwrap();
        assert_eq!(l.label, "");
        let l = BackupLabel::parse(&PG15.replace("LABEL: pgbak backup 20240101T100000", "LABEL:"))
            .unwrap();
        assert_eq!(l.label, "");
    }

    #[test]
    fn missing_lines_are_errors() {
        for key in [
            "START WAL LOCATION",
            "CHECKPOINT LOCATION",
            "BACKUP METHOD",
            "BACKUP FROM",
            "START TIME",
            "LABEL",
            "START TIMELINE",
        ] {
            let text: String = PG15
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = BackupLabel::parse(&text).unwrap_err();
            assert!(
                err.to_string().contains(&format!("missing {key}")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        let cases = [
            (
                PG15.replace("0/2000028 (file", "0/20000Z8 (file"),
                "X/Y (file NAME)",
            ),
            (
                PG15.replace(
                    "(file 000000010000000000000002)",
                    "000000010000000000000002",
                ),
                "X/Y (file NAME)",
            ),
            (
                PG15.replace("(file 000000010000000000000002)", "(file 00000001.history)"),
                "names no WAL segment",
            ),
            (
                PG15.replace("CHECKPOINT LOCATION: 0/2000060", "CHECKPOINT LOCATION: x"),
                "not an LSN",
            ),
            (
                PG15.replace("START TIMELINE: 1", "START TIMELINE: one"),
                "not a timeline",
            ),
            (
                PG15.replace("START TIMELINE: 1", "START TIMELINE: 2"),
                "does not match",
            ),
            (format!("{PG15}BACKUP FROM: standby\n"), "appears twice"),
            (format!("{PG15}garbage\n"), "KEY: value"),
        ];
        for (text, want) in cases {
            let err = BackupLabel::parse(&text).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }
}
