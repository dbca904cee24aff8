//! Local staging: the places that must stay on a local filesystem whatever the repository is
//! (restore destinations, spools, incoming and streaming folders, lock files), and the rules for
//! creating anything in them safely.
//!
//! - Everything is private to its owner whatever the umask: folders 0700, files 0600, unless the
//!   caller asks for a mode (PostgreSQL's group access: 0750/0640).
//! - A file is always created fresh (`O_CREAT | O_EXCL | O_NOFOLLOW`): a link planted under its
//!   name is never written through, and a name that exists is an error, never reused.
//! - A file that replaces another is written under a fresh temporary name and renamed over the
//!   old name; rename(2) replaces a link itself, never its target.

use crate::CommitMode;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of the folders pgbak creates.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of the files pgbak creates.
pub const PRIVATE_FILE: u32 = 0o600;

/// Prefix of every temporary name pgbak creates; with [`temp_name`] the name also carries the
/// creating process id, so that leftovers of dead processes can be told from live uploads.
pub const TEMP_PREFIX: &str = ".pgbak-tmp.";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name in the folder of `dest`: `.pgbak-tmp.<pid>.<n>.<file name>`.
pub fn temp_name(dest: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!("{TEMP_PREFIX}{}.{n}.{name}", std::process::id()))
}

/// The process id recorded in a temporary name made by [`temp_name`].
pub fn temp_name_pid(name: &OsStr) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix(TEMP_PREFIX)?;
    rest.split('.').next()?.parse().ok()
}

/// Whether process `pid` exists (on this host, in this PID namespace).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the temporary files made by [`temp_name`] in `dir` (not below it) whose process is
/// gone and which have not changed for `min_age` (a guard against a PID that this host cannot
/// see, as from another PID namespace). Returns the paths removed.
pub fn sweep_dead_temp_files(dir: &Path, min_age: std::time::Duration) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = temp_name_pid(&name) else {
            continue;
        };
        if process_exists(pid) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let idle = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if idle && !meta.is_dir() && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Creates a new file with `mode` (exactly, whatever the umask) for writing. Fails if the name
/// exists in any form (file, folder, link, dangling link).
pub fn create_fresh(path: &Path, mode: u32) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have removed bits the caller asked for (0640).
    if mode & !PRIVATE_FILE != 0 {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(f)
}

/// Opens an existing regular file for reading, refusing a link or anything that is not a file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(io::ErrorKind::InvalidInput, "is a symbolic link")
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a regular file",
        ));
    }
    Ok(f)
}

/// Fsyncs a folder so that entries created, renamed or removed in it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes everything written to the filesystem holding `path` durable (`syncfs(2)`): one call
/// for a whole restored tree instead of one fsync per file.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(path)?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates `dir` and any missing parents with mode 0700, fsyncing each parent that gained an
/// entry. Existing folders are left as they are.
pub fn create_dir_all_private(dir: &Path) -> io::Result<()> {
    create_dir_all_mode(dir, PRIVATE_DIR)
}

