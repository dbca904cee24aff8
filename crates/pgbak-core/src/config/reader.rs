//! Reads the effective options of one section: its own value, else the global one when the
//! option is inherited, resolved and parsed, with errors that point at the line the value came
//! from.

use super::error::ConfigError;
use super::keys;
use super::raw::{RawEntry, RawSection, Scope};

/// An effective value and where it was written.
pub(crate) struct Value<'a> {
    pub(crate) text: String,
    pub(crate) entry: &'a RawEntry,
    pub(crate) inherited: bool,
}

/// Reads the options of `section`, inheriting from `global` when given.
pub(crate) struct Reader<'a> {
    section: &'a RawSection,
    global: Option<&'a RawSection>,
    scope: Scope<'a>,
}

impl<'a> Reader<'a> {
    /// A reader for a server section (inherits from `global`). `home` is the global `home`, so
    /// that `%(backup_directory)s` works when only its default applies.
    pub(crate) fn server(
        section: &'a RawSection,
        global: Option<&'a RawSection>,
        home: Option<&std::path::Path>,
    ) -> Self {
        let mut sections = vec![section];
        sections.extend(global);
        let defaults = home
            .map(|home| {
                let dir = home.join(&section.name).display().to_string();
                vec![("backup_directory", dir)]
            })
            .unwrap_or_default();
        Reader {
            section,
            global,
            scope: Scope {
                server: Some(section.name.as_str()),
                sections,
                defaults,
            },
        }
    }

    /// A reader for the global section itself.
    pub(crate) fn global(section: &'a RawSection) -> Self {
        Reader {
            section,
            global: None,
            scope: Scope {
                server: None,
                sections: vec![section],
                defaults: Vec::new(),
            },
        }
    }

    /// The section's name, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.section.name
    }

    /// The written entry that decides `key`, and whether it came from the global section.
    /// A server's own entry wins even when it is empty or `None`: that is how a server opts out
    /// of an inherited value.
    fn entry(&self, key: &str) -> Option<(&'a RawEntry, bool)> {
        if let Some(entry) = self.section.get(key) {
            return Some((entry, false));
        }
        let global = self.global?;
        if keys::is_inheritable(key) {
            return global.entries.get(key).map(|e| (e, true));
        }
        None
    }

    /// The effective text of `key`, or `None` when it is unset.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Value<'a>>, ConfigError> {
        let Some((entry, inherited)) = self.entry(key) else {
            return Ok(None);
        };
        match self.scope.resolve(key, &entry.value) {
            Ok(Some(text)) => Ok(Some(Value {
                text,
                entry,
                inherited,
            })),
            Ok(None) => Ok(None),
            Err(message) => Err(self.located(key, entry, inherited, message)),
        }
    }

    /// The effective text of `key`.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.get(key)?.map(|v| v.text))
    }

    /// `key` parsed by `parse`, or `None` when unset.
    pub(crate) fn parse<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(value) => match parse(&value.text) {
                Ok(parsed) => Ok(Some(parsed)),
                Err(message) => Err(self.error(key, Some(&value), message)),
            },
        }
    }

    /// An error about `key`, pointing at its value when there is one, else at the section.
    pub(crate) fn error(
        &self,
        key: &str,
        value: Option<&Value<'_>>,
        message: impl Into<String>,
    ) -> ConfigError {
        match value {
            Some(v) => self.located(key, v.entry, v.inherited, message.into()),
            None => ConfigError::new(message)
                .at(&self.section.at.path, Some(self.section.at.line))
                .in_section(&self.section.name)
                .for_option(key),
        }
    }

    /// A warning about `key`, in the same shape as [`Reader::error`].
    pub(crate) fn warning(&self, key: &str, value: Option<&Value<'_>>, message: &str) -> String {
        self.error(key, value, message).to_string()
    }

    fn located(
        &self,
        key: &str,
        entry: &RawEntry,
        inherited: bool,
        message: String,
    ) -> ConfigError {
        let message = match (inherited, self.global) {
            (true, Some(global)) => format!("{message} (value inherited from [{}])", global.name),
            _ => message,
        };
        ConfigError::new(message)
            .at(&entry.at.path, Some(entry.at.line))
            .in_section(&self.section.name)
            .for_option(key)
    }

    /// Every key that has an entry for this section, own or inherited, in name order.
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        let mut keys: Vec<&'a str> = self.section.entries.keys().map(String::as_str).collect();
        if let Some(global) = self.global {
            for key in global.entries.keys() {
                if keys::is_inheritable(key) && !self.section.entries.contains_key(key) {
                    keys.push(key);
                }
            }
        }
        keys.sort_unstable();
        keys
    }
}
