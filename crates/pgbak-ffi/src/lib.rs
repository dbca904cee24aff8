//! The C ABI of pgbak, for C, Python and other callers: the workflows of `pgbak-core` behind
//! opaque handles, status codes and JSON strings. The header `include/pgbak.h` is generated from
//! this file by cbindgen (`scripts/gen-header.sh`); a test fails when it is stale.
//!
//! # Conventions
//!
//! - Every call returns a status code: [`PGBAK_OK`] (0) or the kind of failure (the other
//!   `PGBAK_*` codes). After a failure, [`pgbak_last_error`] returns its message on the thread
//!   that made the call (until that thread's next call).
//! - Options are passed as a JSON object (a NULL pointer or `""` means none); an unknown option
//!   is an error ([`PGBAK_USAGE`]), never ignored.
//! - Reports are returned as JSON strings through an out-parameter; the caller frees each one
//!   with [`pgbak_string_free`].
//! - A handle ([`PgbakServer`]) may be shared between threads: its calls run one at a time (a
//!   second call waits for the first), except [`pgbak_cancel`], which may be called from any
//!   thread while another call runs on the handle.
//! - No panic crosses the boundary: an internal error is [`PGBAK_INTERNAL`].
//! - Nothing is written to standard output; warnings go to the `tracing` subscriber, if the
//!   embedding program installed one.

#![allow(clippy::missing_safety_doc)]

use pgbak_core::config::Config;
use pgbak_core::Server;
use pgbak_core::{backup, BackupOptions};
use pgbak_core::{check_server, json_report, CheckOptions};
use pgbak_core::{recover, RecoverOptions, RecoveryTarget};
use pgbak_core::{verify_backup, VerifyOptions};
use pgbak_core::{Error, ErrorKind};
use serde::Deserialize;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Success.
pub const PGBAK_OK: c_int = 0;
/// A failure of no more specific kind.
pub const PGBAK_ERROR: c_int = 1;
/// The request is impossible or contradictory as asked: a bad argument, option or name.
pub const PGBAK_USAGE: c_int = 2;
/// The object store could not be reached.
pub const PGBAK_STORAGE_UNREACHABLE: c_int = 3;
/// The object store refused access, or its bucket or container does not exist.
pub const PGBAK_STORAGE_DENIED: c_int = 4;
/// The configuration is missing or invalid.
pub const PGBAK_CONFIGURATION: c_int = 5;
/// No such backup, WAL file or server.
pub const PGBAK_NOT_FOUND: c_int = 6;
/// Another pgbak process holds a lock this call needs; try again later.
pub const PGBAK_BUSY: c_int = 7;
/// The backup is in use: being taken, deleted, restored or kept.
pub const PGBAK_IN_USE: c_int = 8;
/// Refused by a rule: retention, keep, minimum_redundancy, a hook, an incremental chain.
pub const PGBAK_REFUSED: c_int = 9;
/// Stored data failed a check.
pub const PGBAK_CORRUPT: c_int = 10;
/// PostgreSQL could not be reached, or a query or the replication protocol failed.
pub const PGBAK_CONNECTION: c_int = 11;
/// A local file operation failed.
pub const PGBAK_IO: c_int = 12;
/// The call was cancelled with `pgbak_cancel`.
pub const PGBAK_CANCELLED: c_int = 13;
/// A bug in pgbak (a panic, caught at the boundary).
pub const PGBAK_INTERNAL: c_int = 14;
/// Something did not happen in the time allowed (a WAL segment not archived in time).
pub const PGBAK_TIMEOUT: c_int = 15;
/// Not enough free space where the data was to go.
pub const PGBAK_NO_SPACE: c_int = 16;

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// Progress of a long call (a backup's copy, a restore's data): bytes done and the expected
/// total, or -1 when the total is not known. Called on the thread that made the call.
pub type PgbakProgressFn = Option<unsafe extern "C" fn(user: *mut c_void, done: u64, total: i64)>;

