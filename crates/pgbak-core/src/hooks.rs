//! Hook scripts, with Barman's names, environment and exit-code contract.
//!
//! Five events (`backup`, `archive`, `delete`, `wal_delete`, `recovery`) each have a `pre_` and a
//! `post_` script and a `…_retry_script` variant of both, set as server options (inherited from
//! the global section), e.g. `pre_backup_script`, `post_archive_retry_script`. Around an action
//! they run in this order: pre plain, pre retry, the action, post retry, post plain.
//!
//! - A plain script never changes the outcome: a non-zero exit is logged and ignored.
//! - A retry script is run again (3 s apart, and 60 s after every 5 failed attempts) until it
//!   exits 0, [`EXIT_ABORT_CONTINUE`] (62: go on, with a warning) or [`EXIT_ABORT_STOP`]
//!   (63). ABORT_STOP from a pre script stops the operation before it changes anything
//!   ([`Error::HookAborted`]); from a post script it is logged and ignored, as the action is done.
//!
//! Scripts run through `sh -c` with `path_prefix` in front of `PATH`, and get the `BARMAN_*`
//! variables Barman documents plus the same values under a `PGBAK_` prefix.

use crate::catalogue::{BackupInfo, BackupStatus, INFO_FILE};
use crate::server::Server;
use crate::wal_archive::{ArchiveOutcome, WalArchive};
use crate::{Error, Result};
use pgbak_wal::redact::redact;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Exit code of a retry script that gives up but lets the operation go on.
pub const EXIT_ABORT_CONTINUE: i32 = 62;
/// Exit code of a retry script that asks to stop the operation (honoured in pre scripts only).
pub const EXIT_ABORT_STOP: i32 = 63;

/// The operations hook scripts wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookEvent {
    /// `pgbak backup`.
    Backup,
    /// Archiving one WAL file (`archive-wal`, or a file from `incoming/` during cron).
    Archive,
    /// Deleting a backup (`pgbak delete`, retention).
    Delete,
    /// Removing one WAL file that no backup needs any more.
    WalDelete,
    /// `pgbak recover`.
    Recovery,
}

impl HookEvent {
    /// The event's part of the option names (`pre_<name>_script`).
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::Backup => "backup",
            HookEvent::Archive => "archive",
            HookEvent::Delete => "delete",
            HookEvent::WalDelete => "wal_delete",
            HookEvent::Recovery => "recovery",
        }
    }
}

/// Before or after the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPhase {
    /// Before the action.
    Pre,
    /// After the action.
    Post,
}

impl HookPhase {
    /// `pre` or `post`.
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
    }
}

/// The variables describing what a script is called about, by their name after the `BARMAN_`
/// (or `PGBAK_`) prefix, e.g. `BACKUP_ID`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookEnv {
    vars: BTreeMap<String, String>,
}

