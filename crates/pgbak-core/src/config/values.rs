//! Parsers for the value types of Barman's configuration (booleans, sizes, intervals, retention
//! policies, slot names, lists), accepting what Barman accepts so that its files read the same.
//!
//! The public helpers return a [`ConfigError`] that carries only a message; the loader adds the
//! file, line and option.

use std::time::Duration;

use super::error::ConfigError;

/// Parses a Barman boolean: `true|t|yes|1|on` or `false|f|no|0|off`, in any case.
pub fn parse_bool(value: &str) -> Result<bool, ConfigError> {
    bool_value(value).map_err(ConfigError::new)
}

/// Parses a Barman size, `N[k|Ki|M|Mi|G|Gi|T|Ti]`, into bytes (`k` = 1000, `Ki` = 1024, ...).
/// Units are case-sensitive, as in Barman; a space may separate the number and the unit.
pub fn parse_size(value: &str) -> Result<u64, ConfigError> {
    size_value(value).map_err(ConfigError::new)
}

/// Parses a Barman interval, `N (hour|day|week|month)[s]`, where a month is 31 days.
pub fn parse_interval(value: &str) -> Result<Duration, ConfigError> {
    interval_value(value).map_err(ConfigError::new)
}

pub(crate) fn bool_value(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "1" | "on" => Ok(true),
        "false" | "f" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!(
            "invalid boolean '{value}' (expected one of true, t, yes, 1, on, false, f, no, 0, off)"
        )),
    }
}

/// Splits `"12 Ki"` into `("12", "Ki")`.
fn number_and_unit(value: &str) -> (&str, &str) {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    (&value[..digits], value[digits..].trim())
}

pub(crate) fn size_value(value: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size '{value}' (expected a whole number with an optional unit k, Ki, M, Mi, G, Gi, T or Ti)")
    };
    let (number, unit) = number_and_unit(value);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "Ki" => 1 << 10,
        "M" => 1000 * 1000,
        "Mi" => 1 << 20,
        "G" => 1000 * 1000 * 1000,
        "Gi" => 1 << 30,
        "T" => 1000 * 1000 * 1000 * 1000,
        "Ti" => 1 << 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size '{value}' is too large"))
}

pub(crate) fn interval_value(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid interval '{value}' (expected a number of hours, days, weeks or months, e.g. '7 days')")
    };
    let (number, unit) = number_and_unit(value);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix('s').unwrap_or(&unit);
    let hours: u64 = match unit {
        "hour" => 1,
        "day" => 24,
        "week" => 7 * 24,
        "month" => 31 * 24,
        _ => return Err(bad()),
    };
    // A century is more than any age or window can mean, and keeps date arithmetic in range.
    number
        .checked_mul(hours * 3600)
        .filter(|s| *s <= 100 * 366 * 24 * 3600)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("interval '{value}' is too long (at most a century)"))
}

/// A whole number that fits `T` (no sign, no unit).
pub(crate) fn unsigned_value<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid number '{value}' (expected a whole number, 0 or more)"
        ));
    }
    trimmed
        .parse()
        .map_err(|_| format!("number '{value}' is too large"))
}

/// Longest time any timeout, interval or pause of the configuration may be: one year. Larger
/// values cannot be meant, and would overflow a clock when added to it.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// A number of seconds, at most [`MAX_SECONDS`].
pub(crate) fn seconds_value(value: &str) -> Result<u64, String> {
    let n: u64 = unsigned_value(value)?;
    if n > MAX_SECONDS {
        return Err(format!(
            "{n} seconds is more than a year (at most {MAX_SECONDS})"
        ));
    }
    Ok(n)
}

/// A signed whole number.
pub(crate) fn signed_value(value: &str) -> Result<i32, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("invalid number '{value}' (expected a whole number)"))
}

/// Validates a retention policy as Barman writes it: `REDUNDANCY n` or
/// `RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS` (any case, singular units too). Returns the words
/// normalised to upper case and single spaces.
pub(crate) fn retention_policy_value(value: &str) -> Result<String, String> {
    value
        .parse::<crate::retention::RetentionPolicy>()
        .map(|p| p.to_string())
        .map_err(|e| match e {
            crate::Error::Usage(m) => m,
            other => other.to_string(),
        })
}

