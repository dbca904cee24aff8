//! pgbak's configuration: an INI file that Barman users recognise (`barman.conf` with the global
//! section renamed `[pgbak]`; `[barman]` is still read), one section per PostgreSQL server,
//! server options inherited from the global section, and `%(option)s` interpolation.
//!
//! Invalid values are errors that name the file, line and option; unknown options are warnings.
//! Barman options that pgbak does not implement yet are accepted and kept as text in `raw`.

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

pub use choices::{BackupFormat, BackupMethod, CompressionLocation, CreateSlot};
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
    /// The servers, by section name.
    pub servers: BTreeMap<String, ServerConfig>,
    /// Problems that did not stop loading (unknown options, deprecated names), one line each,
    /// naming the file and line.
    pub warnings: Vec<String>,
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

    /// The server called `name`; an unknown name is an error listing the known ones.
    pub fn server(&self, name: &str) -> Result<&ServerConfig, ConfigError> {
        self.servers.get(name).ok_or_else(|| {
            let known = if self.servers.is_empty() {
                "no server is configured".to_string()
            } else {
                let names: Vec<&str> = self.servers.keys().map(String::as_str).collect();
                format!("known servers: {}", names.join(", "))
            };
            ConfigError::new(format!("unknown server '{name}' ({known})"))
        })
    }
}
