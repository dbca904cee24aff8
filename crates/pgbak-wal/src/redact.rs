//! Secrets out of anything shown: the one place that knows what a password looks like in text
//! pgbak prints, logs or stores as an error (connection strings, connection URIs, commands with
//! `PGPASSWORD=...`, configuration options that hold a secret).
//!
//! Every output path (errors, warnings, `check` and its Nagios and JSON forms, the log file,
//! `show-servers`, `diagnose`) passes its text through [`redact`] or, for a configuration value
//! whose option name is known, [`redact_option`]. Masking errs on the side of hiding too much: a
//! value runs to the next white space, so `password=a&b` or `password=x",` lose their tail too.

use std::borrow::Cow;

/// What replaces a secret.
pub const MASK: &str = "********";

/// Parts of a name (compared in lower case) that make it a secret: `password=`, `PGPASSWORD=`,
/// `sslpassword=`, `encryption_passphrase_command`, `aws_secret_access_key`, ...
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "sse_customer_key",
    "access_key",
];

/// Whether a key or option name names a secret (case-insensitive).
///
/// ```
/// use pgbak_wal::redact::is_secret_name;
/// assert!(is_secret_name("PGPASSWORD"));
/// assert!(is_secret_name("encryption_passphrase_command"));
/// assert!(!is_secret_name("passfile"));
/// assert!(!is_secret_name("PasswordAuthentication"));
/// ```
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // `ssh -o PasswordAuthentication=no` names a setting, not a secret.
    SECRET_WORDS.iter().any(|w| lower.contains(w)) && !lower.ends_with("authentication")
}

/// The value of configuration option `key` fit to show: hidden whole when the option itself is a
/// secret (`encryption_passphrase_command`, `aws_sse_customer_key`, ...), else with every
/// password inside it masked by [`redact`] (hook commands, ...); a connection string
/// (`*conninfo`) that cannot even be split into pairs is hidden whole when it may hold one
/// ([`crate::conninfo::redacted`]).
///
/// ```
/// use pgbak_wal::redact::redact_option;
/// assert_eq!(redact_option("conninfo", "host=db PASSWORD=s3cret"), "host=db PASSWORD=********");
/// assert_eq!(redact_option("post_backup_script", "PGPASSWORD=s3cret psql"), "PGPASSWORD=******** psql");
/// assert_eq!(redact_option("encryption_passphrase_command", "cat /k"), "********");
/// ```
pub fn redact_option(key: &str, value: &str) -> String {
    if is_secret_name(key) {
        MASK.to_string()
    } else if key.ends_with("conninfo") {
        crate::conninfo::redacted(value)
    } else {
        redact(value).into_owned()
    }
}

/// Masks every secret in `text`:
///
/// - the value of any `NAME=value` whose name is a secret ([`is_secret_name`], any case):
///   `password=...` in a connection string, `PGPASSWORD=...` in a command, `?password=` in a
///   URI; a quoted value (`'...'` or `"..."`, with backslash escapes) is masked inside its
///   quotes, an unquoted one up to the next white space;
/// - the password of a URI's `user:password@` part (`postgresql://bob:s3cret@db/app`).
///
/// Text without a secret comes back borrowed.
///
/// ```
/// use pgbak_wal::redact::redact;
/// assert_eq!(redact("host=db password = 's3 cret' user=x"), "host=db password = '********' user=x");
/// assert_eq!(redact("postgresql://bob:s3cret@db/app"), "postgresql://bob:********@db/app");
/// assert_eq!(redact("PGPASSWORD=s3cret pg_dump"), "PGPASSWORD=******** pg_dump");
/// assert_eq!(redact("nothing to hide"), "nothing to hide");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut spans = secret_values(text);
    spans.extend(uri_passwords(text));
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for span in spans {
        if span.end <= done {
            continue;
        }
        let start = span.start.max(done);
        out.push_str(&text[done..start]);
        if start == span.start {
            out.push_str(MASK);
        }
        done = span.end;
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Byte ranges of the values of `NAME=value` pairs whose name is a secret.
fn secret_values(text: &str) -> Vec<std::ops::Range<usize>> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_name_byte(b[i]) || (i > 0 && is_name_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < b.len() && is_name_byte(b[i]) {
            i += 1;
        }
        let name = &text[name_start..i];
        let mut j = i;
        while j < b.len() && is_blank(b[j]) {
            j += 1;
        }
        if j >= b.len() || b[j] != b'=' || !is_secret_name(name) {
            continue;
        }
        j += 1;
        while j < b.len() && is_blank(b[j]) {
            j += 1;
        }
        // In a URI query (`?password=x&sslmode=...`) a value ends at `&`: one inside a password
        // would have to be written %26.
        let in_query = name_start > 0 && matches!(b[name_start - 1], b'?' | b'&');
        let span = value_span(b, j, in_query);
        if !span.is_empty() {
            i = span.end;
            spans.push(span);
        }
    }
    spans
}

