//! An sshd on a loopback port for tests of the SSH paths (rsync method, remote recovery, the WAL
//! helpers). It has its own host key and configuration in a temporary directory and accepts one
//! key, for the cluster owner, so `ssh_command()` reaches "another host" that is this machine.

use crate::{give_to_owner, is_root, postgres_tempdir, run_ok, PG_USER};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd, stopped on drop.
pub struct Sshd {
    /// Holds the host key, configuration, client key and log.
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The private key the cluster owner logs in with.
    pub client_key: PathBuf,
    child: Child,
}

fn sshd_path() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/bin/sshd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("sshd not found: install openssh-server (scripts/install-deps.sh does)");
}

impl Sshd {
    /// Starts sshd on a free loopback port, accepting a fresh key for the cluster owner.
    pub fn start() -> Sshd {
        let dir = postgres_tempdir();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join("host_key")),
        );
        let client_key = d.join("client_key");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&client_key),
        );
        let user = if is_root() {
            PG_USER.to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        // The client key must belong to the user who runs ssh, and be private.
        give_to_owner(&client_key);
        run_ok(Command::new("chmod").arg("600").arg(&client_key));
        std::fs::create_dir_all("/run/sshd").ok();
        let log = d.join("sshd.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM yes\n\
                 StrictModes no\nAllowUsers {user}\nMaxSessions 64\nMaxStartups 64:30:128\nLogLevel ERROR\n\
                 Subsystem sftp internal-sftp\nPrintMotd no\n",
                hk = d.join("host_key").display(),
                pid = d.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
            let mut child = Command::new(sshd_path())
                .arg("-D")
                .arg("-f")
                .arg(d.join("sshd_config"))
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            if wait_ready(&mut child, port) {
                return Sshd {
                    dir,
                    port,
                    client_key,
                    child,
                };
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start: {last}");
    }

    /// The `ssh` command line (Barman's `ssh_command`) that logs into this sshd as the cluster owner.
    pub fn ssh_command(&self) -> String {
        let user = if is_root() {
            PG_USER.to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR {user}@127.0.0.1",
            self.client_key.display(),
            self.port
        )
    }

    /// Kills the daemon and every session it started (to simulate a network failure).
    pub fn kill_sessions(&self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(format!("sshd: {}", PG_USER))
            .status();
    }

    /// sshd's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
