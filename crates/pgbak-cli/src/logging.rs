//! Logging: structured `tracing` events on stderr (text or JSON lines; level from `--log-level`,
//! `-d` or `RUST_LOG`, warnings by default) and, when the configuration sets `log_file`, the same
//! events at `log_level` appended to that file.
//!
//! The configuration is read here before the command reads it again, because the log file must
//! be open before the command starts. A log file that cannot be opened is a warning, never a
//! failure: `archive-wal` must not refuse WAL because of its log.
//!
//! Every line goes through pgbak's redaction ([`pgbak_wal::redact`]) on its way out, so no
//! password reaches stderr or the log file, whatever an event carries (the command line, a hook
//! command, an error). JSON lines are redacted string by string and stay valid JSON.
//!
//! Colours (ANSI escapes) go to stderr only when it is a terminal and `NO_COLOR` is unset: cron
//! redirects `receive-wal`'s stderr into `receive-wal.log`, and escapes there make the log
//! unreadable with `less` and break `grep`. The log file never has them.

use crate::cli::Cli;
use clap::ValueEnum;
use pgbak_core::config::Config;
use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

/// Target of events meant for the log file only (the command's start and end), which stderr
/// already shows in its own words.
pub const FILE_ONLY: &str = "pgbak::file";

/// Format of the logs on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event, with its fields and spans.
    Json,
}

/// The `tracing` level of a configuration `log_level` (Python's names included).
pub fn level_of(log_level: &str) -> LevelFilter {
    match log_level.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "WARNING" | "WARN" => LevelFilter::WARN,
        "ERROR" | "CRITICAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Whether stderr gets colours: only on a terminal, and never when `NO_COLOR` is set to
/// something (<https://no-color.org>).
fn colours_on_stderr(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The field formatter of the log file. It is its own type because `tracing-subscriber` caches
/// a span's formatted fields per formatter type: sharing `DefaultFields` with a colouring stderr
/// layer would copy stderr's escapes into the file.
#[derive(Debug, Default)]
struct PlainFields(DefaultFields);

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// The layer that writes events to the log file, without colours.
fn file_layer<S, W>(writer: W) -> fmt::Layer<S, PlainFields, fmt::format::Format, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .fmt_fields(PlainFields::default())
        .with_writer(writer)
        .with_ansi(false)
        .with_target(true)
}

/// The text layer of stderr, coloured when `ansi`.
fn text_layer<S, W>(writer: W, ansi: bool) -> fmt::Layer<S, DefaultFields, fmt::format::Format, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
}

/// How a [`Redacting`] writer reads what passes through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Lines of text.
    Text,
    /// One JSON object per line: each string inside is redacted, the line stays JSON.
    Json,
}

/// A [`MakeWriter`] whose writers mask secrets in what they are given. `tracing-subscriber`
/// writes each event with one `write_all` of the whole formatted event, so a secret is never
/// split between two writes.
struct Redacting<M> {
    inner: M,
    shape: Shape,
}

impl<M> Redacting<M> {
    fn text(inner: M) -> Self {
        Redacting {
            inner,
            shape: Shape::Text,
        }
    }

    fn json(inner: M) -> Self {
        Redacting {
            inner,
            shape: Shape::Json,
        }
    }
}

/// The writer of [`Redacting`].
struct RedactingWriter<W> {
    inner: W,
    shape: Shape,
}

impl<'w, M: MakeWriter<'w>> MakeWriter<'w> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'w self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            shape: self.shape,
        }
    }
}

