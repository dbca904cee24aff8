//! SSH to the database host (or to a recovery target): the operator's `ssh_command` parsed into
//! program, options and destination, and one multiplexed master connection that every remote
//! command and every rsync rides on, so a copy of thousands of buckets authenticates once.
//!
//! The master is started with the operator's own program and options (`-i`, `-p`, `-F`, any
//! `-o`), which `openssh`'s builder cannot all express; remote commands and liveness checks then
//! go through [`openssh::Session`] resumed on that master's control socket. rsync gets an `-e`
//! command that names the control socket and an unusable port, so when the master is gone it
//! fails at once (and the copy controller reconnects) instead of silently opening a connection
//! of its own with different options.

use super::shell;
use crate::{Error, Result};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// ssh options that take an argument (OpenSSH 9).
const OPTIONS_WITH_ARGUMENT: &str = "BbcDEeFIiJLlmOoPpQRSWw";

/// How long an idle master outlives its last use, so one left behind by a killed pgbak goes
/// away by itself; a live copy keeps it busy, and a copy resumed later reconnects.
const CONTROL_PERSIST_SECS: u64 = 300;

/// An operator's `ssh_command` (Barman's option), e.g. `ssh -p 2222 postgres@pg1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshCommand {
    /// The ssh program (`ssh`, `/usr/bin/ssh`).
    pub program: String,
    /// Every option between the program and the destination, as written.
    pub options: Vec<String>,
    /// `[user@]host` (or `ssh://...`).
    pub destination: String,
}

impl SshCommand {
    /// Parses `text` like a shell would. It must be an ssh program, options, and the
    /// destination last, without a remote command.
    pub fn parse(text: &str) -> Result<SshCommand> {
        let bad = |why: String| Error::Config(format!("ssh command {text:?}: {why}"));
        let words = shell::split_words(text).map_err(bad)?;
        let mut words = words.into_iter();
        let program = words
            .next()
            .ok_or_else(|| bad("is empty (expected e.g. 'ssh postgres@pg1')".into()))?;
        let mut options = Vec::new();
        let mut destination = None;
        while let Some(w) = words.next() {
            if w.len() > 1 && w.starts_with('-') && w != "--" {
                let flags: Vec<char> = w[1..].chars().collect();
                let mut takes_next = false;
                for (i, f) in flags.iter().enumerate() {
                    if OPTIONS_WITH_ARGUMENT.contains(*f) {
                        // `-p2222` carries its argument; `-p 2222` takes the next word.
                        takes_next = i + 1 == flags.len();
                        break;
                    }
                }
                options.push(w);
                if takes_next {
                    let arg = words.next().ok_or_else(|| {
                        bad(format!(
                            "option {} needs a value",
                            options[options.len() - 1]
                        ))
                    })?;
                    options.push(arg);
                }
            } else if w == "--" {
                continue;
            } else {
                destination = Some(w);
                break;
            }
        }
        let destination = destination
            .ok_or_else(|| bad("names no host (expected e.g. 'ssh postgres@pg1')".into()))?;
        let rest: Vec<String> = words.collect();
        if !rest.is_empty() {
            return Err(bad(format!(
                "must end with the host, but a remote command follows it: {}",
                rest.join(" ")
            )));
        }
        Ok(SshCommand {
            program,
            options,
            destination,
        })
    }

    /// The command as one line, quoted for a shell.
    pub fn to_line(&self) -> String {
        let mut w = vec![self.program.clone()];
        w.extend(self.options.iter().cloned());
        w.push(self.destination.clone());
        shell::join(&w)
    }
}

/// A multiplexed SSH master connection, closed on drop.
pub struct SshMaster {
    command: SshCommand,
    connect_timeout: Duration,
    /// Holds the control socket and the master's log; removed on drop.
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    /// Serialises reconnections: several workers may notice a dead master at once.
    reconnect: Mutex<u64>,
}

impl std::fmt::Debug for SshMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshMaster")
            .field("destination", &self.command.destination)
            .field("control_socket", &self.control_path())
            .finish_non_exhaustive()
    }
}

