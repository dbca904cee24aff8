//! Object keys are relative '/'-separated names; anything that could escape the root is refused.

use crate::{Error, Result};

/// Checks that `key` is a safe object key: not empty, relative, no `.`/`..`/empty components, no NUL.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.contains('\0') {
        return bad("contains NUL");
    }
    for part in key.split('/') {
        match part {
            "" => return bad("empty path component"),
            "." | ".." => return bad("relative path component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_keys() {
        assert!(validate_key("wals/0000000100000000/000000010000000000000001").is_ok());
        assert!(validate_key("a").is_ok());
    }

    #[test]
    fn refuses_escaping_keys() {
        for k in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a/",
            "a\0b",
        ] {
            assert!(validate_key(k).is_err(), "{k:?} accepted");
        }
    }
}
