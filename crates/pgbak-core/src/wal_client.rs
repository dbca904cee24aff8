//! The helpers that run on the database host, as `archive_command` and `restore_command`, and
//! reach the backup host over SSH (pgbak's `barman-wal-archive` and `barman-wal-restore`):
//!
//! - [`wal_archive`] sends one WAL file as a tar stream with its checksum to `pgbak put-wal` and
//!   succeeds only when the remote side says the file is durable in the archive;
//! - [`wal_restore`] fetches a WAL file with `pgbak get-wal`; with `parallel > 1` it asks for a
//!   bundle of the following segments too and keeps them in a spool folder, so the next calls
//!   of PostgreSQL are served locally without a round trip.
//!
//! Exit codes follow Barman's helpers: 0 done, 1 the file is not in the archive (restore), 2 any
//! other failure, 3 SSH itself failed (archive).

use crate::wal_tar::{parse_sums, sums_line, write_end, write_entry, SumKind, Summer};
use crate::{Error, Result};
use pgbak_compress::pipeline::{Digests, Meter};
use pgbak_compress::{Codec, Compression, Compressor};
use pgbak_copy::rsync::shell::quote as shell_quote;
use pgbak_copy::{TarEntry, TarStreamParser, TarVisitor};
use pgbak_storage::staging;
use pgbak_wal::WalFileName;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to reach pgbak on the backup host.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// The ssh program and its options, split on white space (default `ssh`).
    pub ssh_command: String,
    /// The backup host.
    pub host: String,
    /// The user on the backup host (default: ssh's default).
    pub user: Option<String>,
    /// The SSH port (default: ssh's default).
    pub port: Option<u16>,
    /// The pgbak program on the backup host (default `pgbak`).
    pub pgbak_path: String,
    /// The configuration file pgbak reads on the backup host.
    pub config: Option<String>,
}

impl SshTarget {
    /// The ssh command that runs `pgbak [-c CONFIG] ARGS...` on the backup host.
    pub fn command(&self, args: &[&str]) -> Result<Command> {
        let mut parts = self.ssh_command.split_whitespace();
        let program = parts
            .next()
            .ok_or_else(|| Error::Usage("the ssh command is empty".into()))?;
        let mut c = Command::new(program);
        c.args(parts);
        if let Some(p) = self.port {
            c.arg("-p").arg(p.to_string());
        }
        c.arg(match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        });
        let mut remote = vec![shell_quote(&self.pgbak_path)];
        if let Some(cfg) = &self.config {
            remote.push("-c".into());
            remote.push(shell_quote(cfg));
        }
        remote.extend(args.iter().map(|a| shell_quote(a)));
        c.arg(remote.join(" "));
        Ok(c)
    }
}

/// Why a helper failed, with the exit code it maps to.
#[derive(Debug)]
pub enum HelperError {
    /// ssh could not connect or authenticate (ssh exited 255).
    Ssh(String),
    /// The remote pgbak failed with this exit code and message.
    Remote { code: i32, message: String },
    /// The requested WAL file is not in the archive (restore only).
    NotFound(String),
    /// A local problem.
    Local(Error),
}

impl std::fmt::Display for HelperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelperError::Ssh(m) => write!(f, "ssh failed: {m}"),
            HelperError::Remote { code, message } => {
                write!(
                    f,
                    "pgbak on the backup host failed (exit {code}): {message}"
                )
            }
            HelperError::NotFound(n) => write!(f, "WAL file {n} is not in the archive"),
            HelperError::Local(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HelperError {}

impl From<Error> for HelperError {
    fn from(e: Error) -> Self {
        HelperError::Local(e)
    }
}

impl HelperError {
    /// Barman's exit codes: 1 not found, 3 ssh failure when archiving, 2 otherwise.
    pub fn exit_code(&self, archiving: bool) -> u8 {
        match self {
            HelperError::NotFound(_) => 1,
            HelperError::Ssh(_) if archiving => 3,
            _ => 2,
        }
    }
}

/// Options of `pgbak wal-archive`.
#[derive(Clone, Debug)]
pub struct WalArchiveOptions {
    /// Where to send it.
    pub target: SshTarget,
    /// The server's name in the backup host's configuration.
    pub server: String,
    /// The file PostgreSQL asks to archive (`%p`).
    pub wal_path: PathBuf,
    /// Compress before sending (the archive stores it with its own compression anyway).
    pub compression: Compression,
    /// The checksum sent along.
    pub sums: SumKind,
}

fn finish_child(
    child: std::process::Child,
    what: &str,
) -> std::result::Result<Vec<u8>, HelperError> {
    let out = child
        .wait_with_output()
        .map_err(|e| HelperError::Local(Error::io("wait for", "ssh", e)))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(out.stdout),
        Some(255) => Err(HelperError::Ssh(if stderr.is_empty() {
            format!("{what}: ssh exited 255")
        } else {
            stderr
        })),
        Some(code) => Err(HelperError::Remote {
            code,
            message: stderr,
        }),
        None => Err(HelperError::Ssh(format!(
            "{what}: ssh was killed by a signal"
        ))),
    }
}

