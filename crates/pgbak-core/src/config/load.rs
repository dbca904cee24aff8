//! Finding and reading the configuration files: the main file (command line, `$PGBAK_CONFIG`,
//! `~/.pgbak.conf`, `/etc/pgbak.conf`, `/etc/pgbak/pgbak.conf`), then every `*.conf` of
//! `configuration_files_directory` in name order, later files overriding earlier keys.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Location};
use super::raw::{RawEntry, RawSection};
use super::reader::Reader;
use super::{global, ini, server, values, Config, ServerConfig};

/// The environment variable that names the configuration file.
pub(crate) const ENV_VAR: &str = "PGBAK_CONFIG";

/// The per-user file, relative to the home directory.
pub(crate) const USER_FILE: &str = ".pgbak.conf";

/// The system-wide files, in search order.
pub(crate) const SYSTEM_FILES: &[&str] = &["/etc/pgbak.conf", "/etc/pgbak/pgbak.conf"];

/// Loads the configuration: `explicit` if given, else the file named by `env_config` (the value
/// of `$PGBAK_CONFIG`), else the first of `<user_home>/.pgbak.conf` and `system_files` that
/// exists; then the files of `configuration_files_directory`.
pub(crate) fn load_with(
    explicit: Option<&Path>,
    env_config: Option<&OsStr>,
    user_home: Option<&Path>,
    system_files: &[&Path],
) -> Result<Config, ConfigError> {
    let main = find_main(explicit, env_config, user_home, system_files)?;
    let mut loader = Loader::default();
    loader.read(&main, true)?;
    if let Some(dir) = loader.include_dir()? {
        for file in included_files(&dir, &mut loader.warnings)? {
            loader.read(&file, false)?;
        }
    }
    loader.finish(&main)
}

/// Parses one file's text, without reading `configuration_files_directory`.
pub(crate) fn parse_one(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let mut loader = Loader::default();
    loader.sources.push(origin.to_path_buf());
    loader.merge(text, origin, true)?;
    loader.finish(origin)
}

fn find_main(
    explicit: Option<&Path>,
    env_config: Option<&OsStr>,
    user_home: Option<&Path>,
    system_files: &[&Path],
) -> Result<PathBuf, ConfigError> {
    let named = |path: &Path, how: &str| {
        if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(
                ConfigError::new(format!("configuration file ({how}) does not exist"))
                    .at(path, None),
            )
        }
    };
    if let Some(path) = explicit {
        return named(path, "given explicitly");
    }
    if let Some(value) = env_config.filter(|v| !v.is_empty()) {
        return named(Path::new(value), &format!("named by ${ENV_VAR}"));
    }
    let mut looked = Vec::new();
    looked.extend(user_home.map(|home| home.join(USER_FILE)));
    looked.extend(system_files.iter().map(|p| p.to_path_buf()));
    if let Some(found) = looked.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigError::new(format!(
        "no configuration file found (looked for {}); name one with -c/--config or ${ENV_VAR}",
        list.join(", ")
    )))
}

