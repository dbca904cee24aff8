//! What of a data directory or tablespace goes into a file-level backup, by the rules PostgreSQL
//! documents for base backups ("Backing Up the Data Directory" and `pg_basebackup`): no WAL, no
//! runtime state (`postmaster.pid`, the contents of `pg_replslot`, `pg_dynshmem`, `pg_notify`,
//! `pg_serial`, `pg_snapshots`, `pg_stat_tmp`, `pg_subtrans`), no temporary files or relations,
//! only the init fork of unlogged relations, and `global/pg_control` copied last.
//!
//! The result is a [`TreePlan`]: directories to create first, files to copy, directories to make
//! empty, and the files to copy after everything else.

use super::filelist::{EntryKind, FileEntry};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Directories kept in the backup but always empty.
pub const CONTENTS_EXCLUDED: &[&str] = &[
    "pg_dynshmem",
    "pg_notify",
    "pg_replslot",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
    "pg_wal",
];

/// Files never copied, wherever they are (PostgreSQL's `excludeFiles`, plus what pgbak writes
/// itself into a backup).
pub const FILES_EXCLUDED: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "pg_internal.init",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
];

/// Files of the data directory's top level that belong to a server in recovery, not to a backup.
pub const TOP_FILES_EXCLUDED: &[&str] = &["recovery.signal", "standby.signal", "recovery.conf"];

/// Prefix of temporary files and directories.
pub const TEMP_PREFIX: &str = "pgsql_tmp";

/// The control file, copied after every other file.
pub const PG_CONTROL: &str = "global/pg_control";

/// What to do with one tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreePlan {
    /// Directories to create (with their modes) before any file is copied.
    pub dirs: Vec<FileEntry>,
    /// Files and symbolic links to copy.
    pub files: Vec<FileEntry>,
    /// Directories to create empty in the copy, whatever the source has there (pg_wal may be a
    /// link to elsewhere on the server).
    pub empty_dirs: Vec<PathBuf>,
    /// Files to copy after all others (`global/pg_control`).
    pub last: Vec<FileEntry>,
    /// Entries left out, and the bytes of the files among them.
    pub excluded: usize,
    /// Bytes of the files left out.
    pub excluded_bytes: u64,
    /// Symbolic links left out: a backup holds only the links PostgreSQL makes
    /// (`pg_tblspc/<oid>`, relinked to the backup's own tablespace folders).
    pub skipped_links: Vec<PathBuf>,
}

impl TreePlan {
    /// Bytes of the files to copy (including the last ones).
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .chain(&self.last)
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum()
    }
}

