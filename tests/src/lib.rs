//! The test bed: throwaway PostgreSQL clusters and the pgbak binary, set up so that end-to-end
//! tests run against real parts.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every server process and every
//! pgbak call that the server would make (`archive_command`, `restore_command`) runs as the
//! `postgres` user, in temporary directories that user owns. Clusters are stopped when dropped, even
//! when a test fails.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The unprivileged account that owns clusters when the tests run as root.
pub const PG_USER: &str = "postgres";

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs as the cluster owner: through `runuser` when we are root, directly otherwise.
pub fn command_as_owner(program: impl AsRef<OsStr>) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(PG_USER).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command and panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Changes the owner of `path` (recursively) to the cluster owner, when we are root.
pub fn give_to_owner(path: &Path) {
    if is_root() {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{PG_USER}:"))
                .arg(path),
        );
    }
}

/// A temporary directory the cluster owner can write into (under /tmp, never under a home dir
/// the owner cannot traverse).
pub fn postgres_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgbak-test-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    give_to_owner(dir.path());
    dir
}

/// The directory holding PostgreSQL server binaries: `$PGBAK_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir`.
pub fn pg_bindir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("PGBAK_PG_BINDIR") {
            return PathBuf::from(d);
        }
        let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        majors.sort();
        if let Some(m) = majors.last() {
            return PathBuf::from(format!("/usr/lib/postgresql/{m}/bin"));
        }
        let out = run_ok(Command::new("pg_config").arg("--bindir"));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// Path of a PostgreSQL program such as `initdb`.
pub fn pg_bin(name: &str) -> PathBuf {
    pg_bindir().join(name)
}

/// The major version of the server binaries in [`pg_bindir`] (from `postgres --version`).
pub fn pg_default_major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let out = run_ok(Command::new(pg_bin("postgres")).arg("--version"));
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .last()
            .and_then(|v| v.split('.').next()?.parse().ok())
            .unwrap_or_else(|| panic!("cannot read a version in {text:?}"))
    })
}

/// The PostgreSQL majors pgbak supports and the tests of `on_every_major!` run on.
pub const PG_MAJORS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// The directory holding the server binaries (`initdb`, `pg_ctl`, `postgres`) of PostgreSQL
/// `major`: [`pg_bindir`] when it is that major, else `/usr/lib/postgresql/<major>/bin`, else
/// `<dir>/<major>/bin` where scripts/install-postgres-majors.sh puts the other majors (`<dir>` is
/// `$PGBAK_PG_MAJORS_DIR`, by default /opt/pgbak-postgres). Those hold no client programs: tests
/// run `psql` and the other clients from [`pg_bindir`], which talk to every major.
pub fn pg_bindir_of(major: u32) -> PathBuf {
    if major == pg_default_major() {
        return pg_bindir();
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("postgres").is_file() {
        return debian;
    }
    let root = std::env::var_os("PGBAK_PG_MAJORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/pgbak-postgres"));
    let dir = root.join(major.to_string()).join("bin");
    assert!(
        dir.join("postgres").is_file(),
        "no PostgreSQL {major} server in {} or {}: run scripts/install-deps.sh",
        debian.display(),
        dir.display()
    );
    dir
}

/// The server binaries for the data directory `data_dir`, from the major in its `PG_VERSION`.
fn bindir_for_data(data_dir: &Path) -> PathBuf {
    let file = data_dir.join("PG_VERSION");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let major = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {text:?}", file.display()));
    pg_bindir_of(major)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The pgbak binary under test, copied to a place the cluster owner can execute.
///
/// Found from `$PGBAK_BIN`, else next to the test executable's target directory
/// (`target/<profile>/pgbak`; build it first with `cargo build -p pgbak-cli`). This is the binary
/// pgbak ships: it ignores the test-only settings `PGBAK_TEST_NOW` and `PGBAK_TEST_PAUSE_AT`.
pub fn pgbak_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| installed_bin("pgbak", "PGBAK_BIN", "cargo build -p pgbak-cli"))
        .clone()
}

/// The same program built with the `test-hooks` feature, which honours `PGBAK_TEST_NOW` and
/// `PGBAK_TEST_PAUSE_AT`; copied like [`pgbak_bin`].
///
/// Found from `$PGBAK_TEST_HOOKS_BIN`, else `target/<profile>/pgbak-test-hooks` (build it with
/// `cargo build -p pgbak-cli --features test-hooks --bin pgbak-test-hooks`).
pub fn pgbak_test_hooks_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        installed_bin(
            "pgbak-test-hooks",
            "PGBAK_TEST_HOOKS_BIN",
            "cargo build -p pgbak-cli --features test-hooks --bin pgbak-test-hooks",
        )
    })
    .clone()
}

