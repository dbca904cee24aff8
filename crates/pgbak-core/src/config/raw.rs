//! The configuration as text: the sections of every file read, merged (later files override
//! earlier keys), and the rules that turn a written value into an effective one: `%(key)s`
//! interpolation, the literal `None`, quotes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::Location;
use super::keys;
use pgbak_wal::redact::redact_option;

/// ConfigParser's limit, which also stops reference loops.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// Most `%(option)s` references one value may expand, nested ones included. Far more than any
/// real configuration needs; without it, references that multiply at every level (30 per value
/// over 10 levels is 30^10 expansions, in a 2 KB file) hang the reader.
const MAX_INTERPOLATIONS: usize = 1000;

/// Longest value interpolation may produce.
const MAX_INTERPOLATED_LEN: usize = 64 * 1024;

/// A value as written, and where.
#[derive(Clone, Debug)]
pub(crate) struct RawEntry {
    pub(crate) value: String,
    pub(crate) at: Location,
}

/// A section merged over all files.
#[derive(Debug)]
pub(crate) struct RawSection {
    /// The name as written in its first header (`pgbak` or `barman` for the global section).
    pub(crate) name: String,
    /// Where the section was first opened.
    pub(crate) at: Location,
    pub(crate) entries: BTreeMap<String, RawEntry>,
}

impl RawSection {
    pub(crate) fn new(name: &str, path: PathBuf, line: usize) -> Self {
        RawSection {
            name: name.to_string(),
            at: Location { path, line },
            entries: BTreeMap::new(),
        }
    }

    /// The entry for `key` or one of its aliases.
    pub(crate) fn get(&self, key: &str) -> Option<&RawEntry> {
        self.entries.get(key).or_else(|| {
            keys::aliases(key)
                .into_iter()
                .find_map(|a| self.entries.get(a))
        })
    }
}

/// What `%(key)s` can see while a value is resolved: the server's name (as Barman offers it),
/// then the section the value belongs to, then the global section, then computed defaults
/// (Barman resolves against the server's settings read so far, defaults included).
pub(crate) struct Scope<'a> {
    pub(crate) server: Option<&'a str>,
    pub(crate) sections: Vec<&'a RawSection>,
    pub(crate) defaults: Vec<(&'static str, String)>,
}

