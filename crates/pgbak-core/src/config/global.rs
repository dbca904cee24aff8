//! The global section, `[pgbak]` (or Barman's `[barman]`): where pgbak keeps its catalogue, its
//! log and its locks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::keys::{self, Kind};
use super::raw::RawSection;
use super::reader::Reader;
use super::values;

/// Log levels accepted for `log_level` (Python's names, which Barman files use, and `TRACE`).
const LOG_LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL",
];

/// Settings of the global section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalConfig {
    /// The directory that holds one folder per server (key `home`, or Barman's `barman_home`).
    pub home: PathBuf,
    /// `log_level`, upper-cased (default `INFO`).
    pub log_level: String,
    /// `log_file`, when set.
    pub log_file: Option<PathBuf>,
    /// Where lock files live (key `lock_directory`, or Barman's `barman_lock_directory`;
    /// default: `home`).
    pub lock_directory: PathBuf,
    /// `configuration_files_directory`: every `*.conf` in it is read after the main file.
    pub configuration_files_directory: Option<PathBuf>,
    /// Every global option that was set, as effective text (after interpolation and
    /// unquoting), including the Barman options pgbak does not use; for `show-config`-like output.
    pub raw: BTreeMap<String, String>,
}

/// Reads the global section; `main` is the file it must come from, named when it is missing.
pub(crate) fn build(
    section: Option<&RawSection>,
    main: &Path,
    warnings: &mut Vec<String>,
) -> Result<GlobalConfig, ConfigError> {
    let Some(section) = section else {
        return Err(ConfigError::new(
            "no [pgbak] section: it must at least set 'home', the directory pgbak keeps its backups in",
        )
        .at(main, None));
    };
    let reader = Reader::global(section);
    for (name, alias) in keys::ALIASES {
        if let (Some(a), Some(b)) = (section.entries.get(*name), section.entries.get(*alias)) {
            return Err(ConfigError::new(format!(
                "both '{name}' (line {}) and its Barman name '{alias}' (line {}) are set; keep one",
                a.at.line, b.at.line
            ))
            .at(&b.at.path, Some(b.at.line))
            .in_section(&section.name)
            .for_option(alias));
        }
    }
    warn_about_keys(section, warnings);

    let home = reader.parse("home", values::path_value)?.ok_or_else(|| {
        reader.error(
            "home",
            None,
            "required option is missing (Barman's name 'barman_home' is accepted too)",
        )
    })?;
    let log_level = match reader.get("log_level")? {
        None => "INFO".to_string(),
        Some(value) => {
            let upper = value.text.trim().to_ascii_uppercase();
            if !LOG_LEVELS.contains(&upper.as_str()) {
                return Err(reader.error(
                    "log_level",
                    Some(&value),
                    format!(
                        "unknown log level '{}' (expected one of {})",
                        value.text,
                        LOG_LEVELS.join(", ")
                    ),
                ));
            }
            upper
        }
    };
    let log_file = reader.parse("log_file", values::path_value)?;
    let lock_directory = reader
        .parse("lock_directory", values::path_value)?
        .unwrap_or_else(|| home.clone());
    let configuration_files_directory =
        reader.parse("configuration_files_directory", values::path_value)?;

    let mut raw = BTreeMap::new();
    for key in section.entries.keys() {
        if matches!(keys::kind(key), Kind::Global | Kind::BarmanGlobal) {
            if let Some(text) = reader.string(key)? {
                raw.insert(key.clone(), text);
            }
        }
    }
    Ok(GlobalConfig {
        home,
        log_level,
        log_file,
        lock_directory,
        configuration_files_directory,
        raw,
    })
}

/// Unknown options and per-server options in the global section are warnings: they have no
/// effect there, but the file may have been written for another version. So is a Barman option
/// that pgbak ignores, said once here rather than for every server that inherits it (one that
/// pgbak refuses is an error of each such server).
fn warn_about_keys(section: &RawSection, warnings: &mut Vec<String>) {
    let reader = Reader::global(section);
    for (key, entry) in &section.entries {
        let kind = keys::kind(key);
        let message = match kind {
            Kind::Global => continue,
            Kind::BarmanGlobal | Kind::BarmanServer
                if kind == Kind::BarmanGlobal || keys::is_inheritable(key) =>
            {
                let value = reader.string(key).ok().flatten();
                match (keys::support(key), value) {
                    (Some(support @ keys::Support::Ignored { why, .. }), Some(value))
                        if !support.is_harmless(&value) =>
                    {
                        format!("not implemented by pgbak, ignored: {why}")
                    }
                    _ => continue,
                }
            }
            Kind::Server if keys::is_inheritable(key) => continue,
            Kind::Server | Kind::BarmanServer | Kind::BarmanGlobal => {
                "only a server section can set this option; ignored here".to_string()
            }
            Kind::Unknown => "unknown option; ignored".to_string(),
        };
        warnings.push(
            ConfigError::new(message)
                .at(&entry.at.path, Some(entry.at.line))
                .in_section(&section.name)
                .for_option(key)
                .to_string(),
        );
    }
}