impl HookEnv {
    /// No variables yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (without prefix) to `value`.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_string(), value.into());
        self
    }

    /// Sets `ERROR`.
    pub fn error(self, error: impl std::fmt::Display) -> Self {
        self.set("ERROR", error.to_string())
    }

    /// The value of `key` (without prefix).
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The variables of a backup, delete or recovery hook: `BACKUP_DIR`, `BACKUP_INFO_PATH`,
    /// `BACKUP_ID`, `STATUS`, `ERROR` (empty without one), `PREVIOUS_ID` and `NEXT_ID` (the
    /// neighbouring backups whose copy is complete, or empty).
    pub fn for_backup(server: &Server, info: &BackupInfo) -> Self {
        // A path on local disk, a URL in an object store.
        let dir = format!("{}/{}", server.stores().backups.describe(), info.backup_id);
        let (previous, next) = neighbours(server, &info.backup_id);
        HookEnv::new()
            .set("BACKUP_INFO_PATH", format!("{dir}/{INFO_FILE}"))
            .set("BACKUP_DIR", dir)
            .set("BACKUP_ID", info.backup_id.clone())
            .set("STATUS", info.status.as_str())
            .set("ERROR", info.error.clone().unwrap_or_default())
            .set("PREVIOUS_ID", previous.unwrap_or_default())
            .set("NEXT_ID", next.unwrap_or_default())
    }

    /// The variables of an archive or WAL-delete hook. `compression` is empty for uncompressed
    /// files, as in Barman.
    pub fn for_wal(name: &str, file: &str, size: u64, timestamp: f64, compression: &str) -> Self {
        let compression = if compression == "none" {
            ""
        } else {
            compression
        };
        HookEnv::new()
            .set("SEGMENT", name)
            .set("FILE", file)
            .set("SIZE", size.to_string())
            .set("TIMESTAMP", timestamp.to_string())
            .set("COMPRESSION", compression)
    }

    /// The variables of a recovery hook: those of the backup, plus `DESTINATION_DIRECTORY`,
    /// `TABLESPACES` (JSON object of relocated tablespaces, empty when none), `REMOTE_COMMAND`
    /// and `RECOVER_OPTIONS` (JSON object of the options given, empty when none).
    pub fn for_recovery(
        server: &Server,
        info: &BackupInfo,
        dest: &Path,
        tablespaces: &[(String, PathBuf)],
        remote_command: Option<&str>,
        options: &BTreeMap<String, serde_json::Value>,
    ) -> Self {
        let tbs = if tablespaces.is_empty() {
            String::new()
        } else {
            let m: BTreeMap<&str, String> = tablespaces
                .iter()
                .map(|(n, p)| (n.as_str(), p.display().to_string()))
                .collect();
            serde_json::to_string(&m).unwrap_or_default()
        };
        let opts = if options.is_empty() {
            String::new()
        } else {
            serde_json::to_string(options).unwrap_or_default()
        };
        Self::for_backup(server, info)
            .set("DESTINATION_DIRECTORY", dest.display().to_string())
            .set("TABLESPACES", tbs)
            .set("REMOTE_COMMAND", remote_command.unwrap_or_default())
            .set("RECOVER_OPTIONS", opts)
    }
}

/// Ids of the backups just before and just after `id` among those whose copy is complete
/// (WAITING_FOR_WALS or DONE), as Barman's hooks report them. Unreadable catalogues give none.
fn neighbours(server: &Server, id: &str) -> (Option<String>, Option<String>) {
    let Ok((all, _)) = server.catalogue().list() else {
        return (None, None);
    };
    let copied = all
        .iter()
        .filter(|b| matches!(b.status, BackupStatus::Done | BackupStatus::WaitingForWals));
    let previous = copied
        .clone()
        .rfind(|b| b.backup_id.as_str() < id)
        .map(|b| b.backup_id.clone());
    let next = copied
        .filter(|b| b.backup_id.as_str() > id)
        .map(|b| b.backup_id.clone())
        .next();
    (previous, next)
}

/// How a retry script is paced between failed attempts.
#[derive(Clone, Copy, Debug)]
struct RetryPace {
    /// Pause after a failed attempt.
    short: Duration,
    /// Pause after every `attempts_before_nap` failed attempts.
    nap: Duration,
    attempts_before_nap: u32,
}

/// Barman's pacing: 3 s between attempts, 60 s after every 5 failures.
const BARMAN_PACE: RetryPace = RetryPace {
    short: Duration::from_secs(3),
    nap: Duration::from_secs(60),
    attempts_before_nap: 5,
};

/// The hook scripts of one server for one event.
pub struct Hooks<'a> {
    server: &'a Server,
    event: HookEvent,
    pace: RetryPace,
}

impl<'a> Hooks<'a> {
    /// The scripts `server` has configured for `event`.
    pub fn new(server: &'a Server, event: HookEvent) -> Self {
        Hooks {
            server,
            event,
            pace: BARMAN_PACE,
        }
    }

    /// The option name of one script, e.g. `pre_backup_retry_script`.
    pub fn option_name(event: HookEvent, phase: HookPhase, retry: bool) -> String {
        let retry = if retry { "_retry" } else { "" };
        format!("{}_{}{retry}_script", phase.name(), event.name())
    }

    /// The command line of one script, if configured (and not blank).
    pub fn script(&self, phase: HookPhase, retry: bool) -> Option<&'a str> {
        self.server
            .config
            .raw
            .get(&Self::option_name(self.event, phase, retry))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// Whether any script of this event is configured (so callers on hot paths can skip
    /// building the environment).
    pub fn any_configured(&self) -> bool {
        [HookPhase::Pre, HookPhase::Post]
            .iter()
            .any(|&p| self.script(p, false).is_some() || self.script(p, true).is_some())
    }

