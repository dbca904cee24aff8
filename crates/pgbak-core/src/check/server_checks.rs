//! The checks of one server, in Barman's order: WAL archive and queues, PostgreSQL and its
//! privileges, WAL streaming, directories, retention and age limits, the backups, the system
//! identifier, the archivers and archiver errors.

use super::remote::Remote;
use super::report::{human_duration, human_size};
use super::Check;
use crate::catalogue::{BackupInfo, BackupStatus};
use crate::config::{parse_interval, parse_size};
use crate::identity::{identity_location, read_identity, record_identity};
use crate::locks::{LockError, LockName};
use crate::server::Server;
use pgbak_compress::Codec;
use std::collections::BTreeMap;

use std::path::Path;
use std::time::Duration;

/// Oldest PostgreSQL release pgbak backs up.
const MIN_VERSION_NUM: u32 = 130000;

/// Sends each result as soon as it is known, so a timeout keeps the checks already done.
struct Out<'a>(&'a mut dyn FnMut(Check));

impl Out<'_> {
    fn result(&mut self, name: &str, ok: bool, hint: Option<String>) {
        (self.0)(Check::new(name, ok, hint));
    }
    fn ok(&mut self, name: &str) {
        self.result(name, true, None);
    }
    fn ok_hint(&mut self, name: &str, hint: impl Into<String>) {
        self.result(name, true, Some(hint.into()));
    }
    fn fail(&mut self, name: &str, hint: impl Into<String>) {
        self.result(name, false, Some(hint.into()));
    }
}

/// Runs every check of `server`, sending each result to `emit`.
pub(super) fn run(
    server: &Server,
    lock_directory: &Path,
    timeout: Option<Duration>,
    switch_wal_if_empty: bool,
    emit: &mut dyn FnMut(Check),
) {
    let mut out = Out(emit);
    let cfg = &server.config;
    let remote = Remote::gather(server);
    let (backups, catalogue_problems) = match (server.backups(), server.catalogue().list()) {
        (Ok(b), Ok((_, problems))) => (b, problems),
        (Err(e), _) => (Vec::new(), vec![e.to_string()]),
        (_, Err(e)) => (Vec::new(), vec![e.to_string()]),
    };

    wal_archive(
        server,
        &remote,
        &backups,
        timeout,
        switch_wal_if_empty,
        &mut out,
    );
    wal_queue(
        &mut out,
        "incoming",
        &cfg.incoming_wals_directory,
        cfg.archiver,
        "archiver",
        cfg.max_incoming_wals_queue,
    );
    wal_queue(
        &mut out,
        "streaming",
        &cfg.streaming_wals_directory,
        cfg.streaming_archiver,
        "streaming_archiver",
        cfg.max_incoming_wals_queue,
    );
    postgres(server, &remote, &mut out);
    directories(server, lock_directory, &mut out);
    repositories(server, &mut out);
    out.ok("retention policy settings");
    backup_maximum_age(server, &backups, &mut out);
    backup_minimum_size(server, &backups, &mut out);
    wal_maximum_age(server, &mut out);
    match Codec::new(cfg.compression, cfg.compression_level) {
        Ok(_) => out.ok("compression settings"),
        Err(e) => out.fail("compression settings", e.to_string()),
    }
    if let Some(e) = server.encryptor() {
        match e.check() {
            Ok(()) => out.ok("encryption"),
            Err(err) => out.fail("encryption", err.to_string()),
        }
    }
    let failed = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Failed)
        .count();
    out.result(
        "failed backups",
        failed == 0,
        Some(format!("there are {failed} failed backups")),
    );
    let done = backups
        .iter()
        .filter(|b| b.status == BackupStatus::Done)
        .count();
    out.result(
        "minimum redundancy requirements",
        done >= cfg.minimum_redundancy as usize,
        Some(format!(
            "have {done} backups, expected at least {}",
            cfg.minimum_redundancy
        )),
    );
    // rsync / local-rsync: SSH, rsync on both hosts, the data directory (empty otherwise).
    for c in crate::rsync_check::rsync_checks(server) {
        (out.0)(c);
    }
    if !catalogue_problems.is_empty() {
        out.fail(
            "backup catalogue",
            format!(
                "{} unreadable: {}",
                catalogue_problems.len(),
                catalogue_problems.join("; ")
            ),
        );
    }
    systemid_coherence(server, &remote, &backups, &mut out);
    if cfg.archiver {
        file_archiver(&remote, &mut out);
    }
    if cfg.streaming_archiver {
        let running = receive_wal_running(server);
        out.result(
            "receive-wal running",
            running,
            (!running).then(|| {
                format!(
                    "no 'pgbak receive-wal {}' process is running (cron starts it)",
                    cfg.name
                )
            }),
        );
    }
    archiver_errors(&cfg.errors_directory, &mut out);
}

