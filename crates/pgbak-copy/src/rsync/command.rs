//! One rsync run: its command line (a bucket's file list on stdin with `--files-from`), and
//! what it reported (`--stats`), with PostgreSQL's files that vanish mid-copy (a dropped table)
//! treated as the success they are: WAL replay recreates or removes them.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How files unchanged since an earlier backup are taken from it instead of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReuseMode {
    /// Hard links to the earlier backup's files (`--link-dest`): no space, no bytes.
    Link,
    /// Local copies of the earlier backup's files (`--copy-dest`): space, but no network.
    Copy,
}

impl ReuseMode {
    /// The configuration word (`link`, `copy`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReuseMode::Link => "link",
            ReuseMode::Copy => "copy",
        }
    }

    /// Reads `link` or `copy`.
    pub fn parse(word: &str) -> Option<ReuseMode> {
        match word.trim().to_ascii_lowercase().as_str() {
            "link" => Some(ReuseMode::Link),
            "copy" => Some(ReuseMode::Copy),
            _ => None,
        }
    }
}

/// Settings shared by every rsync run of a copy.
#[derive(Clone, Debug)]
pub struct RsyncSettings {
    /// The rsync program on this host.
    pub program: PathBuf,
    /// `--rsync-path` on the remote host, when rsync is not on its PATH.
    pub remote_program: Option<String>,
    /// `-z`.
    pub compress: bool,
    /// `--bwlimit` in kB/s for each run.
    pub bwlimit_kbps: Option<u64>,
}

impl Default for RsyncSettings {
    fn default() -> Self {
        RsyncSettings {
            program: PathBuf::from("rsync"),
            remote_program: None,
            compress: false,
            bwlimit_kbps: None,
        }
    }
}

/// One run: the list is written to rsync's stdin.
#[derive(Clone, Debug)]
pub struct RsyncRun {
    /// Source, as rsync names it (`host:/dir/` or `/dir/`).
    pub source: String,
    /// Destination, as rsync names it.
    pub dest: String,
    /// `-e` command when one side is remote.
    pub rsh: Option<String>,
    /// Relative names, each followed by NUL.
    pub list: Vec<u8>,
    /// An earlier copy of the same tree and how to use it.
    pub reuse: Option<(ReuseMode, PathBuf)>,
    /// Compare contents instead of size and time (for files that may have changed within the
    /// time resolution of the earlier copy).
    pub checksum: bool,
    /// Overrides [`RsyncSettings::bwlimit_kbps`] (a tablespace's own limit).
    pub bwlimit_kbps: Option<u64>,
}

/// What one or more rsync runs reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsyncStats {
    /// Regular files in the lists.
    pub files: u64,
    /// Regular files sent (not reused).
    pub files_transferred: u64,
    /// Bytes of the files in the lists.
    pub total_size: u64,
    /// Bytes of the files sent (the rest were reused as they were).
    pub transferred_size: u64,
    /// Bytes sent as literal data (the rest came from a basis file).
    pub literal: u64,
    /// Bytes on the wire towards this host.
    pub bytes_received: u64,
    /// Bytes on the wire from this host.
    pub bytes_sent: u64,
}

impl RsyncStats {
    /// Adds another run's numbers.
    pub fn add(&mut self, o: &RsyncStats) {
        self.files += o.files;
        self.files_transferred += o.files_transferred;
        self.total_size += o.total_size;
        self.transferred_size += o.transferred_size;
        self.literal += o.literal;
        self.bytes_received += o.bytes_received;
        self.bytes_sent += o.bytes_sent;
    }
}

