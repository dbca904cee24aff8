//! `pgbak show-servers` (effective configuration) and `pgbak diagnose` (one JSON document for
//! support: configuration without secrets, versions, catalogue and lock state).

use crate::cli::{Cli, Format};
use crate::output::print_json;
use clap::Args;
use pgbak_core::config::Config;
use pgbak_core::reports::ShownServer;
use pgbak_core::Result;

/// Arguments of `show-servers`.
#[derive(Args, Debug)]
pub struct ShowServersArgs {
    /// Servers to show, or `all`.
    #[arg(required = true)]
    pub servers: Vec<String>,
}

/// Runs `show-servers`.
pub fn show_servers(cli: &Cli, config: &Config, a: &ShowServersArgs) -> Result<u8> {
    let shown = pgbak_core::reports::show_servers(config, &a.servers)?;
    if cli.format == Format::Json {
        print_json(&shown);
        return Ok(0);
    }
    for (name, s) in &shown {
        match s {
            ShownServer::Disabled { disabled, .. } => {
                println!("Server {name} (WARNING: disabled):");
                println!("\tdisabled: {disabled}");
            }
            ShownServer::Settings(values) => {
                let active = config.servers.get(name).is_none_or(|c| c.active);
                if active {
                    println!("Server {name}:");
                } else {
                    println!("Server {name} (inactive):");
                }
                for (k, v) in values {
                    println!("\t{k}: {v}");
                }
            }
            _ => {}
        }
    }
    Ok(0)
}

/// Arguments of `diagnose`.
#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// Do not connect to the PostgreSQL servers (configuration and catalogue only).
    #[arg(long = "no-connect")]
    pub no_connect: bool,
}

/// Runs `diagnose`: always JSON, as Barman prints it.
pub fn run_diagnose(config: &Config, a: &DiagnoseArgs) -> Result<u8> {
    let doc = pgbak_core::reports::diagnose(config, env!("CARGO_PKG_VERSION"), !a.no_connect);
    print_json(&doc);
    Ok(0)
}
