//! `pgbak recover --remote-ssh-command CMD`: restore a backup onto another host over SSH, with
//! the same parallel rsync copy the rsync backup method uses, and the same recovery settings a
//! local recovery writes.
//!
//! The data files go straight from the catalogue to the target (a tar-format backup is first
//! unpacked into a local staging folder). What recovery adds (`postgresql.auto.conf`, the signal
//! file, the tablespace links and map, the WAL in `pgbak_wal/`) is prepared in a local staging
//! folder and sent last.

use crate::catalogue::BackupInfo;
use crate::recover::{
    extract_archive, find_archive, signal_file, tablespace_map, write_recovery_file,
    RecoverOptions, RecoverySummary, WAL_SPOOL_DIR,
};
use crate::rsync_backup::rsync_program;
use crate::server::Server;
use crate::ErrorKind;
use crate::{Error, Result};
use pgbak_copy::rsync::{
    check_programs, list_tree, shell, Controller, EntryKind, FileEntry, Host, RetryPolicy,
    RsyncSettings, Side, SshCommand, SshMaster, TreeCopy,
};
use pgbak_copy::{ExtractOptions, NoProgress};
use pgbak_storage::staging;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything [`crate::recover::recover`] has worked out before copying anything.
pub struct RemotePlan<'a> {
    /// The backup to restore.
    pub backup: &'a BackupInfo,
    /// Its chain: an incremental backup is combined here before it is sent.
    pub chain: &'a crate::incremental::RestoreChain,
    /// Where each tablespace goes on the target, by oid.
    pub locations: &'a BTreeMap<u32, PathBuf>,
    /// The WAL archive.
    pub archive: &'a crate::wal_archive::WalArchive,
    /// The WAL the recovery needs.
    pub wal: &'a crate::timelines::WalPlan,
    /// Recovery target settings (restore_command and archive_command are added here).
    pub settings: Vec<(String, String)>,
}