/// Whether a `pgbak receive-wal` of this server holds its lock now.
fn receive_wal_running(server: &Server) -> bool {
    matches!(
        server
            .locks()
            .try_lock(&LockName::ServerReceiveWal(server.name().to_string())),
        Err(LockError::Busy { .. })
    )
}

/// `WAL archive`: something was archived already, or a backup waits for WAL, or (as Barman does
/// on a new server) a WAL switch gets a segment archived in time.
fn wal_archive(
    server: &Server,
    remote: &Remote,
    backups: &[BackupInfo],
    timeout: Option<Duration>,
    switch_wal_if_empty: bool,
    out: &mut Out<'_>,
) {
    const NAME: &str = "WAL archive";
    const HINT: &str = "please make sure WAL shipping is setup";
    let archive = match server.wal_archive() {
        Ok(a) => a,
        Err(e) => return out.fail(NAME, e.to_string()),
    };
    let has_wal = match archive.indexed() {
        Ok(Some(index)) => !index.is_empty(),
        Ok(None) => archive
            .segment_names()
            .map(|s| !s.is_empty())
            .unwrap_or(false),
        Err(e) => return out.fail(NAME, e.to_string()),
    };
    if has_wal
        || backups
            .iter()
            .any(|b| b.status == BackupStatus::WaitingForWals)
    {
        return out.ok(NAME);
    }
    let cfg = &server.config;
    let file_archiving = cfg.archiver
        && matches!(remote.archive_mode.as_deref(), Some("on" | "always"))
        && remote
            .archive_command
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "(disabled)");
    // A running receiver archives the switched segment as surely as archive_command does.
    let streaming = cfg.streaming_archiver && receive_wal_running(server);
    let can_switch = switch_wal_if_empty
        && remote.conn_error.is_none()
        && remote.in_recovery == Some(false)
        && (file_archiving || streaming);
    if can_switch {
        let wait = timeout.map(|t| t / 3).unwrap_or(Duration::from_secs(10));
        match crate::maintenance::switch_wal(server, false, true, wait) {
            Ok(r) if r.archived == Some(true) => return out.ok(NAME),
            Ok(_) => {}
            Err(e) => return out.fail(NAME, format!("{HINT} ({e})")),
        }
    }
    out.fail(NAME, HINT);
}

/// Files waiting in a queue folder, not counting hidden, temporary and `.partial` files.
fn queued_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    !name.starts_with('.') && !name.ends_with(".tmp") && !name.ends_with(".partial")
                })
                .count()
        })
        .unwrap_or(0)
}

/// `empty incoming directory` / `incoming WALs directory` (and the streaming pair): a disabled
/// archiver's folder must be empty; an enabled one's queue must stay under the limit.
fn wal_queue(
    out: &mut Out<'_>,
    kind: &str,
    dir: &Path,
    enabled: bool,
    archiver: &str,
    max: Option<u32>,
) {
    let count = queued_files(dir);
    if !enabled {
        if count > 0 {
            out.fail(
                &format!("empty {kind} directory"),
                format!("'{}' must be empty when {archiver}=off", dir.display()),
            );
        }
        return;
    }
    if let Some(max) = max {
        let ok = count <= max as usize;
        out.result(
            &format!("{kind} WALs directory"),
            ok,
            (!ok).then(|| format!("there are too many WALs in queue: {count}, max {max}")),
        );
    }
}