/// An opened server of a pgbak configuration: what every workflow call takes.
pub struct PgbakServer {
    config: Config,
    server: Server,
    /// Serializes the calls on this handle.
    call: Mutex<()>,
    cancel: Arc<AtomicBool>,
    progress: Mutex<Option<Callback>>,
}

#[derive(Clone, Copy)]
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, u64, i64),
    user: *mut c_void,
}

// SAFETY: the caller registering a callback promises its user pointer may be used from the
// thread that runs the calls (documented at pgbak_set_progress).
unsafe impl Send for Callback {}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The status code of an error's kind.
pub fn status_of(kind: ErrorKind) -> c_int {
    match kind {
        ErrorKind::Usage => PGBAK_USAGE,
        ErrorKind::StorageUnreachable => PGBAK_STORAGE_UNREACHABLE,
        ErrorKind::StorageDenied => PGBAK_STORAGE_DENIED,
        ErrorKind::Configuration => PGBAK_CONFIGURATION,
        ErrorKind::NotFound => PGBAK_NOT_FOUND,
        ErrorKind::Busy => PGBAK_BUSY,
        ErrorKind::InUse => PGBAK_IN_USE,
        ErrorKind::Refused => PGBAK_REFUSED,
        ErrorKind::Corrupt => PGBAK_CORRUPT,
        ErrorKind::Connection => PGBAK_CONNECTION,
        ErrorKind::Io => PGBAK_IO,
        ErrorKind::Cancelled => PGBAK_CANCELLED,
        ErrorKind::Timeout => PGBAK_TIMEOUT,
        ErrorKind::NoSpace => PGBAK_NO_SPACE,
        _ => PGBAK_ERROR,
    }
}

/// Runs `f` with the boundary's rules: the error's message kept for `pgbak_last_error`, its
/// kind returned as the status, a panic caught.
fn guarded(f: impl FnOnce() -> Result<(), Error>) -> c_int {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => PGBAK_OK,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            status_of(e.kind())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error in pgbak: {what}"));
            PGBAK_INTERNAL
        }
    }
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// A required string argument.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(usage(format!("{what} is required (NULL given)")));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| usage(format!("{what} is not UTF-8")))
}

/// An optional string argument: NULL or "" is none.
unsafe fn opt_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    let t = text(p, what)?;
    Ok((!t.is_empty()).then_some(t))
}

/// Options given as a JSON object (NULL or "" for none).
unsafe fn options<T: for<'de> Deserialize<'de> + Default>(p: *const c_char) -> Result<T, Error> {
    match opt_text(p, "options")? {
        None => Ok(T::default()),
        Some(t) => serde_json::from_str(t).map_err(|e| usage(format!("options: {e}"))),
    }
}

/// Writes a report to `out` (when not NULL) as a JSON string the caller frees.
unsafe fn put_report<T: serde::Serialize + ?Sized>(
    out: *mut *mut c_char,
    report: &T,
) -> Result<(), Error> {
    if out.is_null() {
        return Ok(());
    }
    let text = serde_json::to_string(report).map_err(|e| Error::Other(format!("JSON: {e}")))?;
    *out = CString::new(text)
        .map_err(|_| Error::Other("a report held a NUL byte".into()))?
        .into_raw();
    Ok(())
}

unsafe fn handle<'a>(h: *const PgbakServer) -> Result<&'a PgbakServer, Error> {
    h.as_ref().ok_or_else(|| usage("the server handle is NULL"))
}

/// Runs a workflow call on a handle: one at a time, with the cancellation flag cleared after it.
unsafe fn on_server(
    h: *const PgbakServer,
    f: impl FnOnce(&PgbakServer) -> Result<(), Error>,
) -> c_int {
    guarded(|| {
        let h = handle(h)?;
        let _one_at_a_time = h.call.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(h);
        h.cancel.store(false, Ordering::SeqCst);
        r
    })
}

/// The pgbak version as a NUL-terminated string owned by the library.
#[no_mangle]
pub extern "C" fn pgbak_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The message of the last failed call on this thread ("" if it succeeded), owned by the
/// library and valid until this thread's next call.
#[no_mangle]
pub extern "C" fn pgbak_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Frees a string the library returned (a report). NULL is allowed.
#[no_mangle]
pub unsafe extern "C" fn pgbak_string_free(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
}

