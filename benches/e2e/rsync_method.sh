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
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
bash scripts/install-deps.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
# PGBAK_BIN: a pgbak binary to measure instead of building one.
if [ -z "${PGBAK_BIN:-}" ]; then
  cargo build --release --locked -p pgbak-cli >/dev/null 2>&1
  PGBAK_BIN=target/release/pgbak
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /var/tmp/pgbak-bench-rsync.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/sock" "$work/ssh"
cp "$PGBAK_BIN" "$work/bin/pgbak"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SSH_PORT=$(free_port)
USER_NAME=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)

# sshd on loopback accepting one fresh key for the cluster owner.
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/client_key"
cp "$work/ssh/client_key.pub" "$work/ssh/authorized_keys"
cat > "$work/ssh/sshd_config" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM yes
StrictModes no
AllowUsers $USER_NAME
MaxSessions 64
MaxStartups 64:30:128
LogLevel ERROR
CONF
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
chmod 600 "$work/ssh/client_key"
mkdir -p /run/sshd
"$(command -v sshd || echo /usr/sbin/sshd)" -f "$work/ssh/sshd_config" -E "$work/ssh/sshd.log"
SSH_OPTS="-i $work/ssh/client_key -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
SSH_CMD="ssh $SSH_OPTS $USER_NAME@127.0.0.1"
for _ in $(seq 50); do as_pg $SSH_CMD true 2>/dev/null && break; sleep 0.1; done

home="$work/home"; as_pg mkdir -p "$home"
as_pg tee "$work/pgbak.conf" >/dev/null <<CONF
[pgbak]
home = $home
[bench]
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_method = rsync
ssh_command = $SSH_CMD
immediate_checkpoint = true
CONF

as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$work/sock'
wal_level = replica
archive_mode = on
archive_command = '$work/bin/pgbak -q -c $work/pgbak.conf archive-wal bench %p'
max_wal_size = 4GB
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
psql() { as_pg "$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT" >/dev/null
datasize=$(du -sb --exclude=pg_wal "$work/pgdata" | cut -f1)
echo "database: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB; $(nproc) cores"
# Warm the page cache so that every run reads the same way.
tar -cf - -C "$work" pgdata >/dev/null

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
report() { # name seconds sent_bytes [copied reused copy_seconds]
  awk -v t="$1" -v s="$2" -v b="$3" -v c="${4:-}" -v r="${5:-}" -v k="${6:-}" -v d="$datasize" 'BEGIN {
    printf "%-28s %7.2f s %8.1f MB/s  sent %8.1f MB", t, s, d/1e6/s, b/1e6
    if (c != "") printf "  copied %8.1f MB  reused %8.1f MB  (rsync phase %5.2f s)", c/1e6, r/1e6, k
    printf "\n" }'
}

as_pg mkdir -p "$work/plain"
start=$(date +%s.%N)
sent=$(as_pg rsync -a --stats -e "ssh $SSH_OPTS" "$USER_NAME@127.0.0.1:$work/pgdata/" "$work/plain/" \
  | awk -F': ' '/^Total bytes received/ { gsub(/[,.]/, "", $2); print $2 + 0 }')
end=$(date +%s.%N)
report "plain rsync -a over ssh" "$(elapsed "$start" "$end")" "$sent"
# pgbak makes a backup durable (syncfs) before it reports it; plain rsync leaves that to the
# page cache. This is the same copy plus the flush.
sync
report "  + sync (durable)" "$(elapsed "$start" "$(date +%s.%N)")" "$sent"

# Runs one pgbak backup; prints "seconds network_bytes copied_bytes reused_bytes copy_seconds".
pgbak_backup() {
  local start end json
  start=$(date +%s.%N)
  json=$(as_pg "$work/bin/pgbak" -q -f json -c "$work/pgbak.conf" backup bench --wait --wait-timeout 300 "$@")
  end=$(date +%s.%N)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["status"]=="DONE", j; print(sys.argv[2], j["network_bytes"], j["copied_bytes"], j["reused_bytes"], j["copy_seconds"])' \
    "$json" "$(elapsed "$start" "$end")"
}

for jobs in 1 2 4; do
  read -r secs sent copied reused copysecs < <(pgbak_backup --jobs "$jobs" --reuse-backup off)
  report "pgbak rsync jobs=$jobs" "$secs" "$sent" "$copied" "$reused" "$copysecs"
done

# 1% of the accounts change (contiguous rows, so about 1% of the table's pages), then a backup
# that reuses the last one with hard links.
psql -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((SCALE * 1000))" -c "CHECKPOINT" >/dev/null
tar -cf - -C "$work" pgdata >/dev/null
read -r secs sent copied reused copysecs < <(pgbak_backup --jobs 4 --reuse-backup link)
report "pgbak rsync jobs=4 link 1%" "$secs" "$sent" "$copied" "$reused" "$copysecs"
# The same change for plain rsync: into its earlier copy, updating files in place.
start=$(date +%s.%N)
sent=$(as_pg rsync -a --stats -e "ssh $SSH_OPTS" "$USER_NAME@127.0.0.1:$work/pgdata/" "$work/plain/" \
  | awk -F': ' '/^Total bytes received/ { gsub(/[,.]/, "", $2); print $2 + 0 }')
end=$(date +%s.%N)
report "plain rsync -a 1% (update)" "$(elapsed "$start" "$end")" "$sent"
sync
report "  + sync (durable)" "$(elapsed "$start" "$(date +%s.%N)")" "$sent"
