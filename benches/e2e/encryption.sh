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
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
ROUNDS=${2:-2}
NSEG=${3:-32}
bench_setup pgbak-encbench
# Short: the agent's socket path must fit in 108 bytes.
export GNUPGHOME=$(mktemp -d /tmp/pgbak-encbench-gpg.XXXXXX)
at_exit rm -rf "$GNUPGHOME"
at_exit as_pg env GNUPGHOME="$GNUPGHOME" gpgconf --kill gpg-agent
PG_ENV=(GNUPGHOME="$GNUPGHOME")
mkdir -p "$work/spool" "$work/raw"
echo "bench passphrase" > "$work/passphrase"
chmod 600 "$work/passphrase"
give_to_pg "$work" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
as_pg_env gpg --batch --quiet --pinentry-mode loopback \
  --passphrase "bench passphrase" --quick-generate-key bench@pgbak.test future-default default never
PORT=$(free_port)

start_cluster "$PGBIN" "$work/pgdata" "$PORT" "cp %p $work/spool/%f"
pgbench_init "$SCALE"
psql_ "CHECKPOINT" >/dev/null
psql_ "SELECT pg_switch_wal()" >/dev/null
sleep 1
datasize=$(pgdata_bytes "$work/pgdata")
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB; zstd level 1"

conf() { # name encryption
  local extra=()
  if [ "$2" = gpg ]; then
    extra=("encryption = gpg" "encryption_key_id = bench@pgbak.test" "encryption_passphrase_command = cat $work/passphrase")
  fi
  write_pgbak_conf "$work/$1.conf" "$work/home-$1" bench "$PORT" "backup_compression = zstd" \
    "backup_compression_level = 1" "compression = zstd" "immediate_checkpoint = true" "${extra[@]}"
}

echo "backups"
for round in $(seq 1 "$ROUNDS"); do
  for enc in none gpg; do
    name="b-$enc-$round"
    conf "$name" "$enc"
    seed_wal "$work/$name.conf"
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/$name.conf" backup bench)
    size=$(du -sb "$work/home-$name/bench/base" | cut -f1)
    awk -v e="$enc" -v s="$secs" -v r="$rss" -v b="$size" -v d="$datasize" -v n="$round" \
      'BEGIN { printf "  round %d  encryption %-4s %6.2f s %7.1f MB/s  peak RSS %5.1f MB  stored %7.1f MB\n", n, e, s, d/1e6/s, r/1024, b/1e6 }'
    rm -rf "$work/home-$name"
  done
done

mapfile -t segs < <(spool_segs | head -n "$NSEG")
for s in "${segs[@]}"; do cp "$work/spool/$s" "$work/raw/$s"; done
give_to_pg "$work/raw"
echo "archive-wal, ${#segs[@]} segments of 16 MiB, one process each"
for round in $(seq 1 "$ROUNDS"); do
  for enc in none gpg; do
    name="w-$enc-$round"
    conf "$name" "$enc"
    t0=$(now)
    for s in "${segs[@]}"; do
      as_pg_env "$PGBAK" -q -c "$work/$name.conf" archive-wal bench "$work/raw/$s"
    done
    t1=$(now)
    awk -v e="$enc" -v a="$t0" -v b="$t1" -v n="${#segs[@]}" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s %6.1f ms/segment %6.1f segments/s\n", r, e, (b-a)*1000/n, n/(b-a) }'
    # get-wal of one segment, ten times.
    t0=$(now)
    for i in $(seq 1 10); do
      as_pg_env "$PGBAK" -q -c "$work/$name.conf" get-wal bench "${segs[0]}" "$work/raw/got" >/dev/null
      rm -f "$work/raw/got"
    done
    t1=$(now)
    read -r _ rss < <(measure "$PGBAK" -q -c "$work/$name.conf" get-wal bench "${segs[0]}" "$work/raw/got")
    rm -f "$work/raw/got"
    awk -v e="$enc" -v a="$t0" -v b="$t1" -v m="$rss" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s get-wal %6.1f ms/segment  peak RSS %5.1f MB\n", r, e, (b-a)*1000/10, m/1024 }'
    # get-wal --bundle 8, as wal-restore --parallel 8 asks.
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/$name.conf" get-wal bench "${segs[0]}" --bundle 8)
    awk -v e="$enc" -v s="$secs" -v m="$rss" -v r="$round" \
      'BEGIN { printf "  round %d  encryption %-4s get-wal --bundle 8 %6.1f ms/segment  peak RSS %5.1f MB\n", r, e, s*1000/8, m/1024 }'
  done
done
