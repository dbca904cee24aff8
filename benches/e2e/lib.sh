# shellcheck shell=bash
# Shared set-up of the end-to-end benchmarks in this folder (bash, `set -euo pipefail`), sourced by
# each of them; sourcing it only defines functions and a few variables. It provides:
#   - bench_setup, run from the checkout's root: the tools (scripts/install-deps.sh, /usr/bin/time),
#     the pgbak binary to measure ($PGBAK_BIN, built when unset), PostgreSQL's binaries ($PGBIN)
#     and a throwaway work folder ($work, with $PGBAK, a copy of the binary) removed at exit,
#     after the commands given to at_exit;
#   - as_pg / as_pg_env / give_to_pg: running as the cluster owner (postgres when run as root);
#   - start_cluster, psql_, psql_port, pgbench_init, pgdata_bytes, spool_segs, seed_wal: a
#     throwaway PostgreSQL cluster on loopback and its WAL;
#   - write_pgbak_conf, write_pgbackrest_conf, write_barman_conf: the tools' configurations of the
#     cluster;
#   - start_sshd: an sshd on loopback that lets the cluster owner in with a key of its own;
#   - free_port, venv_install, pgbackrest_installed, run_in_background;
#   - now, elapsed, measure: wall-clock times, and seconds and peak RSS through /usr/bin/time.