    /// Runs the pre scripts: plain, then retry. Fails with [`Error::HookAborted`] only when the
    /// retry script exits with [`EXIT_ABORT_STOP`].
    pub fn run_pre(&self, env: &HookEnv) -> Result<()> {
        self.run_plain(HookPhase::Pre, env);
        self.run_retry(HookPhase::Pre, env)
    }

    /// Runs the post scripts: retry, then plain. Never fails: the action is already done, so an
    /// ABORT_STOP is logged and ignored, as Barman does.
    pub fn run_post(&self, env: &HookEnv) {
        if let Err(e) = self.run_retry(HookPhase::Post, env) {
            tracing::warn!("ignoring the stop request of a post hook: {e}");
        }
        self.run_plain(HookPhase::Post, env);
    }

    fn run_plain(&self, phase: HookPhase, env: &HookEnv) {
        let Some(script) = self.script(phase, false) else {
            return;
        };
        let hook = Self::option_name(self.event, phase, false);
        match self.run_once(script, phase, false, env) {
            Ok(0) => {}
            Ok(code) => tracing::warn!(
                "server '{}': {hook} '{}' exited with {code} (ignored)",
                self.server.name(),
                redact(script)
            ),
            Err(e) => tracing::warn!(
                "server '{}': {hook} '{}' could not run: {e} (ignored)",
                self.server.name(),
                redact(script)
            ),
        }
    }

    fn run_retry(&self, phase: HookPhase, env: &HookEnv) -> Result<()> {
        let Some(script) = self.script(phase, true) else {
            return Ok(());
        };
        let hook = Self::option_name(self.event, phase, true);
        let mut failures = 0u32;
        loop {
            let code = match self.run_once(script, phase, true, env) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(
                        "server '{}': {hook} '{}' could not run: {e}",
                        self.server.name(),
                        redact(script)
                    );
                    None
                }
            };
            match code {
                Some(0) => return Ok(()),
                Some(EXIT_ABORT_CONTINUE) => {
                    tracing::warn!(
                        "server '{}': {hook} '{}' was aborted (exit code {EXIT_ABORT_CONTINUE}); going on",
                        self.server.name(),
                        redact(script)
                    );
                    return Ok(());
                }
                Some(EXIT_ABORT_STOP) => {
                    return Err(Error::HookAborted {
                        server: self.server.name().to_string(),
                        hook,
                        script: redact(script).into_owned(),
                    })
                }
                other => {
                    failures += 1;
                    tracing::warn!(
                        "server '{}': {hook} '{}' failed ({}); retrying",
                        self.server.name(),
                        redact(script),
                        other.map_or("did not run".to_string(), |c| format!("exit code {c}"))
                    );
                    let pause = if failures.is_multiple_of(self.pace.attempts_before_nap + 1) {
                        self.pace.nap
                    } else {
                        self.pace.short
                    };
                    std::thread::sleep(pause);
                }
            }
        }
    }

    /// Runs `script` once; returns its exit code (a death by signal counts as 128 + signal).
    fn run_once(
        &self,
        script: &str,
        phase: HookPhase,
        retry: bool,
        env: &HookEnv,
    ) -> std::io::Result<i32> {
        let hook = format!(
            "{}{}_script",
            self.event.name(),
            if retry { "_retry" } else { "" }
        );
        let all = env
            .clone()
            .set("VERSION", env!("CARGO_PKG_VERSION"))
            .set("SERVER", self.server.name())
            .set(
                "CONFIGURATION",
                self.server
                    .config_files
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .set("HOOK", hook)
            .set("PHASE", phase.name())
            .set("RETRY", if retry { "1" } else { "0" });
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &all.vars {
            cmd.env(format!("BARMAN_{k}"), v);
            cmd.env(format!("PGBAK_{k}"), v);
        }
        if let Some(path) = search_path(&self.server.config.path_prefix) {
            cmd.env("PATH", path);
        }
        tracing::debug!(
            "server '{}': running {}",
            self.server.name(),
            redact(script)
        );
        let out = cmd.output()?;
        let code = exit_code(&out.status);
        if code != 0 {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !text.trim().is_empty() {
                tracing::warn!(
                    "output of '{}' (exit code {code}):\n{}",
                    redact(script),
                    redact(text.trim_end())
                );
            }
        }
        Ok(code)
    }
}

