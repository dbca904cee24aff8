//! One module per command or group of commands: each parses nothing (clap did), builds the
//! parts, calls the library and prints what it returns.

pub mod backup;
pub mod check;
pub mod cron;
pub mod delete;
pub mod generated;
pub mod inspect;
pub mod keep;
pub mod listing;
pub mod lock_cleanup;
pub mod receive_wal;
pub mod recover;
pub mod show_backup;
pub mod verify;
pub mod wal;
pub mod wal_args;
