//! The machine at the far end of a copy: this one (`local-rsync`, or the backup host itself) or
//! one reached over an [`SshMaster`]. Programs run and paths are named the same way on both, so
//! the controller does not care which it is.

use super::ssh::SshMaster;
use crate::{Error, Result};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

/// Where files are listed and where one side of an rsync lives.
#[derive(Clone, Debug)]
pub enum Host {
    /// This machine.
    Local,
    /// Another machine, through a multiplexed SSH connection.
    Remote(Arc<SshMaster>),
}

impl Host {
    /// "this host" or the SSH destination, for messages.
    pub fn describe(&self) -> String {
        match self {
            Host::Local => "this host".into(),
            Host::Remote(m) => m.destination().to_string(),
        }
    }

    /// Runs `program args...` there and collects its output.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        match self {
            Host::Local => Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| Error::Config(format!("cannot run {program} on this host: {e}"))),
            Host::Remote(m) => m.output(program, args),
        }
    }

    /// Runs a POSIX shell script there.
    pub fn shell(&self, script: &str) -> Result<Output> {
        self.output("sh", &["-c", script])
    }

    /// How rsync names directory `path` there (with a trailing `/`, so its contents are meant).
    pub fn rsync_dir(&self, path: &str) -> String {
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        let sep = if path == "/" { "" } else { "/" };
        match self {
            Host::Local => format!("{path}{sep}"),
            Host::Remote(m) => format!("{}:{path}{sep}", rsync_host(m.destination())),
        }
    }

    /// rsync's `-e` command when this host is remote.
    pub fn rsh(&self) -> Option<String> {
        match self {
            Host::Local => None,
            Host::Remote(m) => Some(m.rsync_rsh()),
        }
    }

    /// Makes sure the connection works, reconnecting when it was lost.
    pub fn ensure_alive(&self) -> Result<()> {
        match self {
            Host::Local => Ok(()),
            Host::Remote(m) => m.ensure_alive().map(|_| ()),
        }
    }

    /// Whether this is a remote host.
    pub fn is_remote(&self) -> bool {
        matches!(self, Host::Remote(_))
    }
}

/// rsync's `host:` part for an ssh destination: `ssh://user@host:port` has no rsync form, so
/// it is reduced to `user@host` (the master already carries the port).
fn rsync_host(destination: &str) -> String {
    let d = destination.strip_prefix("ssh://").unwrap_or(destination);
    match d.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => d.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_names() {
        assert_eq!(
            Host::Local.rsync_dir("/var/lib/pg/data"),
            "/var/lib/pg/data/"
        );
        assert_eq!(
            Host::Local.rsync_dir("/var/lib/pg/data/"),
            "/var/lib/pg/data/"
        );
        assert_eq!(Host::Local.rsync_dir("/"), "/");
        assert_eq!(rsync_host("postgres@pg1"), "postgres@pg1");
        assert_eq!(rsync_host("ssh://postgres@pg1:2222"), "postgres@pg1");
        assert_eq!(rsync_host("ssh://pg1"), "pg1");
    }

    #[test]
    fn local_commands_run() {
        let out = Host::Local.shell("echo $((6 * 7))").unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
        assert!(Host::Local.output("/nonexistent/program", &[]).is_err());
    }
}
