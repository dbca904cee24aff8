#!/usr/bin/env bash
# Encryption benchmark, all in one run on this machine, rows interleaved round by round: a zstd
# backup of pgbench data with encryption off and with encryption = gpg, archive-wal of real
# segments (one process each, zstd) both ways, and get-wal of one segment and of a bundle of 8
# both ways.
#
#   bash benches/e2e/encryption.sh [SCALE] [ROUNDS] [SEGMENTS]      (default 50 2 32)
#
# The key is made here by gpg in a throwaway GnuPG home (ed25519/cv25519 with a passphrase that
# encryption_passphrase_command prints).
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
ROUNDS=${2:-2}
NSEG=${3:-32}
bash scripts/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${PGBAK_BIN:-}" ]; then
  cargo build --release --locked -p pgbak-cli >/dev/null 2>&1
  PGBAK_BIN=target/release/pgbak
fi
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /var/tmp/pgbak-encbench.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# Short: the agent's socket path must fit in 108 bytes.
export GNUPGHOME=$(mktemp -d /tmp/pgbak-encbench-gpg.XXXXXX)
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true
  as_pg env GNUPGHOME="$GNUPGHOME" gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  rm -rf "$work" "$GNUPGHOME"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/spool" "$work/sock" "$work/raw"
cp "$PGBAK_BIN" "$work/bin/pgbak"
PGBAK="$work/bin/pgbak"
echo "bench passphrase" > "$work/passphrase"
chmod 600 "$work/passphrase"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$work" "$GNUPGHOME"; fi
chmod 700 "$GNUPGHOME"
as_pg env GNUPGHOME="$GNUPGHOME" gpg --batch --quiet --pinentry-mode loopback \
  --passphrase "bench passphrase" --quick-generate-key bench@pgbak.test future-default default never
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$work/sock'
wal_level = replica
archive_mode = on
archive_command = 'cp %p $work/spool/%f'
max_wal_size = 4GB
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_() { as_pg "$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"; }
psql_ "CHECKPOINT" >/dev/null
psql_ "SELECT pg_switch_wal()" >/dev/null
sleep 1
datasize=$(du -sb --exclude=pg_wal "$work/pgdata" | cut -f1)
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB; zstd level 1"

measure() {
  local out
  if ! out=$(as_pg env GNUPGHOME="$GNUPGHOME" /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null); then
    echo "FAILED: $*" >&2; echo "$out" | tail -n 20 >&2; exit 1
  fi
  echo "$out" | tail -n 1
}
conf() { # name encryption
  local extra=""
  if [ "$2" = gpg ]; then
    extra=$'encryption = gpg\nencryption_key_id = bench@pgbak.test\n'"encryption_passphrase_command = cat $work/passphrase"
  fi
  as_pg tee "$work/$1.conf" >/dev/null <<CONF
[pgbak]
home = $work/home-$1
[bench]
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_compression = zstd
backup_compression_level = 1
compression = zstd
immediate_checkpoint = true
$extra
CONF
}
seg_of_spool() { ls "$work/spool" | grep -E '^[0-9A-F]{24}$' | sort | tail -n 1; }

echo "backups"
for round in $(seq 1 "$ROUNDS"); do
  for enc in none gpg; do
    name="b-$enc-$round"
    conf "$name" "$enc"
    # pgbak backs up a server whose archive holds WAL: one segment first, outside the timing.
    as_pg env GNUPGHOME="$GNUPGHOME" "$PGBAK" -q -c "$work/$name.conf" archive-wal bench "$work/spool/$(seg_of_spool)"
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/$name.conf" backup bench)
    size=$(du -sb "$work/home-$name/bench/base" | cut -f1)
    awk -v e="$enc" -v s="$secs" -v r="$rss" -v b="$size" -v d="$datasize" -v n="$round" \
      'BEGIN { printf "  round %d  encryption %-4s %6.2f s %7.1f MB/s  peak RSS %5.1f MB  stored %7.1f MB\n", n, e, s, d/1e6/s, r/1024, b/1e6 }'
    rm -rf "$work/home-$name"
  done
done

mapfile -t segs < <(ls "$work/spool" | grep -E '^[0-9A-F]{24}$' | sort | head -n "$NSEG")
for s in "${segs[@]}"; do cp "$work/spool/$s" "$work/raw/$s"; done
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work/raw"
echo "archive-wal, ${#segs[@]} segments of 16 MiB, one process each"
for round in $(seq 1 "$ROUNDS"); do
  for enc in none gpg; do
    name="w-$enc-$round"
    conf "$name" "$enc"
    t0=$(date +%s.%N)
    for s in "${segs[@]}"; do
      as_pg env GNUPGHOME="$GNUPGHOME" "$PGBAK" -q -c "$work/$name.conf" archive-wal bench "$work/raw/$s"
    done
    t1=$(date +%s.%N)
    awk -v e="$enc" -v a="$t0" -v b="$t1" -v n="${#segs[@]}" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s %6.1f ms/segment %6.1f segments/s\n", r, e, (b-a)*1000/n, n/(b-a) }'
    # get-wal of one segment, ten times.
    t0=$(date +%s.%N)
    for i in $(seq 1 10); do
      as_pg env GNUPGHOME="$GNUPGHOME" "$PGBAK" -q -c "$work/$name.conf" get-wal bench "${segs[0]}" "$work/raw/got" >/dev/null
      rm -f "$work/raw/got"
    done
    t1=$(date +%s.%N)
    awk -v e="$enc" -v a="$t0" -v b="$t1" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s get-wal %6.1f ms/segment\n", r, e, (b-a)*1000/10 }'
    # get-wal --bundle 8, as wal-restore --parallel 8 asks.
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/$name.conf" get-wal bench "${segs[0]}" --bundle 8)
    awk -v e="$enc" -v s="$secs" -v m="$rss" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s get-wal --bundle 8 %6.1f ms/segment  peak RSS %5.1f MB\n", r, e, s*1000/8, m/1024 }'
  done
done
