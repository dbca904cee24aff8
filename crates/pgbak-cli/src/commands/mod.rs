//! Handlers of the commands that live outside `main.rs`, one module per group of commands.

pub mod check;
pub mod delete;
pub mod inspect;
pub mod keep;
pub mod lock_cleanup;
pub mod receive_wal;
pub mod show_backup;
pub mod verify;
pub mod wal;
pub mod wal_args;