/// The shared library of the C ABI (`libpgbak.so`), copied like [`pgbak_bin`]: from
/// `$PGBAK_LIBRARY`, else the target directory of the test executable.
pub fn pgbak_library() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| installed_bin("libpgbak.so", "PGBAK_LIBRARY", "cargo build -p pgbak-ffi"))
        .clone()
}

/// Example program `name` of a library crate (`target/<profile>/examples/<name>`, which `cargo
/// test --workspace` builds), copied like [`pgbak_bin`].
pub fn pgbak_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let src = profile_dir.join("examples").join(name);
    assert!(
        src.is_file(),
        "example {name} not found at {} (run `cargo build --examples` first)",
        src.display()
    );
    let dir = std::env::temp_dir().join(format!("{name}-test-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bin dir");
    remove_at_exit(dir.clone());
    let dest = dir.join(name);
    std::fs::copy(&src, &dest).expect("copy the example");
    run_ok(Command::new("chmod").arg("-R").arg("a+rX").arg(&dir));
    dest
}

/// Copies binary `name` (from `$env_var`, else the target directory of the test executable) into
/// a folder of its own that the cluster owner may read and execute, and returns the copy.
fn installed_bin(name: &str, env_var: &str, build: &str) -> PathBuf {
    let src = match std::env::var_os(env_var) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/<profile>/deps/<test> -> target/<profile>/<name>
            let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
            profile_dir.join(name)
        }
    };
    assert!(
        src.is_file(),
        "{name} binary not found at {} (run `{build}` first or set {env_var})",
        src.display()
    );
    let dir = std::env::temp_dir().join(format!("{name}-test-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bin dir");
    remove_at_exit(dir.clone());
    let dest = dir.join(name);
    std::fs::copy(&src, &dest).expect("copy pgbak binary");
    run_ok(Command::new("chmod").arg("-R").arg("a+rX").arg(&dir));
    dest
}

/// Removes folder `path` when the test binary exits: for what statics own, which are never
/// dropped (a copy of the pgbak binary, a shared emulator's data).
pub fn remove_at_exit(path: PathBuf) {
    static PATHS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    extern "C" fn remove_all() {
        if let Ok(paths) = PATHS.lock() {
            for p in paths.iter() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    // SAFETY: registering a plain function to run at exit.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(remove_all);
    });
    PATHS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(path);
}

/// How to set up a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// `archive_command`; archiving is off when `None`.
    pub archive_command: Option<String>,
    /// Extra lines for postgresql.conf.
    pub extra_conf: Vec<String>,
    /// Extra lines placed first in pg_hba.conf.
    pub hba: Vec<String>,
    /// Data checksums at initdb.
    pub data_checksums: bool,
    /// Leave out the `host ... trust` lines for 127.0.0.1: TCP clients get only the `hba` lines
    /// (a `hostssl`-only configuration). Unix-socket access stays open.
    pub no_tcp_trust: bool,
    /// Environment variables of the server process, which its `archive_command` and
    /// `restore_command` inherit (such as the credentials of an object store).
    pub env: Vec<(String, String)>,
    /// The PostgreSQL major of the server ([`pg_bindir_of`]); that of [`pg_bindir`] when `None`.
    pub major: Option<u32>,
}

/// A running throwaway PostgreSQL cluster, stopped (immediately) on drop.
pub struct Cluster {
    /// Owns every file of the cluster; removed on drop.
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
    running: bool,
    env: Vec<(String, String)>,
    /// Where its server binaries (`initdb`, `pg_ctl`, `postgres`) are.
    bindir: PathBuf,
}

impl Cluster {
    /// initdb and start a new cluster.
    pub fn start(opts: ClusterOptions) -> Cluster {
        let mut c = Cluster::init(opts);
        c.start_now();
        c
    }

