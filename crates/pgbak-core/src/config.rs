//! pgbak's configuration: an INI file that Barman users recognise (`barman.conf` with the global
//! section renamed `[pgbak]`; `[barman]` is still read), one section per PostgreSQL server,
//! server options inherited from the global section, and `%(option)s` interpolation.
//!
//! Invalid values are errors that name the file, line and option; unknown options are warnings.
//! Barman options that are not typed options of pgbak are kept as text in `raw`; each is either
//! implemented by the code that reads it there, refused (an error, when pgbak without it would
//! keep less or less safely than asked, e.g. `encryption = gpg`), or ignored with a warning
//! (`docs/barman-compatibility.md` has the table).
//!
//! An error in the global section stops everything. An error in a server section only disables
//! that server, as Barman does: it is listed in [`Config::disabled`] with the error, every command
//! that names it fails with that error, and every other server works (so that one typo never
//! stops WAL archiving of a healthy server).

mod choices;
mod error;
mod global;
mod ini;
mod keys;
mod load;
mod raw;
mod reader;
mod server;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use choices::{BackupFormat, BackupMethod, CompressionLocation, CreateSlot, Encryption};
pub use error::ConfigError;
pub use global::GlobalConfig;
pub use server::ServerConfig;
pub use values::{parse_bool, parse_interval, parse_size, MAX_SECONDS};

pub(crate) use load::is_global_section;

/// The whole configuration: the global section and every server.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The files read, in order (the main file first).
    pub source: Vec<PathBuf>,
    /// The global section.
    pub global: GlobalConfig,
    /// The servers that can be used, by section name.
    pub servers: BTreeMap<String, ServerConfig>,
    /// The server sections that cannot be used (an invalid option, a feature pgbak does not
    /// have such as passive nodes, a directory shared with another server), by section name.
    pub disabled: BTreeMap<String, DisabledServer>,
    /// Problems that did not stop loading (unknown options, deprecated names), one line each,
    /// naming the file and line.
    pub warnings: Vec<String>,
}

/// A server section that cannot be used, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct DisabledServer {
    /// The section name.
    pub name: String,
    /// `description`, when it can be read.
    pub description: Option<String>,
    /// `active`, when it can be read (else true): an inactive disabled server is shown, not
    /// counted as a failure by `check`.
    pub active: bool,
    /// What is wrong, with the file, line and option.
    pub reason: ConfigError,
}

impl DisabledServer {
    /// The error a command naming this server fails with.
    pub fn error(&self) -> ConfigError {
        ConfigError::new(format!(
            "server '{}' is disabled by its configuration: {}",
            self.name, self.reason
        ))
    }
}

impl Config {
    /// Loads the configuration.
    ///
    /// The main file is `explicit` if given, else the file named by `$PGBAK_CONFIG`, else the
    /// first that exists of `~/.pgbak.conf`, `/etc/pgbak.conf` and `/etc/pgbak/pgbak.conf`. An
    /// explicit or `$PGBAK_CONFIG` file that does not exist is an error (no fallback). Then every
    /// `*.conf` file of `configuration_files_directory` is read in name order; they may only hold
    /// server sections, and later files override keys set earlier.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env = std::env::var_os(load::ENV_VAR);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let system: Vec<&Path> = load::SYSTEM_FILES.iter().map(Path::new).collect();
        load::load_with(explicit, env.as_deref(), home.as_deref(), &system)
    }

    /// Parses the text of one configuration file, read from `origin` (used in messages).
    /// `configuration_files_directory` is recorded but not read.
    pub fn parse_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        load::parse_one(text, origin)
    }

    /// The server called `name`; a disabled server is an error saying why, an unknown name an
    /// error listing the known ones.
    pub fn server(&self, name: &str) -> Result<&ServerConfig, ConfigError> {
        if let Some(disabled) = self.disabled.get(name) {
            return Err(disabled.error());
        }
        self.servers.get(name).ok_or_else(|| {
            let names = self.server_names();
            let known = if names.is_empty() {
                "no server is configured".to_string()
            } else {
                format!("known servers: {}", names.join(", "))
            };
            ConfigError::new(format!("unknown server '{name}' ({known})"))
        })
    }

    /// Every server section's name, usable or disabled, in name order (what `all` means on a
    /// command line that reports on servers).
    pub fn server_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .servers
            .keys()
            .chain(self.disabled.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }
}