/// Opens server `server` of the configuration file `config_path` (NULL: the default places,
/// as the CLI looks). On success `*out` is a handle to close with `pgbak_close`.
#[no_mangle]
pub unsafe extern "C" fn pgbak_open(
    config_path: *const c_char,
    server: *const c_char,
    out: *mut *mut PgbakServer,
) -> c_int {
    guarded(|| {
        if out.is_null() {
            return Err(usage("the out pointer is NULL"));
        }
        *out = std::ptr::null_mut();
        let path = opt_text(config_path, "config_path")?.map(PathBuf::from);
        let name = text(server, "server")?;
        let config = Config::load(path.as_deref())?;
        let server = Server::new(&config, name)?;
        *out = Box::into_raw(Box::new(PgbakServer {
            config,
            server,
            call: Mutex::new(()),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Mutex::new(None),
        }));
        Ok(())
    })
}

/// Closes a handle. NULL is allowed. No call may run on it any more.
#[no_mangle]
pub unsafe extern "C" fn pgbak_close(h: *mut PgbakServer) {
    if !h.is_null() {
        drop(Box::from_raw(h));
    }
}

/// Sets (or, with NULL, removes) the progress callback of the handle's long calls. `user` is
/// passed back as is; it is used on the thread that runs the call.
#[no_mangle]
pub unsafe extern "C" fn pgbak_set_progress(
    h: *mut PgbakServer,
    callback: PgbakProgressFn,
    user: *mut c_void,
) -> c_int {
    guarded(|| {
        let h = handle(h)?;
        *h.progress.lock().unwrap_or_else(|p| p.into_inner()) =
            callback.map(|f| Callback { f, user });
        Ok(())
    })
}

