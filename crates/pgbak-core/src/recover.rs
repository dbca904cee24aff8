//! `pgbak recover`: restore a backup into a directory and prepare it for point-in-time recovery.
//!
//! The data files come back from the catalogue (a plain tree or tar streams), tablespaces to their
//! original or relocated places, and the WAL either through `pgbak get-wal` as `restore_command`
//! or copied (checked and decompressed) into `pgbak_wal/` inside the destination. The recovery
//! settings go into `postgresql.auto.conf` with a `recovery.signal` (or `standby.signal`).

use crate::backup_scan::StoredArchive;
use crate::catalogue::BackupInfo;
use crate::hooks::{HookEnv, HookEvent, Hooks};
use crate::server::Server;
use crate::{Error, ErrorKind, Result};
use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use pgbak_compress::Encryptor;
use pgbak_copy::ExtractOptions;
use pgbak_storage::staging;
use pgbak_wal::Lsn;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder inside the destination that holds copied WAL when `--get-wal` is not used.
pub const WAL_SPOOL_DIR: &str = "pgbak_wal";

/// What the server does when recovery reaches its target (`recovery_target_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TargetAction {
    /// Pause, waiting for `pg_wal_replay_resume()` (PostgreSQL's default).
    Pause,
    /// End recovery and accept writes.
    Promote,
    /// Stop the server.
    Shutdown,
}

impl TargetAction {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetAction::Pause => "pause",
            TargetAction::Promote => "promote",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

impl std::str::FromStr for TargetAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pause" => Ok(TargetAction::Pause),
            "promote" => Ok(TargetAction::Promote),
            "shutdown" => Ok(TargetAction::Shutdown),
            _ => Err(Error::Usage(format!(
                "invalid target action '{s}' (pause, promote or shutdown)"
            ))),
        }
    }
}

/// Where recovery should stop. At most one of `time`, `xid`, `lsn`, `name` and `immediate`;
/// none replays all the WAL there is.
///
/// ```
/// use pgbak_core::{RecoveryTarget, TargetAction};
/// let target = RecoveryTarget::time("2026-12-05 10:00:00+00").then(TargetAction::Promote);
/// assert_eq!(target.action, Some(TargetAction::Promote));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecoveryTarget {
    pub time: Option<String>,
    pub xid: Option<String>,
    pub lsn: Option<String>,
    pub name: Option<String>,
    pub immediate: bool,
    /// `current`, `latest` or a timeline number.
    pub tli: Option<String>,
    /// Stop just before the target instead of just after.
    pub exclusive: bool,
    /// What the server does at the target.
    pub action: Option<TargetAction>,
}

impl RecoveryTarget {
    /// Stop at a time (with a zone; without one, this host's local time).
    pub fn time(t: impl Into<String>) -> Self {
        RecoveryTarget {
            time: Some(t.into()),
            ..Default::default()
        }
    }

    /// Stop at a transaction id.
    pub fn xid(x: impl Into<String>) -> Self {
        RecoveryTarget {
            xid: Some(x.into()),
            ..Default::default()
        }
    }

    /// Stop at an LSN (`X/Y`).
    pub fn lsn(l: impl Into<String>) -> Self {
        RecoveryTarget {
            lsn: Some(l.into()),
            ..Default::default()
        }
    }

    /// Stop at a restore point (such as `pgbak_<backup id>`).
    pub fn name(n: impl Into<String>) -> Self {
        RecoveryTarget {
            name: Some(n.into()),
            ..Default::default()
        }
    }

    /// Stop as soon as the backup is consistent.
    pub fn immediate() -> Self {
        RecoveryTarget {
            immediate: true,
            ..Default::default()
        }
    }

    /// The same target with `action` at the end.
    pub fn then(mut self, action: TargetAction) -> Self {
        self.action = Some(action);
        self
    }
}

