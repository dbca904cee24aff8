//! Lexing of libpq connection strings: `key=value` lists as `conninfo_parse` reads them and
//! `postgresql://` URIs as `conninfo_uri_parse_options` does, plus quoting and password masking
//! for display.

use crate::{Error, Result};
use std::collections::BTreeMap;

const USED_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "dbname",
    "password",
    "passfile",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "options",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "sslsni",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "channel_binding",
    "gssencmode",
];

const IGNORED_KEYWORDS: &[&str] = &[
    "sslcompression",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "target_session_attrs",
    "load_balance_hosts",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "client_encoding",
    "replication",
];

fn check_keyword(key: &str) -> Result<()> {
    if USED_KEYWORDS.contains(&key) || IGNORED_KEYWORDS.contains(&key) {
        Ok(())
    } else {
        Err(Error::conninfo(format!(
            "invalid connection option \"{key}\""
        )))
    }
}

fn uri_rest(s: &str) -> Option<&str> {
    s.strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
}

/// One `key=value` pair of a keyword/value string.
struct KvToken {
    key: String,
    value: String,
}

/// Splits a keyword/value string exactly as libpq's `conninfo_parse` does.
fn lex_kv(s: &str) -> Result<Vec<KvToken>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<KvToken> = Vec::new();
    let is_space = |c: u8| c.is_ascii_whitespace();
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let key = &s[key_start..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(Error::conninfo(match after_secret(&out) {
                // The word may be the rest of a password with a space: never show it.
                Some(secret) => format!(
                    "missing \"=\" after the value of \"{secret}\" in connection info string (a value with spaces must be quoted: {secret}='...')"
                ),
                None => format!("missing \"=\" after \"{key}\" in connection info string"),
            }));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(Error::conninfo(
                        "unterminated quoted string in connection info string",
                    ));
                }
                match b[i] {
                    b'\\' => {
                        i += 1;
                        if i < b.len() {
                            value.push(b[i]);
                            i += 1;
                        }
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !is_space(b[i]) {
                if b[i] == b'\\' {
                    i += 1;
                    if i < b.len() {
                        value.push(b[i]);
                        i += 1;
                    }
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
        }
        // Input was a &str and only whole ASCII bytes were removed: still valid UTF-8, but do not
        // trust that reasoning with a panic.
        let value = String::from_utf8(value)
            .map_err(|_| Error::conninfo(format!("value of \"{key}\" is not valid UTF-8")))?;
        out.push(KvToken {
            key: key.to_string(),
            value,
        });
    }
    Ok(out)
}

/// The key of the last token when it holds a secret: the next word may be part of its value.
fn after_secret(tokens: &[KvToken]) -> Option<&str> {
    tokens
        .last()
        .map(|t| t.key.as_str())
        .filter(|k| crate::redact::is_secret_name(k))
}

/// Decodes the `%XX` escapes of the value of `key`; an error about a secret's value never shows
/// the value.
fn percent_decode_value(key: &str, s: &str) -> Result<String> {
    if !crate::redact::is_secret_name(key) {
        return percent_decode(s);
    }
    percent_decode(s).map_err(|_| {
        Error::conninfo(format!(
            "invalid percent-encoding in the {key} of the connection URI (value not shown; write %25 for a literal '%')"
        ))
    })
}

/// Decodes `%XX` escapes like libpq's `conninfo_uri_decode`.
fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::conninfo(format!("invalid percent-encoded token: \"{s}\""))
                })?;
            if hex == 0 {
                return Err(Error::conninfo(format!(
                    "forbidden value %00 in percent-encoded value: \"{s}\""
                )));
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::conninfo(format!("percent-encoded value is not valid UTF-8: \"{s}\"")))
}

