//! `pgbak completion SHELL` and `pgbak manpage`: generated from the command definitions.

use crate::cli::Cli;
use crate::output;
use clap::CommandFactory;
use pgbak_core::{Error, Result};

/// Prints the completion script for `shell`.
pub fn completion(shell: clap_complete::Shell) -> Result<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgbak", &mut script);
    output::write_stdout(&script)?;
    Ok(0)
}

/// Prints the manual page (roff).
pub fn manpage() -> Result<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Error::io("render", "the manual page", e))?;
    output::write_stdout(&page)?;
    Ok(0)
}