/// Sends one WAL file to `pgbak put-wal` on the backup host; returns when it is durable there.
pub fn wal_archive(opts: &WalArchiveOptions) -> std::result::Result<(), HelperError> {
    let name = opts
        .wal_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            HelperError::Local(Error::Usage(format!(
                "{} has no file name",
                opts.wal_path.display()
            )))
        })?
        .to_string();
    WalFileName::parse(&name).map_err(|e| HelperError::Local(e.into()))?;
    // Read (and compress) the whole file before ssh starts: a file that cannot be read fails
    // here, and the tar header needs the size. A WAL file is at most 1 GiB, usually 16 MiB.
    let mut f = File::open(&opts.wal_path)
        .map_err(|e| HelperError::Local(Error::io("open", &opts.wal_path, e)))?;
    let mut plain = Vec::new();
    f.read_to_end(&mut plain)
        .map_err(|e| HelperError::Local(Error::io("read", &opts.wal_path, e)))?;
    let payload = if opts.compression == Compression::None {
        plain
    } else {
        let codec = Codec::new(opts.compression, Some(pgbak_compress::Level::Low))
            .map_err(|e| HelperError::Local(Error::Usage(e.to_string())))?;
        let mut out = Vec::with_capacity(plain.len() / 4);
        let mut enc = codec
            .encoder(Box::new(&mut out))
            .map_err(|e| HelperError::Local(Error::io("compress", &opts.wal_path, e)))?;
        enc.write_all(&plain)
            .and_then(|_| enc.finish())
            .map_err(|e| HelperError::Local(Error::io("compress", &opts.wal_path, e)))?;
        out
    };
    let mut summer = Summer::new(opts.sums);
    summer.update(&payload);
    let sums = sums_line(&summer.hex(), &name);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut cmd = opts.target.command(&["-q", "put-wal", &opts.server])?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HelperError::Ssh(format!("cannot run {}: {e}", opts.target.ssh_command)))?;
    let send = (|| -> io::Result<()> {
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let mut w = BufWriter::with_capacity(1 << 20, stdin);
        write_entry(&mut w, &name, &payload, mtime)?;
        write_entry(&mut w, opts.sums.file_name(), sums.as_bytes(), mtime)?;
        write_end(&mut w)?;
        w.flush()
    })();
    let result = finish_child(child, "put-wal");
    match (send, result) {
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(HelperError::Local(Error::io("send", "ssh", e))),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

/// Runs `pgbak put-wal --test` (or `get-wal --test`) on the backup host and returns its answer.
pub fn test_connection(
    target: &SshTarget,
    server: &str,
    restore: bool,
) -> std::result::Result<String, HelperError> {
    let args: &[&str] = if restore {
        &["get-wal", "--test", server]
    } else {
        &["put-wal", "--test", server]
    };
    let child = target
        .command(args)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HelperError::Ssh(format!("cannot run {}: {e}", target.ssh_command)))?;
    let out = finish_child(child, "test")?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// Options of `pgbak wal-restore`.
#[derive(Clone, Debug)]
pub struct WalRestoreOptions {
    /// Where to fetch from.
    pub target: SshTarget,
    /// The server's name in the backup host's configuration.
    pub server: String,
    /// The file PostgreSQL asks for (`%f`).
    pub wal_name: String,
    /// Where PostgreSQL wants it (`%p`).
    pub dest: PathBuf,
    /// Fetch this many files per round trip (1 = only the requested one).
    pub parallel: usize,
    /// Where prefetched files wait.
    pub spool_dir: PathBuf,
    /// Compression on the wire (the remote compresses, this side decompresses).
    pub network_compression: Option<Compression>,
}

/// Where a restore was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreSource {
    /// Moved from the spool folder (prefetched earlier).
    Spool,
    /// Fetched now; the number of extra files put into the spool.
    Remote { prefetched: usize },
}