/// Parses a `postgresql://` URI following libpq's `conninfo_uri_parse_options`.
fn parse_uri(rest: &str, out: &mut BTreeMap<String, String>) -> Result<()> {
    let mut store = |key: &str, raw: &str| -> Result<()> {
        if !raw.is_empty() {
            out.insert(key.to_string(), percent_decode_value(key, raw)?);
        }
        Ok(())
    };

    // user[:password]@ — libpq looks for '@' before the first '/'.
    let mut p = rest;
    let at = p.find(['@', '/']).filter(|&i| p.as_bytes()[i] == b'@');
    if let Some(at) = at {
        let userinfo = &p[..at];
        match userinfo.split_once(':') {
            Some((user, password)) => {
                store("user", user)?;
                store("password", password)?;
            }
            None => store("user", userinfo)?,
        }
        p = &p[at + 1..];
    }

    // host[:port][,host[:port]...]
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    loop {
        let host;
        if let Some(after) = p.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| {
                Error::conninfo("end of string reached when looking for matching \"]\" in IPv6 host address in URI")
            })?;
            host = &after[..end];
            if host.is_empty() {
                return Err(Error::conninfo("IPv6 host address may not be empty in URI"));
            }
            p = &after[end + 1..];
            if let Some(c) = p.chars().next() {
                if !matches!(c, ':' | '/' | '?' | ',') {
                    return Err(Error::conninfo(format!(
                        "unexpected character \"{c}\" after IPv6 host address in URI"
                    )));
                }
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            host = &p[..end];
            p = &p[end..];
        }
        hosts.push(host);
        if let Some(after) = p.strip_prefix(':') {
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            ports.push(&after[..end]);
            p = &after[end..];
        } else {
            ports.push("");
        }
        match p.strip_prefix(',') {
            Some(after) => p = after,
            None => break,
        }
    }
    if hosts.len() > 1 {
        return Err(Error::conninfo(
            "multiple hosts in one connection string are not supported",
        ));
    }
    if !ports[0].bytes().all(|c| c.is_ascii_digit()) {
        // Usually a user name or password holding '/' or '@': the text is not shown.
        return Err(Error::conninfo(
            "invalid port number in the connection URI (a '/', ':' or '@' in a user name or password must be percent-encoded: %2F, %3A, %40)",
        ));
    }
    store("host", hosts[0])?;
    store("port", ports[0])?;

    if let Some(after) = p.strip_prefix('/') {
        let end = after.find('?').unwrap_or(after.len());
        store("dbname", &after[..end])?;
        p = &after[end..];
    }

    if let Some(query) = p.strip_prefix('?') {
        for param in query.split('&') {
            if param.is_empty() {
                continue;
            }
            let (k, v) = param.split_once('=').ok_or_else(|| {
                Error::conninfo(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{}\"",
                    param.split('=').next().unwrap_or_default()
                ))
            })?;
            if v.contains('=') {
                return Err(Error::conninfo(format!(
                    "extra key/value separator \"=\" in URI query parameter: \"{k}\""
                )));
            }
            let mut key = percent_decode(k)?;
            let mut value = percent_decode_value(&key, v)?;
            // libpq's JDBC-compatible spelling.
            if key == "ssl" && value == "true" {
                key = "sslmode".into();
                value = "require".into();
            }
            if check_keyword(&key).is_err() {
                return Err(Error::conninfo(format!(
                    "invalid URI query parameter: \"{key}\""
                )));
            }
            out.insert(key, value);
        }
    } else if !p.is_empty() {
        return Err(Error::conninfo(format!(
            "unexpected text \"{p}\" in connection URI"
        )));
    }
    Ok(())
}

/// Parses a libpq connection string (`key=value ...` or a `postgresql://`/`postgres://` URI) into its
/// keywords. Unknown keywords are errors; the ignored ones listed in the module documentation are
/// kept in the map. A later keyword overrides an earlier one, as in libpq.
///
/// ```
/// use pgbak_wal::conninfo::parse_conninfo;
/// let kv = parse_conninfo("host=db1 user='backup user'").unwrap();
/// assert_eq!(kv["user"], "backup user");
/// let uri = parse_conninfo("postgresql://bob@%2Fvar%2Frun%2Fpostgresql:5433/app").unwrap();
/// assert_eq!(uri["host"], "/var/run/postgresql");
/// assert!(parse_conninfo("hots=db1").is_err());
/// ```
pub fn parse_conninfo(s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(rest) = uri_rest(s) {
        parse_uri(rest, &mut out)?;
        return Ok(out);
    }
    let tokens = lex_kv(s)?;
    for (i, t) in tokens.iter().enumerate() {
        if check_keyword(&t.key).is_err() {
            if let Some(secret) = after_secret(&tokens[..i]) {
                // The word may be the rest of a password with a space: never show it.
                return Err(Error::conninfo(format!(
                    "invalid connection option after the value of \"{secret}\" (a value with spaces must be quoted: {secret}='...')"
                )));
            }
        }
        check_keyword(&t.key)?;
        out.insert(t.key.clone(), t.value.clone());
    }
    Ok(out)
}