/// Asks the call running on the handle (or the next one) to stop: a backup stops copying and
/// is marked FAILED; a restore stops writing and leaves an incomplete destination without
/// `backup_label` (PostgreSQL will not start it); the call returns `PGBAK_CANCELLED`. Other
/// calls run to their end. Safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn pgbak_cancel(h: *const PgbakServer) -> c_int {
    guarded(|| {
        handle(h)?.cancel.store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// Feeds a call's copy progress to the handle's callback, and its cancellation back.
struct Progress {
    callback: Option<Callback>,
    cancel: Arc<AtomicBool>,
    total: i64,
}

impl pgbak_copy::CopyProgress for Progress {
    fn set_total(&mut self, bytes: Option<u64>) {
        self.total = bytes.map_or(-1, |b| b as i64);
    }

    fn set_done(&mut self, bytes: u64) {
        if let Some(c) = self.callback {
            // SAFETY: the caller registered this function for this purpose.
            unsafe { (c.f)(c.user, bytes, self.total) };
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// The options of `pgbak_backup`, as JSON.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BackupRequest {
    /// Force an immediate checkpoint (default: `immediate_checkpoint` of the configuration).
    immediate_checkpoint: Option<bool>,
    /// Wait until the WAL the backup needs is archived (status DONE).
    wait: bool,
    /// With `wait`: give up waiting after this many seconds (0: no limit).
    wait_timeout: u64,
    /// Parallel workers of the rsync method.
    jobs: Option<u32>,
    /// A block-level incremental backup relative to this one (an id, `latest`, `latest-full`).
    incremental: Option<String>,
}

/// Takes a backup. `options`: JSON object with `immediate_checkpoint`, `wait`, `wait_timeout`
/// (seconds), `jobs` and `incremental`, all optional. `*report`: the backup's record.
#[no_mangle]
pub unsafe extern "C" fn pgbak_backup(
    h: *mut PgbakServer,
    options_json: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let r: BackupRequest = options(options_json)?;
        let mut opts = BackupOptions::default();
        opts.immediate_checkpoint = r.immediate_checkpoint;
        opts.wait = r.wait;
        opts.wait_timeout = (r.wait_timeout > 0).then(|| Duration::from_secs(r.wait_timeout));
        opts.jobs = r.jobs;
        opts.incremental = r.incremental;
        let mut progress = Progress {
            callback: *h.progress.lock().unwrap_or_else(|p| p.into_inner()),
            cancel: h.cancel.clone(),
            total: -1,
        };
        let info = backup(&h.server, &opts, &mut progress)?;
        put_report(report, &info)
    })
}

/// The options of `pgbak_recover`, as JSON.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RecoverRequest {
    target_time: Option<String>,
    target_xid: Option<String>,
    target_lsn: Option<String>,
    target_name: Option<String>,
    target_immediate: bool,
    target_tli: Option<String>,
    exclusive: bool,
    /// `pause`, `promote` or `shutdown`.
    target_action: Option<pgbak_core::TargetAction>,
    /// Tablespace name -> new location.
    tablespaces: std::collections::BTreeMap<String, PathBuf>,
    standby_mode: bool,
    /// restore_command = `pgbak get-wal` (default: the server's recovery_options).
    get_wal: Option<bool>,
    /// Restore into a destination that is not empty.
    force: bool,
    remote_ssh_command: Option<String>,
    jobs: Option<u32>,
    bwlimit: Option<u64>,
    delta_restore: Option<bool>,
    /// The pgbak program restore_command calls (default `pgbak`, found on PATH).
    pgbak_program: Option<PathBuf>,
    /// The configuration file restore_command passes to it.
    config_file: Option<PathBuf>,
}

/// Restores backup `backup_id` (an id, `latest`, `oldest`, ...) into `destination` (an
/// absolute path) and writes its recovery settings. `options`: JSON object with the recovery
/// target (`target_time`, `target_xid`, `target_lsn`, `target_name`, `target_immediate`,
/// `target_tli`, `exclusive`, `target_action`), `tablespaces` (name -> location),
/// `standby_mode`, `get_wal`, `force`, `remote_ssh_command`, `jobs`, `bwlimit`,
/// `delta_restore`, `pgbak_program`, `config_file`. `*report`: what was restored.
#[no_mangle]
pub unsafe extern "C" fn pgbak_recover(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    destination: *const c_char,
    options_json: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        let dest = PathBuf::from(text(destination, "destination")?);
        if !dest.is_absolute() {
            return Err(usage(format!(
                "the destination must be an absolute path, not {}",
                dest.display()
            )));
        }
        let r: RecoverRequest = options(options_json)?;
        let mut opts = RecoverOptions::new(id, dest);
        let mut target = RecoveryTarget::default();
        target.time = r.target_time;
        target.xid = r.target_xid;
        target.lsn = r.target_lsn;
        target.name = r.target_name;
        target.immediate = r.target_immediate;
        target.tli = r.target_tli;
        target.exclusive = r.exclusive;
        target.action = r.target_action;
        opts.target = target;
        opts.tablespaces = r.tablespaces.into_iter().collect();
        opts.standby_mode = r.standby_mode;
        opts.get_wal = r.get_wal;
        opts.force = r.force;
        opts.remote_ssh_command = r.remote_ssh_command;
        opts.jobs = r.jobs;
        opts.bwlimit = r.bwlimit;
        opts.delta_restore = r.delta_restore;
        if let Some(p) = r.pgbak_program {
            opts.pgbak_exe = p;
        }
        opts.config_file = match r.config_file {
            Some(f) => Some(f),
            None => h
                .server
                .config_files
                .first()
                .map(|f| std::path::absolute(f).map_err(|e| Error::io("resolve", f, e)))
                .transpose()?,
        };
        // The restore runs on a worker while this thread, the caller's, reports its progress
        // and passes a cancellation on.
        let meter = pgbak_core::Meter::new();
        opts.progress = Some(meter.clone());
        let callback = *h.progress.lock().unwrap_or_else(|p| p.into_inner());
        let report_progress = || {
            if let Some(c) = callback {
                let total = meter.total().map_or(-1, |t| t as i64);
                // SAFETY: the caller registered this function for this purpose.
                unsafe { (c.f)(c.user, meter.done(), total) };
            }
        };
        // Once before the restore starts: a caller that stops at once writes nothing.
        report_progress();
        if h.cancel.load(Ordering::SeqCst) {
            meter.cancel();
        }
        let summary = std::thread::scope(|scope| {
            let worker = scope.spawn(|| recover(&h.server, &opts));
            while !worker.is_finished() {
                if h.cancel.load(Ordering::SeqCst) {
                    meter.cancel();
                }
                report_progress();
                std::thread::sleep(Duration::from_millis(100));
            }
            match worker.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })?;
        report_progress();
        put_report(report, &summary)
    })
}