fn postgres(server: &Server, remote: &Remote, out: &mut Out<'_>) {
    let cfg = &server.config;
    match (&remote.conn_error, remote.version_num) {
        (Some(e), _) => out.fail("PostgreSQL", e.clone()),
        (None, Some(v)) if v < MIN_VERSION_NUM => out.fail(
            "PostgreSQL",
            format!(
                "version {} is not supported: pgbak needs PostgreSQL 13 or later",
                remote.server_version.as_deref().unwrap_or("?")
            ),
        ),
        (None, _) => out.ok("PostgreSQL"),
    }
    if remote.conn_error.is_none() {
        const NAME: &str = "superuser or standard user with backup privileges";
        match remote.backup_privileges {
            Some(true) => out.ok(NAME),
            Some(false) => out.fail(
                NAME,
                "no access to backup functions: connect as a superuser or grant EXECUTE on the backup start/stop functions and pg_switch_wal() (see documentation)",
            ),
            None => out.fail(NAME, "could not read the privileges of the connection's user"),
        }
    }
    if let Some(streaming) = &remote.streaming {
        match streaming {
            Ok(_) => out.ok("PostgreSQL streaming"),
            Err(e) => out.fail("PostgreSQL streaming", e.clone()),
        }
    }
    if remote.conn_error.is_some() {
        return;
    }
    match remote.wal_level.as_deref() {
        Some("minimal") => out.fail(
            "wal_level",
            "please set it to a higher level than 'minimal'",
        ),
        Some(_) => out.ok("wal_level"),
        None => out.fail("wal_level", "could not read wal_level"),
    }
    match remote.monitoring_privileges {
        Some(true) => out.ok("has monitoring privileges"),
        _ => out.fail(
            "has monitoring privileges",
            "no access to monitoring functions: grant the pg_monitor role to the connection's user",
        ),
    }
    if let Some(slot_name) = &cfg.slot_name {
        replication_slot(server, slot_name, remote, out);
    }
    if cfg.primary_conninfo.is_some() {
        standby(server, remote, out);
    }
}

/// With `primary_conninfo`, Barman's three checks: `conninfo` is a standby, `primary_conninfo`
/// is not, and both have one system identifier.
fn standby(server: &Server, remote: &Remote, out: &mut Out<'_>) {
    match remote.in_recovery {
        Some(true) => out.ok("PostgreSQL server is standby"),
        _ => out.fail(
            "PostgreSQL server is standby",
            "conninfo should point to a standby server if primary_conninfo is set",
        ),
    }
    const PRIMARY: &str = "Primary server is not a standby";
    let primary = match server.connect_primary() {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => return out.fail(PRIMARY, format!("cannot connect to primary_conninfo: {e}")),
    };
    match primary.is_in_recovery() {
        Ok(false) => out.ok(PRIMARY),
        Ok(true) => out.fail(
            PRIMARY,
            "primary_conninfo should point to a primary server, not a standby",
        ),
        Err(e) => out.fail(PRIMARY, e.to_string()),
    }
    const SAME_ID: &str = "Primary and standby have same system ID";
    let primary_id = primary
        .query_value("SELECT system_identifier::text FROM pg_control_system()")
        .map(Option::unwrap_or_default);
    match (primary_id, &remote.systemid) {
        (Ok(p), Some(s)) if p == *s => out.ok_hint(SAME_ID, format!("system identifier {s}")),
        (Ok(p), Some(s)) => out.fail(
            SAME_ID,
            format!(
                "primary_conninfo and conninfo should point to primary and standby servers which share the same system identifier (primary {p}, standby {s})"
            ),
        ),
        (Err(e), _) => out.fail(SAME_ID, e.to_string()),
        (_, None) => out.fail(SAME_ID, "could not read the standby's system identifier"),
    }
}

/// `replication slot`: needed, initialised and active when streaming WAL; otherwise a slot of
/// that name is only worth a warning.
fn replication_slot(server: &Server, slot_name: &str, remote: &Remote, out: &mut Out<'_>) {
    const NAME: &str = "replication slot";
    let name = server.name();
    let Some(slot) = &remote.slot else {
        return out.fail(NAME, "could not read pg_replication_slots");
    };
    if server.config.streaming_archiver {
        match slot {
            None => out.fail(
                NAME,
                format!("replication slot '{slot_name}' doesn't exist. Please execute 'pgbak receive-wal --create-slot {name}'"),
            ),
            Some(s) if s.restart_lsn.is_none() => out.fail(
                NAME,
                format!("slot '{slot_name}' not initialised: is 'receive-wal' running?"),
            ),
            Some(s) if !s.active => out.fail(
                NAME,
                format!("slot '{slot_name}' not active: is 'receive-wal' running?"),
            ),
            Some(_) => out.ok(NAME),
        }
    } else if let Some(s) = slot {
        if s.restart_lsn.is_some() {
            let state = if s.active { "active" } else { "initialised" };
            out.ok_hint(
                NAME,
                format!(
                    "WARNING: slot '{slot_name}' is {state} but not required by the current config"
                ),
            );
        }
    }
}