/// `PATH` with `prefix` in front, or `None` when there is no prefix.
fn search_path(prefix: &[PathBuf]) -> Option<std::ffi::OsString> {
    if prefix.is_empty() {
        return None;
    }
    let mut dirs: Vec<PathBuf> = prefix.to_vec();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).ok()
}

fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Archives one WAL file with the archive hooks around it: `pre_archive_*` scripts see the file
/// waiting to be archived, `post_archive_*` scripts the archived copy (or the error). Without
/// archive hooks this is exactly [`WalArchive::archive_file`], so `archive_command` pays nothing.
pub fn archive_file(server: &Server, archive: &WalArchive, src: &Path) -> Result<ArchiveOutcome> {
    with_archive_hooks(server, archive, src, || Ok(archive.archive_file(src)?))
}

/// Runs `archive_it` (which archives the file at `src`) between the archive hooks.
pub fn with_archive_hooks(
    server: &Server,
    archive: &WalArchive,
    src: &Path,
    archive_it: impl FnOnce() -> Result<ArchiveOutcome>,
) -> Result<ArchiveOutcome> {
    let name = src
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    with_archive_hooks_named(server, archive, src, &name, archive_it)
}

/// [`with_archive_hooks`] for a file waiting under a temporary name (as `put-wal` receives
/// them): the hooks see `name` as the segment.
pub fn with_archive_hooks_named(
    server: &Server,
    archive: &WalArchive,
    src: &Path,
    name: &str,
    archive_it: impl FnOnce() -> Result<ArchiveOutcome>,
) -> Result<ArchiveOutcome> {
    let hooks = Hooks::new(server, HookEvent::Archive);
    if !hooks.any_configured() {
        return archive_it();
    }
    let meta = std::fs::metadata(src).map_err(|e| Error::io("stat", src, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let pre = HookEnv::for_wal(
        name,
        &src.display().to_string(),
        meta.len(),
        mtime,
        &detect_compression(src),
    );
    hooks.run_pre(&pre)?;
    let result = archive_it();
    let post = match &result {
        Ok(outcome) => {
            let archived_name = match outcome {
                ArchiveOutcome::Stored { name, .. } | ArchiveOutcome::AlreadyArchived { name } => {
                    name.clone()
                }
            };
            let key = WalArchive::key_of(&archived_name).unwrap_or_else(|_| archived_name.clone());
            let size = archive
                .storage()
                .stat(&key)
                .ok()
                .flatten()
                .map_or(0, |m| m.size);
            let compression = archive
                .stored_compression(&archived_name)
                .map(|c| c.name().to_string())
                .unwrap_or_default();
            let now = crate::clock::now();
            let stamp = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0;
            HookEnv::for_wal(
                &archived_name,
                &archive.location(&key),
                size,
                stamp,
                &compression,
            )
        }
        Err(e) => pre.clone().error(e),
    };
    hooks.run_post(&post);
    result
}

/// The compression of a file as recognised from its first bytes (empty when unknown).
fn detect_compression(path: &Path) -> String {
    use std::io::Read;
    let mut probe = [0u8; pgbak_compress::MAGIC_PROBE_LEN];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut probe))
        .unwrap_or(0);
    pgbak_compress::detect(&probe[..n]).name().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn server(dir: &Path, extra: &str) -> Server {
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost\n{extra}\n",
            dir.display()
        );
        let cfg = Config::parse_str(&text, &dir.join("pgbak.conf")).unwrap();
        Server::new(&cfg, "main").unwrap()
    }

    fn fast(h: Hooks<'_>) -> Hooks<'_> {
        Hooks {
            pace: RetryPace {
                short: Duration::from_millis(1),
                nap: Duration::from_millis(5),
                attempts_before_nap: 2,
            },
            ..h
        }
    }

    #[test]
    fn option_names_follow_barman() {
        assert_eq!(
            Hooks::option_name(HookEvent::WalDelete, HookPhase::Pre, true),
            "pre_wal_delete_retry_script"
        );
        assert_eq!(
            Hooks::option_name(HookEvent::Backup, HookPhase::Post, false),
            "post_backup_script"
        );
    }

    #[test]
    fn environment_has_both_prefixes_and_the_common_variables() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("env");
        let s = server(
            d.path(),
            &format!("pre_delete_script = env > {}", out.display()),
        );
        let h = Hooks::new(&s, HookEvent::Delete);
        assert!(h.any_configured());
        h.run_pre(&HookEnv::new().set("BACKUP_ID", "20240101T000000"))
            .unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        for line in [
            "BARMAN_BACKUP_ID=20240101T000000",
            "PGBAK_BACKUP_ID=20240101T000000",
            "BARMAN_SERVER=main",
            "PGBAK_SERVER=main",
            "BARMAN_PHASE=pre",
            "BARMAN_HOOK=delete_script",
            "BARMAN_RETRY=0",
        ] {
            assert!(env.lines().any(|l| l == line), "{line} missing in\n{env}");
        }
        assert!(env.contains("BARMAN_VERSION="));
        assert!(env.contains("BARMAN_CONFIGURATION="));
    }

    #[test]
    fn failing_plain_hooks_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let s = server(
            d.path(),
            "pre_backup_script = exit 63\npost_backup_script = exit 1",
        );
        let h = Hooks::new(&s, HookEvent::Backup);
        h.run_pre(&HookEnv::new()).unwrap();
        h.run_post(&HookEnv::new());
    }

    #[test]
    fn retry_hooks_run_until_success_or_abort() {
        let d = tempfile::tempdir().unwrap();
        let count = d.path().join("count");
        // Fails twice, then succeeds: three runs in all.
        let script = format!(
            "echo x >> {c}; test $(wc -l < {c}) -ge 3",
            c = count.display()
        );
        let s = server(d.path(), &format!("pre_backup_retry_script = {script}"));
        fast(Hooks::new(&s, HookEvent::Backup))
            .run_pre(&HookEnv::new())
            .unwrap();
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);

        let s = server(d.path(), "pre_backup_retry_script = exit 62");
        fast(Hooks::new(&s, HookEvent::Backup))
            .run_pre(&HookEnv::new())
            .unwrap();

        let s = server(
            d.path(),
            "pre_backup_retry_script = exit 63\npost_backup_retry_script = exit 63",
        );
        let h = fast(Hooks::new(&s, HookEvent::Backup));
        let err = h.run_pre(&HookEnv::new()).unwrap_err();
        assert!(matches!(err, Error::HookAborted { .. }), "{err}");
        assert!(err.to_string().contains("pre_backup_retry_script"), "{err}");
        // A post hook cannot stop what is already done.
        h.run_post(&HookEnv::new());
    }

    #[test]
    fn retry_marker_and_order() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        let rec = |tag: &str| format!("echo {tag} $BARMAN_RETRY $BARMAN_HOOK >> {}", log.display());
        let s = server(
            d.path(),
            &format!(
                "pre_archive_script = {}\npre_archive_retry_script = {}\npost_archive_retry_script = {}\npost_archive_script = {}",
                rec("pre"),
                rec("pre-retry"),
                rec("post-retry"),
                rec("post")
            ),
        );
        let h = Hooks::new(&s, HookEvent::Archive);
        h.run_pre(&HookEnv::new()).unwrap();
        h.run_post(&HookEnv::new());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "pre 0 archive_script\npre-retry 1 archive_retry_script\npost-retry 1 archive_retry_script\npost 0 archive_script\n"
        );
    }

    #[test]
    fn nothing_configured_means_no_process() {
        let d = tempfile::tempdir().unwrap();
        let s = server(d.path(), "");
        let h = Hooks::new(&s, HookEvent::Archive);
        assert!(!h.any_configured());
        h.run_pre(&HookEnv::new()).unwrap();
    }

    #[test]
    fn wal_env_reports_no_compression_as_empty() {
        let e = HookEnv::for_wal("000000010000000000000001", "/x", 5, 1.5, "none");
        assert_eq!(e.get("COMPRESSION"), Some(""));
        assert_eq!(e.get("SIZE"), Some("5"));
        let e = HookEnv::for_wal("000000010000000000000001", "/x", 5, 1.5, "zstd");
        assert_eq!(e.get("COMPRESSION"), Some("zstd"));
    }
}
