//! The one error type of configuration loading, with enough context (file, line, section, option)
//! for an operator to find and fix the offending line.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, and where the problem is.
///
/// Displayed as one line, e.g.
/// `/etc/pgbak.conf:12: option 'compression' of server 'main': unknown compression 'zzz' (...)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file the problem is in, when it is about a file.
    pub path: Option<PathBuf>,
    /// The 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// The section (server name, or `pgbak` for the global section) the problem is in.
    pub section: Option<String>,
    /// The option the problem is about.
    pub option: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error with only a message; the loader adds where it happened.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            path: None,
            line: None,
            section: None,
            option: None,
            message: message.into(),
        }
    }

    /// Sets the file and, when known, the line.
    pub fn at(mut self, path: &Path, line: Option<usize>) -> Self {
        self.path = Some(path.to_path_buf());
        self.line = line;
        self
    }

    /// Sets the section the problem is in.
    pub fn in_section(mut self, section: &str) -> Self {
        self.section = Some(section.to_string());
        self
    }

    /// Sets the option the problem is about.
    pub fn for_option(mut self, option: &str) -> Self {
        self.option = Some(option.to_string());
        self
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(path) = &self.path {
            out.push_str(&path.display().to_string());
            if let Some(line) = self.line {
                out.push_str(&format!(":{line}"));
            }
            out.push_str(": ");
        }
        let global = matches!(self.section.as_deref(), Some(s) if super::is_global_section(s));
        match (&self.option, &self.section) {
            (Some(option), Some(section)) if global => {
                out.push_str(&format!("option '{option}' in [{section}]: "))
            }
            (Some(option), Some(section)) => {
                out.push_str(&format!("option '{option}' of server '{section}': "))
            }
            (Some(option), None) => out.push_str(&format!("option '{option}': ")),
            (None, Some(section)) if global => out.push_str(&format!("section [{section}]: ")),
            (None, Some(section)) => out.push_str(&format!("server '{section}': ")),
            (None, None) => {}
        }
        // No message quotes a password; this keeps it so if one ever did.
        out.push_str(&pgbak_wal::redact::redact(&self.message));
        out
    }
}

/// Where a warning or error points: a file and a line in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_shape() {
        let full = ConfigError::new("unknown compression 'zzz'")
            .at(Path::new("/etc/pgbak.conf"), Some(12))
            .in_section("main")
            .for_option("compression");
        assert_eq!(
            full.to_string(),
            "/etc/pgbak.conf:12: option 'compression' of server 'main': unknown compression 'zzz'"
        );
        let global = ConfigError::new("missing")
            .at(Path::new("/etc/pgbak.conf"), None)
            .in_section("pgbak")
            .for_option("home");
        assert_eq!(
            global.to_string(),
            "/etc/pgbak.conf: option 'home' in [pgbak]: missing"
        );
        let server = ConfigError::new("bad").in_section("main");
        assert_eq!(server.to_string(), "server 'main': bad");
        assert_eq!(ConfigError::new("plain").to_string(), "plain");
        assert_eq!(
            ConfigError::new("x").for_option("o").to_string(),
            "option 'o': x"
        );
    }
}
