//! `pgbak`, the command line of pgbak (the program itself is in the library of this package).

fn main() -> std::process::ExitCode {
    pgbak_cli::main()
}
