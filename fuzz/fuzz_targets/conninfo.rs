//! libpq connection strings (keyword/value and URI), their resolution, masking and re-writing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_wal::conninfo::{parse_conninfo, redacted};
use pgbak_wal::ConnParams;

const MASK: &str = "********";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let masked = redacted(text);
    let Ok(opts) = parse_conninfo(text) else {
        return;
    };
    // Masking changes the password and nothing else: the masked string reads the same, with the
    // mask as password (an empty password may be masked too, which shows nothing).
    let again = parse_conninfo(&masked)
        .unwrap_or_else(|e| panic!("{text:?} -> {masked:?} does not parse: {e}"));
    let mut before = opts.clone();
    let mut after = again;
    let password = before.remove("password");
    let mask = after.remove("password");
    assert_eq!(after, before, "{text:?} -> {masked:?}");
    if password.as_deref().is_some_and(|p| !p.is_empty()) {
        assert_eq!(mask.as_deref(), Some(MASK), "{text:?} -> {masked:?}");
    }
    // Resolution without environment or home; a password file named in the string is not read.
    if opts.contains_key("passfile") {
        return;
    }
    let env = |_: &str| None;
    let Ok(params) = ConnParams::resolve_with(text, &env, None) else {
        return;
    };
    // The written form (without the password) resolves to the same parameters.
    let written = params.to_conninfo_string();
    let back = ConnParams::resolve_with(&written, &env, None)
        .unwrap_or_else(|e| panic!("{written:?} (from {text:?}) does not resolve: {e}"));
    let expected = ConnParams {
        password: None,
        ..params
    };
    assert_eq!(back, expected, "{text:?} -> {written:?}");
});
