//! How check results are shown: Barman's console lines, one Nagios plugin status (with the long
//! output lines Nagios keeps), and Barman's JSON shape. Pure functions, so every front end shows
//! the same thing.

use super::ServerChecks;
use std::time::Duration;

/// The console block of one server: `Server NAME:` then one tab-indented line per check.
pub fn console_lines(s: &ServerChecks) -> Vec<String> {
    let title = if s.active {
        format!("Server {}:", s.server)
    } else {
        format!("Server {} (inactive):", s.server)
    };
    let mut lines = vec![title];
    for c in &s.checks {
        let status = if c.ok { "OK" } else { "FAILED" };
        match &c.hint {
            Some(h) => lines.push(format!("\t{}: {status} ({h})", c.name)),
            None => lines.push(format!("\t{}: {status}", c.name)),
        }
    }
    lines
}

/// A Nagios plugin's output: the status line, long-output lines, and the exit code (0 OK,
/// 2 CRITICAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NagiosReport {
    /// The whole output, the status line first.
    pub lines: Vec<String>,
    /// 0 or 2.
    pub exit_code: i32,
}

/// Summarises the checks of `servers` as Barman's Nagios writer does. Inactive servers with
/// failures are listed as ignored.
pub fn nagios_report(servers: &[ServerChecks]) -> NagiosReport {
    let issues: Vec<&ServerChecks> = servers
        .iter()
        .filter(|s| s.failed().next().is_some())
        .collect();
    let critical: Vec<&ServerChecks> = issues.iter().copied().filter(|s| s.active).collect();
    if !critical.is_empty() {
        let summary: Vec<String> = critical
            .iter()
            .map(|s| {
                let names: Vec<&str> = s.failed().map(|c| c.name.as_str()).collect();
                format!("{} FAILED: {}", s.server, names.join(", "))
            })
            .collect();
        let first = if servers.len() == 1 {
            format!(
                "PGBAK CRITICAL - server {} has issues * {}",
                servers[0].server,
                summary.join(" * ")
            )
        } else {
            format!(
                "PGBAK CRITICAL - {} server out of {} have issues * {}",
                critical.len(),
                servers.len(),
                summary.join(" * ")
            )
        };
        let mut lines = vec![first];
        for s in &critical {
            for c in s.failed() {
                match &c.hint {
                    Some(h) => lines.push(format!("{}.{}: FAILED ({h})", s.server, c.name)),
                    None => lines.push(format!("{}.{}: FAILED", s.server, c.name)),
                }
            }
        }
        return NagiosReport {
            lines,
            exit_code: 2,
        };
    }
    let good: Vec<&str> = servers
        .iter()
        .filter(|s| s.failed().next().is_none())
        .map(|s| s.server.as_str())
        .collect();
    let ignoring: Vec<&str> = issues.iter().map(|s| s.server.as_str()).collect();
    let mut line = match good.len() {
        0 => "PGBAK OK - No server configured".to_string(),
        1 => format!("PGBAK OK - Ready to serve the backup for {}", good[0]),
        n => format!(
            "PGBAK OK - Ready to serve the backup for {n} servers * {}",
            good.join(" * ")
        ),
    };
    if !ignoring.is_empty() {
        line.push_str(&format!(" * IGNORING: {}", ignoring.join(" * IGNORING: ")));
    }
    NagiosReport {
        lines: vec![line],
        exit_code: 0,
    }
}

/// Barman's JSON: `{server: {check_name_with_underscores: {"status": "OK", "hint": ""}}}`.
pub fn json_report(servers: &[ServerChecks]) -> serde_json::Value {
    let mut top = serde_json::Map::new();
    for s in servers {
        let mut checks = serde_json::Map::new();
        for c in &s.checks {
            checks.insert(
                c.name.to_lowercase().replace(' ', "_"),
                serde_json::json!({
                    "status": if c.ok { "OK" } else { "FAILED" },
                    "hint": c.hint.clone().unwrap_or_default(),
                }),
            );
        }
        top.insert(s.server.clone(), serde_json::Value::Object(checks));
    }
    serde_json::Value::Object(top)
}

/// A duration as Barman words it: `2 days, 3 hours, 1 minute, 5 seconds`, or `less than one
/// second`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "day"),
        ((secs % 86_400) / 3600, "hour"),
        ((secs % 3600) / 60, "minute"),
        (secs % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "less than one second".into()
    } else {
        words.join(", ")
    }
}

pub(crate) use crate::units::human_size;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;

    fn server(name: &str, active: bool, fails: &[&str]) -> ServerChecks {
        let mut checks = vec![Check::new("PostgreSQL", true, None)];
        for f in fails {
            checks.push(Check::new(f, false, Some(format!("fix {f}"))));
        }
        ServerChecks {
            server: name.into(),
            active,
            checks,
        }
    }

    #[test]
    fn nagios_lines() {
        let ok = nagios_report(&[server("main", true, &[])]);
        assert_eq!(ok.exit_code, 0);
        assert_eq!(ok.lines, ["PGBAK OK - Ready to serve the backup for main"]);

        let bad = nagios_report(&[server("main", true, &["wal_level", "directories"])]);
        assert_eq!(bad.exit_code, 2);
        assert_eq!(
            bad.lines,
            [
                "PGBAK CRITICAL - server main has issues * main FAILED: wal_level, directories",
                "main.wal_level: FAILED (fix wal_level)",
                "main.directories: FAILED (fix directories)",
            ]
        );

        let two = nagios_report(&[server("a", true, &[]), server("b", true, &["x"])]);
        assert_eq!(
            two.lines[0],
            "PGBAK CRITICAL - 1 server out of 2 have issues * b FAILED: x"
        );

        let ignored = nagios_report(&[server("a", true, &[]), server("b", false, &["x"])]);
        assert_eq!(ignored.exit_code, 0);
        assert_eq!(
            ignored.lines,
            ["PGBAK OK - Ready to serve the backup for a * IGNORING: b"]
        );
        assert_eq!(
            nagios_report(&[]).lines,
            ["PGBAK OK - No server configured"]
        );
    }

    #[test]
    fn console_and_json() {
        let s = server("main", false, &["backup maximum age"]);
        assert_eq!(
            console_lines(&s),
            [
                "Server main (inactive):",
                "\tPostgreSQL: OK",
                "\tbackup maximum age: FAILED (fix backup maximum age)",
            ]
        );
        assert!(s.ok(), "an inactive server's failures do not count");
        assert!(s.ready_for_backup(), "backup maximum age is not critical");
        let j = json_report(&[s]);
        assert_eq!(j["main"]["backup_maximum_age"]["status"], "FAILED");
        assert_eq!(j["main"]["postgresql"]["hint"], "");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "less than one second"
        );
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 3 * 3600 + 60 + 5)),
            "2 days, 3 hours, 1 minute, 5 seconds"
        );
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(7), "7 B");
    }
}