# The user the clusters and the tools run as; PG_ENV: variables as_pg_env and measure add.
if [ "$(id -u)" -eq 0 ]; then PG_USER=postgres; else PG_USER=$(id -un); fi
PG_ENV=()
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg_env() { as_pg env "${PG_ENV[@]}" "$@"; }
give_to_pg() { if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$@"; fi; }

# --- clean-up ------------------------------------------------------------------------------------
# at_exit CMD...: CMD runs at exit (the last registered first, output and errors ignored); then
# $work is removed.
AT_EXIT=()
at_exit() { AT_EXIT+=("$(printf '%q ' "$@")"); }
run_at_exit() {
  local i
  for ((i = ${#AT_EXIT[@]} - 1; i >= 0; i--)); do eval "${AT_EXIT[$i]}" >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
  rm -rf "${work:?}"
}
# run_in_background CMD...: CMD started in the background, killed at exit.
run_in_background() { "$@" & at_exit kill "$!"; }

# --- tools and the work folder -------------------------------------------------------------------
# bench_setup NAME [PGBIN]: PGBIN, the given folder of PostgreSQL binaries or the newest under
# /usr/lib/postgresql; $work, /var/tmp/NAME.XXXXXX, with bin/ (holding $PGBAK, a copy of
# $PGBAK_BIN) and sock/ (the clusters' sockets).
bench_setup() {
  bash scripts/install-deps.sh >/dev/null 2>&1 || true
  export PATH="$HOME/.cargo/bin:$PATH"
  # PGBAK_BIN: a pgbak binary to measure instead of building one.
  if [ -z "${PGBAK_BIN:-}" ]; then
    cargo build --release --locked -p pgbak-cli >/dev/null 2>&1
    PGBAK_BIN=target/release/pgbak
  fi
  command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
  # shellcheck disable=SC2012 # folders named by version number
  PGBIN=${2:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
  work=$(mktemp -d "/var/tmp/$1.XXXXXX")
  trap run_at_exit EXIT
  chmod 755 "$work"
  mkdir -p "$work/bin" "$work/sock"
  cp "$PGBAK_BIN" "$work/bin/pgbak"
  PGBAK="$work/bin/pgbak"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# pgbackrest_installed: pgBackRest is there, or apt-get installs it.
pgbackrest_installed() {
  command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq pgbackrest >/dev/null 2>&1; }
}
# venv_install PIP_ARGS...: pip install into the virtualenv $work/venv, made on first use.
venv_install() {
  [ -x "$work/venv/bin/pip" ] || /usr/bin/python3 -m venv "$work/venv" >/dev/null 2>&1 || return 1
  "$work/venv/bin/pip" install -q --disable-pip-version-check "$@" >/dev/null 2>&1
}

# --- a throwaway cluster -------------------------------------------------------------------------
# start_cluster BINDIR DATADIR PORT ARCHIVE_COMMAND [CONF_LINE...]: a new cluster in DATADIR
# (owner postgres, trust), listening on 127.0.0.1:PORT and $work/sock, archiving with
# ARCHIVE_COMMAND, started (log DATADIR.log) and stopped at exit.
start_cluster() {
  local bin=$1 data=$2 port=$3 archive=$4
  shift 4
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync >/dev/null
  at_exit as_pg "$bin/pg_ctl" -D "$data" -m immediate stop
  printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $port" "unix_socket_directories = '$work/sock'" \
    "wal_level = replica" "archive_mode = on" "archive_command = '$archive'" "max_wal_size = 4GB" "$@" \
    >> "$data/postgresql.conf"
  as_pg "$bin/pg_ctl" -D "$data" -l "$data.log" -w start >/dev/null
}
# psql_port PORT SQL...: the statements in one psql session; unaligned, tuples only.
psql_port() {
  local port=$1 q args=()
  shift
  for q; do args+=(-c "$q"); done
  as_pg "$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d postgres "${args[@]}"
}
# shellcheck disable=SC2153 # PORT: the script's cluster
psql_() { psql_port "$PORT" "$@"; }
# pgbench_init SCALE [PORT]: pgbench's tables at SCALE in database postgres.
pgbench_init() { as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "${2:-$PORT}" -U postgres -i -s "$1" -q postgres >/dev/null 2>&1; }
# pgdata_bytes DATADIR: the bytes of a data directory without pg_wal.
pgdata_bytes() { du -sb --exclude=pg_wal "$1" | cut -f1; }
# spool_segs: the WAL segments in $work/spool, in order.
# shellcheck disable=SC2010 # WAL file names are plain
spool_segs() { ls "$work/spool" | grep -E '^[0-9A-F]{24}$' | sort; }
# seed_wal CONFIG [PGBAK]: the newest spooled segment archived into server bench (as_pg_env): pgbak
# backs up a server whose archive holds WAL; done outside the timings.
seed_wal() { as_pg_env "${2:-$PGBAK}" -q -c "$1" archive-wal bench "$work/spool/$(spool_segs | tail -n 1)"; }

# write_pgbak_conf FILE HOME SERVER PORT [LINE...]: a pgbak configuration of SERVER, the cluster at
# 127.0.0.1:PORT, with the lines added; owned by the cluster owner.
write_pgbak_conf() {
  local file=$1 home=$2 server=$3 port=$4
  shift 4
  printf '%s\n' "[pgbak]" "home = $home" "[$server]" \
    "conninfo = host=127.0.0.1 port=$port user=postgres dbname=postgres" "$@" > "$file"
  give_to_pg "$file"
}

# write_pgbackrest_conf FILE [GLOBAL_LINE...]: a pgBackRest configuration of stanza bench, the
# cluster in $work/pgdata at $PORT, with the [global] lines given (and warnings only on the console,
# no log file); owned by the cluster owner.
write_pgbackrest_conf() {
  local file=$1
  shift
  printf '%s\n' "[global]" "$@" "log-level-console=warn" "log-level-file=off" "[bench]" \
    "pg1-path=$work/pgdata" "pg1-port=$PORT" "pg1-socket-path=$work/sock" > "$file"
  give_to_pg "$file"
}
# write_barman_conf FILE HOME LOG_FILE GLOBAL_LINES [SERVER_LINE...]: a Barman configuration of server
# main, the cluster at $PORT (backup_method postgres, archiver on), with GLOBAL_LINES (one string,
# may be empty) in [barman] and the lines given in [main]; owned by the cluster owner.
write_barman_conf() {
  local file=$1 home=$2 log=$3 global=$4
  shift 4
  printf '%s\n' "[barman]" "barman_home = $home" "barman_user = $PG_USER" "log_file = $log" "log_level = WARNING" \
    "$global" "[main]" "description = bench" "conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
    "backup_method = postgres" "archiver = on" "$@" > "$file"
  give_to_pg "$file"
}

# --- sshd on loopback ----------------------------------------------------------------------------
# start_sshd [KEY_OPTIONS]: an sshd on 127.0.0.1:$SSH_PORT, killed at exit, that lets $PG_USER in
# with $work/ssh/client_key (KEY_OPTIONS before the key in authorized_keys, with
# PermitUserEnvironment for environment=); SSH_OPTS: ssh's options to reach it. Waits until it
# answers.
start_sshd() {
  mkdir -p "$work/ssh"
  SSH_PORT=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/client_key"
  echo "${1:+$1 }$(cat "$work/ssh/client_key.pub")" > "$work/ssh/authorized_keys"
  printf '%s\n' "Port $SSH_PORT" "ListenAddress 127.0.0.1" "HostKey $work/ssh/host_key" \
    "PidFile $work/ssh/sshd.pid" "AuthorizedKeysFile $work/ssh/authorized_keys" \
    "PasswordAuthentication no" "KbdInteractiveAuthentication no" "PubkeyAuthentication yes" \
    "${1:+PermitUserEnvironment yes}" "UsePAM yes" "StrictModes no" "AllowUsers $PG_USER" \
    "MaxSessions 64" "MaxStartups 64:30:128" "LogLevel ERROR" > "$work/ssh/sshd_config"
  give_to_pg "$work/ssh"
  chmod 600 "$work/ssh/client_key"
  mkdir -p /run/sshd 2>/dev/null || true
  run_in_background "$(command -v sshd || echo /usr/sbin/sshd)" -D -f "$work/ssh/sshd_config" -E "$work/ssh/sshd.log"
  SSH_OPTS="-i $work/ssh/client_key -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
  for _ in $(seq 50); do
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options
    as_pg ssh $SSH_OPTS "$PG_USER@127.0.0.1" true 2>/dev/null && return 0
    sleep 0.1
  done
}

# --- timing --------------------------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
# measure CMD...: CMD as the cluster owner (with $PG_ENV) under /usr/bin/time; prints "seconds
# peak_rss_kb". A failure prints CMD's output to stderr and exits (the subshell measure runs in, as
# in `read -r secs rss < <(measure ...)`).
measure() {
  local out
  if ! out=$(as_pg_env /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null); then
    echo "FAILED: $*" >&2
    echo "$out" | tail -n 20 >&2
    exit 1
  fi
  echo "$out" | tail -n 1
}
