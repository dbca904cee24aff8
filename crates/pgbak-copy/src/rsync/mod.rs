//! File-level copies with rsync: Barman's `rsync` and `local-rsync` backup methods, and the
//! parallel copy that remote recovery uses to send a backup to another host.
//!
//! - [`ssh`]: the operator's `ssh_command` and one multiplexed master connection per copy.
//! - [`host`]: this host or a remote one, behind one interface.
//! - [`filelist`]: a tree's files with sizes and times in one `find` round trip.
//! - [`exclude`]: what of a data directory a base backup leaves out.
//! - [`buckets`]: files split into runs of similar size.
//! - [`command`]: one rsync run and its statistics.
//! - [`controller`]: runs in parallel, with retries, progress and a keepalive.
//! - [`backup`]: [`RsyncCopy`], the [`crate::CopyStrategy`] between `pg_backup_start` and
//!   `pg_backup_stop`.

pub mod backup;
pub mod buckets;
pub mod command;
pub mod controller;
pub mod exclude;
pub mod filelist;
pub mod host;
pub mod shell;
pub mod ssh;

pub use backup::{
    check_programs, BackupSession, BackupStart, BackupStop, ReuseFrom, RsyncCopy, RsyncCopyOptions,
    RsyncCopyStats, SourceTablespace,
};
pub use command::{ReuseMode, RsyncSettings, RsyncStats};
pub use controller::{Controller, ControllerStats, RetryPolicy, Side, Task, TreeCopy};
pub use filelist::{list_tree, EntryKind, FileEntry};
pub use host::Host;
pub use ssh::{SshCommand, SshMaster};
