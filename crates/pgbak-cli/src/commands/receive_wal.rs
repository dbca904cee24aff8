//! `pgbak receive-wal SERVER [--create-slot [--if-not-exists] | --drop-slot | --reset | --stop]`:
//! stream WAL in the foreground (until SIGTERM/SIGINT), or one of the operations around it, with
//! Barman's option names.

use crate::cli::{Cli, Format};
use crate::output::{human_size, print_json};
use clap::{ArgGroup, Args};
use pgbak_core::config::Config;
use pgbak_core::reports::{ReceiverStop, SlotChange, StreamingReset};
use pgbak_core::streaming::{
    create_slot, drop_slot, receive_wal, stop, ReceiveWalOptions, SlotCreation, StopOutcome,
};
use pgbak_core::Result;
use pgbak_core::Server;
use std::time::Duration;

/// `receive-wal`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").args(["create_slot", "drop_slot", "reset", "stop"])))]
pub struct ReceiveWalArgs {
    pub server: String,
    /// Create the replication slot named by slot_name, reserving WAL at once, and exit.
    #[arg(long = "create-slot")]
    pub create_slot: bool,
    /// With --create-slot: an existing physical slot of that name is fine.
    #[arg(long = "if-not-exists", requires = "create_slot")]
    pub if_not_exists: bool,
    /// Drop the replication slot named by slot_name and exit.
    #[arg(long = "drop-slot")]
    pub drop_slot: bool,
    /// Forget the streaming position: archive complete files, remove .partial files and resume
    /// from the slot's restart position (or the server's current one). Refused while receive-wal
    /// runs.
    #[arg(long)]
    pub reset: bool,
    /// Stop the receive-wal process of the server (SIGTERM to the PID in its lock file).
    #[arg(long)]
    pub stop: bool,
    /// Seconds --stop waits for the process to finish.
    #[arg(long = "stop-timeout", value_parser = clap::value_parser!(u64).range(0..=pgbak_core::config::MAX_SECONDS), default_value_t = 30, requires = "stop")]
    pub stop_timeout: u64,
}

/// Runs `receive-wal`.
pub fn run(cli: &Cli, config: &Config, a: &ReceiveWalArgs) -> Result<u8> {
    let server = Server::new(config, &a.server)?;
    let name = server.name().to_string();
    let say = |text: String| {
        if !cli.quiet && cli.format == Format::Console {
            println!("{text}");
        }
    };
    if a.create_slot {
        let outcome = create_slot(&server, a.if_not_exists)?;
        let slot = server.config.slot_name.clone().unwrap_or_default();
        let created = outcome == SlotCreation::Created;
        if cli.format == Format::Json {
            print_json(&SlotChange::create(&name, &slot, created));
        }
        say(if created {
            format!("Created replication slot '{slot}' on server '{name}'")
        } else {
            format!("Replication slot '{slot}' already exists on server '{name}'")
        });
        return Ok(0);
    }
    if a.drop_slot {
        drop_slot(&server)?;
        let slot = server.config.slot_name.clone().unwrap_or_default();
        if cli.format == Format::Json {
            print_json(&SlotChange::drop(&name, &slot));
        }
        say(format!(
            "Dropped replication slot '{slot}' of server '{name}'"
        ));
        return Ok(0);
    }
    if a.reset {
        let done = StreamingReset::of(&server)?;
        let r = &done.reset;
        if cli.format == Format::Json {
            print_json(&done);
        }
        for f in &r.removed {
            say(format!("Removed {f}"));
        }
        say(format!(
            "Streaming of server '{name}' will resume at {} ({})",
            r.marker.trim_end_matches(".partial"),
            r.source
        ));
        return Ok(0);
    }
    if a.stop {
        let outcome = stop(&server, Duration::from_secs(a.stop_timeout))?;
        let (text, code) = match outcome {
            StopOutcome::NotRunning => (format!("No receive-wal process runs for server '{name}'"), 0),
            StopOutcome::Stopped { pid } => (format!("Stopped receive-wal of server '{name}' (pid {pid})"), 0),
            StopOutcome::StillRunning { pid } => (
                format!(
                    "receive-wal of server '{name}' (pid {pid}) was asked to stop but still runs after {} s",
                    a.stop_timeout
                ),
                1,
            ),
        };
        if cli.format == Format::Json {
            print_json(&ReceiverStop::new(&name, text));
        } else if code != 0 {
            crate::output::eprint_line(format_args!("ERROR: {text}"));
        } else {
            say(text);
        }
        return Ok(code);
    }

    let report = receive_wal(&server, &ReceiveWalOptions::default())?;
    let a = &report.archive;
    match cli.format {
        Format::Json => print_json(&report),
        Format::Console => {
            say(format!(
                "receive-wal of server '{}' stopped: {} received (from {}), durable up to {} on timeline {}; {} file(s) archived, {} already archived by archive_command",
                report.server,
                human_size(report.bytes_received),
                report.start.as_deref().unwrap_or("-"),
                report.flushed.as_deref().unwrap_or("-"),
                report.timeline,
                a.stored,
                a.already_archived
            ));
            for c in &a.conflicts {
                crate::output::eprint_line(format_args!("ERROR: {}: {c}", report.server));
            }
        }
    }
    Ok(if a.conflicts.is_empty() { 0 } else { 1 })
}
