//! `pgbak show-servers` (effective configuration) and `pgbak diagnose` (one JSON document for
//! support: configuration without secrets, versions, catalogue and lock state).

use crate::cli::{Cli, Format};
use crate::commands::check::server_names;
use crate::output::print_json;
use clap::Args;
use pgbak_core::config::Config;
use pgbak_core::diagnose::{diagnose, show_server};
use pgbak_core::lock_cleanup::lock_files;
use pgbak_core::server::Server;
use pgbak_core::Result;

/// Arguments of `show-servers`.
#[derive(Args, Debug)]
pub struct ShowServersArgs {
    /// Servers to show, or `all`.
    #[arg(required = true)]
    pub servers: Vec<String>,
}

/// Runs `show-servers`.
pub fn show_servers(cli: &Cli, a: &ShowServersArgs) -> Result<u8> {
    let config = Config::load(cli.config.as_deref())?;
    let mut all = serde_json::Map::new();
    for name in server_names(&config, &a.servers) {
        if let Some(disabled) = config.disabled.get(&name) {
            let reason = disabled.reason.to_string();
            match cli.format {
                Format::Json => {
                    all.insert(
                        name.clone(),
                        serde_json::json!({"name": name, "disabled": reason, "description": disabled.description}),
                    );
                }
                Format::Console => {
                    println!("Server {name} (WARNING: disabled):");
                    println!("\tdisabled: {reason}");
                }
            }
            continue;
        }
        let server = Server::new(&config, &name)?;
        let values = show_server(&server);
        match cli.format {
            Format::Json => {
                all.insert(name.clone(), serde_json::json!(values));
            }
            Format::Console => {
                let title = if server.config.active {
                    format!("Server {name}:")
                } else {
                    format!("Server {name} (inactive):")
                };
                println!("{title}");
                for (k, v) in &values {
                    println!("\t{k}: {v}");
                }
            }
        }
    }
    if cli.format == Format::Json {
        print_json(&serde_json::Value::Object(all));
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
pub fn run_diagnose(cli: &Cli, a: &DiagnoseArgs) -> Result<u8> {
    let config = Config::load(cli.config.as_deref())?;
    let mut doc = diagnose(&config, env!("CARGO_PKG_VERSION"), !a.no_connect);
    let locks = match lock_files(&config.global.lock_directory) {
        Ok(states) => serde_json::json!(states
            .iter()
            .map(|s| serde_json::json!({
                "name": s.name, "held": s.held, "holder_pid": s.holder_pid,
                "pid_running": s.pid_running, "state": s.describe(),
            }))
            .collect::<Vec<_>>()),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("locks".into(), locks);
    }
    print_json(&doc);
    Ok(0)
}