fn name_of(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn parts(path: &Path) -> Vec<&str> {
    path.components()
        .map(|c| c.as_os_str().to_str().unwrap_or(""))
        .collect()
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `t<backend>_<relfilenode>` with an optional fork and segment: a temporary relation.
pub fn is_temp_relation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('t') else {
        return false;
    };
    let Some((backend, rest)) = rest.split_once('_') else {
        return false;
    };
    is_digits(backend) && relation_node(rest).is_some()
}

/// The relfilenode of a relation file name (`16384`, `16384_fsm`, `16384.2`, `16384_init`),
/// with whether it is the init fork.
fn relation_node(name: &str) -> Option<(&str, bool)> {
    // A segment number after the dot changes nothing about which relation it is.
    let base = match name.split_once('.') {
        Some((b, s)) if is_digits(s) => b,
        Some(_) => return None,
        None => name,
    };
    let (node, fork) = match base.split_once('_') {
        Some((n, f)) => (n, Some(f)),
        None => (base, None),
    };
    if !is_digits(node) {
        return None;
    }
    match fork {
        None => Some((node, false)),
        Some("fsm") | Some("vm") => Some((node, false)),
        Some("init") => Some((node, true)),
        Some(_) => None,
    }
}

/// Whether `path` (relative to its tree) is a file directly in a database directory:
/// `base/<db>/<file>` in the data directory, `<version dir>/<db>/<file>` in a tablespace.
fn in_database_dir(p: &[&str], tablespace: bool) -> bool {
    p.len() == 3 && is_digits(p[1]) && (tablespace || p[0] == "base")
}

/// Splits the listing of a data directory. `skip` are subtrees to leave out (tablespaces that
/// live inside the data directory, copied on their own); `server_version_num` decides the
/// empty directories of `pg_wal`.
pub fn plan_data_directory(
    entries: Vec<FileEntry>,
    skip: &[PathBuf],
    server_version_num: u32,
) -> TreePlan {
    let unlogged = unlogged_nodes(&entries, false);
    let mut plan = TreePlan::default();
    let mut saw_wal = false;
    for e in entries {
        let p = parts(&e.path);
        let name = name_of(&e.path);
        let top = p.first().copied().unwrap_or("");
        let mut drop = e.kind == EntryKind::Other
            || skip.iter().any(|s| e.path.starts_with(s))
            || p.iter().any(|c| c.starts_with(TEMP_PREFIX));
        if !drop && CONTENTS_EXCLUDED.contains(&top) {
            if p.len() == 1 {
                plan.empty_dirs.push(e.path.clone());
                saw_wal |= top == "pg_wal";
                continue;
            }
            drop = true;
        }
        if !drop && top == "pg_tblspc" && p.len() == 2 && e.kind == EntryKind::Symlink {
            // Relinked to the backup's own tablespace folders.
            continue;
        }
        if !drop && e.kind == EntryKind::Symlink {
            plan.excluded += 1;
            plan.skipped_links.push(e.path);
            continue;
        }
        if !drop && e.kind != EntryKind::Dir {
            drop = FILES_EXCLUDED.contains(&name)
                || (p.len() == 1 && TOP_FILES_EXCLUDED.contains(&name))
                || (in_database_dir(&p, false) && excluded_relation_file(name, p[1], &unlogged));
        }
        if drop {
            plan.excluded += 1;
            if e.kind == EntryKind::File {
                plan.excluded_bytes += e.size;
            }
            continue;
        }
        if e.path == Path::new(PG_CONTROL) {
            plan.last.push(e);
        } else if e.kind == EntryKind::Dir {
            plan.dirs.push(e);
        } else {
            plan.files.push(e);
        }
    }
    if saw_wal {
        plan.empty_dirs.push(PathBuf::from("pg_wal/archive_status"));
        if server_version_num >= 170000 {
            plan.empty_dirs.push(PathBuf::from("pg_wal/summaries"));
        }
    }
    plan
}

/// The directory a tablespace of this server keeps its files in starts with this
/// (`PG_15_202209061`): other versions' folders in the same location are not this cluster's.
pub fn tablespace_version_prefix(server_version_num: u32) -> String {
    format!("PG_{}_", server_version_num / 10000)
}

/// Splits the listing of a tablespace location: only this server's version folder, without
/// temporary files and relations and with only the init fork of unlogged relations.
pub fn plan_tablespace(entries: Vec<FileEntry>, server_version_num: u32) -> TreePlan {
    let prefix = tablespace_version_prefix(server_version_num);
    let unlogged = unlogged_nodes(&entries, true);
    let mut plan = TreePlan::default();
    for e in entries {
        let p = parts(&e.path);
        let name = name_of(&e.path);
        let drop = e.kind == EntryKind::Other
            || !p.first().is_some_and(|t| t.starts_with(&prefix))
            || p.iter().any(|c| c.starts_with(TEMP_PREFIX))
            || (e.kind != EntryKind::Dir
                && in_database_dir(&p, true)
                && excluded_relation_file(name, p[1], &unlogged));
        if drop {
            plan.excluded += 1;
            if e.kind == EntryKind::File {
                plan.excluded_bytes += e.size;
            }
        } else if e.kind == EntryKind::Symlink {
            plan.excluded += 1;
            plan.skipped_links.push(e.path);
        } else if e.kind == EntryKind::Dir {
            plan.dirs.push(e);
        } else {
            plan.files.push(e);
        }
    }
    plan
}

/// (database folder, relfilenode) of every unlogged relation: those with an init fork.
fn unlogged_nodes(entries: &[FileEntry], tablespace: bool) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for e in entries {
        let p = parts(&e.path);
        if e.kind == EntryKind::File && in_database_dir(&p, tablespace) {
            if let Some((node, true)) = relation_node(p[2]) {
                out.insert((p[1].to_string(), node.to_string()));
            }
        }
    }
    out
}

