//! `pgbak receive-wal` run in the background for the tests of WAL streaming.

use crate::{command_as_owner, pgbak_bin, PgbakEnv};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `pgbak receive-wal main` running in the background; stopped (SIGTERM through `--stop`) when
/// dropped.
pub struct Receiver<'a> {
    env: &'a PgbakEnv,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl<'a> Receiver<'a> {
    pub fn start(env: &'a PgbakEnv, tag: &str) -> Receiver<'a> {
        let stdout = env.dir.path().join(format!("receive-wal-{tag}.out"));
        let stderr = env.dir.path().join(format!("receive-wal-{tag}.log"));
        let child = command_as_owner(pgbak_bin())
            .arg("-c")
            .arg(&env.config)
            .args(["-f", "json", "--log-level", "info", "receive-wal", "main"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start receive-wal");
        let r = Receiver {
            env,
            child: Some(child),
            stdout,
            stderr,
        };
        r.wait_streaming();
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the process holds its lock and streams (its slot is active).
    pub fn wait_streaming(&self) {
        let start = Instant::now();
        loop {
            if let Some(pid) = receiver_pid(self.env) {
                if pid > 0 && self.log().contains("starting WAL streaming") {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "receive-wal did not start streaming:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the receiver with `--stop` and returns its JSON report.
    pub fn stop(mut self) -> serde_json::Value {
        let out = self.env.run(&["receive-wal", "main", "--stop"]).ok();
        assert!(out.stdout.contains("Stopped receive-wal"), "{out:?}");
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(
            status.success(),
            "receive-wal exited with {status}:\n{}",
            self.log()
        );
        let text = std::fs::read_to_string(&self.stdout).unwrap();
        if std::env::var_os("PGBAK_TEST_LOG").is_some() {
            eprintln!(
                "---- receive-wal log ----\n{}\n---- report ----\n{text}",
                self.log()
            );
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}"))
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let pid = receiver_pid(self.env).expect("running receiver");
        let ok = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let _ = self.child.take().unwrap().wait();
    }
}

impl Drop for Receiver<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.env.run(&["receive-wal", "main", "--stop"]);
            let _ = child.wait();
        }
    }
}

/// The PID in the receive-wal lock file (written while the lock is held).
pub fn receiver_pid(env: &PgbakEnv) -> Option<u32> {
    std::fs::read_to_string(env.home.join(".main-receive-wal.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
