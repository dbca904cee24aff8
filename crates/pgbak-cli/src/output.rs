//! Printing: aligned key/value blocks for people, JSON for programs, and error and warning
//! lines. Everything printed here goes through pgbak's redaction ([`pgbak_wal::redact`]), so a
//! password that slipped into a message, a hint or a value is masked on the way out.

use pgbak_wal::redact::{is_secret_name, redact, MASK};

/// Prints `rows` as an aligned "key: value" block.
pub fn print_kv(rows: &[(String, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:width$} : {}", redact(v));
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) {
    let value = serde_json::to_value(v).map(|mut value| {
        redact_json(&mut value);
        value
    });
    match value.and_then(|v| serde_json::to_string_pretty(&v)) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("ERROR: cannot encode JSON: {e}"),
    }
}

/// Writes generated text (a completion script, the manual page) to standard output; a reader
/// that went away (`| head`) ends the output quietly.
pub fn write_stdout(bytes: &[u8]) -> pgbak_core::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(pgbak_core::Error::io("write", "standard output", e))
        }
        _ => Ok(()),
    }
}

/// Prints `line` on stderr, secrets masked.
pub fn eprint_line(line: impl std::fmt::Display) {
    eprintln!("{}", redact(&line.to_string()));
}

/// Masks the secrets of every string in `value`; a string under a key that names a secret is
/// hidden whole.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(masked) = redact(s) {
                *s = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if is_secret_name(key) => *s = MASK.to_string(),
                    _ => redact_json(v),
                }
            }
        }
        _ => {}
    }
}

pub use pgbak_core::human_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_masked_and_stay_json() {
        let mut v = serde_json::json!({
            "hint": "bad conninfo 'host=h PASSWORD=Zq7'",
            "list": ["PGPASSWORD=Zq7 psql"],
            "aws_sse_customer_key": "Zq7",
            "size": 3,
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("Zq7"), "{text}");
        assert_eq!(v["size"], 3);
        assert_eq!(v["hint"], "bad conninfo 'host=h PASSWORD=********");
    }
}