/// Everything `recover` needs to know; [`RecoverOptions::new`] sets what is required and leaves
/// the rest to the server's configuration.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecoverOptions {
    /// A backup id or `latest`/`last`/`oldest`/`first`.
    pub backup_id: String,
    pub dest: PathBuf,
    pub target: RecoveryTarget,
    /// Tablespace relocations: name -> new location.
    pub tablespaces: Vec<(String, PathBuf)>,
    pub standby_mode: bool,
    /// Use `pgbak get-wal` as restore_command instead of copying the WAL. `None`: as the
    /// server's `recovery_options` say (`get-wal`), never for a remote recovery.
    pub get_wal: Option<bool>,
    /// Restore into a destination that is not empty.
    pub force: bool,
    /// The pgbak binary and configuration file that restore_command should call.
    pub pgbak_exe: PathBuf,
    pub config_file: Option<PathBuf>,
    /// Restore onto another host reached with this ssh command (Barman's
    /// `--remote-ssh-command`); `dest` and the tablespace locations are paths there.
    pub remote_ssh_command: Option<String>,
    /// Parallel rsync runs of a remote recovery, and archived WAL files copied at once into a
    /// local one (default `parallel_jobs`).
    pub jobs: Option<u32>,
    /// Bandwidth limit of a remote recovery in kB/s (default `bandwidth_limit`).
    pub bwlimit: Option<u64>,
    /// Restore onto an older copy of the same cluster in `dest`, writing only the files that
    /// differ and removing what the backup does not have (Barman's `--delta-restore`).
    /// `None`: as the server's `recovery_options` say (`delta-restore`), never for a remote
    /// recovery.
    pub delta_restore: Option<bool>,
    /// Counts the bytes of the data restored (written or, in a delta restore, compared) as they
    /// go, against the data's size as total: for a front end's progress bar.
    pub progress: Option<pgbak_copy::Meter>,
}

impl RecoverOptions {
    /// Options to restore `backup_id` (an id, `latest`, `oldest`, ...) into `dest`, everything
    /// else as the server's configuration says; restore_command calls the `pgbak` found on PATH.
    pub fn new(backup_id: impl Into<String>, dest: impl Into<PathBuf>) -> Self {
        RecoverOptions {
            backup_id: backup_id.into(),
            dest: dest.into(),
            pgbak_exe: PathBuf::from("pgbak"),
            ..Default::default()
        }
    }

    /// Whether restore_command is `pgbak get-wal` (once resolved by `recover`).
    pub(crate) fn get_wal_on(&self) -> bool {
        self.get_wal == Some(true)
    }

    /// Whether this is a delta restore (once resolved by `recover`).
    pub(crate) fn delta_on(&self) -> bool {
        self.delta_restore == Some(true)
    }

    /// The options with the server's defaults filled in.
    fn resolved(&self, server: &Server) -> RecoverOptions {
        let by_config = |name: &str| {
            self.remote_ssh_command.is_none()
                && server.config.recovery_options.iter().any(|o| o == name)
        };
        RecoverOptions {
            get_wal: Some(self.get_wal.unwrap_or_else(|| by_config("get-wal"))),
            delta_restore: Some(
                self.delta_restore
                    .unwrap_or_else(|| by_config("delta-restore")),
            ),
            ..self.clone()
        }
    }
}

/// What was done.
#[derive(Clone, Debug)]
pub struct RecoverySummary {
    pub backup: BackupInfo,
    pub dest: PathBuf,
    pub wal_files_copied: usize,
    pub restore_command: String,
    pub settings: Vec<(String, String)>,
    /// What the data restore wrote, kept and removed.
    pub restore: crate::restore_tree::RestoreReport,
}

/// Parses a recovery target time the way an operator writes it. A time without a zone is local
/// time of this host.
pub fn parse_target_time(s: &str) -> Result<DateTime<FixedOffset>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d);
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Ok(d);
        }
    }
    let t_utc = t.strip_suffix(" UTC").or_else(|| t.strip_suffix("Z"));
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Some(u) = t_utc {
            if let Ok(n) = NaiveDateTime::parse_from_str(u, f) {
                return Ok(Utc.from_utc_datetime(&n).fixed_offset());
            }
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Local
                .from_local_datetime(&n)
                .single()
                .map(|d| d.fixed_offset())
                .ok_or_else(|| bad_time(s));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let n = d.and_hms_opt(0, 0, 0).ok_or_else(|| bad_time(s))?;
        return Local
            .from_local_datetime(&n)
            .single()
            .map(|d| d.fixed_offset())
            .ok_or_else(|| bad_time(s));
    }
    Err(bad_time(s))
}