/// Reads the numbers of `--stats` (rsync 3.x, with or without thousands separators).
pub fn parse_stats(stdout: &str) -> RsyncStats {
    let mut s = RsyncStats::default();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = || -> u64 {
            value
                .split_whitespace()
                .next()
                .map(|v| v.replace([',', '.'], ""))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        match key.trim() {
            "Number of regular files transferred" => s.files_transferred = number(),
            "Total file size" => s.total_size = number(),
            "Total transferred file size" => s.transferred_size = number(),
            "Literal data" => s.literal = number(),
            "Total bytes sent" => s.bytes_sent = number(),
            "Total bytes received" => s.bytes_received = number(),
            "Number of files" => {
                // "Number of files: 12 (reg: 10, dir: 2)"
                s.files = value
                    .split_once("reg:")
                    .and_then(|(_, r)| {
                        r.trim()
                            .split([',', ')'])
                            .next()
                            .map(|v| v.replace([',', '.'], ""))
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    s
}

/// Whether a failed run only lost files that vanished while it ran (exit 23 or 24 with nothing
/// but "vanished" and "No such file" complaints).
pub fn only_vanished_files(code: Option<i32>, stderr: &str) -> bool {
    if !matches!(code, Some(23) | Some(24)) {
        return false;
    }
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .all(|l| {
            l.starts_with("file has vanished:")
                || (l.contains("link_stat") && l.contains("No such file or directory"))
                || l.starts_with("rsync warning: some files vanished")
                || l.starts_with("rsync error: some files/attrs were not transferred")
                || l.starts_with("rsync error: some files vanished")
        })
}

/// The arguments of `run` (without the program).
pub fn arguments(settings: &RsyncSettings, run: &RsyncRun) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        // -a without -r: with --files-from only the listed names are copied; listed
        // directories are created but not walked.
        "-a".into(),
        // What lands in the catalogue or a restored tree is never writable by the group nor
        // readable by others (at most PostgreSQL's group access, 0750/0640).
        "--chmod=g-w,o-rwx".into(),
        // Names travel inside rsync's protocol, never through the remote shell.
        "--protect-args".into(),
        "--from0".into(),
        "--files-from=-".into(),
        "--stats".into(),
    ];
    if settings.compress {
        a.push("-z".into());
    }
    if let Some(kbps) = run.bwlimit_kbps.or(settings.bwlimit_kbps) {
        a.push(format!("--bwlimit={kbps}").into());
    }
    if run.checksum {
        a.push("--checksum".into());
    }
    if let Some((mode, dir)) = &run.reuse {
        let flag = match mode {
            ReuseMode::Link => "--link-dest=",
            ReuseMode::Copy => "--copy-dest=",
        };
        let mut f = OsString::from(flag);
        f.push(dir.as_os_str());
        a.push(f);
    }
    if let Some(rsh) = &run.rsh {
        a.push("-e".into());
        a.push(rsh.into());
    }
    if let Some(p) = &settings.remote_program {
        a.push(format!("--rsync-path={p}").into());
    }
    a.push(run.source.clone().into());
    a.push(run.dest.clone().into());
    a
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsyncFailure {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// rsync's error lines.
    pub stderr: String,
}

impl std::fmt::Display for RsyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let said: Vec<&str> = self
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = said.len().saturating_sub(6);
        match self.code {
            Some(c) => write!(f, "rsync exited with code {c}")?,
            None => write!(f, "rsync was killed by a signal")?,
        }
        if !said.is_empty() {
            write!(f, ": {}", said[tail..].join("; "))?;
        }
        Ok(())
    }
}

/// Runs rsync and returns its statistics.
pub fn execute(settings: &RsyncSettings, run: &RsyncRun) -> Result<RsyncStats, RsyncFailure> {
    let mut child = Command::new(&settings.program)
        .args(arguments(settings, run))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RsyncFailure {
            code: None,
            stderr: format!("cannot run {}: {e}", settings.program.display()),
        })?;
    let list = run.list.clone();
    let stdin = child.stdin.take();
    // Writing the list on its own thread: rsync may fill its stdout before it reads all of it.
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&list);
        }
    });
    let out = child.wait_with_output().map_err(|e| RsyncFailure {
        code: None,
        stderr: format!("cannot wait for rsync: {e}"),
    })?;
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || only_vanished_files(out.status.code(), &stderr) {
        return Ok(parse_stats(&stdout));
    }
    Err(RsyncFailure {
        code: out.status.code(),
        stderr: stderr.into_owned(),
    })
}

