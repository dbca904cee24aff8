#!/usr/bin/env bash
# Regenerates crates/pgbak-ffi/include/pgbak.h from the C ABI (cbindgen, through the header test).
set -euo pipefail
cd "$(dirname "$0")/.."
PGBAK_UPDATE_HEADER=1 cargo test --locked -p pgbak-ffi --test header -q
