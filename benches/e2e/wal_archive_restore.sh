#!/usr/bin/env bash
# End-to-end WAL benchmark, all measured in one run on this machine:
#
#   1. archive throughput (segments/s, MB/s) of the same real 16 MiB segments through
#      cp, cp + fsync, pgbak archive-wal (none, zstd, zstd with cloud_wal_archive_parallel 2
#      and 4), pgbak wal-archive over SSH (loopback sshd),
#      pgbackrest archive-push (none, zst) and barman-wal-archive -> barman put-wal over SSH;
#   2. get-wal latency per segment (pgbak get-wal from a zstd archive and an uncompressed one);
#   3. replay speed of a recovery of about 1 GB of WAL with restore_command = pgbak get-wal,
#      pgbak wal-restore over SSH, and wal-restore --parallel 4 and 8, with the peak RSS of one
#      restore_command call (each call runs under /usr/bin/time).
#
#   bash benches/e2e/wal_archive_restore.sh [SEGMENTS]     (default 64 = 1 GiB of WAL)
#
# pgBackRest (Debian package) and Barman (PyPI, in a virtualenv) are installed by this script only;
# a tool that cannot be installed is reported as such and skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
NSEG=${1:-64}
bench_setup pgbak-walbench
mkdir -p "$work/raw"
PORT=$(free_port)
retry() { "$@" || { echo "  (retrying: $*)" >&2; "$@"; }; }
rate() { # label seconds count bytes
  awk -v l="$1" -v s="$2" -v n="$3" -v b="$4" \
    'BEGIN { printf "  %-40s %7.2f s  %7.1f segments/s  %7.1f MB/s\n", l, s, n/s, b/1e6/s }'
}

# --- sshd on loopback for the SSH paths (as the test bed does) --------------------------------
# The remote PATH reaches the Barman virtualenv (for barman put-wal).
start_sshd "environment=\"PATH=$work/venv/bin:/usr/local/bin:/usr/bin:/bin\""
SSH="ssh $SSH_OPTS"

# --- the database: archive into a pgbak home (zstd), back up, then write about 1 GB of WAL ------
give_to_pg "$work"
as_pg mkdir -p "$work/home"
write_pgbak_conf "$work/pgbak.conf" "$work/home" main "$PORT" "backup_method = postgres" \
  "immediate_checkpoint = true" "compression = zstd"
start_cluster "$PGBIN" "$work/pgdata" "$PORT" "$PGBAK -q -c $work/pgbak.conf archive-wal main %p" "shared_buffers = 256MB"
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
awk -v s="$(elapsed "$t0" "$t1")" -v n="$n" 'BEGIN { printf "  %-40s %7.1f ms/segment\n", "pgbak get-wal (zstd archive)", s*1000/n }'
t0=$(now)
for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp-target"; done
t1=$(now)
awk -v s="$(elapsed "$t0" "$t1")" -v n="$n" 'BEGIN { printf "  %-40s %7.1f ms/segment\n", "cp (reference)", s*1000/n }'

# --- archive throughput -------------------------------------------------------------------------
echo "archive throughput ($n segments, each tool into a fresh place, durable before the next):"
as_pg mkdir -p "$work/cp1" "$work/cp2"
t0=$(now); for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp1/"; done; t1=$(now)
rate "cp (no fsync)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
t0=$(now); for s in "${segs[@]}"; do as_pg cp "$work/raw/$s" "$work/cp2/"; as_pg sync "$work/cp2/$s"; done; t1=$(now)
rate "cp + fsync" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
for comp in none zstd; do
  as_pg mkdir -p "$work/home-$comp"
  write_pgbak_conf "$work/bench-$comp.conf" "$work/home-$comp" main "$PORT" "compression = $comp"
  t0=$(now)
  for s in "${segs[@]}"; do as_pg "$PGBAK" -q -c "$work/bench-$comp.conf" archive-wal main "$work/raw/$s"; done
  t1=$(now)
  rate "pgbak archive-wal ($comp)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
done
# Parallel archiving: every segment marked ready in archive_status, then done after its call,
# as PostgreSQL does; each call archives the ready ones after it, P at a time.
as_pg mkdir -p "$work/raw/archive_status"
for p in 2 4; do
  comp=zstd
  as_pg mkdir -p "$work/home-p$p"
  write_pgbak_conf "$work/bench-p$p.conf" "$work/home-p$p" main "$PORT" "compression = $comp" \
    "cloud_wal_archive_parallel = $p"
  rm -f "$work/raw/archive_status/"*
  for s in "${segs[@]}"; do as_pg touch "$work/raw/archive_status/$s.ready"; done
  t0=$(now)
  for s in "${segs[@]}"; do
    as_pg "$PGBAK" -q -c "$work/bench-p$p.conf" archive-wal main "$work/raw/$s"
    as_pg mv "$work/raw/archive_status/$s.ready" "$work/raw/archive_status/$s.done"
  done
  t1=$(now)
  rate "pgbak archive-wal ($comp, parallel $p)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
