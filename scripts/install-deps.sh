#!/usr/bin/env bash
# Installs what pgbak's build, demo and tests need on Debian 12 (run as root). Idempotent and quick
# when everything is already there.
set -euo pipefail

packages=(
  postgresql postgresql-contrib   # server binaries for the test clusters (initdb, pg_ctl, pg_verifybackup)
  pkg-config gcc make             # C parts of the compression crates
  zstd lz4                        # command-line codecs for benchmarks and cross-checks
  rsync openssh-server openssh-client   # rsync method and SSH helpers
  procps util-linux               # ps, runuser, mount (tmpfs for the full-disk tests)
  strace                          # tests that check what recovery makes durable
  gnupg libgpgme-dev              # encryption (gpgme) and the gpg command for keys and cross-checks
  curl ca-certificates            # fetches the server binaries of the other PostgreSQL majors
  python3 python3-pip python3-setuptools python3-pytest   # the Python package and its tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  # Do not create or start Debian's default cluster: pgbak's tests make their own.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/pgbak.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install-deps: no Rust toolchain (cargo) found; install Rust 1.89 or newer" >&2
    exit 1
  fi
fi

# The tests run PostgreSQL as this unprivileged user (PostgreSQL refuses to run as root).
id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres

# Server binaries of PostgreSQL 13, 14, 16, 17 and 18 for the tests that run on every major.
bash "$(dirname "$0")/install-postgres-majors.sh"

# The S3, Azure Blob and GCS emulators of the storage tests (moto, Azurite, fake-gcs-server).
bash "$(dirname "$0")/install-emulators.sh"
echo "install-deps: ok ($(ls -d /usr/lib/postgresql/*/bin /opt/pgbak-postgres/*/bin | tr '\n' ' '))"