/// [`create_dir_all_private`] with another mode for the folders it creates.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        // A link to a folder is accepted where the caller named it (an operator's home may be
        // a link); what pgbak creates below it never is.
        Ok(m) if m.file_type().is_symlink() && dir.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all_mode(parent, mode)?;
        }
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    if mode & !PRIVATE_DIR != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` durably, replacing whatever is there (a file or a link, never
/// written through): a fresh temporary file with `mode`, fsync, rename, fsync of the folder.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = create_fresh(&tmp, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Makes sure `dir` is a folder fit to hold files for this user only: created 0700 when
/// missing; otherwise it must be a real folder (not a link), owned by the effective user, and
/// not writable by group or others. Read access for others is removed. Used for spools in
/// shared places such as `/var/tmp`.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            create_dir_all_private(parent)?;
        }
    }
    match fs::DirBuilder::new().mode(PRIVATE_DIR).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = fs::symlink_metadata(dir)?;
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}; refusing to use it", dir.display()),
        ))
    };
    if m.file_type().is_symlink() {
        return refuse("is a symbolic link".into());
    }
    if !m.is_dir() {
        return refuse("is not a directory".into());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return refuse(format!(
            "belongs to uid {}, not to this user ({me})",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by group or others (mode {:o})",
            m.mode() & 0o7777
        ));
    }
    if m.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))?;
    }
    Ok(())
}

/// A file written durably: to a private temporary name, fsynced, then renamed (or linked, when it
/// must not replace anything) to its final name, and its folder fsynced. Dropped uncommitted, it
/// leaves nothing. The local backend writes its objects this way, and plain backup trees too.
pub struct DurableFile {
    temp: PathBuf,
    dest: PathBuf,
    file: Option<BufWriter<File>>,
}

impl DurableFile {
    /// Starts writing `dest` (its folder is created if missing).
    pub fn create(dest: &Path) -> io::Result<Self> {
        if let Some(parent) = dest.parent() {
            create_dir_all_private(parent)?;
        }
        let temp = temp_name(dest);
        let file = create_fresh(&temp, PRIVATE_FILE)?;
        Ok(DurableFile {
            temp,
            dest: dest.to_path_buf(),
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The final name.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Makes the file durable under its final name.
    pub fn commit(mut self, mode: CommitMode) -> io::Result<()> {
        let file = self.file.take().expect("file present until commit");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        match mode {
            CommitMode::Replace => fs::rename(&self.temp, &self.dest)?,
            CommitMode::CreateNew => {
                // link(2) never replaces an existing name, unlike rename(2).
                let linked = fs::hard_link(&self.temp, &self.dest);
                let _ = fs::remove_file(&self.temp);
                linked?;
            }
        }
        if let Some(parent) = self.dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    }
}

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.as_mut().expect("open").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umask(m: u32) -> u32 {
        // SAFETY: umask has no preconditions.
        unsafe { libc::umask(m as libc::mode_t) as u32 }
    }

    #[test]
    fn created_files_and_folders_are_private_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let old = umask(0);
        let dir = d.path().join("a/b");
        create_dir_all_private(&dir).unwrap();
        let f = dir.join("f");
        create_fresh(&f, PRIVATE_FILE).unwrap();
        write_replace(&dir.join("g"), b"x", PRIVATE_FILE).unwrap();
        umask(old);
        for p in [d.path().join("a"), dir.clone()] {
            assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700, "{p:?}");
        }
        for p in [f, dir.join("g")] {
            assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600, "{p:?}");
        }
        let group = dir.join("h");
        create_fresh(&group, 0o640).unwrap();
        assert_eq!(fs::metadata(&group).unwrap().mode() & 0o777, 0o640);
    }

    #[test]
    fn links_are_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_fresh(&link, PRIVATE_FILE).is_err());
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling).unwrap();
        assert!(create_fresh(&dangling, PRIVATE_FILE).is_err());
        assert!(!d.path().join("nowhere").exists());
        assert!(open_regular(&link).is_err());
        // Replacing a link replaces the link, not its target.
        write_replace(&link, b"new", PRIVATE_FILE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(fs::read(&link).unwrap(), b"new");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 3, "no temp left");
    }

    #[test]
    fn temp_names_carry_the_pid() {
        let t = temp_name(Path::new("/x/000000010000000000000001"));
        let name = t.file_name().unwrap();
        assert_eq!(temp_name_pid(name), Some(std::process::id()));
        assert!(name
            .to_str()
            .unwrap()
            .ends_with(".000000010000000000000001"));
        assert_eq!(temp_name_pid(OsStr::new("000000010000000000000001")), None);
    }

    #[test]
    fn leftovers_of_dead_processes_are_swept() {
        let d = tempfile::tempdir().unwrap();
        // A process that has exited: its PID is free (until reused, which the sweep tolerates
        // by keeping the file).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = temp_name(&d.path().join("000000010000000000000001"));
        fs::write(&mine, b"live").unwrap();
        let theirs = d
            .path()
            .join(format!("{TEMP_PREFIX}{dead}.0.000000010000000000000002"));
        fs::write(&theirs, b"dead").unwrap();
        let other = d.path().join("000000010000000000000003");
        fs::write(&other, b"not temporary").unwrap();
        // Too recent: kept.
        let swept = sweep_dead_temp_files(d.path(), std::time::Duration::from_secs(3600)).unwrap();
        assert!(swept.is_empty());
        let swept = sweep_dead_temp_files(d.path(), std::time::Duration::ZERO).unwrap();
        if process_exists(dead) {
            // The PID was reused at once: nothing may be removed.
            assert!(swept.is_empty());
        } else {
            assert_eq!(swept, vec![theirs.clone()]);
        }
        assert!(mine.exists() && other.exists());
        assert!(!process_exists(0) && process_exists(std::process::id()));
    }

    #[test]
    fn spool_folders_must_be_private_and_ours() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path().join("spool");
        ensure_private_dir(&spool).unwrap();
        assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&spool).unwrap();
        assert_eq!(fs::metadata(&spool).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&spool).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&spool, &link).unwrap();
        let e = ensure_private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }
}