    /// initdb a new cluster and choose its port, without starting it (so that files that need
    /// the port, such as a pgbak configuration, can be written first).
    pub fn init(opts: ClusterOptions) -> Cluster {
        let root = postgres_tempdir();
        let data_dir = root.path().join("data");
        let socket_dir = root.path().join("sock");
        std::fs::create_dir(&socket_dir).expect("socket dir");
        give_to_owner(&socket_dir);
        let bindir = opts.major.map_or_else(pg_bindir, pg_bindir_of);
        let mut initdb = command_as_owner(bindir.join("initdb"));
        initdb.arg("-D").arg(&data_dir).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]);
        if opts.data_checksums {
            initdb.arg("--data-checksums");
        }
        run_ok(&mut initdb);
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", socket_dir.display()),
            "wal_level = replica".into(),
            "max_wal_senders = 10".into(),
            "max_replication_slots = 10".into(),
            "fsync = off".into(),
            "shared_buffers = 32MB".into(),
            "log_min_messages = warning".into(),
            "log_line_prefix = '%m [%p] '".into(),
        ];
        match &opts.archive_command {
            Some(cmd) => {
                conf.push("archive_mode = on".into());
                conf.push(format!("archive_command = '{}'", cmd.replace('\'', "''")));
            }
            None => conf.push("archive_mode = off".into()),
        }
        conf.extend(opts.extra_conf.iter().cloned());
        append(&data_dir.join("postgresql.conf"), &conf.join("\n"));
        let mut hba = opts.hba.clone();
        hba.push("local all all trust".into());
        hba.push("local replication all trust".into());
        if !opts.no_tcp_trust {
            hba.push("host all all 127.0.0.1/32 trust".into());
            hba.push("host replication all 127.0.0.1/32 trust".into());
        }
        std::fs::write(data_dir.join("pg_hba.conf"), hba.join("\n") + "\n").expect("pg_hba");
        give_to_owner(&data_dir.join("pg_hba.conf"));
        Cluster {
            log: root.path().join("server.log"),
            root,
            data_dir,
            socket_dir,
            port: free_port(),
            running: false,
            env: opts.env,
            bindir,
        }
    }

    /// Starts the server of a cluster made by [`Cluster::init`] (or stopped).
    pub fn start_now(&mut self) {
        let port = self.port;
        self.start_on(port, &[]);
    }

    /// Starts a server on an existing data directory (a restored backup), on a new free port and
    /// its own socket dir, with `extra` settings passed on the command line. The data directory
    /// must belong to the cluster owner.
    pub fn start_existing(data_dir: &Path, extra: &[&str]) -> Cluster {
        Cluster::start_existing_with_env(data_dir, extra, &[])
    }

    /// [`Cluster::start_existing`] with environment variables for the server process (and so
    /// for its `restore_command`).
    pub fn start_existing_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Cluster {
        let root = postgres_tempdir();
        let socket_dir = root.path().join("sock");
        std::fs::create_dir(&socket_dir).expect("socket dir");
        give_to_owner(&socket_dir);
        let mut c = Cluster {
            log: root.path().join("server.log"),
            root,
            data_dir: data_dir.to_path_buf(),
            socket_dir,
            port: 0,
            running: false,
            env: env.to_vec(),
            bindir: bindir_for_data(data_dir),
        };
        for _ in 0..5 {
            if c.start_on(free_port(), extra) {
                return c;
            }
        }
        panic!(
            "cannot start PostgreSQL on {}:\n{}",
            data_dir.display(),
            c.server_log()
        );
    }

    /// Starts the server on `port`; false when the port was taken, panics on other failures.
    fn start_on(&mut self, port: u16, extra: &[&str]) -> bool {
        {
            let mut opts = format!(
                "-c port={port} -c unix_socket_directories='{}'",
                self.socket_dir.display()
            );
            for e in extra {
                opts.push_str(" -c ");
                opts.push_str(e);
            }
            let out = command_as_owner(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", "120", "-o", &opts, "start"])
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output()
                .expect("pg_ctl");
            if out.status.success() {
                self.running = true;
                self.port = port;
                return true;
            }
            let err = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.server_log()
            );
            if err.contains("could not bind") || err.contains("in use") {
                return false;
            }
            panic!(
                "cannot start PostgreSQL on {}: {err}",
                self.data_dir.display()
            );
        }
    }

    /// The server log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A libpq conninfo string for TCP as the `postgres` superuser.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Runs SQL through psql; returns its unaligned, tuples-only output, trimmed. Panics on error.
    pub fn psql(&self, sql: &str) -> String {
        let out = self
            .try_psql(sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}\nserver log:\n{}", self.server_log()));
        out
    }

    /// Runs SQL through psql and returns stdout or the error text.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(pg_bin("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Waits until `sql` returns `expected`, up to `timeout`.
    pub fn wait_for(&self, sql: &str, expected: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(v) = self.try_psql(sql) {
                if v == expected {
                    return;
                }
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {sql:?} = {expected:?}\nserver log:\n{}",
                    self.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `id` column of table `t`, sorted: the rows a point-in-time test compares.
    pub fn ids(&self) -> Vec<i64> {
        self.psql("SELECT id FROM t ORDER BY id")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.parse().expect("an id"))
            .collect()
    }

    /// Switches WAL and waits (up to two minutes) until the server's `archive_command` has
    /// archived the closed segment.
    pub fn switch_wal_and_wait_archived(&self) {
        let seg = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.psql("SELECT pg_switch_wal()");
        self.wait_for(
            &format!("SELECT coalesce(last_archived_wal, '') >= '{seg}' FROM pg_stat_archiver"),
            "t",
            Duration::from_secs(120),
        );
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&mut self) {
        if self.running {
            let _ = command_as_owner(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-w", "-m", "fast", "stop"])
                .stdin(Stdio::null())
                .output();
            self.running = false;
        }
    }

    /// Stops the server without a checkpoint (like a crash).
    pub fn stop_immediate(&mut self) {
        if self.running {
            let _ = command_as_owner(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-w", "-m", "immediate", "stop"])
                .stdin(Stdio::null())
                .output();
            self.running = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_immediate();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    writeln!(f, "\n{text}").expect("append");
}

mod pgbak;
pub use pgbak::{
    md5_hex, put_wal_input, read_tree, recover_and_start, recover_backup_and_start,
    rerecord_archive, tar_entry, tar_of, PgbakEnv, PgbakOutput,
};

impl Cluster {
    /// Prints the server log when the PGBAK_TEST_LOG environment variable is set (debugging aid).
    pub fn dump_log_if_asked(&self) {
        if std::env::var_os("PGBAK_TEST_LOG").is_some() {
            eprintln!(
                "---- server log {} ----\n{}",
                self.data_dir.display(),
                self.server_log()
            );
        }
    }
}

mod sshd;
pub use sshd::Sshd;

mod receiver;
pub use receiver::{receiver_pid, Receiver};

/// A small tmpfs mounted for one test (the tests run as root), owned by the cluster owner, and
/// unmounted on drop: a real filesystem that fills up, for the tests of what happens when a
/// disk is full.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes (rounded to pages by the kernel).
    pub fn mount(bytes: u64) -> Tmpfs {
        assert!(
            is_root(),
            "mounting a tmpfs needs root (the test suite runs as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("pgbak-tmpfs-")
            .tempdir_in("/tmp")
            .expect("mount point");
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={bytes},mode=0755"))
                .arg("tmpfs")
                .arg(dir.path()),
        );
        give_to_owner(dir.path());
        Tmpfs { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free.
    pub fn available(&self) -> u64 {
        let out = run_ok(
            Command::new("df")
                .args(["-B1", "--output=avail"])
                .arg(self.path()),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every path below `dir` (itself included) whose mode lets group or others in beyond `allowed`
/// (e.g. `0o000` for private, `0o050` for PostgreSQL's group access), as "path mode" lines.
/// Symbolic links are reported as such unless they are `pg_tblspc/<oid>`.
pub fn loose_modes(dir: &Path, allowed: u32) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.file_type().is_symlink() {
            let in_tblspc = p
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "pg_tblspc");
            if !in_tblspc {
                out.push(format!("{} is a symbolic link", p.display()));
            }
            continue;
        }
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 & !allowed != 0 {
            out.push(format!("{} {mode:o}", p.display()));
        }
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}

mod tls;
pub use tls::TestPki;

pub mod emulators;

pub mod cloud;

pub mod gpg;

/// Runs each listed test function (taking an [`emulators::Kind`]) on S3, Azure and GCS, as
/// tests named `<function>::s3`, `::azure` and `::gcs`.
#[macro_export]
macro_rules! on_every_cloud {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn s3() {
                super::$test($crate::emulators::Kind::S3)
            }
            #[test]
            fn azure() {
                super::$test($crate::emulators::Kind::Azure)
            }
            #[test]
            fn gcs() {
                super::$test($crate::emulators::Kind::Gcs)
            }
        }
    )*};
}

/// Runs each listed test function (taking a PostgreSQL major) on every major of [`PG_MAJORS`],
/// as tests named `<function>::pg13` ... `::pg18`.
#[macro_export]
macro_rules! on_every_major {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn pg13() {
                super::$test(13)
            }
            #[test]
            fn pg14() {
                super::$test(14)
            }
            #[test]
            fn pg15() {
                super::$test(15)
            }
            #[test]
            fn pg16() {
                super::$test(16)
            }
            #[test]
            fn pg17() {
                super::$test(17)
            }
            #[test]
            fn pg18() {
                super::$test(18)
            }
        }
    )*};
}