/// The text of an openssh error with its causes.
fn describe(e: &openssh::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl SshMaster {
    /// Opens the master connection (`ssh -M`), waiting at most `connect_timeout` to connect.
    pub fn connect(command: SshCommand, connect_timeout: Duration) -> Result<SshMaster> {
        // A Unix socket path holds at most 107 bytes: a long $TMPDIR falls back to /tmp.
        let mut parent = std::env::temp_dir();
        if parent.as_os_str().len() > 60 {
            parent = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix(".pgbak-ssh-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io("create", &parent, e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::stream("start", "async runtime", e))?;
        let master = SshMaster {
            command,
            connect_timeout,
            dir,
            runtime,
            reconnect: Mutex::new(0),
        };
        master.launch()?;
        Ok(master)
    }

    /// The `[user@]host` this master is connected to.
    pub fn destination(&self) -> &str {
        &self.command.destination
    }

    /// The parsed `ssh_command`.
    pub fn command(&self) -> &SshCommand {
        &self.command
    }

    /// The control socket.
    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("master")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Ssh {
            destination: self.command.destination.clone(),
            message: message.into(),
        }
    }

    fn launch(&self) -> Result<()> {
        let ctl = self.control_path();
        // A socket left by a master that died would make `ssh -M` refuse to start.
        let _ = std::fs::remove_file(&ctl);
        let _ = std::fs::remove_file(self.log_path());
        let secs = self.connect_timeout.as_secs().max(1);
        let status = Command::new(&self.command.program)
            .arg("-o")
            .arg(format!("ControlPersist={CONTROL_PERSIST_SECS}"))
            .args(["-o", "BatchMode=yes", "-o"])
            .arg(format!("ConnectTimeout={secs}"))
            .args([
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
            ])
            .args(&self.command.options)
            .args(["-M", "-f", "-N", "-E"])
            .arg(self.log_path())
            .arg("-S")
            .arg(&ctl)
            .arg(&self.command.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| {
                self.error(format!(
                    "cannot run {:?} (from ssh_command): {e}",
                    self.command.program
                ))
            })?;
        if !status.success() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let said: Vec<&str> = log
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
                .collect();
            let said = if said.is_empty() {
                format!("ssh exited with {status}")
            } else {
                said.join("; ")
            };
            return Err(self.error(format!(
                "cannot connect with `{}`: {said}",
                self.command.to_line()
            )));
        }
        Ok(())
    }

    fn session(&self) -> openssh::Session {
        openssh::Session::resume(
            self.control_path().into_boxed_path(),
            Some(self.log_path().into_boxed_path()),
        )
    }

    /// Whether the master still answers.
    pub fn check(&self) -> Result<()> {
        let session = self.session();
        self.runtime
            .block_on(session.check())
            .map_err(|e| self.error(format!("the connection was lost: {}", describe(&e))))
    }

    /// Checks the master and starts a new one if it died. Returns whether it reconnected.
    pub fn ensure_alive(&self) -> Result<bool> {
        let mut reconnects = self
            .reconnect
            .lock()
            .map_err(|_| self.error("a worker panicked while reconnecting"))?;
        if self.check().is_ok() {
            return Ok(false);
        }
        self.launch()?;
        *reconnects += 1;
        Ok(true)
    }

    /// How many times the master was re-established.
    pub fn reconnects(&self) -> u64 {
        self.reconnect.lock().map(|n| *n).unwrap_or(0)
    }

    /// Runs `program args...` on the remote host and collects its output. Each argument reaches
    /// the program unchanged (they are quoted for the remote shell).
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        let session = self.session();
        self.runtime
            .block_on(async {
                let mut cmd = session.command(program);
                cmd.args(args);
                cmd.output().await
            })
            .map_err(|e| self.error(format!("cannot run {program}: {}", describe(&e))))
    }

    /// Runs a POSIX shell script on the remote host and collects its output.
    pub fn shell(&self, script: &str) -> Result<Output> {
        self.output("sh", &["-c", script])
    }

    /// The `-e` command for rsync: the same program, through the control socket only.
    ///
    /// `-p 9` (discard) makes ssh fail at once instead of opening a connection of its own,
    /// without the operator's options, if the master is gone.
    pub fn rsync_rsh(&self) -> String {
        shell::join(&[
            self.command.program.clone(),
            "-S".into(),
            self.control_path().display().to_string(),
            "-o".into(),
            "ControlMaster=no".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-p".into(),
            "9".into(),
        ])
    }

    /// Closes the master.
    pub fn close(self) {
        // Dropping does the work; the method says so at the call site.
    }
}

impl Drop for SshMaster {
    fn drop(&mut self) {
        // Best effort: a master that is already gone has nothing to close, and one that cannot
        // be reached exits by itself after CONTROL_PERSIST_SECS.
        let _ = Command::new(&self.command.program)
            .arg("-S")
            .arg(self.control_path())
            .args(["-O", "exit"])
            .arg(&self.command.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_commands() {
        let c = SshCommand::parse(
            "ssh -i /k/id -p 2222 -o StrictHostKeyChecking=no -4 -qp22 postgres@127.0.0.1",
        )
        .unwrap();
        assert_eq!(c.program, "ssh");
        assert_eq!(
            c.options,
            vec![
                "-i",
                "/k/id",
                "-p",
                "2222",
                "-o",
                "StrictHostKeyChecking=no",
                "-4",
                "-qp22"
            ]
        );
        assert_eq!(c.destination, "postgres@127.0.0.1");
        assert_eq!(
            SshCommand::parse(&c.to_line()).unwrap(),
            c,
            "to_line reads back"
        );

        let c = SshCommand::parse("/usr/bin/ssh pg1").unwrap();
        assert_eq!((c.program.as_str(), c.options.len()), ("/usr/bin/ssh", 0));

        for bad in ["", "ssh", "ssh -p", "ssh -p 22", "ssh pg1 ls /", "ssh 'pg1"] {
            assert!(SshCommand::parse(bad).is_err(), "{bad:?}");
        }
        let e = SshCommand::parse("ssh pg1 uptime").unwrap_err().to_string();
        assert!(e.contains("remote command"), "{e}");
    }

    #[test]
    fn a_wrong_host_is_a_clear_error() {
        // Port 9 on loopback: nothing listens, so ssh fails fast with its own words.
        let c = SshCommand::parse("ssh -p 9 -o StrictHostKeyChecking=no nobody@127.0.0.1").unwrap();
        let e = SshMaster::connect(c, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("127.0.0.1"), "{e}");
        assert!(e.contains("cannot connect with `ssh -p 9"), "{e}");
    }
}