/// Serves one `restore_command` call.
///
/// With `parallel > 1` the spool folder must be private (see [`staging::ensure_private_dir`]);
/// one that is not is left alone with a warning and the file is fetched directly. Every file of a
/// bundle is checked against the CRC-32C the backup host sends with it before it is handed over
/// or spooled, and a spooled file is checked again when it is handed over.
pub fn wal_restore(opts: &WalRestoreOptions) -> std::result::Result<RestoreSource, HelperError> {
    WalFileName::parse(&opts.wal_name).map_err(|e| HelperError::Local(e.into()))?;
    let is_segment = matches!(
        WalFileName::parse(&opts.wal_name),
        Ok(WalFileName::Segment { .. })
    );
    let spool = opts.parallel > 1 && {
        match staging::ensure_private_dir(&opts.spool_dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("not using the spool folder: {e}");
                false
            }
        }
    };
    if spool {
        if take_from_spool(opts)? {
            return Ok(RestoreSource::Spool);
        }
        if is_segment {
            // A miss means replay moved elsewhere (a new timeline, a restart): what is spooled
            // was fetched for another sequence.
            clear_spool(&opts.spool_dir);
        }
    }
    let bundle = spool && is_segment;
    let n = opts.parallel.max(1).to_string();
    let mut args = vec!["-q", "get-wal"];
    let net = opts
        .network_compression
        .map(|c| format!("--network-compression={}", c.name()));
    if let Some(a) = &net {
        args.push(a);
    }
    if bundle {
        args.push("--bundle");
        args.push(&n);
    }
    args.push(&opts.server);
    args.push(&opts.wal_name);
    let mut child = opts
        .target
        .command(&args)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HelperError::Ssh(format!("cannot run {}: {e}", opts.target.ssh_command)))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| HelperError::Local(Error::Other("no stdout from ssh".into())))?;
    // stderr is small; read it on a thread so a chatty remote cannot block on a full pipe.
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let received = receive(stdout, opts, bundle);
    let status = child
        .wait()
        .map_err(|e| HelperError::Local(Error::io("wait for", "ssh", e)))?;
    let stderr = err_reader.join().unwrap_or_default().trim().to_string();
    let answer = match status.code() {
        Some(0) => None,
        Some(255) => Some(HelperError::Ssh(stderr)),
        Some(_) if stderr.contains("not found in the archive") => {
            Some(HelperError::NotFound(opts.wal_name.clone()))
        }
        Some(code) => Some(HelperError::Remote {
            code,
            message: stderr,
        }),
        None => Some(HelperError::Ssh("ssh was killed by a signal".into())),
    };
    let received = match (answer, received) {
        (Some(e), r) => {
            if let Ok(r) = r {
                r.discard();
            }
            return Err(e);
        }
        (None, r) => r?,
    };
    let prefetched = received.spooled;
    std::fs::rename(&received.first, &opts.dest).map_err(|e| {
        let _ = std::fs::remove_file(&received.first);
        HelperError::Local(Error::io("rename", &opts.dest, e))
    })?;
    Ok(RestoreSource::Remote { prefetched })
}

/// Spooled files are named `<WAL name>.crc32c-<8 hex digits>`: the checksum the backup host sent.
const SPOOL_SUM_TAG: &str = ".crc32c-";