/// Restores `plan.backup` onto the host reached with `ssh_command`.
pub fn recover_remote(
    server: &Server,
    opts: &RecoverOptions,
    ssh_command: &str,
    plan: RemotePlan<'_>,
) -> Result<RecoverySummary> {
    let cfg = &server.config;
    if opts.delta_on() {
        return Err(Error::Usage(
            "--delta-restore cannot be used with --remote-ssh-command (use --force: rsync sends only the differences of files that are already there)".into(),
        ));
    }
    if opts.get_wal_on() {
        return Err(Error::Usage(
            "--get-wal cannot be used with --remote-ssh-command: the target host cannot call pgbak on this host; the WAL is copied into the destination instead (use --no-get-wal)".into(),
        ));
    }
    let dest = path_text(&opts.dest)?;
    let command = SshCommand::parse(ssh_command)
        .map_err(|e| Error::Usage(format!("--remote-ssh-command: {e}")))?;
    let master = SshMaster::connect(command, Duration::from_secs(30))
        .map_err(|e| Error::Other(format!("cannot reach the recovery target: {e}")))?;
    let host = Host::Remote(Arc::new(master));
    let rsync = RsyncSettings {
        program: rsync_program(cfg),
        remote_program: None,
        compress: cfg.network_compression,
        bwlimit_kbps: opts.bwlimit.or(cfg.bandwidth_limit),
    };
    check_programs(&host, &rsync)?;

    // Check everything on the target before writing anything there.
    let mut dirs = vec![dest.clone()];
    for loc in plan.locations.values() {
        dirs.push(path_text(loc)?);
    }
    if !opts.force {
        ensure_empty_remote(&host, &dirs)?;
    }
    let avail = remote_available_space(&host, &dest)?;
    if avail < plan.backup.data_size {
        return Err(Error::kind_of(ErrorKind::NoSpace, format!(
            "not enough free space in {dest} on {}: the backup needs {} bytes, {avail} are available",
            host.describe(),
            plan.backup.data_size
        )));
    }
    run_script(
        &host,
        &format!(
            "umask 077 && mkdir -p {d} && chmod 700 {d}",
            d = dirs
                .iter()
                .map(|d| shell::quote(d))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "create the destination",
    )?;

    let jobs = opts.jobs.unwrap_or(cfg.parallel_jobs).max(1) as usize;
    let controller = Controller {
        settings: RsyncSettings {
            bwlimit_kbps: rsync.bwlimit_kbps.map(|l| (l / jobs as u64).max(1)),
            ..rsync.clone()
        },
        jobs,
        retry: RetryPolicy {
            times: cfg.basebackup_retry_times,
            sleep: Duration::from_secs(cfg.basebackup_retry_sleep),
        },
    };
    let id = &plan.backup.backup_id;
    let staging_root = staging_parent(server);
    // A tar-format backup is unpacked here first (an incremental one combined with its
    // ancestors); a plain one (on local disk) is sent as it is.
    let plain_dir = match plan.backup.backup_format.as_str() {
        "plain" if !plan.chain.is_incremental() => {
            Some(server.local_backup_dir(id).ok_or_else(|| Error::Corrupt {
                what: format!("backup {id} of server '{}'", server.name()),
                detail: "a plain backup in an object store".into(),
            })?)
        }
        _ => None,
    };
    let unpacked = match &plain_dir {
        Some(_) => None,
        None => Some(unpack_locally(
            server,
            plan.chain,
            plan.locations,
            &staging_root,
            jobs,
        )?),
    };
    let (data_src, ts_src) = match (&plain_dir, &unpacked) {
        (Some(bdir), _) => (bdir.join("data"), bdir.clone()),
        (None, Some(t)) => (t.path().join("data"), t.path().to_path_buf()),
        (None, None) => unreachable!("a tar backup is unpacked"),
    };
    let mut trees = vec![(data_src.clone(), dest.clone())];
    for (oid, loc) in plan.locations {
        trees.push((ts_src.join(oid.to_string()), path_text(loc)?));
    }
    for (src, to) in &trees {
        send_tree(&controller, &host, src, to, true)?;
    }

    // What recovery adds, staged here and sent last.
    let staging = tempfile::Builder::new()
        .prefix("pgbak-recover-")
        .tempdir_in(&staging_root)
        .map_err(|e| Error::io("create", &staging_root, e))?;
    let stage = staging.path();
    set_private(stage)?;
    // Only a regular file of the backup is carried over: a link would ship whatever it points
    // to on this host.
    let auto_conf = data_src.join("postgresql.auto.conf");
    match staging::open_regular(&auto_conf) {
        Err(_) if fs::symlink_metadata(&auto_conf).is_ok_and(|m| m.file_type().is_symlink()) => {
            tracing::warn!(
                "left out {}: a symbolic link, not a file of the backup",
                auto_conf.display()
            );
        }
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .map_err(|e| Error::io("read", &auto_conf, e))?;
            write_recovery_file(stage, "postgresql.auto.conf", &bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", &auto_conf, e)),
    }
    if fs::symlink_metadata(data_src.join("tablespace_map")).is_ok_and(|m| m.is_file()) {
        write_recovery_file(
            stage,
            "tablespace_map",
            tablespace_map(plan.locations).as_bytes(),
        )?;
    }
    if !plan.locations.is_empty() {
        let tblspc = stage.join("pg_tblspc");
        fs::create_dir(&tblspc).map_err(|e| Error::io("create", &tblspc, e))?;
        set_private(&tblspc)?;
        for (oid, loc) in plan.locations {
            let link = tblspc.join(oid.to_string());
            std::os::unix::fs::symlink(loc, &link).map_err(|e| Error::io("symlink", &link, e))?;
        }
    }
    let spool = stage.join(WAL_SPOOL_DIR);
    fs::create_dir(&spool).map_err(|e| Error::io("create", &spool, e))?;
    set_private(&spool)?;
    let mut copied = 0;
    for name in plan.wal.histories.iter().chain(&plan.wal.segments) {
        plan.archive.fetch(name, &spool.join(name))?;
        copied += 1;
    }
    let restore_command = format!("cp {WAL_SPOOL_DIR}/%f %p");
    let mut settings = plan.settings;
    settings.insert(0, ("restore_command".into(), restore_command.clone()));
    settings.push(("archive_command".into(), "false".into()));
    crate::recover::write_auto_conf(stage, plan.backup, &settings)?;
    write_recovery_file(stage, signal_file(opts.standby_mode), b"")?;
    send_tree(&controller, &host, stage, &dest, false)?;
    // Make what rsync wrote durable on the target (`sync -f` is syncfs(2): one call per
    // filesystem) before reporting success.
    run_script(
        &host,
        &format!(
            "rm -f {d}/postmaster.pid {d}/postmaster.opts && sync -f {all}",
            d = shell::quote(&dest),
            all = dirs
                .iter()
                .map(|d| shell::quote(d))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "finish the destination",
    )?;
    Ok(RecoverySummary {
        backup: plan.backup.clone(),
        dest: opts.dest.clone(),
        wal_files_copied: copied,
        restore_command,
        settings,
        // rsync reports no figures of what it wrote.
        restore: Default::default(),
    })
}

fn path_text(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Usage(format!("{} is not a UTF-8 path", p.display())))
}

fn set_private(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io("chmod", p, e))
}

/// Where local staging folders go: `staging_path` when set, else the system's temp folder.
fn staging_parent(server: &Server) -> PathBuf {
    server
        .config
        .raw
        .get("staging_path")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn run_script(host: &Host, script: &str, what: &str) -> Result<String> {
    let out = host.shell(script)?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "cannot {what} on {}: {}",
            host.describe(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails unless every folder of `dirs` on the target is missing or empty.
fn ensure_empty_remote(host: &Host, dirs: &[String]) -> Result<()> {
    let script = format!(
        "for d in {}; do if [ -e \"$d\" ]; then if [ ! -d \"$d\" ]; then echo \"not a directory: $d\"; \
         elif [ -n \"$(ls -A \"$d\")\" ]; then echo \"not empty: $d\"; fi; fi; done",
        dirs.iter().map(|d| shell::quote(d)).collect::<Vec<_>>().join(" ")
    );
    let said = run_script(host, &script, "inspect the destination")?;
    let problems: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "on {}: {} (use --force to restore into it anyway)",
        host.describe(),
        problems.join("; ")
    )))
}

/// Bytes free for an unprivileged user where `path` (or its nearest existing parent) lives.
fn remote_available_space(host: &Host, path: &str) -> Result<u64> {
    let script = format!(
        "p={}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -Pk \"$p\" | tail -n 1",
        shell::quote(path)
    );
    let line = run_script(host, &script, "measure free space")?;
    line.split_whitespace()
        .nth(3)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
        .ok_or_else(|| {
            Error::Other(format!(
                "cannot read the free space of {path} on {} from df: {line:?}",
                host.describe()
            ))
        })
}

/// Sends the local tree `src` into `to` on the target, `jobs` rsync runs at a time. With
/// `skip_tablespace_links`, `pg_tblspc/<oid>` links are left for the staging pass to create.
fn send_tree(
    controller: &Controller,
    host: &Host,
    src: &Path,
    to: &str,
    skip_tablespace_links: bool,
) -> Result<()> {
    let entries = list_tree(&Host::Local, &path_text(src)?)?;
    // Links are never sent from the backup: the staging pass makes `pg_tblspc/<oid>` itself,
    // and any other link (a backup holds none) would point the target somewhere else.
    let (dirs, files): (Vec<FileEntry>, Vec<FileEntry>) = entries
        .into_iter()
        .filter(|e| match e.kind {
            EntryKind::Other => false,
            EntryKind::Symlink => !skip_tablespace_links,
            _ => true,
        })
        .partition(|e| e.kind == EntryKind::Dir);
    let tree = TreeCopy {
        what: format!("{} to {to}", src.display()),
        source: Side::local(src),
        dest: Side {
            host: host.clone(),
            root: to.to_string(),
        },
        reuse: None,
        reuse_window: None,
        bwlimit_kbps: None,
    };
    if let Some(t) = tree.dir_task(&dirs) {
        controller.run(vec![t], &mut NoProgress, 0, None)?;
    }
    controller.run(
        tree.file_tasks(&files, controller.jobs),
        &mut NoProgress,
        0,
        None,
    )?;
    Ok(())
}

/// Unpacks a tar-format backup into a staging folder: `data/` and one folder per tablespace oid.
/// An incremental backup is combined with its ancestors on the way, `jobs` archives at a time.
fn unpack_locally(
    server: &Server,
    chain: &crate::incremental::RestoreChain,
    locations: &BTreeMap<u32, PathBuf>,
    staging_root: &Path,
    jobs: usize,
) -> Result<tempfile::TempDir> {
    let t = tempfile::Builder::new()
        .prefix("pgbak-unpack-")
        .tempdir_in(staging_root)
        .map_err(|e| Error::io("create", staging_root, e))?;
    let data = t.path().join("data");
    staging::create_dir_all_private(&data).map_err(|e| Error::io("create", &data, e))?;
    if chain.is_incremental() {
        let staged: BTreeMap<u32, PathBuf> = locations
            .keys()
            .map(|oid| (*oid, t.path().join(oid.to_string())))
            .collect();
        chain.restore(server, &data, &staged, &ExtractOptions::default(), jobs)?;
        return Ok(t);
    }
    let store = server.stores().backups.as_ref();
    let backup = &chain.chain[0];
    let unpack = |stem: &str, to: &Path| -> Result<()> {
        staging::create_dir_all_private(to).map_err(|e| Error::io("create", to, e))?;
        let archive = find_archive(store, backup, stem)?;
        extract_archive(
            store,
            server.encryptor(),
            &archive,
            to,
            &ExtractOptions::default(),
        )
        .map(drop)
    };
    unpack("base.tar", &data)?;
    for oid in locations.keys() {
        unpack(&format!("{oid}.tar"), &t.path().join(oid.to_string()))?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_checks_of_the_target() {
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let full = d.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("x"), b"x").unwrap();
        let file = d.path().join("file");
        fs::write(&file, b"x").unwrap();
        let missing = d.path().join("missing/deeper");
        let text = |p: &Path| p.to_str().unwrap().to_string();
        ensure_empty_remote(&Host::Local, &[text(&empty), text(&missing)]).unwrap();
        let e = ensure_empty_remote(&Host::Local, &[text(&full), text(&file)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not empty") && e.contains("not a directory"),
            "{e}"
        );
        assert!(remote_available_space(&Host::Local, &text(&missing)).unwrap() > 0);
    }
}