/// The part of `b` from `start` that is a value: inside its quotes when quoted (to the end of
/// the line when the quote is never closed), else up to the next white space (or `&` in a URI
/// query).
fn value_span(b: &[u8], start: usize, in_query: bool) -> std::ops::Range<usize> {
    if start < b.len() && (b[start] == b'\'' || b[start] == b'"') {
        let quote = b[start];
        let mut k = start + 1;
        while k < b.len() {
            match b[k] {
                b'\\' => k += 2,
                c if c == quote => return start + 1..k,
                b'\n' => return start + 1..k,
                _ => k += 1,
            }
        }
        return start + 1..b.len();
    }
    let mut k = start;
    while k < b.len() && !b[k].is_ascii_whitespace() && !(in_query && b[k] == b'&') {
        k += 1;
    }
    start..k
}

/// Byte ranges of the passwords of `scheme://user:password@` parts, and of query values whose
/// percent-encoded name is a secret (`?pass%77ord=x`). The `@` taken is the last one before the
/// next white space, so a password holding `/` or `@` is still hidden whole (at the price of
/// hiding a path too in odd text).
fn uri_passwords(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let end = text[start..]
            .find(|c: char| c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        let region = &text[start..end];
        if let Some(at) = region.rfind('@') {
            if let Some(colon) = region[..at].find(':') {
                if colon + 1 < at {
                    spans.push(start + colon + 1..start + at);
                }
            }
        }
        if let Some(q) = region.find('?') {
            let mut pos = start + q + 1;
            for param in region[q + 1..].split('&') {
                if let Some((k, v)) = param.split_once('=') {
                    if !v.is_empty() && is_secret_name(&percent_decoded(k)) {
                        spans.push(pos + k.len() + 1..pos + param.len());
                    }
                }
                pos += param.len() + 1;
            }
        }
        from = start;
    }
    spans
}

/// `%XX` escapes decoded, bad ones kept as written (for names only, never shown).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "Zq7!pw%cd";

    fn hidden(text: &str) -> String {
        let out = redact(text).into_owned();
        assert!(!out.contains("Zq7"), "{text:?} -> {out:?}");
        out
    }

    #[test]
    fn connection_strings_any_case_any_spacing() {
        assert_eq!(
            hidden(&format!("host=db PASSWORD={PW} user=x")),
            "host=db PASSWORD=******** user=x"
        );
        assert_eq!(
            hidden(&format!("host=db password = {PW}")),
            "host=db password = ********"
        );
        assert_eq!(
            hidden(&format!("host=db sslpassword='{PW} \\' x' port=1")),
            "host=db sslpassword='********' port=1"
        );
        // Inside a message that quotes the whole string.
        hidden(&format!("bad '%' in 'host=db password={PW}': write '%%'"));
        // Never closed: masked to the end of the line.
        assert_eq!(
            hidden(&format!("password='{PW} x\nnext")),
            "password='********\nnext"
        );
    }

    #[test]
    fn uris() {
        assert_eq!(
            hidden(&format!("postgresql://bob:{PW}@db:5432/app")),
            "postgresql://bob:********@db:5432/app"
        );
        assert_eq!(
            hidden(&format!(
                "cannot parse \"postgres://bob:{PW}/x@db/app\": error"
            )),
            "cannot parse \"postgres://bob:********@db/app\": error"
        );
        assert_eq!(
            hidden(&format!(
                "postgresql://db/app?user=bob&password={PW}&sslmode=require"
            )),
            "postgresql://db/app?user=bob&password=********&sslmode=require"
        );
        assert_eq!(
            hidden(&format!("postgres://h/db?pass%77ord={PW}")),
            "postgres://h/db?pass%77ord=********"
        );
        assert_eq!(redact("postgresql://bob@db/app"), "postgresql://bob@db/app");
        assert_eq!(redact("https://example.com/x"), "https://example.com/x");
    }

    #[test]
    fn commands_and_debug_output() {
        assert_eq!(
            hidden(&format!("PGPASSWORD={PW} psql -c 'select 1'")),
            "PGPASSWORD=******** psql -c 'select 1'"
        );
        hidden(&format!("export PGPASSWORD=\"{PW}\"; pg_dump"));
        hidden(&format!("[\"-c\", \"PGPASSWORD={PW}\", \"x\"]"));
        hidden(&format!("AWS_SECRET_ACCESS_KEY={PW} aws s3 ls"));
    }

    #[test]
    fn leaves_the_rest_alone() {
        for text in [
            "option 'encryption_passphrase_command' of server 'main': not supported",
            "passfile=/home/x/.pgpass host=db",
            "mypassword_is_not_set",
            "user=password",
            "ssh -o PasswordAuthentication=no -o BatchMode=yes pg1",
            "",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
        assert_eq!(redact("password="), "password=");
        assert_eq!(redact_option("compression", "zstd"), "zstd");
        assert_eq!(redact_option("aws_sse_customer_key", "abc"), MASK);
        assert_eq!(
            redact("password=x password=y"),
            "password=******** password=********"
        );
        assert_eq!(
            redact("PGPASSWORD=x postgresql://u:p@h"),
            "PGPASSWORD=******** postgresql://u:********@h"
        );
    }
}
