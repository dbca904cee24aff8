//! The C ABI of pgbak, for C and Python callers. For now it exposes the library version and the
//! error-code convention; workflows are added behind the same conventions.
//!
//! Conventions: functions return `0` on success, `1` on failure and `2` on bad input (the same
//! codes as the CLI); strings returned by the library are owned by it and stay valid for the life
//! of the process.

use std::ffi::{c_char, c_int};

/// Success.
pub const PGBAK_OK: c_int = 0;
/// The operation failed.
pub const PGBAK_ERROR: c_int = 1;
/// Invalid input (usage or configuration).
pub const PGBAK_USAGE: c_int = 2;

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The pgbak version as a NUL-terminated string owned by the library.
#[no_mangle]
pub extern "C" fn pgbak_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Maps a library error to its C return code.
pub fn error_code(e: &pgbak_core::Error) -> c_int {
    match e.exit_code() {
        2 => PGBAK_USAGE,
        _ => PGBAK_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_nul_terminated() {
        let s = unsafe { std::ffi::CStr::from_ptr(pgbak_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn usage_errors_map_to_2() {
        assert_eq!(
            error_code(&pgbak_core::Error::Usage("x".into())),
            PGBAK_USAGE
        );
        assert_eq!(
            error_code(&pgbak_core::Error::Other("x".into())),
            PGBAK_ERROR
        );
    }
}