/// A temporary relation, or a fork of an unlogged relation other than its init fork.
fn excluded_relation_file(name: &str, db: &str, unlogged: &HashSet<(String, String)>) -> bool {
    if is_temp_relation(name) {
        return true;
    }
    match relation_node(name) {
        Some((node, false)) => unlogged.contains(&(db.to_string(), node.to_string())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(path: &str, kind: EntryKind) -> FileEntry {
        FileEntry {
            path: PathBuf::from(path),
            kind,
            size: 10,
            mtime: 0,
        }
    }
    use EntryKind::{Dir, File, Other, Symlink};

    fn names(v: &[FileEntry]) -> Vec<&str> {
        v.iter().map(|e| e.path.to_str().unwrap()).collect()
    }

    #[test]
    fn data_directory_rules() {
        let listing = vec![
            e("base", Dir),
            e("base/1", Dir),
            e("base/1/1259", File),
            e("base/1/1259_fsm", File),
            e("base/1/pg_internal.init", File),
            e("base/1/t3_16400", File),
            e("base/1/t3_16400_fsm", File),
            e("base/1/16500", File),
            e("base/1/16500.1", File),
            e("base/1/16500_fsm", File),
            e("base/1/16500_init", File),
            e("base/1/PG_VERSION", File),
            e("base/pgsql_tmp", Dir),
            e("base/pgsql_tmp/pgsql_tmp123.0", File),
            e("global", Dir),
            e("global/pg_control", File),
            e("global/1262", File),
            e("pg_wal", Symlink),
            e("pg_replslot", Dir),
            e("pg_replslot/slot1", Dir),
            e("pg_replslot/slot1/state", File),
            e("pg_stat_tmp", Dir),
            e("pg_stat_tmp/global.stat", File),
            e("pg_tblspc", Dir),
            e("pg_tblspc/16384", Symlink),
            e("postmaster.pid", File),
            e("postmaster.opts", File),
            e("backup_label", File),
            e("standby.signal", File),
            e("postgresql.auto.conf", File),
            e("postgresql.conf", File),
            e(".s.PGSQL.5432", Other),
            e("log", Dir),
            e("log/postgresql.log", File),
            e("inside_ts", Dir),
            e("inside_ts/PG_15_1", Dir),
        ];
        let plan = plan_data_directory(listing, &[PathBuf::from("inside_ts")], 150000);
        assert_eq!(
            names(&plan.dirs),
            vec!["base", "base/1", "global", "pg_tblspc", "log"]
        );
        assert_eq!(
            names(&plan.files),
            vec![
                "base/1/1259",
                "base/1/1259_fsm",
                "base/1/16500_init",
                "base/1/PG_VERSION",
                "global/1262",
                "postgresql.auto.conf",
                "postgresql.conf",
                "log/postgresql.log"
            ]
        );
        assert_eq!(names(&plan.last), vec!["global/pg_control"]);
        let empty: Vec<_> = plan
            .empty_dirs
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        assert_eq!(
            empty,
            vec![
                "pg_wal",
                "pg_replslot",
                "pg_stat_tmp",
                "pg_wal/archive_status"
            ]
        );
        assert_eq!(plan.bytes(), 9 * 10);
    }

    #[test]
    fn tablespace_rules() {
        let listing = vec![
            e("PG_15_202209061", Dir),
            e("PG_15_202209061/5", Dir),
            e("PG_15_202209061/5/16390", File),
            e("PG_15_202209061/5/t4_16391", File),
            e("PG_15_202209061/pgsql_tmp", Dir),
            e("PG_15_202209061/pgsql_tmp/pgsql_tmp1.1", File),
            e("PG_14_202107181", Dir),
            e("PG_14_202107181/5/16390", File),
            e("lost+found", Dir),
        ];
        let plan = plan_tablespace(listing, 150003);
        assert_eq!(
            names(&plan.dirs),
            vec!["PG_15_202209061", "PG_15_202209061/5"]
        );
        assert_eq!(names(&plan.files), vec!["PG_15_202209061/5/16390"]);
        assert_eq!(plan.excluded, 6);
    }

    #[test]
    fn only_tablespace_links_are_kept() {
        let listing = vec![
            e("pg_tblspc", Dir),
            e("pg_tblspc/16384", Symlink),
            e("postgresql.auto.conf", Symlink),
            e("base", Dir),
            e("base/1", Dir),
            e("base/1/evil", Symlink),
            e("pg_wal", Symlink),
        ];
        let plan = plan_data_directory(listing, &[], 150000);
        assert_eq!(
            plan.skipped_links,
            vec![
                PathBuf::from("postgresql.auto.conf"),
                PathBuf::from("base/1/evil")
            ]
        );
        assert!(plan.files.iter().all(|f| f.kind != Symlink));
        assert_eq!(
            plan.empty_dirs,
            vec![
                PathBuf::from("pg_wal"),
                PathBuf::from("pg_wal/archive_status")
            ]
        );
        let ts = plan_tablespace(
            vec![
                e("PG_15_1", Dir),
                e("PG_15_1/1", Dir),
                e("PG_15_1/1/link", Symlink),
            ],
            150000,
        );
        assert_eq!(ts.skipped_links, vec![PathBuf::from("PG_15_1/1/link")]);
        assert!(ts.files.is_empty());
    }

    #[test]
    fn relation_names() {
        for temp in ["t3_16400", "t12_1_fsm", "t3_16400.7", "t3_16400_init"] {
            assert!(is_temp_relation(temp), "{temp}");
        }
        for not in ["t3", "tx_1", "16400", "t3_x", "t3_1_main", "t_1", "t3_1.x"] {
            assert!(!is_temp_relation(not), "{not}");
        }
        assert_eq!(relation_node("16384_init"), Some(("16384", true)));
        assert_eq!(relation_node("16384.12"), Some(("16384", false)));
        assert_eq!(relation_node("PG_VERSION"), None);
    }

    fn entry_strategy() -> impl Strategy<Value = FileEntry> {
        let comp = prop_oneof![
            Just("base".to_string()),
            Just("global".to_string()),
            Just("pg_wal".to_string()),
            Just("pg_tblspc".to_string()),
            Just("pgsql_tmp1".to_string()),
            Just("postmaster.pid".to_string()),
            "[0-9]{1,5}(_fsm|_init|_vm)?",
            "t[0-9]_[0-9]{1,4}",
            "[a-z_]{1,8}",
        ];
        (
            proptest::collection::vec(comp, 1..4),
            prop_oneof![Just(File), Just(Dir), Just(Symlink), Just(Other)],
            0u64..1000,
        )
            .prop_map(|(c, kind, size)| FileEntry {
                path: c.iter().collect(),
                kind,
                size,
                mtime: 0,
            })
    }

    proptest! {
        #[test]
        fn every_entry_is_placed_once(entries in proptest::collection::vec(entry_strategy(), 0..60)) {
            let n = entries.len();
            // Only pg_tblspc links are neither copied, emptied nor counted as excluded.
            let relinked = entries.iter().filter(|e| {
                let p = parts(&e.path);
                e.kind == Symlink && p.len() == 2 && p[0] == "pg_tblspc"
                    && !p[1].starts_with(TEMP_PREFIX)
            }).count();
            let plan = plan_data_directory(entries, &[], 150000);
            let placed = plan.dirs.len() + plan.files.len() + plan.last.len() + plan.excluded;
            let empty_from_listing = plan.empty_dirs.iter()
                .filter(|p| p.components().count() == 1)
                .count();
            prop_assert_eq!(placed + empty_from_listing + relinked, n);
            for f in plan.files.iter().chain(&plan.dirs) {
                let s = f.path.to_str().unwrap();
                prop_assert!(!s.split('/').any(|c| c.starts_with(TEMP_PREFIX)), "{}", s);
                prop_assert!(!s.starts_with("pg_wal/"), "{}", s);
                prop_assert!(f.kind != Other);
                prop_assert!(f.kind == Dir || !FILES_EXCLUDED.contains(&name_of(&f.path)), "{}", s);
            }
            for d in &plan.dirs { prop_assert_eq!(d.kind, Dir); }
            for f in &plan.files { prop_assert!(f.kind != Dir); }
        }
    }
}