/// The redundancy of a `REDUNDANCY n` policy (already validated), for consistency warnings.
pub(crate) fn redundancy_of(policy: &str) -> Option<u32> {
    policy.strip_prefix("REDUNDANCY ")?.parse().ok()
}

/// A replication slot name: Barman lower-cases it, then requires `[0-9a-z_]+`; PostgreSQL caps
/// names at 63 bytes.
pub(crate) fn slot_name_value(value: &str) -> Result<String, String> {
    let lowered = value.trim().to_ascii_lowercase();
    if lowered.is_empty()
        || !lowered
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "invalid replication slot name '{value}' (only lower-case letters, digits and '_' are allowed)"
        ));
    }
    if lowered.len() > 63 {
        return Err(format!(
            "replication slot name '{value}' is longer than PostgreSQL's limit of 63 characters"
        ));
    }
    Ok(lowered)
}

/// Splits a comma-separated list, lower-cases and trims each item, and checks it against
/// `allowed`. Empty items are skipped.
pub(crate) fn csv_value(value: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    for item in value.split(',') {
        let item = item.trim().to_ascii_lowercase();
        if item.is_empty() {
            continue;
        }
        if !allowed.contains(&item.as_str()) {
            return Err(format!(
                "unknown value '{item}' (expected a comma-separated list of {})",
                allowed.join(", ")
            ));
        }
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

/// One choice among fixed words, in any case.
pub(crate) fn choice_value<'a>(
    value: &str,
    what: &str,
    allowed: &[&'a str],
) -> Result<&'a str, String> {
    let lowered = value.trim().to_ascii_lowercase();
    allowed
        .iter()
        .find(|a| **a == lowered)
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown {what} '{value}' (expected one of {})",
                allowed.join(", ")
            )
        })
}

/// An absolute local path. Object storage URLs (which Barman 3.18 accepts for some directories)
/// are refused with a message saying so rather than being taken for relative paths.
pub(crate) fn path_value(value: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::Path::new(value);
    if value.contains("://") {
        return Err(format!(
            "'{value}' looks like an object storage URL; this option needs a local directory \
             (only basebackups_directory and wals_directory may be in object storage)"
        ));
    }
    if !path.is_absolute() {
        return Err(format!(
            "'{value}' is not an absolute path (commands run from various directories, so relative paths are refused)"
        ));
    }
    Ok(path.to_path_buf())
}