/// Hands over the spooled copy of the requested file, if there is one whose content still
/// matches its checksum; false when there is none (a damaged one is removed).
fn take_from_spool(opts: &WalRestoreOptions) -> std::result::Result<bool, HelperError> {
    let prefix = format!("{}{SPOOL_SUM_TAG}", opts.wal_name);
    let rd = match std::fs::read_dir(&opts.spool_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(HelperError::Local(Error::io("list", &opts.spool_dir, e))),
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(want) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let path = entry.path();
        match spooled_crc(&path) {
            Ok(got) if format!("{got:08x}") == want => {}
            Ok(_) | Err(_) => {
                tracing::warn!(
                    "{} does not match its checksum; fetching it again",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                continue;
            }
        }
        match std::fs::rename(&path, &opts.dest) {
            Ok(()) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                copy_then_remove(&path, &opts.dest)?;
                return Ok(true);
            }
            Err(e) => return Err(HelperError::Local(Error::io("move", &path, e))),
        }
    }
    Ok(false)
}

/// The CRC-32C of a spooled file, read without following a link.
fn spooled_crc(path: &Path) -> io::Result<u32> {
    crate::wal_archive::file_crc32c(path).map(|(_, crc)| crc)
}

fn copy_then_remove(from: &Path, to: &Path) -> std::result::Result<(), HelperError> {
    let tmp = staging::temp_name(to);
    let r = (|| -> io::Result<()> {
        let mut input = staging::open_regular(from)?;
        let mut out = staging::create_fresh(&tmp, staging::PRIVATE_FILE)?;
        io::copy(&mut input, &mut out)?;
        drop(out);
        std::fs::rename(&tmp, to)
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(HelperError::Local(Error::io("copy", from, e)));
    }
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Removes spooled WAL files and temporary files left in the spool.
fn clear_spool(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let spooled = name
                .to_str()
                .and_then(|n| n.split_once(SPOOL_SUM_TAG))
                .is_some_and(|(wal, _)| WalFileName::parse(wal).is_ok());
            if spooled || staging::temp_name_pid(&name).is_some() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// What [`receive`] wrote: the requested file under a temporary name next to its destination
/// (renamed into place by the caller once the remote side has exited cleanly), and how many
/// following files went to the spool.
struct Received {
    first: PathBuf,
    spooled: usize,
}

impl Received {
    fn discard(self) {
        let _ = std::fs::remove_file(&self.first);
    }
}

/// Reads get-wal's answer: the plain file, or a bundle whose first entry is the requested file,
/// the following ones go to the spool, and a last `CRC32CSUMS` entry holds their checksums.
fn receive(
    stdout: std::process::ChildStdout,
    opts: &WalRestoreOptions,
    bundle: bool,
) -> std::result::Result<Received, HelperError> {
    let input: Box<dyn Read + Send> = Box::new(io::BufReader::with_capacity(1 << 20, stdout));
    let mut input = if opts.network_compression.is_some() {
        pgbak_compress::auto_decoder(input)
            .map_err(|e| HelperError::Local(Error::io("read", "ssh", e)))?
            .1
    } else {
        input
    };
    if !bundle {
        let tmp = staging::temp_name(&opts.dest);
        let r = (|| -> io::Result<u64> {
            let file = staging::create_fresh(&tmp, staging::PRIVATE_FILE)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            // No WAL file is larger than the largest segment: a longer answer is refused
            // rather than written out.
            let n = io::copy(&mut (&mut input).take(MAX_WAL_BYTES + 1), &mut out)?;
            if n > MAX_WAL_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the answer is larger than any WAL file ({MAX_WAL_BYTES} bytes)"),
                ));
            }
            out.flush()?;
            Ok(n)
        })();
        return match r {
            Ok(n) if n > 0 => Ok(Received {
                first: tmp,
                spooled: 0,
            }),
            Ok(_) => {
                let _ = std::fs::remove_file(&tmp);
                Err(HelperError::Remote {
                    code: 0,
                    message: "empty answer".into(),
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(HelperError::Local(Error::io("receive", &opts.dest, e)))
            }
        };
    }
    let mut v = BundleWriter {
        opts,
        current: None,
        done: Vec::new(),
        sums: None,
        in_sums: false,
        error: None,
    };
    let mut parser = TarStreamParser::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut failed = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                failed = true;
                break;
            }
        };
        if parser.feed(&buf[..n], &mut v).is_err() {
            failed = true;
            break;
        }
    }
    v.settle(failed)
}

/// A file of a bundle, written under a temporary name, with the checksum of what was written.
struct Pending {
    name: String,
    tmp: PathBuf,
    meter: Meter,
}

