//! The backups of a server: their records, markers and data, as keys below `<backup_id>/`.

pub mod catalogue;
pub mod record;

pub use catalogue::{Catalogue, Leftovers, DELETE_MARKER, INFO_FILE, KEEP_FILE};
pub use record::{
    is_backup_id, new_backup_id, BackupFile, BackupInfo, BackupPhases, BackupStatus, KeepTarget,
    TablespaceRecord, FORMAT_VERSION,
};
