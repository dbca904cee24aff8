#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/, cargo-fuzz + libFuzzer on the
# nightly toolchain). Runs each target for a bounded time, one after the other, with limits that
# turn a hang, a slow input or an unbounded allocation into a finding; first it replays the
# committed regression inputs of fuzz/regressions/. Exits non-zero on any finding.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Not part of scripts/test.sh: it needs nightly and minutes per target. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds="${1:-60}"
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# The targets run without AddressSanitizer (pgbak's parsers are safe Rust, and ASan makes them 5 to
# 10 times slower) except `decompress`, whose decoders include C libraries (zstd, lz4, xz). Without a
# sanitizer libFuzzer cannot see single allocations, but an allocation that grows the process
# past -rss_limit_mb, or fails outright, is still a finding.
sanitizer() {
  if [ "$1" = decompress ]; then
    echo "-s address --target-dir target/asan"
  else
    echo "-s none"
  fi
}

# Each run: one job (the machine is shared), 10 s per input at most, 2 GiB of memory and no single
# allocation above it; new inputs go to work/<target>/ (not committed), the committed seeds are
# read from corpus/<target>/.
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1)
failed=()
printf '%-18s %8s %12s %8s %8s  %s\n' target seconds execs cov ft result
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t" "corpus/$t"
  log="artifacts/$t/fuzz.log"
  result=ok
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    # shellcheck disable=SC2046
    if ! cargo +nightly fuzz run -O $(sanitizer "$t") "$t" "regressions/$t"/* -- "${limits[@]}" \
        -artifact_prefix="artifacts/$t/" >"artifacts/$t/regressions.log" 2>&1; then
      result="REGRESSION (artifacts/$t/regressions.log)"
    fi
  fi
  # shellcheck disable=SC2046
  if ! cargo +nightly fuzz run -O $(sanitizer "$t") "$t" "work/$t" "corpus/$t" -- "${limits[@]}" \
      -max_total_time="$seconds" -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
    result="FINDING (see $log and artifacts/$t/)"
  fi
  [ "$result" = ok ] || failed+=("$t")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-18s %8s %12s %8s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done

# The targets' scratch folders in /dev/shm are empty once they stop: remove the empty ones.
find /dev/shm -maxdepth 2 -path '/dev/shm/pgbak-fuzz*' -type d -empty -delete 2>/dev/null || true

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no finding in ${#targets[@]} targets"