impl Pending {
    fn crc(&self) -> u32 {
        self.meter.measured().crc32c.unwrap_or(0)
    }
}

struct BundleWriter<'a> {
    opts: &'a WalRestoreOptions,
    current: Option<(BufWriter<File>, Pending)>,
    done: Vec<Pending>,
    sums: Option<Vec<u8>>,
    in_sums: bool,
    error: Option<Error>,
}

/// Largest WAL file (PostgreSQL's largest segment size).
const MAX_WAL_BYTES: u64 = 1 << 30;

/// Largest checksum entry of a bundle (a line per file).
const MAX_BUNDLE_SUMS: u64 = 1 << 20;

impl BundleWriter<'_> {
    fn stop(&mut self, e: Error) -> pgbak_copy::Error {
        let m = e.to_string();
        self.error.get_or_insert(e);
        pgbak_copy::Error::Aborted(m)
    }

    fn corrupt(&mut self, detail: String) -> pgbak_copy::Error {
        self.stop(Error::Corrupt {
            what: "get-wal answer".into(),
            detail,
        })
    }

    /// Checks every received file against the sums: the requested one must match (else
    /// nothing is handed over); following ones that match are spooled, the others dropped.
    fn settle(mut self, failed: bool) -> std::result::Result<Received, HelperError> {
        if let Some((_, p)) = self.current.take() {
            // An entry cut short.
            let _ = std::fs::remove_file(&p.tmp);
        }
        let done = std::mem::take(&mut self.done);
        let discard = |v: &[Pending]| {
            for p in v {
                let _ = std::fs::remove_file(&p.tmp);
            }
        };
        if let Some(e) = self.error.take() {
            discard(&done);
            return Err(HelperError::Local(e));
        }
        let sums = self
            .sums
            .take()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| parse_sums(&t).ok());
        let (Some(sums), Some(first)) = (sums, done.first()) else {
            discard(&done);
            return Err(HelperError::Remote {
                code: 0,
                message: if failed {
                    "the answer was cut short".into()
                } else {
                    "the answer did not hold the requested file and its checksum".into()
                },
            });
        };
        let matches = |p: &Pending| {
            let want = format!("{:08x}", p.crc());
            sums.iter().any(|(n, d)| *n == p.name && *d == want)
        };
        if !matches(first) {
            discard(&done);
            return Err(HelperError::Local(Error::Corrupt {
                what: format!("WAL file {} from the backup host", first.name),
                detail: "its checksum does not match the one sent with it".into(),
            }));
        }
        let mut spooled = 0;
        for p in &done[1..] {
            let dest =
                self.opts
                    .spool_dir
                    .join(format!("{}{SPOOL_SUM_TAG}{:08x}", p.name, p.crc()));
            if matches(p) && std::fs::rename(&p.tmp, &dest).is_ok() {
                spooled += 1;
            } else {
                tracing::warn!("{} not spooled: no matching checksum came with it", p.name);
                let _ = std::fs::remove_file(&p.tmp);
            }
        }
        Ok(Received {
            first: done[0].tmp.clone(),
            spooled,
        })
    }
}

