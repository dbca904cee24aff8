//! Logging: structured `tracing` events on stderr (text or JSON lines; level from `--log-level`,
//! `-d` or `RUST_LOG`, warnings by default) and, when the configuration sets `log_file`, the same
//! events at `log_level` appended to that file.
//!
//! The configuration is read here before the command reads it again, because the log file must
//! be open before the command starts. A log file that cannot be opened is a warning, never a
//! failure: `archive-wal` must not refuse WAL because of its log.

use crate::cli::Cli;
use clap::ValueEnum;
use pgbak_core::config::Config;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
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

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
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
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(env_filter)
            .with_filter(not_file_only)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(env_filter)
            .with_filter(not_file_only)
            .boxed(),
    };

    let file = Config::load(cli.config.as_deref())
        .ok()
        .and_then(|c| Some((c.global.log_file?, c.global.log_level)))
        .and_then(|(path, log_level)| match open_log(&path) {
            Ok(f) => Some(
                fmt::layer()
                    .with_writer(Mutex::new(f))
                    .with_ansi(false)
                    .with_target(true)
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
}