/// Every backup of the server, newest first, as `list-backups -f json` prints them.
#[no_mangle]
pub unsafe extern "C" fn pgbak_list_backups(
    h: *mut PgbakServer,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        put_report(report, &pgbak_core::reports::list_backups(&h.server)?)
    })
}

/// One backup (an id, `latest`, `oldest`, ...), as `show-backup -f json` prints it.
#[no_mangle]
pub unsafe extern "C" fn pgbak_show_backup(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        put_report(report, &pgbak_core::reports::backup_details(&h.server, id)?)
    })
}

/// Deletes a backup and the WAL only it needed (refused by keep and minimum_redundancy).
#[no_mangle]
pub unsafe extern "C" fn pgbak_delete_backup(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        put_report(report, &pgbak_core::delete_backup(&h.server, id)?)
    })
}

/// Applies the server's retention policy, as `pgbak cron` does: finishes deletes an interrupted
/// process left, then deletes the OBSOLETE backups oldest first with the WAL only they needed.
/// The report: `{"resumed": [...], "deleted": [...], "notes": [...], "errors": [...]}` (each
/// delete as [`pgbak_delete_backup`] reports it; notes say what waits for a later run).
#[no_mangle]
pub unsafe extern "C" fn pgbak_enforce_retention(
    h: *mut PgbakServer,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        put_report(report, &pgbak_core::enforce_retention(&h.server)?)
    })
}

/// Recreates the WAL index from the files of the archive, each read back and checksummed, as
/// `rebuild-xlogdb -f json` reports it.
#[no_mangle]
pub unsafe extern "C" fn pgbak_rebuild_xlogdb(
    h: *mut PgbakServer,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        put_report(report, &pgbak_core::reports::rebuild_xlogdb(&h.server)?)
    })
}

/// Runs the server's checks, as `check -f json` prints them; the call fails
/// (`PGBAK_ERROR`) when a check fails, with the report written all the same.
#[no_mangle]
pub unsafe extern "C" fn pgbak_check(h: *mut PgbakServer, report: *mut *mut c_char) -> c_int {
    on_server(h, |h| {
        let checks = check_server(&h.config, h.server.name(), &CheckOptions::default())?;
        put_report(report, &json_report(std::slice::from_ref(&checks)))?;
        match checks.ok() {
            true => Ok(()),
            false => Err(Error::Other(format!(
                "server '{}': checks failed: {}",
                checks.server,
                checks
                    .failed()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    })
}

/// Reads a backup back and checks every file against its manifest (`PGBAK_CORRUPT` when one
/// differs; the report is written all the same).
#[no_mangle]
pub unsafe extern "C" fn pgbak_verify_backup(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        let r = verify_backup(&h.server, id, &VerifyOptions::default())?;
        put_report(report, &r)?;
        match r.ok() {
            true => Ok(()),
            false => Err(Error::Corrupt {
                what: format!("backup {id} of server '{}'", h.server.name()),
                detail: "files differ from its manifest (see the report)".into(),
            }),
        }
    })
}

/// Keeps a DONE backup whatever the retention policy says: `target` is `full` or `standalone`
/// (with only the WAL that makes it consistent). `*report`: its keep status.
#[no_mangle]
pub unsafe extern "C" fn pgbak_keep(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    target: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        let target = match text(target, "target")? {
            "full" => pgbak_core::KeepTarget::Full,
            "standalone" => pgbak_core::KeepTarget::Standalone,
            other => {
                return Err(usage(format!(
                    "keep target '{other}' is not full or standalone"
                )))
            }
        };
        let info = pgbak_core::keep(&h.server, id, target)?;
        let status = pgbak_core::reports::KeepStatus::new(&h.server, &info.backup_id, Some(target));
        put_report(report, &status)
    })
}