/// Masks passwords in a connection string given by a user, for logs and messages: the rules of
/// [`crate::redact::redact`] (any case, URIs, quoted values).
///
/// A keyword/value string that cannot be split into pairs but mentions a secret is replaced
/// whole, so that a typo never leaks a secret.
///
/// ```
/// use pgbak_wal::conninfo::redacted;
/// assert_eq!(redacted("host=db password=s3cret"), "host=db password=********");
/// assert_eq!(redacted("host=db PASSWORD=s3cret"), "host=db PASSWORD=********");
/// assert_eq!(redacted("postgresql://bob:s3cret@db/app"), "postgresql://bob:********@db/app");
/// ```
pub fn redacted(conninfo: &str) -> String {
    if uri_rest(conninfo).is_none() && lex_kv(conninfo).is_err() {
        let lower = conninfo.to_ascii_lowercase();
        if lower.contains("pass") || crate::redact::is_secret_name(&lower) {
            return "<connection string not shown: it cannot be parsed and may contain a password>"
                .to_string();
        }
    }
    crate::redact::redact(conninfo).into_owned()
}

/// Quotes a value for a keyword/value connection string the way libpq's `appendConnStrVal` does:
/// bare when it is plain ASCII letters, digits, `_` and `.`, otherwise in single quotes with `'` and
/// `\` escaped.
pub(super) fn quote_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.');
    if plain {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keyword_value_strings() {
        assert_eq!(
            parse_conninfo("host=db1 port = 5433  user= 'bob smith' dbname ='x'").unwrap(),
            map(&[
                ("host", "db1"),
                ("port", "5433"),
                ("user", "bob smith"),
                ("dbname", "x")
            ])
        );
        assert_eq!(
            parse_conninfo(r"password='it\'s \\ ok' options='-c a=b'").unwrap(),
            map(&[("password", r"it's \ ok"), ("options", "-c a=b")])
        );
        assert_eq!(
            parse_conninfo(r"password=a\ b").unwrap(),
            map(&[("password", "a b")])
        );
        assert_eq!(parse_conninfo("host=''").unwrap(), map(&[("host", "")]));
        assert_eq!(
            parse_conninfo("host='a'port=1").unwrap(),
            map(&[("host", "a"), ("port", "1")])
        );
        assert_eq!(
            parse_conninfo("host=a host=b").unwrap(),
            map(&[("host", "b")])
        );
        assert_eq!(parse_conninfo("").unwrap(), BTreeMap::new());
        assert_eq!(parse_conninfo("  \t\n").unwrap(), BTreeMap::new());
        assert_eq!(parse_conninfo("host=é").unwrap(), map(&[("host", "é")]));
        assert_eq!(
            parse_conninfo("sslrootcert=/x keepalives=1 target_session_attrs=any")
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn keyword_value_errors() {
        let cases = [
            ("host", "missing \"=\" after \"host\""),
            ("host db", "missing \"=\" after \"host\""),
            ("host='db", "unterminated quoted string"),
            ("bogus=1", "invalid connection option \"bogus\""),
            ("service=x", "invalid connection option \"service\""),
            ("=x", "invalid connection option \"\""),
        ];
        for (s, want) in cases {
            let err = parse_conninfo(s).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn uris() {
        assert_eq!(
            parse_conninfo("postgresql://bob:s%40cret@db.example:5433/my%20db?application_name=pgbak&sslmode=disable")
                .unwrap(),
            map(&[
                ("user", "bob"),
                ("password", "s@cret"),
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "my db"),
                ("application_name", "pgbak"),
                ("sslmode", "disable"),
            ])
        );
        assert_eq!(parse_conninfo("postgres://").unwrap(), BTreeMap::new());
        assert_eq!(
            parse_conninfo("postgresql:///db").unwrap(),
            map(&[("dbname", "db")])
        );
        assert_eq!(
            parse_conninfo("postgresql://%2Fvar%2Frun%2Fpostgresql:5433/db").unwrap(),
            map(&[
                ("host", "/var/run/postgresql"),
                ("port", "5433"),
                ("dbname", "db")
            ])
        );
        assert_eq!(
            parse_conninfo("postgresql:///db?host=/tmp/sock&port=6000").unwrap(),
            map(&[("host", "/tmp/sock"), ("port", "6000"), ("dbname", "db")])
        );
        assert_eq!(
            parse_conninfo("postgresql://[::1]:5432/x").unwrap(),
            map(&[("host", "::1"), ("port", "5432"), ("dbname", "x")])
        );
        assert_eq!(
            parse_conninfo("postgresql://u@h").unwrap(),
            map(&[("user", "u"), ("host", "h")])
        );
        assert_eq!(
            parse_conninfo("postgresql://h?ssl=true").unwrap(),
            map(&[("host", "h"), ("sslmode", "require")])
        );
        assert_eq!(
            parse_conninfo("postgresql://h:5432").unwrap(),
            map(&[("host", "h"), ("port", "5432")])
        );
    }

    #[test]
    fn uri_errors() {
        let cases = [
            (
                "postgresql://h/db?bogus=1",
                "invalid URI query parameter: \"bogus\"",
            ),
            ("postgresql://h/db?port", "missing key/value separator"),
            ("postgresql://h/db?port=1=2", "extra key/value separator"),
            ("postgresql://h%zz/db", "invalid percent-encoded token"),
            ("postgresql://h%4/db", "invalid percent-encoded token"),
            ("postgresql://h%00/db", "forbidden value %00"),
            ("postgresql://[::1/db", "matching \"]\""),
            ("postgresql://[]/db", "may not be empty"),
            ("postgresql://[::1]x/db", "unexpected character"),
            ("postgresql://a,b/db", "multiple hosts"),
            ("postgresql://h/db?x%FF=1", "not valid UTF-8"),
        ];
        for (s, want) in cases {
            let err = parse_conninfo(s).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn errors_never_show_a_password() {
        for s in [
            "postgresql://bob:Zq7%zz@db/app",
            "postgresql://bob:Zq7%cdx@db/app",
            "postgresql://bob:Zq7%00@db/app",
            "postgresql://db/app?password=Zq7%zz",
            "postgresql://db/app?PASSWORD=Zq7%zz",
            "postgresql://bob:Zq7/x@db/app",
            "host=db password=ab Zq7 port=5",
            "host=db password=ab Zq7=x",
            "host=db PGPASSWORD=Zq7",
        ] {
            let err = parse_conninfo(s).unwrap_err().to_string();
            assert!(!err.contains("Zq7"), "{s}: {err}");
        }
        let err = parse_conninfo("postgresql://bob:Zq7%zz@db/app")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password") && err.contains("%25"), "{err}");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redacted("host=h password=secret user=u"),
            "host=h password=******** user=u"
        );
        assert_eq!(
            redacted("host=h sslpassword=secret"),
            "host=h sslpassword=********"
        );
        assert_eq!(
            redacted("password = 'a b\\' c' host=h"),
            "password = '********' host=h"
        );
        assert_eq!(redacted("host=h"), "host=h");
        assert_eq!(
            redacted("postgresql://u:secret@h:5/db?password=x&sslmode=disable"),
            "postgresql://u:********@h:5/db?password=********&sslmode=disable"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redacted("postgres://h/db?pass%77ord=zz"),
            "postgres://h/db?pass%77ord=********"
        );
        // A '?' in the user name does not start the query; the password after it is masked.
        let tricky = "postgresql://bob?password=x&o=d:s3cret@db/app";
        assert_eq!(parse_conninfo(tricky).unwrap()["password"], "s3cret");
        let r = redacted(tricky);
        assert!(
            !r.contains("s3cret") && r.ends_with(":********@db/app"),
            "{r}"
        );
        let r = redacted("postgresql://[::1?password=x]/db?password=s3cret");
        assert!(
            !r.contains("s3cret") && r.ends_with("?password=********"),
            "{r}"
        );
        // A quoted password that touches the next keyword: never shown.
        let r = redacted("password='s3cret'host=h");
        assert!(!r.contains("s3cret"), "{r}");
        let hidden = "password='s3cret'host=   password='s3cret'x=";
        let masked = redacted(hidden);
        assert_eq!(parse_conninfo(&masked).unwrap()["password"], "********");
        let r = redacted("password='unterminated");
        assert!(!r.contains("unterminated"), "{r}");
        assert_eq!(redacted("host='x"), "host='x");
    }

    #[test]
    fn uri_prefixes() {
        assert!(uri_rest("postgresql://x").is_some());
        assert!(uri_rest("postgres://x").is_some());
        assert!(uri_rest("host=postgres://x").is_none());
        assert!(uri_rest("postgresql:/x").is_none());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_value(""), "''");
        assert_eq!(quote_value("a_b.9"), "a_b.9");
        assert_eq!(quote_value("a-b"), "'a-b'");
        assert_eq!(quote_value(r"it's\"), r"'it\'s\\'");
        for v in ["", "x y", r"a'b\c", "é"] {
            let parsed = parse_conninfo(&format!("host={}", quote_value(v))).unwrap();
            assert_eq!(parsed["host"], v);
        }
    }
}
