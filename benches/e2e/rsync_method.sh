#!/usr/bin/env bash
# End-to-end benchmark of backup_method = rsync: a pgbench database backed up over SSH (an sshd
# on a loopback port stands in for the database host) with parallel_jobs 1, 2 and 4, then with
# reuse_backup = link after 1% of pgbench_accounts changed, next to one plain `rsync -a` of the
# same data directory over the same SSH, all in one run on this machine.
#
#   bash benches/e2e/rsync_method.sh [SCALE]      (default scale 50, about 750 MB)
#
# Prints one line per run: seconds, MB/s (data directory without pg_wal / wall time), and the
# bytes sent by the database host (rsync's "Total bytes received" on the backup host); for
# pgbak also the bytes of files copied and reused and the time between pg_backup_start and
# pg_backup_stop, from the backup's metadata. pgbak's wall time includes the fast checkpoint,
# making the backup durable (syncfs) and waiting for its WAL to be archived (--wait); plain
# rsync's is shown without and with a final `sync`. Plain rsync also copies pg_wal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
bench_setup pgbak-bench-rsync
PORT=$(free_port)
# An sshd on loopback accepting one fresh key for the cluster owner: pgbak's and rsync's way in.
# shellcheck disable=SC2119 # no options before the key
start_sshd
SSH_CMD="ssh $SSH_OPTS $PG_USER@127.0.0.1"

home="$work/home"
give_to_pg "$work"
as_pg mkdir -p "$home"
write_pgbak_conf "$work/pgbak.conf" "$home" bench "$PORT" "backup_method = rsync" "ssh_command = $SSH_CMD" \
  "immediate_checkpoint = true"

start_cluster "$PGBIN" "$work/pgdata" "$PORT" "$PGBAK -q -c $work/pgbak.conf archive-wal bench %p"
pgbench_init "$SCALE"
psql_ "VACUUM (FREEZE, ANALYZE)" "CHECKPOINT" >/dev/null
datasize=$(pgdata_bytes "$work/pgdata")
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB; $(nproc) cores"
# Warm the page cache so that every run reads the same way.
tar -cf - -C "$work" pgdata >/dev/null

report() { # name seconds sent_bytes [copied reused copy_seconds]
  awk -v t="$1" -v s="$2" -v b="$3" -v c="${4:-}" -v r="${5:-}" -v k="${6:-}" -v d="$datasize" 'BEGIN {
    printf "%-28s %7.2f s %8.1f MB/s  sent %8.1f MB", t, s, d/1e6/s, b/1e6
    if (c != "") printf "  copied %8.1f MB  reused %8.1f MB  (rsync phase %5.2f s)", c/1e6, r/1e6, k
    printf "\n" }'
}

# plain_rsync LABEL: `rsync -a` of the data directory over the same SSH into $work/plain (a full
# copy, or an update of the copy there); then the same plus a final `sync`.
plain_rsync() {
  local start end sent
  start=$(now)
  sent=$(as_pg rsync -a --stats -e "ssh $SSH_OPTS" "$PG_USER@127.0.0.1:$work/pgdata/" "$work/plain/" \
    | awk -F': ' '/^Total bytes received/ { gsub(/[,.]/, "", $2); print $2 + 0 }')
  end=$(now)
  report "$1" "$(elapsed "$start" "$end")" "$sent"
  # pgbak makes a backup durable (syncfs) before it reports it; plain rsync leaves that to the
  # page cache. This is the same copy plus the flush.
  sync
  report "  + sync (durable)" "$(elapsed "$start" "$(now)")" "$sent"
}
as_pg mkdir -p "$work/plain"
plain_rsync "plain rsync -a over ssh"

# Runs one pgbak backup; prints "seconds network_bytes copied_bytes reused_bytes copy_seconds".
pgbak_backup() {
  local start end json
  start=$(now)
  json=$(as_pg "$PGBAK" -q -f json -c "$work/pgbak.conf" backup bench --wait --wait-timeout 300 "$@")
  end=$(now)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["status"]=="DONE", j; print(sys.argv[2], j["network_bytes"], j["copied_bytes"], j["reused_bytes"], j["copy_seconds"])' \
    "$json" "$(elapsed "$start" "$end")"
}

for jobs in 1 2 4; do
  read -r secs sent copied reused copysecs < <(pgbak_backup --jobs "$jobs" --reuse-backup off)
  report "pgbak rsync jobs=$jobs" "$secs" "$sent" "$copied" "$reused" "$copysecs"
done

# 1% of the accounts change (contiguous rows, so about 1% of the table's pages), then a backup
# that reuses the last one with hard links.
psql_ "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((SCALE * 1000))" "CHECKPOINT" >/dev/null
tar -cf - -C "$work" pgdata >/dev/null
read -r secs sent copied reused copysecs < <(pgbak_backup --jobs 4 --reuse-backup link)
report "pgbak rsync jobs=4 link 1%" "$secs" "$sent" "$copied" "$reused" "$copysecs"
# The same change for plain rsync: into its earlier copy, updating files in place.
plain_rsync "plain rsync -a 1% (update)"
