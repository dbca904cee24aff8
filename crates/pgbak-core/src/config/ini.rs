//! The INI syntax of `pgbak.conf`, read the way Python's `ConfigParser` reads Barman's files:
//! `[section]` headers, `key = value` or `key: value`, full-line `#`/`;` comments, continuation
//! lines indented deeper than their key, case-insensitive keys. Values are kept raw here;
//! interpolation and unquoting happen later, when the effective value of an option is known.

use std::path::Path;

use super::error::{ConfigError, Location};

/// One parsed file.
#[derive(Debug)]
pub(crate) struct IniFile {
    pub(crate) sections: Vec<IniSection>,
}

/// One `[section]` of a file.
#[derive(Debug)]
pub(crate) struct IniSection {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) entries: Vec<IniEntry>,
}

/// One `key = value` line (with its continuation lines joined by `\n`).
#[derive(Debug)]
pub(crate) struct IniEntry {
    /// Lower-cased, as `ConfigParser` does.
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) line: usize,
}

/// A key whose value may still grow by continuation lines.
struct OpenEntry {
    indent: usize,
    lines: Vec<String>,
    blank_lines: usize,
}

/// Parses `text`, read from `path`. Repeated keys within one section are warnings (the last one
/// wins, as in `ConfigParser`); syntax errors and a section repeated in one file are errors.
pub(crate) fn parse(
    text: &str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<IniFile, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: Vec<IniSection> = Vec::new();
    let mut open: Option<OpenEntry> = None;
    let syntax = |line: usize, message: String| ConfigError::new(message).at(path, Some(line));

    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let stripped = raw_line.trim();
        let indent = raw_line.len() - raw_line.trim_start().len();

        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        if stripped.is_empty() {
            if let Some(entry) = open.as_mut() {
                entry.blank_lines += 1;
            }
            continue;
        }
        if let Some(entry) = open.as_mut() {
            if indent > entry.indent {
                for _ in 0..entry.blank_lines {
                    entry.lines.push(String::new());
                }
                entry.blank_lines = 0;
                entry.lines.push(stripped.to_string());
                continue;
            }
        }
        close_entry(&mut sections, open.take());

        if let Some(header) = stripped.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                return Err(syntax(
                    line_no,
                    format!("section header {stripped:?} must end with ']'"),
                ));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(syntax(line_no, "empty section name '[]'".to_string()));
            }
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(syntax(
                    line_no,
                    format!(
                        "section [{name}] appears twice in this file (first at line {})",
                        first.line
                    ),
                ));
            }
            sections.push(IniSection {
                name: name.to_string(),
                line: line_no,
                entries: Vec::new(),
            });
            continue;
        }

        let Some(section) = sections.last_mut() else {
            return Err(syntax(
                line_no,
                format!("{stripped:?} is outside any section: the file must start with a [section] header"),
            ));
        };
        let Some(delimiter) = stripped.find(['=', ':']) else {
            return Err(syntax(
                line_no,
                format!("expected 'option = value', a [section] header or a comment, found {stripped:?}"),
            ));
        };
        let key = stripped[..delimiter].trim().to_lowercase();
        if key.is_empty() {
            return Err(syntax(
                line_no,
                format!("missing option name in {stripped:?}"),
            ));
        }
        let value = stripped[delimiter + 1..].trim().to_string();
        if let Some(previous) = section.entries.iter().position(|e| e.key == key) {
            let earlier = section.entries.remove(previous);
            let at = Location {
                path: path.to_path_buf(),
                line: line_no,
            };
            warnings.push(format!(
                "{at}: option '{key}' is set twice in [{}] (also at line {}); the last one wins",
                section.name, earlier.line
            ));
        }
        section.entries.push(IniEntry {
            key,
            value: String::new(),
            line: line_no,
        });
        open = Some(OpenEntry {
            indent,
            lines: vec![value],
            blank_lines: 0,
        });
    }
    close_entry(&mut sections, open);
    Ok(IniFile { sections })
}

/// Stores the value of the entry being read into the last entry of the last section.
fn close_entry(sections: &mut [IniSection], open: Option<OpenEntry>) {
    let Some(open) = open else { return };
    if let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
        entry.value = open.lines.join("\n").trim().to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> (IniFile, Vec<String>) {
        let mut warnings = Vec::new();
        let file = parse(text, Path::new("/t.conf"), &mut warnings).unwrap();
        (file, warnings)
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, Path::new("/t.conf"), &mut Vec::new()).unwrap_err()
    }

    #[test]
    fn sections_keys_delimiters_and_comments() {
        let (file, warnings) = parse_ok(
            "# leading comment\n[pgbak]\nHome = /var/lib/pgbak\n; another\nlog_level: DEBUG\n\n[ main ]\nconninfo=host=pg1 user=x\n",
        );
        assert!(warnings.is_empty());
        assert_eq!(file.sections.len(), 2);
        let global = &file.sections[0];
        assert_eq!((global.name.as_str(), global.line), ("pgbak", 2));
        assert_eq!(global.entries[0].key, "home");
        assert_eq!(global.entries[0].value, "/var/lib/pgbak");
        assert_eq!(global.entries[0].line, 3);
        assert_eq!(global.entries[1].key, "log_level");
        assert_eq!(global.entries[1].value, "DEBUG");
        let main = &file.sections[1];
        assert_eq!(main.name, "main");
        // The first delimiter splits; later '=' belong to the value.
        assert_eq!(main.entries[0].value, "host=pg1 user=x");
    }

    #[test]
    fn continuation_lines_join_with_newlines() {
        let (file, _) = parse_ok(
            "[s]\ndescription = first\n  second\n\n  # not part of it\n  third\nnext = 1\n",
        );
        let entries = &file.sections[0].entries;
        assert_eq!(entries[0].value, "first\nsecond\n\nthird");
        assert_eq!(entries[1].key, "next");
        assert_eq!(entries[1].line, 7);
    }

    #[test]
    fn uniformly_indented_file_reads_like_an_unindented_one() {
        let (file, _) = parse_ok("    [s]\n    a = 1\n    b = 2\n");
        let entries = &file.sections[0].entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].value, "1");
    }

    #[test]
    fn inline_comment_markers_are_part_of_the_value() {
        let (file, _) = parse_ok("[s]\na = gzip # fast\n");
        assert_eq!(file.sections[0].entries[0].value, "gzip # fast");
    }

    #[test]
    fn repeated_key_warns_and_last_wins() {
        let (file, warnings) = parse_ok("[s]\na = 1\nb = 2\nA = 3\n");
        let entries = &file.sections[0].entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].key, "a");
        assert_eq!(entries[1].value, "3");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("/t.conf:4: option 'a' is set twice in [s] (also at line 2)")
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases: [(&str, usize, &str); 6] = [
            ("a = 1\n", 1, "outside any section"),
            ("[s]\njust words\n", 2, "expected 'option = value'"),
            ("[s]\n= value\n", 2, "missing option name"),
            ("[s\n", 1, "must end with ']'"),
            ("\n[]\n", 2, "empty section name"),
            (
                "[s]\na=1\n[t]\n[s]\n",
                4,
                "appears twice in this file (first at line 1)",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse_err(text);
            assert_eq!(err.path.as_deref(), Some(Path::new("/t.conf")), "{text:?}");
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let (file, _) = parse_ok("\u{feff}[s]\na = 1\n");
        assert_eq!(file.sections[0].name, "s");
    }
}
