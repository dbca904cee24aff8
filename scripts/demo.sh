#!/usr/bin/env bash
# pgbak end to end on a throwaway PostgreSQL: installs what is needed, builds pgbak, starts a
# cluster that archives its WAL with pgbak, takes a backup, keeps writing, restores to a point in
# time between two batches of writes, starts the restored copy, shows what it holds, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p pgbak-cli

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/pgbak-demo.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$work/restored" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/home" "$work/sock"
cp target/release/pgbak "$work/bin/pgbak"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); PORT2=$(free_port)
PGBAK=("$work/bin/pgbak" -c "$work/pgbak.conf")
psql_() { "$PGBIN/psql" -X -At -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }

echo "== 1. a throwaway PostgreSQL on port $PORT, archiving WAL with pgbak"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$work/sock'
wal_level = replica
archive_mode = on
archive_command = '$work/bin/pgbak -q -c $work/pgbak.conf archive-wal demo %p'
CONF
as_pg tee "$work/pgbak.conf" >/dev/null <<CONF
[pgbak]
home = $work/home

[demo]
description = throwaway demo server
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_method = postgres
backup_compression = zstd
compression = zstd
immediate_checkpoint = true
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null

echo "== 2. some data, then a backup"
psql_ "$PORT" "CREATE TABLE orders (id int PRIMARY KEY, item text, at timestamptz DEFAULT clock_timestamp())"
psql_ "$PORT" "INSERT INTO orders (id, item) SELECT g, 'item ' || g FROM generate_series(1, 100000) g"
as_pg "${PGBAK[@]}" backup demo --wait --wait-timeout 120
as_pg "${PGBAK[@]}" list-backups demo

echo "== 3. more writes after the backup: batch A, then (later) batch B"
psql_ "$PORT" "INSERT INTO orders (id, item) SELECT g, 'batch A' FROM generate_series(100001, 100010) g"
sleep 1
TARGET=$(psql_ "$PORT" "SELECT clock_timestamp()")
sleep 1
psql_ "$PORT" "INSERT INTO orders (id, item) SELECT g, 'batch B' FROM generate_series(100011, 100020) g"
psql_ "$PORT" "DELETE FROM orders WHERE id <= 50000"
as_pg "${PGBAK[@]}" switch-wal demo --force --archive
echo "   the live server now has $(psql_ "$PORT" "SELECT count(*) FROM orders") rows; target time is $TARGET"

echo "== 4. restore to the target time (after batch A, before batch B and the delete)"
as_pg "${PGBAK[@]}" recover demo latest "$work/restored" --target-time "$TARGET" --target-action promote
as_pg "$PGBIN/pg_ctl" -D "$work/restored" -l "$work/restored.log" -w \
  -o "-c port=$PORT2 -c archive_mode=off" start >/dev/null
for _ in $(seq 1 120); do
  [ "$(psql_ "$PORT2" "SELECT pg_is_in_recovery()" 2>/dev/null)" = "f" ] && break
  sleep 0.5
done

echo "== 5. what the restored server holds"
psql_ "$PORT2" "SELECT count(*) AS rows, min(id), max(id), count(*) FILTER (WHERE item = 'batch A') AS batch_a, count(*) FILTER (WHERE item = 'batch B') AS batch_b FROM orders" \
  | awk -F'|' '{printf "   rows=%s min_id=%s max_id=%s batch_A=%s batch_B=%s\n", $1, $2, $3, $4, $5}'
rows=$(psql_ "$PORT2" "SELECT count(*) FROM orders")
if [ "$rows" = "100010" ]; then
  echo "OK: the restored server has exactly the 100010 rows committed before $TARGET"
else
  echo "FAILED: expected 100010 rows, found $rows" >&2
  exit 1
fi
