//! The libpq password file (`.pgpass`): fields, `*` wildcards and backslash escapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::fuzzing::pgpass_password;

fuzz_target!(|data: &[u8]| {
    // The first line names what to look for: host, port, dbname and user separated by spaces.
    let text = String::from_utf8_lossy(data);
    let (wanted, file) = text.split_once('\n').unwrap_or((&text, ""));
    let mut fields = wanted.split(' ');
    let host = fields.next().unwrap_or("localhost");
    let port = fields.next().and_then(|p| p.parse().ok()).unwrap_or(5432);
    let dbname = fields.next().unwrap_or("postgres");
    let user = fields.next().unwrap_or("postgres");
    if let Some(password) = pgpass_password(file, host, port, dbname, user) {
        assert!(!password.is_empty());
        // Only a line of the file can hold a password: it is never longer than the file.
        assert!(password.len() <= file.len());
    }
    // A line of wildcards matches anything, and its password is found.
    let wildcard = format!("*:*:*:*:found\n{file}");
    assert_eq!(
        pgpass_password(&wildcard, host, port, dbname, user).as_deref(),
        Some("found")
    );
});
