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
use super::{global, ini, server, values, Config, DisabledServer, ServerConfig};
use pgbak_storage::Location as Repo;

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

    /// Builds the configuration. Any error in the global section is returned; an error in a
    /// server section disables that server only.
    fn finish(mut self, main: &Path) -> Result<Config, ConfigError> {
        let global = global::build(self.global.as_ref(), main, &mut self.warnings)?;
        let mut servers = BTreeMap::new();
        let mut disabled = BTreeMap::new();
        for (name, section) in &self.servers {
            let built = match is_model(section) {
                Ok(true) => {
                    self.warnings.push(format!(
                        "{}: server '{name}': Barman models (model = true) are not supported by pgbak; section ignored",
                        section.at
                    ));
                    continue;
                }
                Ok(false) => build_server(
                    section,
                    self.global.as_ref(),
                    &global.home,
                    &mut self.warnings,
                ),
                Err(e) => Err(e),
            };
            match built {
                Ok(config) => {
                    servers.insert(name.clone(), config);
                }
                Err(reason) => {
                    disabled.insert(
                        name.clone(),
                        disabled_server(section, self.global.as_ref(), &global.home, reason),
                    );
                }
            }
        }
        for (name, reason) in directory_conflicts(&servers, &self.servers) {
            servers.remove(&name);
            if let Some(section) = self.servers.get(&name) {
                disabled.insert(
                    name,
                    disabled_server(section, self.global.as_ref(), &global.home, reason),
                );
            }
        }
        Ok(Config {
            source: self.sources,
            global,
            servers,
            disabled,
            warnings: self.warnings,
        })
    }
}

/// Builds one server, refusing a name that cannot be a server's (the options pgbak refuses,
/// such as a passive node's `primary_ssh_command`, are refused by [`server::build`]).
fn build_server(
    section: &RawSection,
    global: Option<&RawSection>,
    home: &Path,
    warnings: &mut Vec<String>,
) -> Result<ServerConfig, ConfigError> {
    check_server_name(&section.name).map_err(|m| {
        ConfigError::new(m)
            .at(&section.at.path, Some(section.at.line))
            .in_section(&section.name)
    })?;
    server::build(section, global, home, warnings)
}

/// What can still be read of a server that cannot be used: its description and `active`.
fn disabled_server(
    section: &RawSection,
    global: Option<&RawSection>,
    home: &Path,
    reason: ConfigError,
) -> DisabledServer {
    let reader = Reader::server(section, global, Some(home));
    DisabledServer {
        name: section.name.clone(),
        description: reader.string("description").ok().flatten(),
        active: reader
            .parse("active", values::bool_value)
            .ok()
            .flatten()
            .unwrap_or(true),
        reason,
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
///
/// Returns the servers to disable, with why: a server whose directories clash with each other;
/// and for a clash between two servers, the one(s) that chose the clashing directory (the
/// option, or `backup_directory` for the folders below it, set in its own section), so that a
/// server left at its defaults keeps working when another one points into its catalogue.
fn directory_conflicts(
    servers: &BTreeMap<String, ServerConfig>,
    sections: &BTreeMap<String, RawSection>,
) -> BTreeMap<String, ConfigError> {
    let chose = |name: &str, option: &str| {
        sections.get(name).is_some_and(|s| {
            s.entries.contains_key(option)
                || (option != "backup_directory" && s.entries.contains_key("backup_directory"))
        })
    };
    let error = |name: &str, option: &str, message: String| {
        let mut err = ConfigError::new(message)
            .in_section(name)
            .for_option(option);
        if let Some(section) = sections.get(name) {
            let at = section
                .entries
                .get(option)
                .or_else(|| section.entries.get("backup_directory"))
                .map(|e| &e.at)
                .unwrap_or(&section.at);
            err = err.at(&at.path, Some(at.line));
        }
        err
    };
    let mut seen: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    // Folders compare by their normalised path, object storage prefixes by their URL.
    let local = |p: &PathBuf| Repo::Local(p.components().collect());
    let normal = |l: &Repo| match l {
        Repo::Local(p) => local(p),
        other => other.clone(),
    };
    for (name, s) in servers {
        let dirs: [(&str, Repo); 6] = [
            ("backup_directory", local(&s.backup_directory)),
            ("basebackups_directory", normal(&s.basebackups_directory)),
            ("wals_directory", normal(&s.wals_directory)),
            ("incoming_wals_directory", local(&s.incoming_wals_directory)),
            (
                "streaming_wals_directory",
                local(&s.streaming_wals_directory),
            ),
            ("errors_directory", local(&s.errors_directory)),
        ];
        for (option, dir) in dirs {
            let dir = dir.to_string();
            let Some(&(other, other_option)) = seen.get(&dir) else {
                seen.insert(dir, (name.as_str(), option));
                continue;
            };
            let distinct = "every directory of the catalogue must be distinct";
            if other == name.as_str() {
                out.entry(name.clone()).or_insert_with(|| {
                    error(
                        name,
                        option,
                        format!("{} is also this server's {other_option}; {distinct}", dir),
                    )
                });
                continue;
            }
            let mine = chose(name, option);
            let theirs = chose(other, other_option);
            if mine || !theirs {
                out.entry(name.clone()).or_insert_with(|| {
                    error(
                        name,
                        option,
                        format!(
                            "{} is also the {other_option} of server '{other}'; {distinct}",
                            dir
                        ),
                    )
                });
            }
            if theirs || !mine {
                out.entry(other.to_string()).or_insert_with(|| {
                    error(
                        other,
                        other_option,
                        format!(
                            "{} is also the {option} of server '{name}'; {distinct}",
                            dir
                        ),
                    )
                });
            }
        }
    }
    out
}