/// `text` with every secret masked; JSON lines are parsed and each string masked alone.
fn redact_event(text: &str, shape: Shape) -> String {
    if shape == Shape::Json {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            match serde_json::from_str::<serde_json::Value>(body) {
                Ok(mut value) => {
                    crate::output::redact_json(&mut value);
                    out.push_str(&value.to_string());
                }
                Err(_) => out.push_str(&pgbak_wal::redact::redact(body)),
            }
            out.push_str(end);
        }
        return out;
    }
    pgbak_wal::redact::redact(text).into_owned()
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner
            .write_all(redact_event(&text, self.shape).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        pgbak_storage::staging::create_dir_all_private(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Installs the global subscriber.
pub fn init(cli: &Cli, config: Option<&Config>) {
    let level = if cli.debug {
        "debug".to_string()
    } else {
        cli.log_level.clone().unwrap_or_else(|| "warn".into())
    };
    let env_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    let not_file_only = filter_fn(|m| m.target() != FILE_ONLY);
    let stderr = match cli.log_format {
        LogFormat::Text => text_layer(
            Redacting::text(std::io::stderr),
            colours_on_stderr(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ),
        )
        .with_filter(env_filter)
        .with_filter(not_file_only)
        .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(Redacting::json(std::io::stderr))
            .with_ansi(false)
            .with_filter(env_filter)
            .with_filter(not_file_only)
            .boxed(),
    };

    let file = config
        .and_then(|c| Some((c.global.log_file.clone()?, c.global.log_level.clone())))
        .and_then(|(path, log_level)| match open_log(&path) {
            Ok(f) => Some(
                file_layer(Redacting::text(Mutex::new(f)))
                    .with_filter(level_of(&log_level))
                    .boxed(),
            ),
            Err(e) => {
                eprintln!("WARNING: cannot open log file {}: {e}", path.display());
                None
            }
        });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_of("WARNING"), LevelFilter::WARN);
        assert_eq!(level_of("critical"), LevelFilter::ERROR);
        assert_eq!(level_of("INFO"), LevelFilter::INFO);
        assert_eq!(level_of("TRACE"), LevelFilter::TRACE);
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_on_stderr(true, None));
        assert!(colours_on_stderr(true, Some("".into())));
        assert!(!colours_on_stderr(true, Some("1".into())));
        assert!(!colours_on_stderr(false, None));
    }

    /// A writer into a shared buffer, to read what a layer wrote.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().map(|b| b.clone()).unwrap_or_default()
        }
    }

    /// Logs, inside a span with a field (as `main` does), one warning with a field through a
    /// stderr text layer (coloured or not) and the file layer; returns what each wrote.
    fn log_through(ansi_stderr: bool) -> (Vec<u8>, Vec<u8>) {
        let stderr = Buffer::default();
        let file = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(text_layer(stderr.clone(), ansi_stderr))
            .with(file_layer(file.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("pgbak", pid = 42).entered();
            tracing::warn!(segment = "000000010000000000000001", "archived");
        });
        (stderr.bytes(), file.bytes())
    }

    const ESC: u8 = 0x1b;

    #[test]
    fn the_log_file_has_no_escapes_even_when_stderr_is_coloured() {
        let (stderr, file) = log_through(true);
        // The coloured stderr does have escapes, so the check below can fail.
        assert!(
            stderr.contains(&ESC),
            "{}",
            String::from_utf8_lossy(&stderr)
        );
        assert!(!file.contains(&ESC), "{}", String::from_utf8_lossy(&file));
        let text = String::from_utf8_lossy(&file);
        assert!(text.contains("pgbak{pid=42}"), "{text}");
        assert!(
            text.contains("segment=\"000000010000000000000001\""),
            "{text}"
        );
        assert!(text.contains("WARN"), "{text}");
    }

    #[test]
    fn secrets_are_masked_on_their_way_out() {
        let text = Buffer::default();
        let json = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(file_layer(Redacting::text(text.clone())))
            .with(
                fmt::layer()
                    .json()
                    .with_writer(Redacting::json(json.clone())),
            );
        tracing::subscriber::with_default(subscriber, || {
            let args = vec!["--x".to_string(), "PGPASSWORD=Zq7pw x".to_string()];
            tracing::warn!(
                ?args,
                conninfo = "host=h PASSWORD=Zq7pw",
                "hook 'PGPASSWORD=\"Zq7pw\" psql' failed"
            );
        });
        let text = String::from_utf8(text.bytes()).unwrap();
        assert!(!text.contains("Zq7"), "{text}");
        assert!(text.contains("PGPASSWORD=********"), "{text}");
        let json = String::from_utf8(json.bytes()).unwrap();
        assert!(!json.contains("Zq7"), "{json}");
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["fields"]["conninfo"], "host=h PASSWORD=********");
    }

    #[test]
    fn stderr_without_colours_has_no_escapes() {
        let (stderr, file) = log_through(false);
        assert!(
            !stderr.contains(&ESC),
            "{}",
            String::from_utf8_lossy(&stderr)
        );
        assert!(!file.contains(&ESC));
        assert!(String::from_utf8_lossy(&stderr).contains("archived"));
    }
}