fn bad_time(s: &str) -> Error {
    Error::Usage(format!(
        "invalid target time '{s}' (expected e.g. '2024-05-01 12:00:00+00')"
    ))
}

/// Quotes a value for postgresql.conf.
fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `restore_command` that calls `pgbak get-wal` on this host. Every word is quoted for the
/// shell PostgreSQL runs it with, and every `%` is doubled so that PostgreSQL replaces only the
/// `%f` and `%p` pgbak means.
pub fn get_wal_restore_command(opts: &RecoverOptions, server: &str) -> Result<String> {
    let exe = path_word(&opts.pgbak_exe, "the pgbak program")?;
    let mut words = vec![exe];
    if let Some(c) = &opts.config_file {
        words.push("-c".into());
        words.push(path_word(c, "the configuration file")?);
    }
    words.push("get-wal".into());
    words.push(server.to_string());
    let mut cmd = words
        .iter()
        .map(|w| pgbak_copy::rsync::shell::quote(w).replace('%', "%%"))
        .collect::<Vec<_>>()
        .join(" ");
    cmd.push_str(" %f %p");
    check_setting_text("restore_command", &cmd)?;
    Ok(cmd)
}

fn path_word(p: &Path, what: &str) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Usage(format!("{what} {} is not a UTF-8 path", p.display())))
}

/// Refuses a value that PostgreSQL's configuration files cannot hold: control characters
/// (a newline would end the setting and start another line).
fn check_setting_text(what: &str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::Usage(format!(
            "{what} cannot contain the control character {c:?}"
        ))),
        None => Ok(()),
    }
}

/// Checks the target against itself and against the backup; returns the recovery settings.
pub fn recovery_settings(
    target: &RecoveryTarget,
    backup: &BackupInfo,
) -> Result<Vec<(String, String)>> {
    let given = [
        target.time.is_some(),
        target.xid.is_some(),
        target.lsn.is_some(),
        target.name.is_some(),
        target.immediate,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err(Error::Usage("give at most one of --target-time, --target-xid, --target-lsn, --target-name, --target-immediate".into()));
    }
    for (what, v) in [
        ("--target-time", &target.time),
        ("--target-xid", &target.xid),
        ("--target-lsn", &target.lsn),
        ("--target-name", &target.name),
        ("--target-tli", &target.tli),
    ] {
        if let Some(v) = v {
            check_setting_text(what, v)?;
        }
    }
    let mut s = Vec::new();
    if let Some(t) = &target.time {
        let when = parse_target_time(t)?;
        if let Some(end) = backup.end_time {
            if when.with_timezone(&Utc) < end {
                return Err(Error::Usage(format!(
                    "target time {} is before the end of backup {} ({}); choose a later time or an older backup",
                    when.to_rfc3339(),
                    backup.backup_id,
                    end.to_rfc3339()
                )));
            }
        }
        s.push((
            "recovery_target_time".into(),
            when.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string(),
        ));
    }
    if let Some(x) = &target.xid {
        if x.parse::<u64>().is_err() {
            return Err(Error::Usage(format!("invalid target xid '{x}'")));
        }
        s.push(("recovery_target_xid".into(), x.clone()));
    }
    if let Some(l) = &target.lsn {
        let lsn: Lsn = l
            .parse()
            .map_err(|_| Error::Usage(format!("invalid target LSN '{l}'")))?;
        if let Some(end) = &backup.end_lsn {
            let end: Lsn = end.parse()?;
            if lsn < end {
                return Err(Error::Usage(format!(
                    "target LSN {lsn} is before the end of backup {} ({end})",
                    backup.backup_id
                )));
            }
        }
        s.push(("recovery_target_lsn".into(), lsn.to_string()));
    }
    if let Some(n) = &target.name {
        s.push(("recovery_target_name".into(), n.clone()));
    }
    if target.immediate {
        s.push(("recovery_target".into(), "immediate".into()));
    }
    if target.exclusive {
        if given == 0 || target.immediate {
            return Err(Error::Usage(
                "--exclusive needs --target-time, --target-xid, --target-lsn or --target-name"
                    .into(),
            ));
        }
        s.push(("recovery_target_inclusive".into(), "false".into()));
    }
    if let Some(tli) = &target.tli {
        if !(tli == "current" || tli == "latest" || tli.parse::<u32>().is_ok_and(|n| n > 0)) {
            return Err(Error::Usage(format!(
                "invalid target timeline '{tli}' (a number, 'current' or 'latest')"
            )));
        }
        s.push(("recovery_target_timeline".into(), tli.clone()));
    }
    if let Some(a) = target.action {
        if given == 0 {
            return Err(Error::Usage(
                "--target-action needs a recovery target".into(),
            ));
        }
        s.push(("recovery_target_action".into(), a.as_str().into()));
    }
    Ok(s)
}

