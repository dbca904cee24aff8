//! `pgbak-test-hooks`: the `pgbak` program built with pgbak-core's `test-hooks` feature, so that
//! the end-to-end tests can move the clock (`PGBAK_TEST_NOW`) and freeze a process at a named step
//! (`PGBAK_TEST_PAUSE_AT`). Built only on request
//! (`cargo build -p pgbak-cli --features test-hooks --bin pgbak-test-hooks`); the `pgbak` binary
//! never honours those settings.

fn main() -> std::process::ExitCode {
    pgbak_cli::main()
}