/// The `*.conf` files of `dir`, sorted by name; hidden files are skipped, as a shell glob would.
fn included_files(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warnings.push(format!(
                "{}: configuration_files_directory does not exist; no extra files read",
                dir.display()
            ));
            return Ok(Vec::new());
        }
        Err(e) => {
            return Err(
                ConfigError::new(format!("cannot list configuration_files_directory: {e}"))
                    .at(dir, None),
            )
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigError::new(format!("cannot list configuration_files_directory: {e}"))
                .at(dir, None)
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name.ends_with(".conf") && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// True for the names of the global section.
pub(crate) fn is_global_section(name: &str) -> bool {
    name == "pgbak" || name == "barman"
}

/// Refuses section names that cannot be a server: `all` means every server on the command line,
/// and the name becomes a directory and part of lock file names.
fn check_server_name(name: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("all") {
        return Err(
            "'all' cannot be a server name: it stands for every server on the command line"
                .to_string(),
        );
    }
    if name.starts_with('.') {
        return Err(format!("server name '{name}' cannot start with '.'"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "server name {name:?} cannot contain {bad:?}: it is used as a directory and file name"
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Loader {
    sources: Vec<PathBuf>,
    global: Option<RawSection>,
    servers: BTreeMap<String, RawSection>,
    warnings: Vec<String>,
}

impl Loader {
    fn read(&mut self, path: &Path, main: bool) -> Result<(), ConfigError> {
        let bytes = fs::read(path)
            .map_err(|e| ConfigError::new(format!("cannot read: {e}")).at(path, None))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::new("not valid UTF-8 text").at(path, None))?;
        self.sources.push(path.to_path_buf());
        self.merge(&text, path, main)
    }

    fn merge(&mut self, text: &str, path: &Path, main: bool) -> Result<(), ConfigError> {
        let file = ini::parse(text, path, &mut self.warnings)?;
        let mut global_seen: Option<(String, usize)> = None;
        for section in file.sections {
            let target = if is_global_section(&section.name) {
                if !main {
                    return Err(ConfigError::new(format!(
                        "a [{}] section is only allowed in the main configuration file, not in configuration_files_directory",
                        section.name
                    ))
                    .at(path, Some(section.line)));
                }
                if let Some((other, line)) = &global_seen {
                    return Err(ConfigError::new(format!(
                        "[{}] and [{other}] (line {line}) are the same global section; keep one",
                        section.name
                    ))
                    .at(path, Some(section.line)));
                }
                global_seen = Some((section.name.clone(), section.line));
                if section.name == "barman" {
                    self.warnings.push(format!(
                        "{}:{}: section [barman] is read as [pgbak]; rename it. pgbak's catalogue differs from Barman's: do not share a home directory with Barman",
                        path.display(),
                        section.line
                    ));
                }
                self.global.get_or_insert_with(|| {
                    RawSection::new(&section.name, path.to_path_buf(), section.line)
                })
            } else {
                check_server_name(&section.name).map_err(|m| {
                    ConfigError::new(m)
                        .at(path, Some(section.line))
                        .in_section(&section.name)
                })?;
                self.servers.entry(section.name.clone()).or_insert_with(|| {
                    RawSection::new(&section.name, path.to_path_buf(), section.line)
                })
            };
            for entry in section.entries {
                target.entries.insert(
                    entry.key,
                    RawEntry {
                        value: entry.value,
                        at: Location {
                            path: path.to_path_buf(),
                            line: entry.line,
                        },
                    },
                );
            }
        }
        Ok(())
    }

    fn include_dir(&self) -> Result<Option<PathBuf>, ConfigError> {
        match &self.global {
            Some(section) => {
                Reader::global(section).parse("configuration_files_directory", values::path_value)
            }
            None => Ok(None),
        }
    }

    fn finish(mut self, main: &Path) -> Result<Config, ConfigError> {
        let global = global::build(self.global.as_ref(), main, &mut self.warnings)?;
        let mut servers = BTreeMap::new();
        for (name, section) in &self.servers {
            if is_model(section)? {
                self.warnings.push(format!(
                    "{}: server '{name}': Barman models (model = true) are not supported by pgbak; section ignored",
                    section.at
                ));
                continue;
            }
            let config = server::build(
                section,
                self.global.as_ref(),
                &global.home,
                &mut self.warnings,
            )?;
            servers.insert(name.clone(), config);
        }
        check_directory_conflicts(&servers, &self.servers)?;
        Ok(Config {
            source: self.sources,
            global,
            servers,
            warnings: self.warnings,
        })
    }
}

/// Only the section itself can make it a model: `model` is never inherited.
fn is_model(section: &RawSection) -> Result<bool, ConfigError> {
    Ok(Reader::server(section, None, None)
        .parse("model", values::bool_value)?
        .unwrap_or(false))
}

/// Two directories of the catalogue that are the same folder would mix backups, WAL or servers:
/// refuse that, as Barman does. Paths are compared as written (normalised), since they may not
/// exist yet.
fn check_directory_conflicts(
    servers: &BTreeMap<String, ServerConfig>,
    sections: &BTreeMap<String, RawSection>,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<PathBuf, (&str, &str)> = BTreeMap::new();
    for (name, s) in servers {
        let dirs: [(&str, &PathBuf); 6] = [
            ("backup_directory", &s.backup_directory),
            ("basebackups_directory", &s.basebackups_directory),
            ("wals_directory", &s.wals_directory),
            ("incoming_wals_directory", &s.incoming_wals_directory),
            ("streaming_wals_directory", &s.streaming_wals_directory),
            ("errors_directory", &s.errors_directory),
        ];
        for (option, dir) in dirs {
            let normal: PathBuf = dir.components().collect();
            if let Some((other_server, other_option)) = seen.get(&normal) {
                let whose = if *other_server == name.as_str() {
                    format!("this server's {other_option}")
                } else {
                    format!("the {other_option} of server '{other_server}'")
                };
                let mut err = ConfigError::new(format!(
                    "{} is also {whose}; every directory of the catalogue must be distinct",
                    dir.display()
                ))
                .in_section(name)
                .for_option(option);
                if let Some(section) = sections.get(name) {
                    let at = section
                        .entries
                        .get(option)
                        .map(|e| &e.at)
                        .unwrap_or(&section.at);
                    err = err.at(&at.path, Some(at.line));
                }
                return Err(err);
            }
            seen.insert(normal, (name.as_str(), option));
        }
    }
    Ok(())
}