/// Builds a NUL-separated list of names for `--files-from`.
pub fn file_list<'a>(names: impl IntoIterator<Item = &'a Path>) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_os_str().as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "\nNumber of files: 4 (reg: 2, dir: 2)\nNumber of created files: 4 (reg: 2, dir: 2)\n\
        Number of deleted files: 0\nNumber of regular files transferred: 2\nTotal file size: 100,003 bytes\n\
        Total transferred file size: 100,003 bytes\nLiteral data: 100,003 bytes\nMatched data: 0 bytes\n\
        File list size: 0\nFile list generation time: 0.001 seconds\nFile list transfer time: 0.000 seconds\n\
        Total bytes sent: 100,278\nTotal bytes received: 63\n\nsent 100,278 bytes  received 63 bytes  200,682.00 bytes/sec\n";

    #[test]
    fn reads_stats() {
        let s = parse_stats(STATS);
        assert_eq!(
            s,
            RsyncStats {
                files: 2,
                files_transferred: 2,
                total_size: 100_003,
                transferred_size: 100_003,
                literal: 100_003,
                bytes_received: 63,
                bytes_sent: 100_278,
            }
        );
        assert_eq!(parse_stats("garbage\n: :\n"), RsyncStats::default());
    }

    #[test]
    fn vanished_files_are_not_failures() {
        let vanished = "file has vanished: \"/pg/base/5/16400\"\nrsync warning: some files vanished before they could be transferred (code 24) at main.c(1338) [generator=3.2.7]\n";
        assert!(only_vanished_files(Some(24), vanished));
        let missing = "rsync: [sender] link_stat \"/pg/base/5/16401\" failed: No such file or directory (2)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338)\n";
        assert!(only_vanished_files(Some(23), missing));
        let denied = "rsync: [sender] send_files failed to open \"/pg/x\": Permission denied (13)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23)\n";
        assert!(!only_vanished_files(Some(23), denied));
        assert!(!only_vanished_files(Some(12), vanished));
        assert!(!only_vanished_files(None, ""));
    }

    #[test]
    fn command_lines() {
        let settings = RsyncSettings {
            compress: true,
            bwlimit_kbps: Some(1000),
            ..Default::default()
        };
        let run = RsyncRun {
            source: "pg@db:/data/".into(),
            dest: "/backup/data/".into(),
            rsh: Some("ssh -S /tmp/c".into()),
            list: Vec::new(),
            reuse: Some((ReuseMode::Link, PathBuf::from("/backup/prev/data"))),
            checksum: true,
            bwlimit_kbps: Some(500),
        };
        let a: Vec<String> = arguments(&settings, &run)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        for want in [
            "-a",
            "--chmod=g-w,o-rwx",
            "--files-from=-",
            "--from0",
            "-z",
            "--bwlimit=500",
            "--checksum",
            "--link-dest=/backup/prev/data",
            "-e",
            "ssh -S /tmp/c",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        assert!(!a.contains(&"-r".to_string()));
        assert_eq!(&a[a.len() - 2..], &["pg@db:/data/", "/backup/data/"]);
    }

    #[test]
    fn runs_locally_with_reuse() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::write(src.join("a/one"), vec![1u8; 5000]).unwrap();
        std::fs::write(src.join("two"), vec![2u8; 300]).unwrap();
        let names = [
            Path::new("a"),
            Path::new("a/one"),
            Path::new("two"),
            Path::new("gone"),
        ];
        let run = |dest: &Path, reuse: Option<(ReuseMode, PathBuf)>| RsyncRun {
            source: format!("{}/", src.display()),
            dest: format!("{}/", dest.display()),
            rsh: None,
            list: file_list(names),
            reuse,
            checksum: false,
            bwlimit_kbps: None,
        };
        let first = d.path().join("first");
        let s = execute(&RsyncSettings::default(), &run(&first, None)).unwrap();
        assert_eq!((s.files_transferred, s.transferred_size), (2, 5300));
        assert_eq!(std::fs::read(first.join("two")).unwrap(), vec![2u8; 300]);

        std::fs::write(src.join("two"), vec![3u8; 301]).unwrap();
        let second = d.path().join("second");
        let s = execute(
            &RsyncSettings::default(),
            &run(&second, Some((ReuseMode::Link, first.clone()))),
        )
        .unwrap();
        assert_eq!(
            (s.files_transferred, s.transferred_size, s.total_size),
            (1, 301, 5301)
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(second.join("a/one")).unwrap().nlink(), 2);

        let bad = RsyncSettings {
            program: PathBuf::from("/nonexistent/rsync"),
            ..Default::default()
        };
        let e = execute(&bad, &run(&d.path().join("x"), None)).unwrap_err();
        assert!(e.to_string().contains("cannot run"), "{e}");
    }
}
