//! Logging: structured `tracing` events on stderr (text or JSON lines; level from `--log-level`,
//! `-d` or `RUST_LOG`, warnings by default) and, when the configuration sets `log_file`, the same
//! events at `log_level` appended to that file.
//!
//! The configuration is read here before the command reads it again, because the log file must
//! be open before the command starts. A log file that cannot be opened is a warning, never a
//! failure: `archive-wal` must not refuse WAL because of its log.
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
pub fn init(cli: &Cli) {
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
            std::io::stderr,
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
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter(env_filter)
            .with_filter(not_file_only)
            .boxed(),
    };

    let file = Config::load(cli.config.as_deref())
        .ok()
        .and_then(|c| Some((c.global.log_file?, c.global.log_level)))
        .and_then(|(path, log_level)| match open_log(&path) {
            Ok(f) => Some(
                file_layer(Mutex::new(f))
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
