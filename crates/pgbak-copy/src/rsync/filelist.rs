//! Listing a directory tree with sizes and modification times, on this host or over SSH, with
//! one `find -printf` per tree: a single round trip whatever the number of files.
//!
//! Files that vanish while `find` walks (PostgreSQL drops relations during a backup) are not
//! errors; any other complaint of `find` is.

use super::host::Host;
use crate::{Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The kind of a listed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// A socket, FIFO or device: never copied.
    Other,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the tree's root, never empty, never absolute.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (of the link text for a symlink).
    pub size: u64,
    /// Modification time, whole seconds since the epoch (on the listing host's clock).
    pub mtime: i64,
}

/// The `-printf` format (find itself turns `\t` and `\0` into tab and NUL): kind, size, mtime, then the relative name, NUL-terminated (names may
/// hold tabs and newlines; the name comes last so only the first three tabs separate).
pub const FIND_FORMAT: &str = "%y\\t%s\\t%T@\\t%P\\0";

/// Parses what `find ROOT -printf FIND_FORMAT` printed. The root itself (empty name) is left
/// out; the boolean says whether it was seen.
pub fn parse_find_output(out: &[u8]) -> std::result::Result<(Vec<FileEntry>, bool), String> {
    let mut entries = Vec::new();
    let mut saw_root = false;
    for record in out.split(|b| *b == 0) {
        if record.is_empty() {
            continue;
        }
        let mut fields = record.splitn(4, |b| *b == b'\t');
        let (Some(kind), Some(size), Some(mtime), Some(name)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "malformed listing line {:?}",
                String::from_utf8_lossy(record)
            ));
        };
        let kind = match kind {
            b"f" => EntryKind::File,
            b"d" => EntryKind::Dir,
            b"l" => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
        let size: u64 = std::str::from_utf8(size)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad size {:?} in listing", text(size)))?;
        let mtime =
            parse_mtime(mtime).ok_or_else(|| format!("bad mtime {:?} in listing", text(mtime)))?;
        if name.is_empty() {
            saw_root = true;
            continue;
        }
        let path = PathBuf::from(OsStr::from_bytes(name));
        if path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!("unexpected name {:?} in listing", path.display()));
        }
        entries.push(FileEntry {
            path,
            kind,
            size,
            mtime,
        });
    }
    Ok((entries, saw_root))
}

/// `1700000000.1234567890` (or `-5.5`) to whole seconds, rounded down.
fn parse_mtime(field: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(field).ok()?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // -5.5 is 5.5 s before the epoch: floor is -6.
    if (secs < 0 || whole.starts_with('-')) && frac.bytes().any(|b| b != b'0') {
        return secs.checked_sub(1);
    }
    Some(secs)
}

/// Whether every line `find` wrote on stderr is about a file that vanished during the walk.
fn only_vanished(stderr: &str) -> bool {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| l.contains("No such file or directory"))
}

/// Lists the tree at `root` on `host`.
pub fn list_tree(host: &Host, root: &str) -> Result<Vec<FileEntry>> {
    let out = host.output("find", &["-H", root, "-printf", FIND_FORMAT])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fail =
        |why: String| Error::Config(format!("cannot list {root} on {}: {why}", host.describe()));
    let (entries, saw_root) = parse_find_output(&out.stdout).map_err(&fail)?;
    if !saw_root {
        let said = stderr.trim();
        return Err(fail(if said.is_empty() {
            format!("find exited with {}", out.status)
        } else {
            said.to_string()
        }));
    }
    if !out.status.success() && !only_vanished(&stderr) {
        return Err(fail(stderr.trim().to_string()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings() {
        let out = b"d\t4096\t1700000000.5\t\0f\t8192\t1700000001.0000000000\tbase/1/1259\0l\t9\t1699999999.9\tpg_tblspc/16384\0d\t4096\t1700000000\tweird\tname\nx\0";
        let (e, root) = parse_find_output(out).unwrap();
        assert!(root);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].path, PathBuf::from("base/1/1259"));
        assert_eq!(
            (e[0].kind, e[0].size, e[0].mtime),
            (EntryKind::File, 8192, 1700000001)
        );
        assert_eq!((e[1].kind, e[1].mtime), (EntryKind::Symlink, 1699999999));
        assert_eq!(e[2].path, PathBuf::from("weird\tname\nx"));
        for bad in [
            &b"f\t1\t2\0"[..],
            b"f\tx\t2\tname\0",
            b"f\t1\tnow\tname\0",
            b"f\t1\t2\t../escape\0",
            b"f\t1\t2\t/abs\0",
        ] {
            assert!(
                parse_find_output(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn mtimes_round_down() {
        assert_eq!(parse_mtime(b"12.999"), Some(12));
        assert_eq!(parse_mtime(b"12"), Some(12));
        assert_eq!(parse_mtime(b"-5.5"), Some(-6));
        assert_eq!(parse_mtime(b"-5.0"), Some(-5));
        assert_eq!(parse_mtime(b"1.2.3"), None);
    }

    #[test]
    fn lists_a_local_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), b"12345").unwrap();
        std::os::unix::fs::symlink("/elsewhere", d.path().join("link")).unwrap();
        let root = d.path().to_str().unwrap();
        let mut e = list_tree(&Host::Local, root).unwrap();
        e.sort_by(|a, b| a.path.cmp(&b.path));
        let names: Vec<_> = e
            .iter()
            .map(|e| (e.path.to_str().unwrap(), e.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a", EntryKind::Dir),
                ("a/b", EntryKind::Dir),
                ("a/b/f", EntryKind::File),
                ("link", EntryKind::Symlink)
            ]
        );
        assert_eq!(e[2].size, 5);
        let missing = list_tree(&Host::Local, &format!("{root}/missing")).unwrap_err();
        assert!(missing.to_string().contains("No such file"), "{missing}");
    }
}
