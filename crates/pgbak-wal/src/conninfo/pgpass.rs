//! The libpq password file (`~/.pgpass` or PGPASSFILE): `host:port:dbname:user:password` lines
//! with `*` wildcards and backslash escapes, ignored when group or others can access it.

use super::DEFAULT_SOCKET_DIR;
use std::path::Path;

/// Finds a password in a libpq password file. Missing or unreadable files yield nothing; a file that
/// is not a plain file or that group or others may access is ignored with a warning on stderr, as
/// libpq does.
pub(super) fn password_from_file(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        eprintln!(
            "WARNING: password file \"{}\" is not a plain file",
            path.display()
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    match_password_file(&text, host, port, dbname, user)
}

/// Matches one field against `token` like libpq's `pwdfMatchesString`; returns the rest of the line.
fn match_field<'a>(field_and_rest: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = field_and_rest.strip_prefix("*:") {
        return Some(rest);
    }
    let b = field_and_rest.as_bytes();
    let t = token.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < b.len() {
        let mut escaped = false;
        if b[i] == b'\\' {
            i += 1;
            escaped = true;
            if i >= b.len() {
                return None;
            }
        }
        if b[i] == b':' && !escaped && j == t.len() {
            return field_and_rest.get(i + 1..);
        }
        if j == t.len() || b[i] != t[j] {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// The password of the first matching line (`host:port:dbname:user:password`). A Unix socket host
/// that is the default socket directory is matched as `localhost`, as libpq does.
pub(crate) fn match_password_file(
    text: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let host = if host.is_empty() || host == DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = match_field(line, host) else {
            continue;
        };
        let Some(rest) = match_field(rest, &port) else {
            continue;
        };
        let Some(rest) = match_field(rest, dbname) else {
            continue;
        };
        let Some(rest) = match_field(rest, user) else {
            continue;
        };
        let mut password = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ':' => break,
                '\\' => match chars.next() {
                    Some(n) => password.push(n),
                    None => password.push('\\'),
                },
                c => password.push(c),
            }
        }
        return Some(password).filter(|p| !p.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_matching() {
        let text = "# comment\n\
                    \n\
                    other:5432:*:*:nope\n\
                    db1:5432:app:bob:first\n\
                    db1:*:*:bob:second\n\
                    localhost:5432:*:alice:sock\n\
                    h\\:x:5432:*:*:colon\n\
                    esc:5432:*:*:p\\:w\\\\d:ignored\n\
                    /tmp/sock:5433:*:*:literalsocket\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            match_password_file(text, "db1", 5432, "app", "bob").as_deref(),
            Some("first")
        );
        assert_eq!(
            match_password_file(text, "db1", 5432, "other", "bob").as_deref(),
            Some("second")
        );
        assert_eq!(
            match_password_file(text, "db1", 6000, "x", "bob").as_deref(),
            Some("second")
        );
        assert_eq!(
            match_password_file(text, "/var/run/postgresql", 5432, "x", "alice").as_deref(),
            Some("sock")
        );
        assert_eq!(
            match_password_file(text, "", 5432, "x", "alice").as_deref(),
            Some("sock")
        );
        assert_eq!(
            match_password_file(text, "h:x", 5432, "d", "u").as_deref(),
            Some("colon")
        );
        assert_eq!(
            match_password_file(text, "esc", 5432, "d", "u").as_deref(),
            Some(r"p:w\d")
        );
        assert_eq!(
            match_password_file(text, "/tmp/sock", 5433, "d", "u").as_deref(),
            Some("literalsocket")
        );
        // Another socket directory is not "localhost".
        assert_eq!(
            match_password_file(text, "/tmp/sock", 5432, "d", "alice").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            match_password_file(text, "db1x", 5432, "app", "bob").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            match_password_file("db1:5432:app:bob:pw\r\n", "db1", 5432, "app", "bob").as_deref(),
            Some("pw")
        );
        assert_eq!(
            match_password_file("db1:5432:app:bob", "db1", 5432, "app", "bob"),
            None
        );
        assert_eq!(
            match_password_file("db:5432:app:bob:", "db", 5432, "app", "bob"),
            None
        );
        assert_eq!(
            match_password_file("db1:5432:app:bo", "db1", 5432, "app", "bob"),
            None
        );
        assert_eq!(match_password_file("", "db1", 5432, "app", "bob"), None);
    }
}
