//! A pgbak home and configuration for one test, with helpers to call the pgbak binary as the
//! cluster owner (as `archive_command` does).

use crate::{
    command_as_owner, give_to_owner, pgbak_bin, pgbak_test_hooks_bin, postgres_tempdir, Cluster,
    ClusterOptions,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Output of one pgbak call.
#[derive(Debug)]
pub struct PgbakOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PgbakOutput {
    /// Panics with the output unless the call succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "pgbak failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A pgbak home directory and configuration file for a server called `main`.
pub struct PgbakEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
}

impl PgbakEnv {
    /// An empty home; call [`PgbakEnv::write_config`] before use.
    pub fn new() -> PgbakEnv {
        let dir = postgres_tempdir();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("home");
        give_to_owner(&home);
        let config = dir.path().join("pgbak.conf");
        PgbakEnv { dir, home, config }
    }

    /// The archive_command that sends WAL of server `main` to this home.
    pub fn archive_command(&self) -> String {
        format!(
            "{} -q -c {} archive-wal main %p",
            pgbak_bin().display(),
            self.config.display()
        )
    }

    /// A cluster (initialised, not started) archiving into this home, with the configuration
    /// written for it: `server_extra` lines are added to the `[main]` section.
    pub fn cluster(&self, server_extra: &str, opts: ClusterOptions) -> Cluster {
        let opts = ClusterOptions {
            archive_command: Some(self.archive_command()),
            ..opts
        };
        let mut cluster = Cluster::init(opts);
        self.write_config(&cluster, server_extra);
        cluster.start_now();
        cluster
    }

    /// Writes the configuration for `cluster`.
    pub fn write_config(&self, cluster: &Cluster, server_extra: &str) {
        self.write_config_conninfo(&cluster.conninfo(), server_extra);
    }

    /// Writes the configuration of server `main` with its connection string.
    pub fn write_config_conninfo(&self, conninfo: &str, server_extra: &str) {
        let text = format!(
            "[pgbak]\nhome = {}\nlog_level = INFO\n\n[main]\ndescription = test server\nconninfo = {}\nbackup_method = postgres\nimmediate_checkpoint = true\n{}\n",
            self.home.display(),
            conninfo,
            server_extra
        );
        std::fs::write(&self.config, text).expect("write config");
        give_to_owner(&self.config);
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_with(pgbak_bin(), args)
    }

    fn command_with(&self, bin: PathBuf, args: &[&str]) -> Command {
        let mut c = command_as_owner(bin);
        c.arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs pgbak with `args` (after `-c CONFIG`) as the cluster owner.
    pub fn run(&self, args: &[&str]) -> PgbakOutput {
        Self::output(self.command(args))
    }

    /// Runs pgbak with `args` (after `-c CONFIG`) as the cluster owner under `umask`.
    pub fn run_umask(&self, umask: u32, args: &[&str]) -> PgbakOutput {
        use std::os::unix::process::CommandExt;
        let mut c = self.command(args);
        // SAFETY: umask(2) is async-signal-safe and has no preconditions.
        unsafe {
            c.pre_exec(move || {
                libc::umask(umask as libc::mode_t);
                Ok(())
            });
        }
        Self::output(c)
    }

    /// Runs pgbak with exactly `args` (no `-c`) as the cluster owner.
    pub fn run_raw(&self, args: &[&str]) -> PgbakOutput {
        let mut c = command_as_owner(pgbak_bin());
        c.args(args).stdin(Stdio::null()).env_remove("PGBAK_CONFIG");
        Self::output(c)
    }

    fn output(mut cmd: Command) -> PgbakOutput {
        let out = cmd.output().expect("run pgbak");
        PgbakOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs pgbak with `args` (after `-c CONFIG`) and extra environment variables, such as the
    /// test-only `PGBAK_TEST_NOW` and `PGBAK_TEST_PAUSE_AT`: this runs the binary built with
    /// test hooks ([`pgbak_test_hooks_bin`]), the only one that honours them.
    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> PgbakOutput {
        let mut c = self.command_with(pgbak_test_hooks_bin(), args);
        c.envs(envs.iter().copied());
        Self::output(c)
    }

    /// Runs the shipped pgbak binary ([`pgbak_bin`]) with `args` and extra environment variables.
    pub fn run_plain_env(&self, args: &[&str], envs: &[(&str, &str)]) -> PgbakOutput {
        let mut c = self.command(args);
        c.envs(envs.iter().copied());
        Self::output(c)
    }

    /// Starts pgbak with test hooks ([`pgbak_test_hooks_bin`]) in the background with extra
    /// environment variables.
    pub fn spawn_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Child {
        let mut c = self.command_with(pgbak_test_hooks_bin(), args);
        c.envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn pgbak")
    }

    /// [`PgbakEnv::backup_wait`] with `global` options first (`--log-level info`...).
    pub fn backup_wait_with(&self, global: &[&str]) -> PgbakOutput {
        let mut args = global.to_vec();
        args.extend([
            "-f",
            "json",
            "backup",
            "main",
            "--wait",
            "--wait-timeout",
            "120",
        ]);
        self.run(&args).ok()
    }

    /// `-f json backup main --wait` (up to two minutes for its WAL), which must succeed.
    pub fn backup_wait(&self) -> PgbakOutput {
        self.backup_wait_with(&[])
    }

    /// `switch-wal main --force --archive`: closes the current segment and waits (up to a
    /// minute) until it is in the archive, so everything written so far can be replayed.
    /// Returns the name of the segment closed.
    pub fn switch_wal_archived(&self) -> String {
        let out = self
            .run(&[
                "-f",
                "json",
                "switch-wal",
                "main",
                "--force",
                "--archive",
                "--archive-timeout",
                "60",
            ])
            .ok();
        out.json()["segment"]
            .as_str()
            .expect("switch-wal names the segment")
            .to_string()
    }

    /// Starts the shipped pgbak binary ([`pgbak_bin`]) in the background with extra
    /// environment variables.
    pub fn spawn_plain_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Child {
        let mut c = self.command(args);
        c.envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn pgbak")
    }

    /// Starts pgbak in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgbak")
    }

    /// The catalogue folder of server `main`.
    pub fn server_dir(&self) -> PathBuf {
        self.home.join("main")
    }

    /// Ids of the backups of `main`, oldest first, with their status, from `list-backups`.
    pub fn backups(&self) -> Vec<(String, String)> {
        let out = self.run(&["-f", "json", "list-backups", "main"]).ok();
        let mut v: Vec<(String, String)> = out
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|b| {
                (
                    b["backup_id"].as_str().unwrap().to_string(),
                    b["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// The raw text of the WAL index of `main`: every object of it (the `xlog.db` of earlier
    /// versions, the compacted chunks, the entries of files archived since), concatenated.
    pub fn index_text(&self) -> String {
        let wals = self.server_dir().join("wals");
        let mut text = std::fs::read_to_string(wals.join("xlog.db")).unwrap_or_default();
        for sub in ["index/c", "index/p"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(wals.join(sub))
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
            files.sort();
            for f in files {
                text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
            }
        }
        text
    }

    /// Names of the WAL files archived for `main` (history files and the `<timeline><log>`
    /// folders; not the index).
    pub fn archived_wal_files(&self) -> std::collections::BTreeSet<String> {
        let wals = self.server_dir().join("wals");
        let mut files = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(&wals).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() && name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if !n.starts_with('.') {
                        files.insert(n);
                    }
                }
            } else if ft.is_file() && name.ends_with(".history") {
                files.insert(name);
            }
        }
        files
    }

    /// A directory the cluster owner may restore into (does not exist yet).
    pub fn restore_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for PgbakEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads every regular file below `dir` as (relative path, bytes) pairs, sorted.
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .expect("prefix")
                    .display()
                    .to_string();
                out.push((rel, std::fs::read(e.path()).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// Recovers the latest backup of `main` into a new folder with `args` (targets...), starts it,
/// waits until it is promoted, and returns the restored cluster.
pub fn recover_and_start(env: &PgbakEnv, folder: &str, args: &[&str]) -> Cluster {
    recover_backup_and_start(env, "latest", folder, args)
}

/// [`recover_and_start`] for backup `id` of `main`.
pub fn recover_backup_and_start(env: &PgbakEnv, id: &str, folder: &str, args: &[&str]) -> Cluster {
    let dest = env.restore_dir(folder);
    let dest_s = dest.display().to_string();
    let mut all = vec!["recover", "main", id, dest_s.as_str()];
    all.extend_from_slice(args);
    env.run(&all).ok();
    let restored = Cluster::start_existing(&dest, &["archive_mode=off"]);
    restored.wait_for(
        "SELECT pg_is_in_recovery()",
        "f",
        std::time::Duration::from_secs(180),
    );
    restored
}

/// The tar stream `put-wal` reads: one WAL file `name` and, when `sums` is given, an `MD5SUMS`
/// entry with that text.
pub fn put_wal_input(name: &str, data: &[u8], sums: Option<&str>) -> Vec<u8> {
    let mut files = vec![(name, data)];
    if let Some(s) = sums {
        files.push(("MD5SUMS", s.as_bytes()));
    }
    tar_of(&files)
}

/// A ustar stream of regular files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000600");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// MD5 of `data` in hexadecimal, computed by `md5sum` (as Barman's side would).
pub fn md5_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Writes the current size and CRC-32C of `archive` (`<backup>/data/<name>` of a local backup)
/// into the backup's `backup.json`, as whoever can rewrite an archive can rewrite its record:
/// the tests of hostile content get past the stored-bytes check this way.
pub fn rerecord_archive(archive: &Path) {
    let bytes = std::fs::read(archive).unwrap();
    let name = archive.file_name().unwrap().to_str().unwrap();
    let record = archive.parent().unwrap().with_file_name("backup.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let file = info["files"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == name)
        .expect("the archive is in the record");
    file["size"] = (bytes.len() as u64).into();
    file["crc32c"] = crc32c::crc32c(&bytes).into();
    std::fs::write(&record, serde_json::to_vec_pretty(&info).unwrap()).unwrap();
}

/// Offset and size of the data of entry `name` in an uncompressed tar.
pub fn tar_entry(tar: &[u8], name: &str) -> Option<(usize, usize)> {
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            return None;
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).trim().to_string()
        };
        let size = usize::from_str_radix(&field(124..136), 8).unwrap_or(0);
        let prefix = field(345..500);
        let entry = if prefix.is_empty() {
            field(0..100)
        } else {
            format!("{prefix}/{}", field(0..100))
        };
        if entry.trim_start_matches("./") == name {
            return Some((pos + 512, size));
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
    None
}
