//! Printing: aligned key/value blocks for people, JSON for programs.

/// Prints `rows` as an aligned "key: value" block.
pub fn print_kv(rows: &[(String, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:width$} : {v}");
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("ERROR: cannot encode JSON: {e}"),
    }
}

pub use pgbak_core::units::human_size;
