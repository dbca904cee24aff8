#!/usr/bin/env bash
# Installs what the tests need and runs pgbak's whole test suite: unit tests, property tests and
# the end-to-end tests against real PostgreSQL clusters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The end-to-end tests call the pgbak binary (as archive_command, restore_command and directly),
# and, where they move the clock or freeze a process at a fault point, the same program built with
# the test-only hooks under its own name (only pgbak-core and pgbak-cli compile twice; the shipped
# `pgbak` binary never honours those settings).
cargo build --locked -p pgbak-cli
cargo build --locked -p pgbak-cli --features test-hooks --bin pgbak-test-hooks
# The C ABI's shared library, which the C example and the Python package load.
cargo build --locked -p pgbak-ffi
# The library's example programs, which the embedding tests run.
cargo build --locked -p pgbak-core --examples
cargo test --locked --workspace --no-fail-fast -- --test-threads=2
