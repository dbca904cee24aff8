//! `pgbak check SERVER...`: every check, one OK/FAILED line each; exit 1 on any failure.
//! `--nagios` prints a Nagios plugin status instead (exit 0 OK, 2 CRITICAL).

use crate::cli::{Cli, Format};
use crate::output::print_json;
use clap::Args;
use pgbak_core::config::Config;
use pgbak_core::Result;
use pgbak_core::{
    check_server, console_lines, json_report, nagios_report, CheckOptions, ServerChecks,
};
use std::time::Duration;

/// Arguments of `check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Servers to check, or `all`.
    #[arg(required = true)]
    pub servers: Vec<String>,
    /// Print one Nagios plugin status (exit 0 OK, 2 CRITICAL).
    #[arg(long)]
    pub nagios: bool,
    /// Seconds the checks of one server may take (0 = no limit; default: check_timeout).
    #[arg(long = "check-timeout", value_parser = clap::value_parser!(u64).range(0..=pgbak_core::config::MAX_SECONDS))]
    pub check_timeout: Option<u64>,
}

/// The servers named on a command line; `all` means every configured server, disabled ones
/// included (the commands that take `all` report on each).
pub fn server_names(config: &Config, names: &[String]) -> Vec<String> {
    if names.iter().any(|n| n == "all") {
        config.server_names()
    } else {
        names.to_vec()
    }
}

/// Runs `check`.
pub fn run(cli: &Cli, config: &Config, a: &CheckArgs) -> Result<u8> {
    let opts = CheckOptions {
        timeout: a.check_timeout.map(Duration::from_secs),
        ..CheckOptions::default()
    };
    let mut results: Vec<ServerChecks> = Vec::new();
    for name in server_names(config, &a.servers) {
        let r = check_server(config, &name, &opts)?;
        if !a.nagios && cli.format == Format::Console && !cli.quiet {
            for line in console_lines(&r) {
                println!("{line}");
            }
        }
        results.push(r);
    }
    if a.nagios {
        let report = nagios_report(&results);
        for line in &report.lines {
            println!("{line}");
        }
        return Ok(report.exit_code as u8);
    }
    if cli.format == Format::Json {
        print_json(&json_report(&results));
    }
    Ok(if results.iter().all(ServerChecks::ok) {
        0
    } else {
        1
    })
}