/// A local directory or an object storage URL (`s3://`, `azure://`,
/// `https://ACCOUNT.blob.core.windows.net/`, `gs://`).
pub(crate) fn location_value(value: &str) -> Result<pgbak_storage::Location, String> {
    let value = value.trim();
    if !value.contains("://") {
        return path_value(value).map(pgbak_storage::Location::Local);
    }
    pgbak_storage::Location::parse(value).map_err(|e| match e {
        // The error shows the URL without a query string or user info (secrets).
        pgbak_storage::Error::Config { repo, detail } => format!("'{repo}': {detail}"),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn booleans() {
        for t in ["true", "T", "yes", "1", "On", " on "] {
            assert!(parse_bool(t).unwrap(), "{t}");
        }
        for f in ["false", "F", "NO", "0", "off"] {
            assert!(!parse_bool(f).unwrap(), "{f}");
        }
        for bad in ["", "2", "enabled", "y"] {
            let err = parse_bool(bad).unwrap_err();
            assert!(err.message.contains("invalid boolean"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("12345678").unwrap(), 12_345_678);
        assert_eq!(parse_size("2 k").unwrap(), 2000);
        assert_eq!(parse_size("3Ki").unwrap(), 3072);
        assert_eq!(parse_size("52M").unwrap(), 52_000_000);
        assert_eq!(parse_size("13Gi").unwrap(), 13_958_643_712);
        assert_eq!(parse_size("99 Ti").unwrap(), 108_851_651_149_824);
        assert_eq!(parse_size("1T").unwrap(), 1_000_000_000_000);
        for bad in ["12 bunnies", "", "1K", "-1", "1.5M", "M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999999 Ti")
            .unwrap_err()
            .message
            .contains("too large"));
    }

    #[test]
    fn intervals() {
        let hour = 3600;
        assert_eq!(parse_interval("6 hours").unwrap().as_secs(), 6 * hour);
        assert_eq!(parse_interval("1 day").unwrap().as_secs(), 24 * hour);
        assert_eq!(parse_interval("2 weeks").unwrap().as_secs(), 14 * 24 * hour);
        assert_eq!(
            parse_interval("3 months").unwrap().as_secs(),
            93 * 24 * hour
        );
        assert_eq!(parse_interval("1 DAY").unwrap().as_secs(), 24 * hour);
        for bad in [
            "test_string",
            "1 year",
            "days",
            "",
            "1.5 days",
            "-1 day",
            "18446744073709551615 weeks",
            "100000 months",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds_value("30").unwrap(), 30);
        assert_eq!(
            seconds_value(&MAX_SECONDS.to_string()).unwrap(),
            MAX_SECONDS
        );
        for bad in [
            "18446744073709551615",
            "99999999999999999999999",
            "31536001",
            "-1",
            "1s",
        ] {
            assert!(seconds_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_policies() {
        assert_eq!(
            retention_policy_value("redundancy 3").unwrap(),
            "REDUNDANCY 3"
        );
        assert_eq!(
            retention_policy_value(" RECOVERY  WINDOW OF 4 week ").unwrap(),
            "RECOVERY WINDOW OF 4 WEEKS"
        );
        assert_eq!(
            retention_policy_value("recovery window of 1 month").unwrap(),
            "RECOVERY WINDOW OF 1 MONTHS"
        );
        for bad in [
            "redundancy",
            "redundancy 0",
            "redundancy x",
            "recovery window of 2 years",
            "keep everything",
        ] {
            assert!(retention_policy_value(bad).is_err(), "{bad}");
        }
        assert_eq!(redundancy_of("REDUNDANCY 3"), Some(3));
        assert_eq!(redundancy_of("RECOVERY WINDOW OF 4 WEEKS"), None);
    }

    #[test]
    fn slot_names() {
        assert_eq!(slot_name_value("barman_slot").unwrap(), "barman_slot");
        assert_eq!(slot_name_value("Pgbak_2_Slot").unwrap(), "pgbak_2_slot");
        for bad in ["pgbak slot", "pgbak-(slot)", "", "a-b"] {
            assert!(slot_name_value(bad).is_err(), "{bad}");
        }
        assert!(slot_name_value(&"a".repeat(64)).is_err());
        assert!(slot_name_value(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn lists_and_choices() {
        let allowed = ["get-wal", "delta-restore"];
        assert_eq!(
            csv_value(" GET-WAL, ,delta-restore,get-wal", &allowed).unwrap(),
            vec!["get-wal".to_string(), "delta-restore".to_string()]
        );
        assert!(csv_value("get-wal,fast", &allowed).is_err());
        assert_eq!(
            choice_value("Link", "x", &["off", "copy", "link"]).unwrap(),
            "link"
        );
        let err = choice_value("hard", "reuse_backup", &["off", "copy", "link"]).unwrap_err();
        assert_eq!(
            err,
            "unknown reuse_backup 'hard' (expected one of off, copy, link)"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            path_value("/srv/pgbak").unwrap(),
            std::path::PathBuf::from("/srv/pgbak")
        );
        assert!(path_value("srv/pgbak")
            .unwrap_err()
            .contains("not an absolute path"));
        assert!(path_value("s3://bucket/x")
            .unwrap_err()
            .contains("object storage URL"));
    }

    #[test]
    fn numbers() {
        assert_eq!(unsigned_value::<u32>(" 42 ").unwrap(), 42);
        assert!(unsigned_value::<u32>("-1").is_err());
        assert!(unsigned_value::<u32>("+1").is_err());
        assert!(unsigned_value::<u32>("4294967296")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(signed_value("-5").unwrap(), -5);
        assert!(signed_value("five").is_err());
    }

    proptest! {
        #[test]
        fn any_plain_number_is_a_size_in_bytes(n in 0u64..u64::MAX / 2) {
            prop_assert_eq!(parse_size(&n.to_string()).unwrap(), n);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_bool(&s);
            let _ = parse_size(&s);
            let _ = parse_interval(&s);
            let _ = retention_policy_value(&s);
            let _ = slot_name_value(&s);
        }
    }
}
