#!/usr/bin/env bash
# End-to-end WAL benchmark, all measured in one run on this machine:
#
#   1. archive throughput (segments/s, MB/s) of the same real 16 MiB segments through
#      cp, cp + fsync, pgbak archive-wal (none, zstd, zstd with cloud_wal_archive_parallel 2
#      and 4), pgbak wal-archive over SSH (loopback sshd),
#      pgbackrest archive-push (none, zst) and barman-wal-archive -> barman put-wal over SSH;
#   2. get-wal latency per segment (pgbak get-wal from a zstd archive and an uncompressed one);
#   3. replay speed of a recovery of about 1 GB of WAL with restore_command = pgbak get-wal,
#      pgbak wal-restore over SSH, and wal-restore --parallel 4 and 8.
#
#   bash benches/e2e/wal_archive_restore.sh [SEGMENTS]     (default 64 = 1 GiB of WAL)
#
# pgBackRest (Debian package) and Barman (PyPI, in a virtualenv) are installed by this script only;
# a tool that cannot be installed is reported as such and skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
NSEG=${1:-64}
bash scripts/install-deps.sh >/dev/null 2>&1 || true
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${PGBAK_BIN:-}" ]; then
  cargo build --release -p pgbak-cli >/dev/null 2>&1
  PGBAK_BIN=target/release/pgbak
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /var/tmp/pgbak-walbench.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
SSHD_PID=
cleanup() {
  for d in "$work"/pgdata "$work"/restore-*; do
    [ -d "$d" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/bin" "$work/raw" "$work/sock" "$work/ssh"
cp "$PGBAK_BIN" "$work/bin/pgbak"
PGBAK="$work/bin/pgbak"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
now() { date +%s.%N; }
retry() { "$@" || { echo "  (retrying: $*)" >&2; "$@"; }; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
rate() { # label seconds count bytes
  awk -v l="$1" -v s="$2" -v n="$3" -v b="$4" \
    'BEGIN { printf "  %-40s %7.2f s  %7.1f segments/s  %7.1f MB/s\n", l, s, n/s, b/1e6/s }'
}

# --- sshd on loopback for the SSH paths (as the test bed does) --------------------------------
SSH_PORT=$(free_port)
ssh-keygen -q -t ed25519 -N "" -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$work/ssh/client_key"
PG_USER=$( [ "$(id -u)" -eq 0 ] && echo postgres || id -un )
# The remote PATH reaches the Barman virtualenv (for barman put-wal).
echo "environment=\"PATH=$work/venv/bin:/usr/local/bin:/usr/bin:/bin\" $(cat "$work/ssh/client_key.pub")" > "$work/ssh/authorized_keys"
cat > "$work/ssh/sshd_config" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitUserEnvironment yes
UsePAM yes
StrictModes no
AllowUsers $PG_USER
MaxSessions 64
MaxStartups 64:30:128
LogLevel ERROR
CONF
mkdir -p /run/sshd 2>/dev/null || true
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
"$SSHD" -D -f "$work/ssh/sshd_config" -E "$work/ssh/sshd.log" &
SSHD_PID=$!
SSH="ssh -i $work/ssh/client_key -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
chmod 600 "$work/ssh/client_key"
sleep 0.5

# --- the database: archive into a pgbak home (zstd), back up, then write about 1 GB of WAL ------
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres --auth=trust --no-sync >/dev/null
as_pg mkdir -p "$work/home"
cat > "$work/pgbak.conf" <<CONF
[pgbak]
home = $work/home
[main]
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_method = postgres
immediate_checkpoint = true
compression = zstd
CONF
cat >> "$work/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$work/sock'
wal_level = replica
archive_mode = on
archive_command = '$PGBAK -q -c $work/pgbak.conf archive-wal main %p'
max_wal_size = 4GB
shared_buffers = 256MB
CONF
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
psql_() { as_pg "$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"; }
as_pg "$PGBAK" -q -c "$work/pgbak.conf" backup main --wait --wait-timeout 300 >/dev/null
first=$(psql_ "SELECT pg_walfile_name(pg_current_wal_lsn())")
# Write WAL until NSEG segments past the backup exist.
psql_ "CREATE TABLE w (id bigint, pad text)"
target_bytes=$(( (NSEG + 1) * 16 * 1024 * 1024 ))
start_lsn=$(psql_ "SELECT pg_current_wal_lsn()")
while :; do
  psql_ "INSERT INTO w SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(1, 200000) g"
  done_bytes=$(psql_ "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn')::bigint")
  [ "$done_bytes" -ge "$target_bytes" ] && break
done
psql_ "SELECT count(*) FROM w" > "$work/expected_count"
as_pg "$PGBAK" -q -c "$work/pgbak.conf" switch-wal main --force --archive --archive-timeout 300 >/dev/null
mapfile -t all < <(ls "$work/home/main/wals/"*/ | grep -E '^[0-9A-F]{24}$' | sort)
segs=()
for s in "${all[@]}"; do [[ "$s" > "$first" || "$s" == "$first" ]] && segs+=("$s"); done
segs=("${segs[@]:0:$NSEG}")
n=${#segs[@]}
bytes=$(( n * 16 * 1024 * 1024 ))
echo "WAL: $n segments of 16 MiB ($((bytes / 1000000)) MB), from ${segs[0]} to ${segs[$((n-1))]}"

# --- get-wal latency ----------------------------------------------------------------------------
echo "get-wal latency per segment (one process per segment, as restore_command):"
t0=$(now)
for s in "${segs[@]}"; do as_pg "$PGBAK" -c "$work/pgbak.conf" get-wal main "$s" "$work/raw/$s"; done
t1=$(now)
awk -v s="$(el "$t0" "$t1")" -v n="$n" 'BEGIN { printf "  %-40s %7.1f ms/segment\n", "pgbak get-wal (zstd archive)", s*1000/n }'
t0=$(now)
for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp-target"; done
t1=$(now)
awk -v s="$(el "$t0" "$t1")" -v n="$n" 'BEGIN { printf "  %-40s %7.1f ms/segment\n", "cp (reference)", s*1000/n }'

# --- archive throughput -------------------------------------------------------------------------
echo "archive throughput ($n segments, each tool into a fresh place, durable before the next):"
as_pg mkdir -p "$work/cp1" "$work/cp2"
t0=$(now); for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp1/"; done; t1=$(now)
rate "cp (no fsync)" "$(el "$t0" "$t1")" "$n" "$bytes"
t0=$(now); for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp2/"; as_pg sync "$work/cp2/$s"; done; t1=$(now)
rate "cp + fsync" "$(el "$t0" "$t1")" "$n" "$bytes"
for comp in none zstd; do
  as_pg mkdir -p "$work/home-$comp"
  printf '[pgbak]\nhome = %s\n[main]\nconninfo = host=127.0.0.1 port=%s\ncompression = %s\n' \
    "$work/home-$comp" "$PORT" "$comp" > "$work/bench-$comp.conf"
  t0=$(now)
  for s in "${segs[@]}"; do as_pg "$PGBAK" -q -c "$work/bench-$comp.conf" archive-wal main "$work/raw/$s"; done
  t1=$(now)
  rate "pgbak archive-wal ($comp)" "$(el "$t0" "$t1")" "$n" "$bytes"
done
# Parallel archiving: every segment marked ready in archive_status, then done after its call,
# as PostgreSQL does; each call archives the ready ones after it, P at a time.
as_pg mkdir -p "$work/raw/archive_status"
for p in 2 4; do
  comp=zstd
  as_pg mkdir -p "$work/home-p$p"
  printf '[pgbak]\nhome = %s\n[main]\nconninfo = host=127.0.0.1 port=%s\ncompression = %s\ncloud_wal_archive_parallel = %s\n' \
    "$work/home-p$p" "$PORT" "$comp" "$p" > "$work/bench-p$p.conf"
  rm -f "$work/raw/archive_status/"*
  for s in "${segs[@]}"; do as_pg touch "$work/raw/archive_status/$s.ready"; done
  t0=$(now)
  for s in "${segs[@]}"; do
    as_pg "$PGBAK" -q -c "$work/bench-p$p.conf" archive-wal main "$work/raw/$s"
    as_pg mv "$work/raw/archive_status/$s.ready" "$work/raw/archive_status/$s.done"
  done
  t1=$(now)
  rate "pgbak archive-wal ($comp, parallel $p)" "$(el "$t0" "$t1")" "$n" "$bytes"
done
for comp in none zstd; do
  as_pg mkdir -p "$work/home-ssh-$comp"
  printf '[pgbak]\nhome = %s\n[main]\nconninfo = host=127.0.0.1 port=%s\ncompression = %s\n' \
    "$work/home-ssh-$comp" "$PORT" "$comp" > "$work/bench-ssh-$comp.conf"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$work/bench-ssh-$comp.conf"
  t0=$(now)
  for s in "${segs[@]}"; do
    # Retried once, as PostgreSQL retries archive_command (other SSH tests on a shared machine
    # may cut sessions).
    retry as_pg "$PGBAK" -c "$work/bench-ssh-$comp.conf" wal-archive --ssh-command "$SSH" -U "$PG_USER" \
      --pgbak-path "$PGBAK" 127.0.0.1 main "$work/raw/$s"
  done
  t1=$(now)
  rate "pgbak wal-archive over SSH ($comp)" "$(el "$t0" "$t1")" "$n" "$bytes"
done

# pgBackRest archive-push.
if command -v pgbackrest >/dev/null || (apt-get install -y -qq pgbackrest >/dev/null 2>&1); then
  for comp in none zst; do
    as_pg mkdir -p "$work/pgbr-$comp/repo" "$work/pgbr-$comp/log" "$work/pgbr-$comp/lock"
    cat > "$work/pgbr-$comp.conf" <<CONF
[global]
repo1-path=$work/pgbr-$comp/repo
log-path=$work/pgbr-$comp/log
lock-path=$work/pgbr-$comp/lock
log-level-console=warn
log-level-file=off
compress-type=$comp
compress-level=1
[bench]
pg1-path=$work/pgdata
pg1-port=$PORT
pg1-socket-path=$work/sock
CONF
    as_pg pgbackrest --config="$work/pgbr-$comp.conf" --stanza=bench stanza-create >/dev/null
    t0=$(now)
    for s in "${segs[@]}"; do
      as_pg pgbackrest --config="$work/pgbr-$comp.conf" --stanza=bench archive-push "$work/raw/$s"
    done
    t1=$(now)
    rate "pgbackrest archive-push ($comp)" "$(el "$t0" "$t1")" "$n" "$bytes"
  done
else
  echo "  pgbackrest archive-push: not installed (apt-get install pgbackrest failed)"
fi

# Barman: barman-wal-archive (barman-cli) on the database side, barman put-wal on the backup side.
if /usr/bin/python3 -m venv "$work/venv" >/dev/null 2>&1 \
  && "$work/venv/bin/pip" install -q psycopg2-binary python-dateutil argcomplete >/dev/null 2>&1 \
  && "$work/venv/bin/pip" install -q --no-deps barman barman-cli >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$work/venv"
  as_pg mkdir -p "$work/barman-home" "$work/barman-log"
  cat > "$work/barman.conf" <<CONF
[barman]
barman_home = $work/barman-home
barman_user = $PG_USER
log_file = $work/barman-log/barman.log
log_level = WARNING
compression = gzip
[main]
description = bench
conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres
backup_method = postgres
archiver = on
CONF
  [ "$(id -u)" -eq 0 ] && chown postgres: "$work/barman.conf"
  # barman-wal-archive runs plain "ssh": a wrapper first in PATH adds the key and host options.
  mkdir -p "$work/sshwrap"
  SSH_ABS="$(command -v ssh)${SSH#ssh}"
  printf '#!/bin/sh\nexec %s "$@"\n' "$SSH_ABS" | sed "s/ -p $SSH_PORT//" > "$work/sshwrap/ssh"
  chmod 755 "$work/sshwrap/ssh"
  if as_pg env PATH="$work/sshwrap:$PATH" "$work/venv/bin/barman-wal-archive" -U "$PG_USER" --port "$SSH_PORT" -c "$work/barman.conf" --test 127.0.0.1 main DUMMY > "$work/barman-test.log" 2>&1; then
    t0=$(now)
    for s in "${segs[@]}"; do
      retry as_pg env PATH="$work/sshwrap:$PATH" "$work/venv/bin/barman-wal-archive" -U "$PG_USER" --port "$SSH_PORT" \
        -c "$work/barman.conf" 127.0.0.1 main "$work/raw/$s"
    done
    t1=$(now)
    rate "barman-wal-archive -> put-wal (SSH)" "$(el "$t0" "$t1")" "$n" "$bytes"
  else
    echo "  barman-wal-archive: installed, but barman put-wal --test over SSH failed; skipped:"
    sed 's/^/    /' "$work/barman-test.log" | tail -n 5
  fi
else
  echo "  barman-wal-archive: not installed (pip install barman-cli barman failed)"
fi

# --- replay speed -------------------------------------------------------------------------------
echo "replay of the $n segments after the backup (restore_command variants; time to promotion):"
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m fast -w stop >/dev/null
replay() { # label restore_command
  local dest="$work/restore-$RANDOM" p
  as_pg "$PGBAK" -q -c "$work/pgbak.conf" recover main latest "$dest" --get-wal >/dev/null
  p=$(free_port)
  t0=$(now)
  if ! as_pg "$PGBIN/pg_ctl" -D "$dest" -l "$dest.log" -w -t 3600 -o "-c port=$p -c unix_socket_directories='$work/sock' -c archive_mode=off -c restore_command='$2'" start >/dev/null; then
    echo "  $1: the restored server did not start: $(tail -n 2 "$dest.log")"
    return 0
  fi
  until [ "$(as_pg "$PGBIN/psql" -X -A -t -h 127.0.0.1 -p "$p" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ]; do sleep 0.05; done
  t1=$(now)
  got=$(as_pg "$PGBIN/psql" -X -A -t -h 127.0.0.1 -p "$p" -U postgres -d postgres -c 'SELECT count(*) FROM w')
  [ "$got" = "$(cat "$work/expected_count")" ] || echo "  ($1: wrong row count $got)"
  rate "$1" "$(el "$t0" "$t1")" "$n" "$bytes"
  as_pg "$PGBIN/pg_ctl" -D "$dest" -m immediate -w stop >/dev/null
  rm -rf "$dest"
}
REMOTE="$PGBAK -c $work/pgbak.conf wal-restore --ssh-command \"$SSH\" -U $PG_USER --pgbak-path $PGBAK"
replay "pgbak get-wal (local)" "$PGBAK -c $work/pgbak.conf get-wal main %f %p"
replay "pgbak wal-restore over SSH" "$REMOTE 127.0.0.1 main %f %p"
replay "pgbak wal-restore --parallel 4" "$REMOTE -p 4 --spool-dir $work/spool4 127.0.0.1 main %f %p"
replay "pgbak wal-restore --parallel 8" "$REMOTE -p 8 --spool-dir $work/spool8 127.0.0.1 main %f %p"
