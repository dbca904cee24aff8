#!/usr/bin/env bash
# End-to-end benchmark: pgbak against pg_basebackup on the same pgbench database, and one
# archive-wal call against cp+fsync, all in one run on this machine.
#
#   bash benches/e2e/backup_and_archive.sh [SCALE]      (default scale 50, about 750 MB)
#
# Prints one line per run: tool, compression, seconds, MB/s (PGDATA without pg_wal / wall time),
# peak RSS and backup size, and for WAL: ms per segment and segments/s.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
bench_setup pgbak-bench
mkdir -p "$work/spool"
give_to_pg "$work"
PORT=$(free_port)

start_cluster "$PGBIN" "$work/pgdata" "$PORT" "cp %p $work/spool/%f"
pgbench_init "$SCALE"
psql_ "CHECKPOINT" >/dev/null
datasize=$(pgdata_bytes "$work/pgdata")
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB"

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
  write_pgbak_conf "$work/pgbak-$comp.conf" "$home" bench "$PORT" "backup_compression = $codec" \
    "backup_compression_level = 1" "immediate_checkpoint = true" "$extra"
  seed_wal "$work/pgbak-$comp.conf"
  read -r secs rss < <(measure "$PGBAK" -q -c "$work/pgbak-$comp.conf" backup bench)
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
segs=$(spool_segs | head -n 200)
n=$(echo "$segs" | wc -l)
for comp in none zstd lz4; do
  home="$work/walhome-$comp"; as_pg mkdir -p "$home"
  write_pgbak_conf "$work/wal-$comp.conf" "$home" bench "$PORT" "compression = $comp" "compression_level = low"
  start=$(now)
  for s in $segs; do as_pg "$PGBAK" -q -c "$work/wal-$comp.conf" archive-wal bench "$work/spool/$s"; done
  end=$(now)
  awk -v n="$n" -v a="$start" -v b="$end" -v c="$comp" 'BEGIN { printf "pgbak archive-wal %-5s %d segments: %6.1f ms/segment, %6.1f segments/s\n", c, n, (b-a)*1000/n, n/(b-a) }'
  rm -rf "$home"
done
as_pg mkdir -p "$work/cpdest"
start=$(now)
for s in $segs; do as_pg sh -c "cp '$work/spool/$s' '$work/cpdest/$s' && sync '$work/cpdest/$s'"; done
end=$(now)
awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "cp + fsync              %d segments: %6.1f ms/segment, %6.1f segments/s\n", n, (b-a)*1000/n, n/(b-a) }'