done
for comp in none zstd; do
  as_pg mkdir -p "$work/home-ssh-$comp"
  write_pgbak_conf "$work/bench-ssh-$comp.conf" "$work/home-ssh-$comp" main "$PORT" "compression = $comp"
  t0=$(now)
  for s in "${segs[@]}"; do
    # Retried once, as PostgreSQL retries archive_command (other SSH tests on a shared machine
    # may cut sessions).
    retry as_pg "$PGBAK" -c "$work/bench-ssh-$comp.conf" wal-archive --ssh-command "$SSH" -U "$PG_USER" \
      --pgbak-path "$PGBAK" 127.0.0.1 main "$work/raw/$s"
  done
  t1=$(now)
  rate "pgbak wal-archive over SSH ($comp)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
done

# pgBackRest archive-push.
if pgbackrest_installed; then
  for comp in none zst; do
    as_pg mkdir -p "$work/pgbr-$comp/repo" "$work/pgbr-$comp/log" "$work/pgbr-$comp/lock"
    write_pgbackrest_conf "$work/pgbr-$comp.conf" "repo1-path=$work/pgbr-$comp/repo" "log-path=$work/pgbr-$comp/log" \
      "lock-path=$work/pgbr-$comp/lock" "compress-type=$comp" "compress-level=1"
    as_pg pgbackrest --config="$work/pgbr-$comp.conf" --stanza=bench stanza-create >/dev/null
    t0=$(now)
    for s in "${segs[@]}"; do
      as_pg pgbackrest --config="$work/pgbr-$comp.conf" --stanza=bench archive-push "$work/raw/$s"
    done
    t1=$(now)
    rate "pgbackrest archive-push ($comp)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
  done
else
  echo "  pgbackrest archive-push: not installed (apt-get install pgbackrest failed)"
fi

# Barman: barman-wal-archive (barman-cli) on the database side, barman put-wal on the backup side.
if venv_install psycopg2-binary python-dateutil argcomplete && venv_install --no-deps barman barman-cli; then
  give_to_pg "$work/venv"
  as_pg mkdir -p "$work/barman-home" "$work/barman-log"
  write_barman_conf "$work/barman.conf" "$work/barman-home" "$work/barman-log/barman.log" "compression = gzip"
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
    rate "barman-wal-archive -> put-wal (SSH)" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
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
  local dest="$work/restore-$RANDOM" p rss="$work/rss-$RANDOM"
  as_pg "$PGBAK" -q -c "$work/pgbak.conf" recover main latest "$dest" --get-wal >/dev/null
  at_exit as_pg "$PGBIN/pg_ctl" -D "$dest" -m immediate stop
  p=$(free_port)
  t0=$(now)
  if ! as_pg "$PGBIN/pg_ctl" -D "$dest" -l "$dest.log" -w -t 3600 -o "-c port=$p -c unix_socket_directories='$work/sock' -c archive_mode=off -c restore_command='/usr/bin/time -a -o $rss -f %M $2'" start >/dev/null; then
    echo "  $1: the restored server did not start: $(tail -n 2 "$dest.log")"
    return 0
  fi
  until [ "$(as_pg "$PGBIN/psql" -X -A -t -h 127.0.0.1 -p "$p" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ]; do sleep 0.05; done
  t1=$(now)
  got=$(as_pg "$PGBIN/psql" -X -A -t -h 127.0.0.1 -p "$p" -U postgres -d postgres -c 'SELECT count(*) FROM w')
  [ "$got" = "$(cat "$work/expected_count")" ] || echo "  ($1: wrong row count $got)"
  rate "$1" "$(elapsed "$t0" "$t1")" "$n" "$bytes"
  # Each call's peak RSS (the caller's side: over SSH, get-wal runs under the remote sshd).
  awk '/^[0-9]+$/ { if ($1 > m) m = $1 } END { printf "    peak RSS of one restore_command call %5.1f MB\n", m/1024 }' "$rss"
  as_pg "$PGBIN/pg_ctl" -D "$dest" -m immediate -w stop >/dev/null
  rm -rf "$dest"
}
REMOTE="$PGBAK -c $work/pgbak.conf wal-restore --ssh-command \"$SSH\" -U $PG_USER --pgbak-path $PGBAK"
replay "pgbak get-wal (local)" "$PGBAK -c $work/pgbak.conf get-wal main %f %p"
replay "pgbak wal-restore over SSH" "$REMOTE 127.0.0.1 main %f %p"
replay "pgbak wal-restore --parallel 4" "$REMOTE -p 4 --spool-dir $work/spool4 127.0.0.1 main %f %p"
replay "pgbak wal-restore --parallel 8" "$REMOTE -p 8 --spool-dir $work/spool8 127.0.0.1 main %f %p"
