#!/usr/bin/env bash
# End-to-end benchmark: pgbak against pg_basebackup on the same pgbench database, and one
# archive-wal call against cp+fsync, all in one run on this machine.
#
#   bash benches/e2e/backup_and_archive.sh [SCALE]      (default scale 50, about 750 MB)
#
# Prints one line per run: tool, compression, seconds, MB/s (PGDATA without pg_wal / wall time),
# peak RSS and backup size, and for WAL: ms per segment and segments/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
bash scripts/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
# PGBAK_BIN: a pgbak binary to measure instead of building one.
if [ -z "${PGBAK_BIN:-}" ]; then
  cargo build --release --locked -p pgbak-cli >/dev/null 2>&1
  PGBAK_BIN=target/release/pgbak
fi
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /var/tmp/pgbak-bench.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/bin" "$work/spool" "$work/sock"
cp "$PGBAK_BIN" "$work/bin/pgbak"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
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
as_pg "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CHECKPOINT" >/dev/null
datasize=$(du -sb --exclude=pg_wal "$work/pgdata" | cut -f1)
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB"

# Runs "$@" under /usr/bin/time as the cluster owner, prints "seconds peak_rss_kb".
measure() {
  local out
  out=$(as_pg /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -n 1)
  echo "$out"
}
report() { # tool compression seconds rss_kb bytes
  awk -v t="$1" -v c="$2" -v s="$3" -v r="$4" -v b="$5" -v d="$datasize" \
    'BEGIN { printf "%-17s %-11s %7.2f s %8.1f MB/s  peak RSS %6.1f MB  size %8.1f MB\n", t, c, s, d/1e6/s, r/1024, b/1e6 }'
}

for comp in none zstd zstd-T2 zstd-server lz4 gzip; do
  home="$work/home-$comp"; as_pg mkdir -p "$home"
  extra=""
  codec=$comp
  if [ "$comp" = zstd-T2 ]; then codec=zstd; extra="backup_compression_workers = 2"; fi
  if [ "$comp" = zstd-server ]; then
    codec=zstd
    extra=$'backup_compression_location = server\nbackup_compression_workers = 2'
  fi
  as_pg tee "$work/pgbak-$comp.conf" >/dev/null <<CONF
[pgbak]
home = $home
[bench]
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_compression = $codec
backup_compression_level = 1
immediate_checkpoint = true
$extra
CONF
  # pgbak backs up a server whose archive holds WAL: one segment first, outside the timing.
  seg=$(ls "$work/spool" | grep -E '^[0-9A-F]{24}$' | sort | tail -n 1)
  as_pg "$work/bin/pgbak" -q -c "$work/pgbak-$comp.conf" archive-wal bench "$work/spool/$seg"
  read -r secs rss < <(measure "$work/bin/pgbak" -q -c "$work/pgbak-$comp.conf" backup bench)
  report pgbak "$comp" "$secs" "$rss" "$(du -sb "$home/bench/base" | cut -f1)"
  rm -rf "$home"

  [ "$comp" = zstd-T2 ] && continue
  dest="$work/pgbb-$comp"
  if [ "$comp" = zstd-server ]; then
    read -r secs rss < <(measure "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$dest" -Ft -X none -c fast \
       --compress=server-zstd:level=1,workers=2)
    report "pg_basebackup -Ft" "$comp" "$secs" "$rss" "$(du -sb "$dest" | cut -f1)"
    rm -rf "$dest"
    continue
  fi
  if [ "$comp" = none ]; then
    read -r secs rss < <(measure "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$dest" -Fp -X none -c fast)
    report "pg_basebackup -Fp" "$comp" "$secs" "$rss" "$(du -sb "$dest" | cut -f1)"
    rm -rf "$dest"
  fi
  read -r secs rss < <(measure "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$dest" -Ft -X none -c fast \
     $( [ "$comp" != none ] && echo "--compress=client-$comp:1" ))
  report "pg_basebackup -Ft" "$comp" "$secs" "$rss" "$(du -sb "$dest" | cut -f1)"
  rm -rf "$dest"
done

# WAL: the segments the load produced, archived one call at a time.
segs=$(ls "$work/spool" | grep -E '^[0-9A-F]{24}$' | head -n 200)
n=$(echo "$segs" | wc -l)
for comp in none zstd lz4; do
  home="$work/walhome-$comp"; as_pg mkdir -p "$home"
  as_pg tee "$work/wal-$comp.conf" >/dev/null <<CONF
[pgbak]
home = $home
[bench]
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
compression = $comp
compression_level = low
CONF
  start=$(date +%s.%N)
  for s in $segs; do as_pg "$work/bin/pgbak" -q -c "$work/wal-$comp.conf" archive-wal bench "$work/spool/$s"; done
  end=$(date +%s.%N)
  awk -v n="$n" -v a="$start" -v b="$end" -v c="$comp" 'BEGIN { printf "pgbak archive-wal %-5s %d segments: %6.1f ms/segment, %6.1f segments/s\n", c, n, (b-a)*1000/n, n/(b-a) }'
  rm -rf "$home"
done
as_pg mkdir -p "$work/cpdest"
start=$(date +%s.%N)
for s in $segs; do as_pg sh -c "cp '$work/spool/$s' '$work/cpdest/$s' && sync '$work/cpdest/$s'"; done
end=$(date +%s.%N)
awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "cp + fsync              %d segments: %6.1f ms/segment, %6.1f segments/s\n", n, (b-a)*1000/n, n/(b-a) }'