/// `directories`: every local folder of the server exists (created if missing, as Barman does)
/// and pgbak can create files in it.
fn directories(server: &Server, lock_directory: &Path, out: &mut Out<'_>) {
    let cfg = &server.config;
    let mut dirs: Vec<&Path> = vec![
        &cfg.backup_directory,
        &cfg.incoming_wals_directory,
        &cfg.streaming_wals_directory,
        &cfg.errors_directory,
        lock_directory,
    ];
    for location in [&cfg.basebackups_directory, &cfg.wals_directory] {
        if let pgbak_storage::Location::Local(p) = location {
            dirs.push(p);
        }
    }
    let mut problems = Vec::new();
    for dir in dirs {
        if let Err(e) = writable(dir) {
            problems.push(format!("{}: {e}", dir.display()));
        }
    }
    if problems.is_empty() {
        out.ok("directories");
    } else {
        out.fail("directories", problems.join("; "));
    }
}

/// `repository` checks, one per object store (`basebackups_directory`, `wals_directory`):
/// reachable, bucket present, writable, readable, overwrites refused, deletable.
fn repositories(server: &Server, out: &mut Out<'_>) {
    let stores = server.stores();
    for (option, store) in stores.named() {
        if store.local_root().is_some() {
            continue;
        }
        let name = match option {
            "basebackups_directory" => "backup repository",
            "wals_directory" => "wal repository",
            _ => "repository",
        };
        let report = pgbak_storage::check::probe(store.as_ref(), "");
        match report.first_failure() {
            None => out.ok(name),
            Some(step) => out.fail(
                name,
                format!(
                    "{} ({option}): {} failed: {}",
                    report.repository,
                    step.name,
                    step.detail.as_deref().unwrap_or("no detail")
                ),
            ),
        }
    }
}

/// Creates `dir` if missing, then creates and removes a file in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    pgbak_storage::staging::create_dir_all_private(dir)?;
    let probe = pgbak_storage::staging::temp_name(&dir.join("check"));
    pgbak_storage::staging::create_fresh(&probe, pgbak_storage::staging::PRIVATE_FILE)?;
    std::fs::remove_file(&probe)
}

fn newest_done(backups: &[BackupInfo]) -> Option<&BackupInfo> {
    backups
        .iter()
        .filter(|b| b.status == BackupStatus::Done)
        .max_by_key(|b| b.end_time.unwrap_or(b.begin_time))
}

/// `backup maximum age` (`last_backup_maximum_age`).
fn backup_maximum_age(server: &Server, backups: &[BackupInfo], out: &mut Out<'_>) {
    const NAME: &str = "backup maximum age";
    let Some(text) = &server.config.last_backup_maximum_age else {
        return out.ok_hint(NAME, "no last_backup_maximum_age provided");
    };
    let max = match parse_interval(text) {
        Ok(m) => m,
        Err(e) => return out.fail(NAME, e.to_string()),
    };
    let provided = format!("interval provided: {}", human_duration(max));
    match newest_done(backups) {
        None => out.fail(
            NAME,
            format!("{provided}, latest backup age: No available backups"),
        ),
        Some(b) => {
            let end = b.end_time.unwrap_or(b.begin_time);
            let age = (chrono::Utc::now() - end).to_std().unwrap_or_default();
            out.result(
                NAME,
                age <= max,
                Some(format!(
                    "{provided}, latest backup age: {}",
                    human_duration(age)
                )),
            );
        }
    }
}

/// `backup minimum size` (`last_backup_minimum_size`, a Barman option kept as text).
fn backup_minimum_size(server: &Server, backups: &[BackupInfo], out: &mut Out<'_>) {
    const NAME: &str = "backup minimum size";
    let Some(text) = server.config.raw.get("last_backup_minimum_size") else {
        return out.ok_hint(NAME, "no last_backup_minimum_size provided");
    };
    let min = match parse_size(text) {
        Ok(m) => m,
        Err(e) => return out.fail(NAME, format!("last_backup_minimum_size: {e}")),
    };
    match newest_done(backups) {
        None => out.fail(NAME, "No available backups"),
        Some(b) => {
            let ok = b.size >= min;
            out.result(
                NAME,
                ok,
                Some(format!(
                    "last backup size {} {} {} minimum",
                    human_size(b.size),
                    if ok { ">=" } else { "<" },
                    human_size(min)
                )),
            );
        }
    }
}

