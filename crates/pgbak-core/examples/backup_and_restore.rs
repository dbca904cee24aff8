//! Backs up a PostgreSQL server and restores it to a point in time through pgbak's library alone.
//!
//! ```text
//! backup_and_restore backup  CONFIG SERVER
//! backup_and_restore recover CONFIG SERVER DESTINATION TARGET_TIME
//! ```
//!
//! Prints each report as JSON on one line; exits 1 with the error and its kind on failure.

use pgbak_core::{backup, recover, reports, BackupOptions, Config, CopyProgress};
use pgbak_core::{RecoverOptions, RecoveryTarget, Server, TargetAction};
use std::process::ExitCode;
use std::time::Duration;

/// Counts the progress reports of the copy.
#[derive(Default)]
struct Counter {
    calls: u64,
    done: u64,
}

impl CopyProgress for Counter {
    fn set_total(&mut self, _bytes: Option<u64>) {}
    fn set_done(&mut self, bytes: u64) {
        self.calls += 1;
        self.done = bytes;
    }
}

fn run(args: &[String]) -> pgbak_core::Result<()> {
    let usage = || {
        pgbak_core::Error::Usage(
            "usage: backup|recover CONFIG SERVER [DESTINATION TARGET_TIME]".into(),
        )
    };
    let (command, config, name) = match args {
        [c, f, s, ..] => (c.as_str(), f, s),
        _ => return Err(usage()),
    };
    let config = Config::load(Some(config.as_ref()))?;
    let server = Server::new(&config, name)?;
    match (command, &args[3..]) {
        ("backup", []) => {
            let mut progress = Counter::default();
            let opts = BackupOptions::default().wait(Some(Duration::from_secs(120)));
            let info = backup(&server, &opts, &mut progress)?;
            println!("backup: {}", reports::to_json(&info)?.replace('\n', ""));
            println!("progress: {} {}", progress.calls, progress.done);
        }
        ("recover", [dest, time]) => {
            let mut opts = RecoverOptions::new("latest", dest);
            opts.target = RecoveryTarget::time(time).then(TargetAction::Promote);
            let summary = recover(&server, &opts)?;
            println!("recover: {}", reports::to_json(&summary)?.replace('\n', ""));
        }
        _ => return Err(usage()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error ({}): {e}", e.kind().as_str());
            ExitCode::FAILURE
        }
    }
}