impl Scope<'_> {
    fn lookup(&self, key: &str) -> Option<&str> {
        if key == "name" {
            if let Some(server) = self.server {
                return Some(server);
            }
        }
        self.sections
            .iter()
            .find_map(|s| s.get(key))
            .map(|e| e.value.as_str())
            .or_else(|| {
                self.defaults
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| value.as_str())
            })
    }

    /// The effective value of a written one: interpolated, `None` and empty mean unset, and
    /// matching surrounding quotes are removed (in Barman's order: `None` is checked before
    /// unquoting, emptiness after).
    ///
    /// `key` is the option the value belongs to: an error shows the value only through
    /// [`redact_option`], so a `%` in a password never prints the password.
    pub(crate) fn resolve(&self, key: &str, written: &str) -> Result<Option<String>, String> {
        let mut budget = MAX_INTERPOLATIONS;
        let value = self.interpolate(key, written, 0, &mut budget)?;
        if value.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let value = unquote(&value);
        Ok((!value.is_empty()).then(|| value.to_string()))
    }

    fn interpolate(
        &self,
        key: &str,
        value: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Result<String, String> {
        let shown = || redact_option(key, value);
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(format!(
                "interpolation nested more than {MAX_INTERPOLATION_DEPTH} levels deep in '{}' (do two options refer to each other?)",
                shown()
            ));
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(percent) = rest.find('%') {
            out.push_str(&rest[..percent]);
            rest = &rest[percent + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                out.push('%');
                rest = after;
                continue;
            }
            let reference = rest
                .strip_prefix('(')
                .and_then(|r| r.find(')').map(|close| (&r[..close], &r[close + 1..])))
                .and_then(|(name, after)| after.strip_prefix('s').map(|after| (name, after)));
            let Some((name, after)) = reference else {
                return Err(format!(
                    "bad '%' in '{}': write '%%' for a literal '%', or '%(option)s' to refer to another option",
                    shown()
                ));
            };
            let name = name.to_lowercase();
            let Some(replacement) = self.lookup(&name) else {
                return Err(format!(
                    "'%({name})s' refers to option '{name}', which is not set in this section or the global one (write '%%' for a literal '%')"
                ));
            };
            *budget = budget.checked_sub(1).ok_or_else(|| {
                format!(
                    "more than {MAX_INTERPOLATIONS} '%(option)s' references to expand in '{}'",
                    shown()
                )
            })?;
            out.push_str(&self.interpolate(&name, replacement, depth + 1, budget)?);
            if out.len() > MAX_INTERPOLATED_LEN {
                return Err(format!(
                    "interpolation makes '{}' longer than {MAX_INTERPOLATED_LEN} bytes",
                    shown()
                ));
            }
            rest = after;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Removes one pair of matching quotes around the whole value, as Barman does.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, entries: &[(&str, &str)]) -> RawSection {
        let mut s = RawSection::new(name, PathBuf::from("/t.conf"), 1);
        for (i, (k, v)) in entries.iter().enumerate() {
            s.entries.insert(
                k.to_string(),
                RawEntry {
                    value: v.to_string(),
                    at: Location {
                        path: PathBuf::from("/t.conf"),
                        line: i + 2,
                    },
                },
            );
        }
        s
    }

    #[test]
    fn references_resolve_in_section_then_global() {
        let global = section(
            "pgbak",
            &[("barman_home", "/srv/pgbak"), ("dir", "%(home)s/x")],
        );
        let server = section(
            "main",
            &[
                ("dir", "local"),
                ("path", "%(barman_home)s/%(name)s/%(dir)s"),
            ],
        );
        let scope = Scope {
            server: Some("main"),
            sections: vec![&server, &global],
            defaults: vec![("backup_directory", "/computed".to_string())],
        };
        assert_eq!(
            scope.resolve("x", "%(path)s").unwrap().as_deref(),
            Some("/srv/pgbak/main/local")
        );
        assert_eq!(
            scope
                .resolve("x", "%(backup_directory)s/x")
                .unwrap()
                .as_deref(),
            Some("/computed/x")
        );
        let global_scope = Scope {
            server: None,
            sections: vec![&global],
            defaults: Vec::new(),
        };
        // `home` finds its alias `barman_home`.
        assert_eq!(
            global_scope.resolve("x", "%(dir)s").unwrap().as_deref(),
            Some("/srv/pgbak/x")
        );
        assert!(global_scope
            .resolve("x", "%(name)s")
            .unwrap_err()
            .contains("'%(name)s'"));
    }

    #[test]
    fn percent_escapes_and_errors() {
        let s = section("main", &[("a", "%(b)s"), ("b", "%(a)s")]);
        let scope = Scope {
            server: Some("main"),
            sections: vec![&s],
            defaults: Vec::new(),
        };
        assert_eq!(
            scope.resolve("x", "100%% sure").unwrap().as_deref(),
            Some("100% sure")
        );
        assert!(scope
            .resolve("x", "50% off")
            .unwrap_err()
            .contains("write '%%'"));
        assert!(scope.resolve("x", "%(a").unwrap_err().contains("bad '%'"));
        assert!(scope.resolve("x", "%(a)d").unwrap_err().contains("bad '%'"));
        assert!(scope
            .resolve("x", "%(missing)s")
            .unwrap_err()
            .contains("'missing'"));
        assert!(scope
            .resolve("x", "%(a)s")
            .unwrap_err()
            .contains("refer to each other"));
        assert!(scope
            .resolve("x", "%(A)s")
            .unwrap_err()
            .contains("refer to each other"));
    }

    #[test]
    fn errors_do_not_show_passwords() {
        let s = section("main", &[("secret_ref", "postgresql://u:Zq7%zz@h/db")]);
        let scope = Scope {
            server: Some("main"),
            sections: vec![&s],
            defaults: Vec::new(),
        };
        for (key, value) in [
            ("conninfo", "host=h password=Zq7%x"),
            ("conninfo", "host=h PASSWORD='Zq7 %x'"),
            ("streaming_conninfo", "postgresql://u:Zq7%zz@h/db"),
            ("post_backup_script", "PGPASSWORD=Zq7% psql"),
            ("encryption_passphrase_command", "echo Zq7%"),
            ("conninfo", "%(secret_ref)s"),
        ] {
            let err = scope.resolve(key, value).unwrap_err();
            assert!(!err.contains("Zq7"), "{key} = {value}: {err}");
            assert!(err.contains("'%'"), "{err}");
        }
    }

    #[test]
    fn references_that_multiply_are_bounded() {
        // Ten levels of thirty references each: 30^10 expansions without a bound.
        let refs = |key: &str| format!("%({key})s").repeat(30);
        let mut entries: Vec<(String, String)> = (1..10)
            .map(|i| (format!("k{i}"), refs(&format!("k{}", i + 1))))
            .collect();
        entries.push(("k10".into(), String::new()));
        let borrowed: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let s = section("main", &borrowed);
        let scope = Scope {
            server: Some("main"),
            sections: vec![&s],
            defaults: Vec::new(),
        };
        assert!(scope
            .resolve("x", &refs("k1"))
            .unwrap_err()
            .contains("references to expand"));
        // Few references that grow the value past the limit.
        let big = "x".repeat(40_000);
        let s = section("main", &[("big", &big), ("two", "%(big)s%(big)s")]);
        let scope = Scope {
            server: Some("main"),
            sections: vec![&s],
            defaults: Vec::new(),
        };
        assert_eq!(
            scope.resolve("x", "%(big)s").unwrap().as_deref(),
            Some(&*big)
        );
        assert!(scope
            .resolve("x", "%(two)s")
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn none_empty_and_quotes() {
        let s = section("main", &[("n", "None")]);
        let scope = Scope {
            server: Some("main"),
            sections: vec![&s],
            defaults: Vec::new(),
        };
        assert_eq!(scope.resolve("x", "None").unwrap(), None);
        assert_eq!(scope.resolve("x", "none").unwrap(), None);
        assert_eq!(scope.resolve("x", "%(n)s").unwrap(), None);
        assert_eq!(scope.resolve("x", "").unwrap(), None);
        assert_eq!(scope.resolve("x", "\"\"").unwrap(), None);
        assert_eq!(
            scope.resolve("x", "\" spaced \"").unwrap().as_deref(),
            Some(" spaced ")
        );
        assert_eq!(scope.resolve("x", "'x'").unwrap().as_deref(), Some("x"));
        assert_eq!(scope.resolve("x", "\"x'").unwrap().as_deref(), Some("\"x'"));
        assert_eq!(scope.resolve("x", "\"").unwrap().as_deref(), Some("\""));
        assert_eq!(
            scope
                .resolve("x", "ssh -c \"arcfour\" -p 22")
                .unwrap()
                .as_deref(),
            Some("ssh -c \"arcfour\" -p 22")
        );
    }
}