/// `wal maximum age` (`last_wal_maximum_age`, a Barman option kept as text).
fn wal_maximum_age(server: &Server, out: &mut Out<'_>) {
    const NAME: &str = "wal maximum age";
    let Some(text) = server.config.raw.get("last_wal_maximum_age") else {
        return out.ok_hint(NAME, "no last_wal_maximum_age provided");
    };
    let max = match parse_interval(text) {
        Ok(m) => m,
        Err(e) => return out.fail(NAME, format!("last_wal_maximum_age: {e}")),
    };
    let provided = format!("interval provided: {}", human_duration(max));
    match last_archive_time(server) {
        None => out.fail(
            NAME,
            format!("{provided}, latest wal age: No WAL files archived"),
        ),
        Some(t) => {
            let age = std::time::SystemTime::now()
                .duration_since(t)
                .unwrap_or_default();
            out.result(
                NAME,
                age <= max,
                Some(format!(
                    "{provided}, latest wal age: {}",
                    human_duration(age)
                )),
            );
        }
    }
}

/// When the newest file of the WAL archive was archived, from the index.
fn last_archive_time(server: &Server) -> Option<std::time::SystemTime> {
    let index = server.wal_archive().ok()?.indexed().ok()??;
    let secs = index
        .values()
        .map(|e| e.time)
        .fold(None::<f64>, |m, t| Some(m.map_or(t, |m| m.max(t))))?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs.max(0.0)))
}

/// `systemid coherence`: the replication and SQL connections reach the same cluster, and it is
/// the one this catalogue belongs to (`identity.json`, recorded from the latest backup if
/// missing).
fn systemid_coherence(server: &Server, remote: &Remote, backups: &[BackupInfo], out: &mut Out<'_>) {
    const NAME: &str = "systemid coherence";
    let streaming = remote.streaming.as_ref().and_then(|s| s.as_ref().ok());
    if let (Some(s), Some(p)) = (streaming, &remote.systemid) {
        if s != p {
            return out.fail(
                NAME,
                "is the streaming DSN targeting the same server of the PostgreSQL connection string?",
            );
        }
    }
    let Some(live) = streaming.or(remote.systemid.as_ref()) else {
        return out.ok_hint(NAME, "no system Id available");
    };
    let dir = server.stores().meta.as_ref();
    let changed = |location: String| {
        format!(
            "the system Id of the connected PostgreSQL server changed, stored in \"{location}\""
        )
    };
    match read_identity(dir) {
        Err(e) => out.fail(NAME, e.to_string()),
        Ok(Some(id)) if id.systemid == *live => out.ok(NAME),
        Ok(Some(_)) => out.fail(NAME, changed(identity_location(dir))),
        Ok(None) => {
            let recorded = newest_done(backups).and_then(|b| Some((b.systemid.as_ref()?, b)));
            match recorded {
                None => out.ok_hint(NAME, "no system Id stored on disk"),
                Some((id, b)) if id == live => {
                    // Catalogues made before identity files existed get one from their backups.
                    let _ = record_identity(dir, id, b.version.unwrap_or(0));
                    out.ok(NAME);
                }
                Some((id, b)) => out.fail(
                    NAME,
                    format!(
                        "the system Id of the connected PostgreSQL server ({live}) is not the one of backup {} ({id})",
                        b.backup_id
                    ),
                ),
            }
        }
    }
}

/// `archive_mode`, `archive_command`, `continuous archiving`.
fn file_archiver(remote: &Remote, out: &mut Out<'_>) {
    if remote.conn_error.is_some() {
        return;
    }
    match remote.archive_mode.as_deref() {
        Some("on" | "always") => out.ok("archive_mode"),
        _ => out.fail("archive_mode", "please set it to 'on' or 'always'"),
    }
    match remote.archive_command.as_deref() {
        Some(c) if !c.is_empty() && c != "(disabled)" => {
            out.ok("archive_command");
            match &remote.archiver {
                Some(a) if a.is_archiving => out.ok("continuous archiving"),
                Some(a) => out.fail(
                    "continuous archiving",
                    format!(
                        "last failed WAL {} at {} ({} failures; last archived: {} at {}); see the PostgreSQL log for archive_command errors",
                        a.last_failed_wal.as_deref().unwrap_or("-"),
                        a.last_failed_time.as_deref().unwrap_or("-"),
                        a.failed_count,
                        a.last_archived_wal.as_deref().unwrap_or("none"),
                        a.last_archived_time.as_deref().unwrap_or("-"),
                    ),
                ),
                None => out.fail("continuous archiving", "could not read pg_stat_archiver"),
            }
        }
        _ => out.fail(
            "archive_command",
            "please set it accordingly to documentation",
        ),
    }
}