impl TarVisitor for BundleWriter<'_> {
    fn entry_start(&mut self, e: &TarEntry) -> pgbak_copy::Result<()> {
        let name = e.path.to_string_lossy().into_owned();
        if e.kind == pgbak_copy::EntryKind::File && name == SumKind::Crc32c.file_name() {
            if self.sums.is_some() || e.size > MAX_BUNDLE_SUMS {
                return Err(self.corrupt("unexpected checksum entry".into()));
            }
            self.sums = Some(Vec::new());
            self.in_sums = true;
            return Ok(());
        }
        if self.sums.is_some()
            || e.kind != pgbak_copy::EntryKind::File
            || WalFileName::parse(&name).is_err()
        {
            return Err(self.corrupt(format!("unexpected entry {name:?}")));
        }
        // No more files than were asked for, none larger than a WAL file can be.
        if self.done.len() >= self.opts.parallel.max(1) || e.size > MAX_WAL_BYTES {
            return Err(self.corrupt(format!(
                "entry {name:?} ({} bytes) is more than was asked for",
                e.size
            )));
        }
        let dest = if self.done.is_empty() {
            if name != self.opts.wal_name {
                return Err(
                    self.corrupt(format!("expected {} first, got {name}", self.opts.wal_name))
                );
            }
            self.opts.dest.clone()
        } else {
            self.opts.spool_dir.join(&name)
        };
        let tmp = staging::temp_name(&dest);
        match staging::create_fresh(&tmp, staging::PRIVATE_FILE) {
            Ok(f) => {
                self.current = Some((
                    BufWriter::with_capacity(1 << 20, f),
                    Pending {
                        name,
                        tmp,
                        meter: Meter::new(Digests::CRC32C),
                    },
                ));
                Ok(())
            }
            Err(err) => Err(self.stop(Error::io("create", &tmp, err))),
        }
    }

    fn entry_data(&mut self, data: &[u8]) -> pgbak_copy::Result<()> {
        if self.in_sums {
            if let Some(b) = &mut self.sums {
                b.extend_from_slice(data);
            }
            return Ok(());
        }
        let r = match &mut self.current {
            Some((w, p)) => {
                p.meter.update(data);
                w.write_all(data).map_err(|e| Error::io("write", &p.tmp, e))
            }
            None => Ok(()),
        };
        r.map_err(|e| self.stop(e))
    }

    fn entry_end(&mut self) -> pgbak_copy::Result<()> {
        self.in_sums = false;
        let Some((w, p)) = self.current.take() else {
            return Ok(());
        };
        if let Err(e) = w.into_inner().map_err(|e| e.into_error()) {
            let _ = std::fs::remove_file(&p.tmp);
            return Err(self.stop(Error::io("write", &p.tmp, e)));
        }
        self.done.push(p);
        Ok(())
    }

    fn archive_end(&mut self) -> pgbak_copy::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_words_are_quoted() {
        assert_eq!(shell_quote("put-wal"), "put-wal");
        assert_eq!(shell_quote("/etc/pgbak.conf"), "/etc/pgbak.conf");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn ssh_command_line() {
        let t = SshTarget {
            ssh_command: "ssh -i /k -o BatchMode=yes".into(),
            host: "backup".into(),
            user: Some("pgbak".into()),
            port: Some(2222),
            pgbak_path: "/usr/local/bin/pgbak".into(),
            config: Some("/etc/pg bak.conf".into()),
        };
        let c = t.command(&["put-wal", "main"]).unwrap();
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert_eq!(
            args,
            vec![
                "-i",
                "/k",
                "-o",
                "BatchMode=yes",
                "-p",
                "2222",
                "pgbak@backup",
                "/usr/local/bin/pgbak -c '/etc/pg bak.conf' put-wal main"
            ]
        );
    }

    #[test]
    fn exit_codes_match_barman() {
        assert_eq!(HelperError::Ssh("x".into()).exit_code(true), 3);
        assert_eq!(HelperError::Ssh("x".into()).exit_code(false), 2);
        assert_eq!(HelperError::NotFound("x".into()).exit_code(false), 1);
        assert_eq!(
            HelperError::Remote {
                code: 1,
                message: String::new()
            }
            .exit_code(true),
            2
        );
    }

    #[test]
    fn bad_names_are_refused_before_ssh() {
        let t = SshTarget {
            ssh_command: "/nonexistent/ssh".into(),
            host: "h".into(),
            user: None,
            port: None,
            pgbak_path: "pgbak".into(),
            config: None,
        };
        let d = tempfile::tempdir().unwrap();
        let err = wal_restore(&WalRestoreOptions {
            target: t.clone(),
            server: "main".into(),
            wal_name: "../../etc/passwd".into(),
            dest: d.path().join("x"),
            parallel: 4,
            spool_dir: d.path().join("spool"),
            network_compression: None,
        })
        .unwrap_err();
        assert!(matches!(err, HelperError::Local(_)), "{err}");
        let p = d.path().join("not-a-wal");
        std::fs::write(&p, b"x").unwrap();
        let err = wal_archive(&WalArchiveOptions {
            target: t,
            server: "main".into(),
            wal_path: p,
            compression: Compression::None,
            sums: SumKind::Sha256,
        })
        .unwrap_err();
        assert!(matches!(err, HelperError::Local(_)), "{err}");
    }
}