/// Releases the keep of a backup: it follows the retention policy again.
#[no_mangle]
pub unsafe extern "C" fn pgbak_release_keep(
    h: *mut PgbakServer,
    backup_id: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let id = text(backup_id, "backup_id")?;
        let info = pgbak_core::release_keep(&h.server, id)?;
        let status = pgbak_core::reports::KeepStatus::new(&h.server, &info.backup_id, None);
        put_report(report, &status)
    })
}

/// Archives the WAL file at `path` (what `archive_command` does), with the archive hooks; with
/// `cloud_wal_archive_parallel` set, also the ready segments after it, acknowledged when asked.
#[no_mangle]
pub unsafe extern "C" fn pgbak_archive_wal(
    h: *mut PgbakServer,
    path: *const c_char,
    report: *mut *mut c_char,
) -> c_int {
    on_server(h, |h| {
        let path = PathBuf::from(text(path, "path")?);
        let outcome = pgbak_core::wal::archive_wal(&h.server, &path, None)?;
        put_report(report, &outcome)
    })
}

/// Fetches WAL file `wal_name` from the archive into `destination` (a file path), decompressed
/// and decrypted: what `restore_command` does.
#[no_mangle]
pub unsafe extern "C" fn pgbak_get_wal(
    h: *mut PgbakServer,
    wal_name: *const c_char,
    destination: *const c_char,
) -> c_int {
    on_server(h, |h| {
        let name = text(wal_name, "wal_name")?;
        let dest = PathBuf::from(text(destination, "destination")?);
        pgbak_core::wal::WalArchive::key_of(name)?;
        h.server.wal_archive()?.fetch(name, &dest)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_nul_terminated() {
        let s = unsafe { CStr::from_ptr(pgbak_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    fn last_error() -> String {
        unsafe { CStr::from_ptr(pgbak_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn bad_input_is_a_status_and_a_message_never_a_crash() {
        let mut h: *mut PgbakServer = std::ptr::null_mut();
        let rc = unsafe { pgbak_open(std::ptr::null(), std::ptr::null(), &mut h) };
        assert_eq!(rc, PGBAK_USAGE);
        assert!(
            last_error().contains("server is required"),
            "{}",
            last_error()
        );
        assert!(h.is_null());
        let rc =
            unsafe { pgbak_backup(std::ptr::null_mut(), std::ptr::null(), std::ptr::null_mut()) };
        assert_eq!(rc, PGBAK_USAGE);
        assert!(last_error().contains("handle is NULL"));
        let missing = CString::new("/nonexistent/pgbak.conf").unwrap();
        let name = CString::new("main").unwrap();
        let rc = unsafe { pgbak_open(missing.as_ptr(), name.as_ptr(), &mut h) };
        assert_eq!(rc, PGBAK_CONFIGURATION, "{}", last_error());
        assert!(h.is_null());
        unsafe { pgbak_close(std::ptr::null_mut()) };
        unsafe { pgbak_string_free(std::ptr::null_mut()) };
    }

    #[test]
    fn a_panic_is_caught_at_the_boundary() {
        let rc = guarded(|| panic!("boom"));
        assert_eq!(rc, PGBAK_INTERNAL);
        assert!(last_error().contains("boom"));
        assert_eq!(guarded(|| Ok(())), PGBAK_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn unknown_options_are_refused() {
        let bad = CString::new(r#"{"wiat": true}"#).unwrap();
        let r: Result<BackupRequest, Error> = unsafe { options(bad.as_ptr()) };
        let e = r.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().contains("wiat"), "{e}");
        let good = CString::new(r#"{"wait": true, "wait_timeout": 5}"#).unwrap();
        let r: BackupRequest = unsafe { options(good.as_ptr()) }.unwrap();
        assert!(r.wait);
        assert_eq!(r.wait_timeout, 5);
    }
}