/// `archiver errors`: files kept in `errors/` (clashing or unknown WAL), counted by kind.
fn archiver_errors(dir: &Path, out: &mut Out<'_>) {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => Some(rd),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return out.fail("archiver errors", format!("{}: {e}", dir.display())),
    };
    if let Some(rd) = rd {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = name
                .rsplit_once('.')
                .map(|(_, k)| k.to_string())
                .unwrap_or_else(|| "unknown".into());
            *kinds.entry(kind).or_default() += 1;
        }
    }
    if kinds.is_empty() {
        out.ok("archiver errors");
    } else {
        let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        out.fail("archiver errors", summary.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut got = Vec::new();
        let mut emit = |c: Check| got.push(c);
        let mut out = Out(&mut emit);
        wal_queue(&mut out, "incoming", dir.path(), false, "archiver", None);
        std::fs::write(dir.path().join("000000010000000000000001"), b"x").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::write(dir.path().join("000000010000000000000002.partial"), b"x").unwrap();
        wal_queue(&mut out, "incoming", dir.path(), false, "archiver", None);
        wal_queue(&mut out, "incoming", dir.path(), true, "archiver", Some(1));
        std::fs::write(dir.path().join("000000010000000000000003"), b"x").unwrap();
        wal_queue(&mut out, "incoming", dir.path(), true, "archiver", Some(1));
        archiver_errors(&dir.path().join("none"), &mut out);
        let errors = dir.path().join("errors");
        std::fs::create_dir(&errors).unwrap();
        for n in [
            "a.20240101T000000Z.duplicate",
            "b.20240101T000000Z.duplicate",
            "c.unknown",
        ] {
            std::fs::write(errors.join(n), b"x").unwrap();
        }
        archiver_errors(&errors, &mut out);
        let lines: Vec<(String, bool, Option<String>)> =
            got.into_iter().map(|c| (c.name, c.ok, c.hint)).collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[0].0, "empty incoming directory");
        assert!(!lines[0].1);
        assert_eq!(
            (lines[1].0.as_str(), lines[1].1),
            ("incoming WALs directory", true)
        );
        assert_eq!(
            lines[2],
            (
                "incoming WALs directory".into(),
                false,
                Some("there are too many WALs in queue: 2, max 1".into())
            )
        );
        assert_eq!(lines[3], ("archiver errors".into(), true, None));
        assert_eq!(
            lines[4],
            (
                "archiver errors".into(),
                false,
                Some("duplicate: 2, unknown: 1".into())
            )
        );
    }

    #[test]
    fn directories_must_be_writable() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b");
        writable(&fresh).unwrap();
        assert!(fresh.is_dir());
        assert_eq!(
            std::fs::read_dir(&fresh).unwrap().count(),
            0,
            "probe removed"
        );
        std::fs::write(dir.path().join("file"), b"").unwrap();
        assert!(writable(&dir.path().join("file")).is_err());
    }

    #[test]
    fn the_newest_archive_time_comes_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[pgbak]\nhome = {}\n\n[main]\nconninfo = host=localhost\n",
            dir.path().display()
        );
        let cfg = crate::config::Config::parse_str(&text, &dir.path().join("pgbak.conf")).unwrap();
        let server = Server::new(&cfg, "main").unwrap();
        assert!(last_archive_time(&server).is_none());
        let archive = server.wal_archive().unwrap();
        for i in 0..200 {
            archive
                .index()
                .add(&crate::wal_archive::IndexEntry {
                    name: format!("0000000100000000000000{i:02X}"),
                    stored_size: 100,
                    time: 1_700_000_000.25 + f64::from(i),
                    compression: "zstd".into(),
                    crc32c: Some(0),
                    size: Some(16 << 20),
                    encryption: None,
                    key_id: None,
                })
                .unwrap();
        }
        let t = last_archive_time(&server).unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
            (1_700_000_199u128 * 1000) + 250
        );
    }
}