/// Bytes available to an unprivileged user on the filesystem holding `path` (or its nearest
/// existing parent).
pub fn available_space(path: &Path) -> Result<u64> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            break;
        }
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Usage(format!("bad path {}", p.display())))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io("statvfs", &p, std::io::Error::last_os_error()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

pub(crate) fn ensure_empty_or_missing(path: &Path, force: bool, what: &str) -> Result<()> {
    match fs::read_dir(path) {
        Ok(mut rd) => {
            if rd.next().is_some() && !force {
                return Err(Error::Usage(format!(
                    "{what} {} is not empty (use --force to restore into it anyway)",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::Usage(format!(
            "{what} {} is not a directory",
            path.display()
        ))),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    staging::create_dir_all_private(path).map_err(|e| Error::io("create", path, e))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("chmod", path, e))
}

/// Writes one of the files recovery adds to a restored tree: created fresh and renamed into
/// place (a link under that name is replaced, never written through), fsynced.
pub(crate) fn write_recovery_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    staging::write_replace(&path, bytes, staging::PRIVATE_FILE)
        .map_err(|e| Error::io("write", &path, e))
}

/// Restores a backup and writes the recovery configuration.
pub fn recover(server: &Server, opts: &RecoverOptions) -> Result<RecoverySummary> {
    let opts = &opts.resolved(server);
    let backup = server.catalogue().resolve(&opts.backup_id)?;
    // Hold the backup's lock (shared: restores may run side by side) so that no delete removes
    // it while it is copied; read it again under the lock in case a delete finished meanwhile.
    let _in_use = crate::backup_lock::lock_backup_shared(server, &backup.backup_id)?;
    let backup = server.catalogue().resolve(&backup.backup_id)?;
    let chain = crate::incremental::RestoreChain::prepare(server, &backup)?;
    let mut settings = recovery_settings(&opts.target, &backup)?;
    let get_wal_command = match opts.get_wal_on() && opts.remote_ssh_command.is_none() {
        true => Some(get_wal_restore_command(opts, server.name())?),
        false => None,
    };
    let hooks = Hooks::new(server, HookEvent::Recovery);
    let hook_env = HookEnv::for_recovery(
        server,
        &backup,
        &opts.dest,
        &opts.tablespaces,
        opts.remote_ssh_command.as_deref(),
        &hook_options(opts),
    );
    hooks.run_pre(&hook_env)?;

    // Where each tablespace goes.
    let mut locations: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for t in &backup.tablespaces {
        locations.insert(t.oid, PathBuf::from(&t.location));
    }
    for (name, loc) in &opts.tablespaces {
        let t = backup
            .tablespaces
            .iter()
            .find(|t| &t.name == name)
            .ok_or_else(|| {
                let known: Vec<_> = backup.tablespaces.iter().map(|t| t.name.as_str()).collect();
                Error::Usage(format!(
                    "backup {} has no tablespace '{name}' (it has: {})",
                    backup.backup_id,
                    known.join(", ")
                ))
            })?;
        if !loc.is_absolute() {
            return Err(Error::Usage(format!(
                "tablespace location {} must be an absolute path",
                loc.display()
            )));
        }
        check_setting_text(
            "a tablespace location",
            &path_word(loc, "tablespace location")?,
        )?;
        locations.insert(t.oid, loc.clone());
    }

    // Check everything before writing anything.
    let archive = server.wal_archive()?;
    let target_tli = opts
        .target
        .tli
        .as_deref()
        .map(str::parse::<crate::timelines::TargetTimeline>)
        .transpose()?;
    let mut plan = archive.backup_recovery_plan(&backup, target_tli)?;
    // An immediate target stops where the backup is consistent: only the WAL the backup itself
    // needs is copied, not everything archived after it.
    if opts.target.immediate {
        let needed = archive.backup_required_segments(&backup)?;
        plan.segments.retain(|s| needed.contains(s));
    }
    if let Some(ssh) = &opts.remote_ssh_command {
        let remote = crate::remote_recover::RemotePlan {
            backup: &backup,
            chain: &chain,
            locations: &locations,
            archive: &archive,
            wal: &plan,
            settings,
        };
        let summary = crate::remote_recover::recover_remote(server, opts, ssh, remote)?;
        hooks.run_post(&hook_env);
        return Ok(summary);
    }
    if opts.delta_on() && chain.is_incremental() {
        return Err(Error::Usage(format!(
            "--delta-restore does not apply to backup {}, an incremental backup: restore it into an empty destination",
            backup.backup_id
        )));
    }
    crate::restore_tree::check_destinations(&backup, opts, &locations)?;
    let needed = chain.needed_bytes();
    let avail = available_space(&opts.dest)?;
    // A delta restore replaces files of the older copy: the space they hold comes back.
    if avail < needed && !opts.delta_on() {
        return Err(Error::kind_of(
            ErrorKind::NoSpace,
            format!(
            "not enough free space in {}: the backup needs {needed} bytes, {avail} are available",
            opts.dest.display()
        ),
        ));
    }

    create_private_dir(&opts.dest)?;
    let jobs = opts.jobs.unwrap_or(server.config.parallel_jobs).max(1) as usize;
    let restore =
        crate::restore_tree::restore_data(server, &backup, &chain, opts, &locations, jobs)?;
    relink_tablespaces(&opts.dest, &locations)?;

    // WAL.
    let (restore_command, copied) = if let Some(cmd) = get_wal_command {
        (cmd, 0)
    } else {
        let spool = opts.dest.join(WAL_SPOOL_DIR);
        create_private_dir(&spool)?;
        let n = copy_needed_wal(&archive, &plan, &spool, jobs)?;
        (format!("cp {WAL_SPOOL_DIR}/%f %p"), n)
    };
    settings.insert(0, ("restore_command".into(), restore_command.clone()));
    // Like Barman: the restored server must not archive into the catalogue it came from.
    settings.push(("archive_command".into(), "false".into()));
    write_auto_conf(&opts.dest, &backup, &settings)?;
    for stale in ["postmaster.pid", "postmaster.opts"] {
        let _ = fs::remove_file(opts.dest.join(stale));
    }
    // Everything restored so far (the copied WAL above all) is durable before the signal file
    // that makes PostgreSQL use it.
    staging::sync_filesystem(&opts.dest).map_err(|e| Error::io("sync", &opts.dest, e))?;
    write_recovery_file(&opts.dest, signal_file(opts.standby_mode), b"")?;
    hooks.run_post(&hook_env);
    Ok(RecoverySummary {
        backup,
        dest: opts.dest.clone(),
        wal_files_copied: copied,
        restore_command,
        settings,
        restore,
    })
}

/// The file that starts recovery in the restored server.
pub(crate) fn signal_file(standby_mode: bool) -> &'static str {
    if standby_mode {
        "standby.signal"
    } else {
        "recovery.signal"
    }
}

/// The recovery options given, as `BARMAN_RECOVER_OPTIONS` reports them (unset ones left out).
fn hook_options(opts: &RecoverOptions) -> BTreeMap<String, serde_json::Value> {
    let t = &opts.target;
    let mut m = BTreeMap::new();
    let texts = [
        ("target_time", &t.time),
        ("target_xid", &t.xid),
        ("target_lsn", &t.lsn),
        ("target_name", &t.name),
        ("target_tli", &t.tli),
        ("target_action", &t.action.map(|a| a.as_str().to_string())),
    ];
    for (k, v) in texts {
        if let Some(v) = v {
            m.insert(k.to_string(), serde_json::Value::String(v.clone()));
        }
    }
    let flags = [
        ("target_immediate", t.immediate),
        ("exclusive", t.exclusive),
        ("standby_mode", opts.standby_mode),
        ("get_wal", opts.get_wal_on()),
        ("delta_restore", opts.delta_on()),
    ];
    for (k, v) in flags {
        if v {
            m.insert(k.to_string(), serde_json::Value::Bool(true));
        }
    }
    m
}

/// The stream `<stem>` of the tar-format backup `backup`, whatever its compression suffix.
pub(crate) fn find_archive(
    store: &dyn pgbak_storage::StorageBackend,
    backup: &BackupInfo,
    stem: &str,
) -> Result<StoredArchive> {
    let data = format!("{}/data/", backup.backup_id);
    for m in store.list_dir(&data)?.objects {
        let name = &m.key[data.len()..];
        if name == stem || name.starts_with(&format!("{stem}.")) {
            return Ok(StoredArchive::new(m.key, Some(backup)));
        }
    }
    Err(Error::Corrupt {
        what: format!("backup folder {}/{data}", store.describe()),
        detail: format!("{stem} is missing"),
    })
}

/// Extracts the tar stream `archive` of `store` (any compression, detected; decrypted with
/// `encryptor` when it is encrypted; checked against what the backup recorded) below `dest`.
pub(crate) fn extract_archive(
    store: &dyn pgbak_storage::StorageBackend,
    encryptor: Option<&Arc<dyn Encryptor>>,
    archive: &StoredArchive,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<pgbak_copy::ExtractStats> {
    let what = format!("{}/{}", store.describe(), archive.key);
    let source = std::io::BufReader::with_capacity(1 << 20, store.get(&archive.key)?);
    let read = archive.reader(encryptor);
    let (stats, _) = pgbak_copy::extract_stored_tar(source, &what, read, dest, opts)?;
    Ok(stats)
}

/// Points `pg_tblspc/<oid>` at each tablespace's location, and rewrites `tablespace_map` (which
/// PostgreSQL uses to create those links when the backup has one).
fn relink_tablespaces(dest: &Path, locations: &BTreeMap<u32, PathBuf>) -> Result<()> {
    if locations.is_empty() {
        return Ok(());
    }
    if fs::symlink_metadata(dest.join("tablespace_map")).is_ok() {
        write_recovery_file(dest, "tablespace_map", tablespace_map(locations).as_bytes())?;
    }
    let tblspc = dest.join("pg_tblspc");
    for (oid, loc) in locations {
        let link = tblspc.join(oid.to_string());
        if fs::symlink_metadata(&link).is_ok() {
            fs::remove_file(&link).map_err(|e| Error::io("remove", &link, e))?;
            std::os::unix::fs::symlink(loc, &link).map_err(|e| Error::io("symlink", &link, e))?;
        }
    }
    Ok(())
}

/// The `tablespace_map` of a restored tree: one `<oid> <location>` line per tablespace.
pub(crate) fn tablespace_map(locations: &BTreeMap<u32, PathBuf>) -> String {
    let mut text = String::new();
    for (oid, loc) in locations {
        text.push_str(&format!("{oid} {}\n", loc.display()));
    }
    text
}

/// Copies (decompressed, decrypted and checked) every archived WAL file the recovery plan names,
/// `jobs` at a time: history files, and the segments of the timelines on the path to the target
/// timeline, each only up to the point where the path leaves it.
fn copy_needed_wal(
    archive: &crate::wal_archive::WalArchive,
    plan: &crate::timelines::WalPlan,
    spool: &Path,
    jobs: usize,
) -> Result<usize> {
    let names: Vec<String> = plan
        .histories
        .iter()
        .chain(&plan.segments)
        .cloned()
        .collect();
    archive.fetch_all(&names, spool, jobs)?;
    Ok(names.len())
}

const MANAGED_KEYS: &[&str] = &[
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "archive_command",
    "primary_conninfo",
    "primary_slot_name",
];

/// Appends the settings to postgresql.auto.conf, dropping earlier lines for the same keys.
pub(crate) fn write_auto_conf(
    dest: &Path,
    backup: &BackupInfo,
    settings: &[(String, String)],
) -> Result<()> {
    let path = dest.join("postgresql.auto.conf");
    // Read without following a link: a link there would make its target's contents part of
    // the restored configuration.
    let old = match staging::open_regular(&path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes)
                .map_err(|e| Error::io("read", &path, e))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let mut out = String::new();
    for line in old.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if MANAGED_KEYS.contains(&key) {
            out.push_str("# ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "# Written by pgbak recover of backup {} on {}\n",
        backup.backup_id,
        Utc::now().to_rfc3339()
    ));
    for (k, v) in settings {
        out.push_str(&format!("{k} = {}\n", conf_quote(v)));
    }
    write_recovery_file(dest, "postgresql.auto.conf", out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::BackupInfo;

    fn backup() -> BackupInfo {
        let mut b = BackupInfo::new(
            "main",
            "20240101T000000",
            "postgres",
            "plain",
            "none",
            chrono::DateTime::UNIX_EPOCH,
        );
        b.end_time = Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 10).unwrap());
        b.end_lsn = Some("0/5000100".into());
        b
    }

    #[test]
    fn target_time_formats() {
        let t = parse_target_time("2024-01-01 00:00:20+00").unwrap();
        assert_eq!(
            t.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 20).unwrap()
        );
        let t = parse_target_time("2024-01-01T02:00:20+02:00").unwrap();
        assert_eq!(
            t.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 20).unwrap()
        );
        let t = parse_target_time("2024-01-01 00:00:20.5 UTC").unwrap();
        assert_eq!(t.timestamp_millis() % 1000, 500);
        assert!(parse_target_time("yesterday").is_err());
        assert!(parse_target_time("2024-13-01 00:00:00").is_err());
    }

    #[test]
    fn settings_and_refusals() {
        let b = backup();
        let t = RecoveryTarget {
            time: Some("2024-01-01 00:00:20+00".into()),
            action: Some(TargetAction::Promote),
            exclusive: true,
            ..Default::default()
        };
        let s = recovery_settings(&t, &b).unwrap();
        assert!(s.contains(&(
            "recovery_target_time".into(),
            "2024-01-01 00:00:20.000000+00:00".into()
        )));
        assert!(s.contains(&("recovery_target_inclusive".into(), "false".into())));
        assert!(s.contains(&("recovery_target_action".into(), "promote".into())));

        let before = RecoveryTarget {
            time: Some("2024-01-01 00:00:05+00".into()),
            ..Default::default()
        };
        assert!(recovery_settings(&before, &b)
            .unwrap_err()
            .to_string()
            .contains("before the end of backup"));
        let lsn_before = RecoveryTarget {
            lsn: Some("0/5000000".into()),
            ..Default::default()
        };
        assert!(recovery_settings(&lsn_before, &b).is_err());
        let two = RecoveryTarget {
            lsn: Some("0/6000000".into()),
            name: Some("x".into()),
            ..Default::default()
        };
        assert!(recovery_settings(&two, &b).is_err());
        let action_alone = RecoveryTarget {
            action: Some(TargetAction::Promote),
            ..Default::default()
        };
        assert!(recovery_settings(&action_alone, &b).is_err());
        let bad_tli = RecoveryTarget {
            tli: Some("zero".into()),
            ..Default::default()
        };
        assert!(recovery_settings(&bad_tli, &b).is_err());
        let ok_tli = RecoveryTarget {
            tli: Some("latest".into()),
            ..Default::default()
        };
        assert_eq!(
            recovery_settings(&ok_tli, &b).unwrap(),
            vec![("recovery_target_timeline".to_string(), "latest".to_string())]
        );
    }

    #[test]
    fn conf_values_are_quoted() {
        assert_eq!(conf_quote("cp a/%f %p"), "'cp a/%f %p'");
        assert_eq!(conf_quote("it's"), "'it''s'");
    }

    #[test]
    fn non_empty_destination_is_refused() {
        let d = tempfile::tempdir().unwrap();
        ensure_empty_or_missing(&d.path().join("missing"), false, "destination").unwrap();
        ensure_empty_or_missing(d.path(), false, "destination").unwrap();
        fs::write(d.path().join("f"), b"x").unwrap();
        assert!(ensure_empty_or_missing(d.path(), false, "destination").is_err());
        ensure_empty_or_missing(d.path(), true, "destination").unwrap();
    }
}
