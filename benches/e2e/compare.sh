#!/usr/bin/env bash
# Side-by-side benchmark of pgbak, pg_basebackup, pgBackRest and Barman on one local PostgreSQL 15
# cluster, all measured in one run on this machine, rows interleaved round by round (each round
# runs every row once; even rounds in the reverse order):
#
#   1. base backups to local disk of two datasets: pgbench scale SCALE, then (pgbench dropped) a
#      table of RANDOM_MB of random bytes in 2 kB bytea values (STORAGE EXTERNAL, plus an md5 text
#      column) that no codec can shrink. Codecs at level 1: zstd (client), zstd on the server
#      (2 workers), lz4, uncompressed tar and plain files. pgbak backup (no --wait: it ends
#      WAITING_FOR_WALS, the copy is done), pg_basebackup -X none -c fast, pgbackrest backup
#      --type=full (process-max 2, zst and lz4), barman backup (postgres method: zstd, lz4, plain);
#   2. WAL archiving (pgbench dataset): SEGMENTS real 16 MiB segments of the cluster laid out as
#      pg_wal (archive_status/<segment>.ready), one process per segment as archive_command runs it
#      and .ready renamed .done after each call: cp + fsync, pgbak archive-wal (zstd, and with
#      cloud_wal_archive_parallel = 4), pgbackrest archive-push (zst, synchronous and archive-async
#      with process-max 4), barman-wal-archive -> barman put-wal with ssh replaced by a local pipe,
#      then one barman archive-wal (Barman compresses WAL there, not in put-wal).
#
#   bash benches/e2e/compare.sh [SCALE] [ROUNDS] [RANDOM_MB] [SEGMENTS]   (default 100 3 300 32)
#
# Each run goes through /usr/bin/time as the cluster owner: median seconds, median CPU (user+sys of
# the tool's waited-for processes), the largest peak RSS, and the bytes the tool wrote (du -sb).
# MB/s: PGDATA without pg_wal / median seconds (backups), 16 MiB x segments / seconds (WAL).
# Progress goes to stderr; the markdown table to stdout, and to $OUT if set. PGBAK_BIN: the pgbak
# binary to measure (default target/release/pgbak, built when missing). pgBackRest (Debian package)
# and Barman (PyPI, in a virtualenv) are installed by this script only; a tool that cannot be
# installed, or a mode its version lacks, is reported in the table and skipped.
# A/B runs: PGBAK_BIN_B adds rows for a second pgbak binary ("pgbak B"), interleaved with the
# others; MODES (default "zstd lz4 zstd-server none plain"), PARTS (default "pgbench wal random")
# and TOOLS (default "pgbak pgbb pgbr barman") narrow the run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-100}
ROUNDS=${2:-3}
RANDOM_MB=${3:-300}
NSEG=${4:-32}
exec 3>&1 1>&2
# Unless PGBAK_BIN is given: target/release/pgbak as it is, built only when missing.
if [ -z "${PGBAK_BIN:-}" ] && [ -x target/release/pgbak ]; then PGBAK_BIN=target/release/pgbak; fi
bench_setup pgbak-compare /usr/lib/postgresql/15/bin
mkdir -p "$work/spool" "$work/walpg/pg_wal/archive_status" "$work/walpg/global" "$work/log" "$work/sshshim"
PARTS=${PARTS:-pgbench wal random}
TOOLS=${TOOLS:-pgbak pgbb pgbr barman}
if [ -n "${PGBAK_BIN_B:-}" ]; then cp "$PGBAK_BIN_B" "$work/bin/pgbakb"; TOOLS+=" pgbakb"; fi
tool_on() { [[ " $TOOLS " == *" $1 "* ]]; }
part_on() { [[ " $PARTS " == *" $1 "* ]]; }
# The WAL rows read segments from a copy laid out as a data directory's pg_wal (pgbackrest's
# asynchronous archive-push wants them under pg1-path: it gets that folder, with its pg_control).
WAL="$work/walpg/pg_wal"
PORT=$(free_port)
CONNINFO="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
gone() { as_pg rm -rf "$@"; }
T_START=$(date +%s)

# --- results: rows in table order, one line per timed run ---------------------------------------
# row KEY dataset work tool bytes kind  |  res KEY secs cpu rss_kb stored  |  fail/skip KEY text
RES="$work/results.tsv"
: > "$RES"
# add KEY DATASET WORK TOOL BYTES KIND [WHY]: a table row, run each round unless WHY says why not.
add() {
  printf 'row\t%s\t%s\t%s\t%s\t%s\t%s\n' "${@:1:6}" >> "$RES"
  if [ -n "${7:-}" ]; then printf 'skip\t%s\t%s\n' "$1" "$7" >> "$RES"; else KEYS+=("$1"); fi
}
# timed KEY STORED_PATH CMD...: CMD as the cluster owner under /usr/bin/time after a sync (outside
# the timing); then the bytes under STORED_PATH.
timed() {
  local key=$1 dest=$2 e u s m bytes
  shift 2
  sync
  if as_pg /usr/bin/time -o "$work/time.txt" -f "%e %U %S %M" "$@" > "$work/out.txt" 2>&1; then
    read -r e u s m < <(tail -n 1 "$work/time.txt")
    bytes=$(du -sb "$dest" 2>/dev/null | cut -f1 || echo 0)
    printf 'res\t%s\t%s\t%s\t%s\t%s\n' "$key" "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')" "$m" "${bytes:-0}" >> "$RES"
    awk -v k="$key" -v e="$e" -v u="$u" -v s="$s" -v m="$m" -v b="${bytes:-0}" \
      'BEGIN { printf "  %-28s %8.2f s  CPU %7.2f s  RSS %6.1f MB  stored %8.1f MB\n", k, e, u+s, m/1024, b/1e6 }'
  else
    printf 'fail\t%s\t%s\n' "$key" "$(tail -n 2 "$work/out.txt" | tr '\t\n|' '   ' | cut -c1-160)" >> "$RES"
    echo "  $key FAILED: $(tail -n 3 "$work/out.txt" | tr '\n' ' ')"
  fi
}

# --- tools ---------------------------------------------------------------------------------------
HAVE_PGBR=0 PGBR_WHY="skipped: pgbackrest not installed" BARMAN_WHY="skipped: barman not installed"
if pgbackrest_installed; then
  HAVE_PGBR=1 PGBR_WHY=
else echo "pgbackrest: apt-get install pgbackrest failed; its rows are skipped"; fi
HAVE_BARMAN=0
if venv_install psycopg2-binary python-dateutil argcomplete zstandard lz4 && venv_install --no-deps barman; then
  HAVE_BARMAN=1 BARMAN_WHY= BARMAN="$work/venv/bin/barman"
else echo "barman: pip install barman failed; its rows are skipped"; fi
# barman-wal-archive runs "ssh [-p PORT] -q -T USER@HOST barman ... put-wal SERVER": this stand-in
# runs that remote command here, so the row measures Barman's own work, without the ssh transport.
printf '#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in -p) shift 2 ;; -*) shift ;; *@*) shift; break ;; *) break ;; esac; done
exec sh -c "$*"\n' > "$work/sshshim/ssh"
# archive-all.sh DIR CMD...: every segment listed in DIR/list archived by "CMD DIR/SEGMENT", one
# process each, then its archive_status .ready renamed .done; then $FINISH once, if set.
cat > "$work/bin/archive-all.sh" <<'SH'
#!/bin/sh
set -e
dir=$1; shift
for s in $(cat "$dir/list"); do "$@" "$dir/$s"; mv "$dir/archive_status/$s.ready" "$dir/archive_status/$s.done"; done
if [ -n "${FINISH:-}" ]; then sh -c "$FINISH"; fi
SH
printf '#!/bin/sh\nset -e\ncp "$2" "$1/"\nsync "$1/${2##*/}"\n' > "$work/bin/cp-fsync.sh"
chmod 755 "$work/sshshim/ssh" "$work/bin/"*.sh

# --- configurations --------------------------------------------------------------------------------
# One home for every pgbak row (emptied after each run); WAL zstd level 1 as for the others.
pgbak_conf() { # name [extra lines]
  write_pgbak_conf "$work/$1.conf" "$work/pgbak-home" bench "$PORT" "backup_method = postgres" "immediate_checkpoint = true" \
    "compression = zstd" "compression_level = 1" "backup_compression_level = 1" "${2:-}"
}
pgbak_conf pgbak-zstd 'backup_compression = zstd'
pgbak_conf pgbak-zstd-server $'backup_compression = zstd\nbackup_compression_location = server\nbackup_compression_workers = 2'
pgbak_conf pgbak-lz4 'backup_compression = lz4'
pgbak_conf pgbak-none 'backup_compression = none'
pgbak_conf pgbak-plain 'backup_compression_format = plain'
pgbak_conf pgbak
pgbak_conf pgbak-p4 'cloud_wal_archive_parallel = 4'
# pgBackRest: a repository on local disk (recreated for each run); archive-check=n, since the
# cluster archives into its own spool (as for pgbak and Barman, whose archives get one segment).
pgbr_conf() { # file process-max [extra global lines]
  write_pgbackrest_conf "$1" "repo1-path=$work/pgbr/repo" "repo1-retention-full=99" "log-path=$work/log" \
    "lock-path=$work/pgbr/lock" "compress-type=zst" "compress-level=1" "process-max=$2" "start-fast=y" \
    "archive-check=n" "${3:-}"
}
pgbr_conf "$work/pgbr.conf" 2
pgbr_conf "$work/pgbr-async.conf" 4 $'archive-async=y\nspool-path='"$work/pgbr/spool"
barman_conf() { # mode [extra lines]
  write_barman_conf "$work/barman-$1.conf" "$work/barman-home" "$work/log/barman.log" "path_prefix = $PGBIN" \
    "streaming_conninfo = $CONNINFO" "immediate_checkpoint = true" "compression = zstd" "compression_level = 1" "${2:-}"
}
for m in zstd lz4; do
  barman_conf $m $'backup_compression = '"$m"$'\nbackup_compression_level = 1\nbackup_compression_format = tar'
done
barman_conf plain
barman_conf wal

# --- the cluster -----------------------------------------------------------------------------------
give_to_pg "$work"
start_cluster "$PGBIN" "$work/pgdata" "$PORT" "cp %p $work/spool/%f.part && mv $work/spool/%f.part $work/spool/%f" \
  "shared_buffers = 256MB"
# Switches WAL and waits until the segment it ends is in the spool.
switch_archive() {
  local seg
  seg=$(psql_ "SELECT pg_walfile_name(pg_switch_wal())")
  for _ in $(seq 600); do [ -f "$work/spool/$seg" ] && return 0; sleep 0.2; done
  echo "WAL segment $seg never reached the archive" >&2; return 1
}
versions="pgbak $("$PGBAK" --version | awk '{print $NF}'), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
[ $HAVE_PGBR = 1 ] && versions+=", $(pgbackrest version)"
[ $HAVE_BARMAN = 1 ] && versions+=", Barman $("$BARMAN" --version 2>&1 | head -n 1 | awk '{print $1}')"
echo "versions: $versions"

# --- base backups ----------------------------------------------------------------------------------
MODES=${MODES:-zstd lz4 zstd-server none plain}
declare -A WORK=([zstd]="backup zstd-1" [lz4]="backup lz4-1" [zstd-server]="backup zstd-1 on the server, 2 workers"
  [none]="backup tar, uncompressed" [plain]="backup plain files")
declare -A BWHY=([zstd]=$BARMAN_WHY [lz4]=$BARMAN_WHY [plain]=$BARMAN_WHY)
if [ $HAVE_BARMAN = 1 ]; then
  for m in zstd lz4 plain; do
    as_pg "$BARMAN" -c "$work/barman-$m.conf" show-servers main > "$work/barman-show.txt" 2>&1 || true
    if grep -qi "invalid configuration" "$work/barman-show.txt" \
       || { [ "$m" != plain ] && ! grep -q "backup_compression: $m" "$work/barman-show.txt"; }; then
      BWHY[$m]="unsupported by this Barman version"; echo "barman: backup_compression = $m: ${BWHY[$m]}"
    fi
  done
fi
backup_keys() { # dataset label -> KEYS, and the table rows
  local m w
  KEYS=()
  for m in $MODES; do
    w=${WORK[$m]}
    if tool_on pgbak; then add "$1:pgbak:$m" "$2" "$w" pgbak "$datasize" backup; fi
    if tool_on pgbakb; then add "$1:pgbakb:$m" "$2" "$w" "pgbak B" "$datasize" backup; fi
    if tool_on pgbb; then add "$1:pgbb:$m" "$2" "$w" "pg_basebackup $( [ $m = plain ] && echo -Fp || echo -Ft)" "$datasize" backup; fi
    if tool_on pgbr; then case $m in zstd|lz4) add "$1:pgbr:$m" "$2" "$w" "pgbackrest (process-max 2)" "$datasize" backup "$PGBR_WHY" ;; esac; fi
    if tool_on barman; then case $m in zstd|lz4|plain) add "$1:barman:$m" "$2" "$w" "barman backup (postgres)" "$datasize" backup "${BWHY[$m]}" ;; esac; fi
  done
}
run_backup() { # key
  local tool=${1#*:} m=${1##*:} seg
  tool=${tool%%:*}
  case $tool in
    pgbak|pgbakb)
      # A new pgbak home gets one archived segment first (outside the timing): pgbak refuses to
      # back up a server whose archive is empty.
      local bin=$work/bin/$tool
      seed_wal "$work/pgbak-$m.conf" "$bin"
      timed "$1" "$work/pgbak-home/bench/base" "$bin" -q -c "$work/pgbak-$m.conf" backup bench
      # Where the time went, from the backup's record (progress output only).
      python3 -c 'import json,sys; p=json.load(open(sys.argv[1])).get("phases") or {}; print("    phases: " + " ".join(f"{k} {v:.2f}" for k, v in p.items()))' \
        "$(ls -d "$work"/pgbak-home/bench/base/*/backup.json | head -n 1)" 2>/dev/null || true
      gone "$work/pgbak-home" ;;
    pgbb)
      local args=(-Ft)
      case $m in zstd|lz4) args+=("--compress=client-$m:1") ;; zstd-server) args+=(--compress=server-zstd:level=1,workers=2) ;;
        plain) args=(-Fp) ;; esac
      timed "$1" "$work/pgbb" "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$work/pgbb" \
        "${args[@]}" -X none -c fast
      gone "$work/pgbb" ;;
    pgbr)
      gone "$work/pgbr"; as_pg mkdir -p "$work/pgbr/repo" "$work/pgbr/lock"
      as_pg pgbackrest --config="$work/pgbr.conf" --stanza=bench stanza-create >/dev/null
      timed "$1" "$work/pgbr/repo/backup" pgbackrest --config="$work/pgbr.conf" --stanza=bench --type=full \
        --compress-type="$( [ $m = zstd ] && echo zst || echo lz4)" --compress-level=1 backup
      gone "$work/pgbr" ;;
    barman)
      # Barman too refuses to back up a server without WAL in its archive: one segment first.
      gone "$work/barman-home"; as_pg mkdir -p "$work/barman-home/main/incoming"
      seg=$(spool_segs | tail -n 1)
      as_pg cp "$work/spool/$seg" "$work/barman-home/main/incoming/"
      as_pg "$BARMAN" -q -c "$work/barman-$m.conf" archive-wal main >/dev/null
      timed "$1" "$work/barman-home/main/base" "$BARMAN" -q -c "$work/barman-$m.conf" backup main
      gone "$work/barman-home" ;;
  esac
}
rounds() { # runner: every key once per round, even rounds in reverse
  local r i
  for r in $(seq "$ROUNDS"); do
    echo " round $r"
    if [ $((r % 2)) = 1 ]; then for i in "${KEYS[@]}"; do "$1" "$i"; done
    else for ((i = ${#KEYS[@]} - 1; i >= 0; i--)); do "$1" "${KEYS[$i]}"; done; fi
  done
}

# --- dataset 1: pgbench ------------------------------------------------------------------------------
t0=$(date +%s)
pgbench_init "$SCALE"
psql_ "CHECKPOINT"
switch_archive
# The WAL rows need SEGMENTS full segments: a small scale writes more WAL into a table dropped after.
have=$(spool_segs | wc -l)
if [ "$have" -lt "$NSEG" ]; then
  psql_ "CREATE TABLE filler (id int, pad text)"
  start_lsn=$(psql_ "SELECT pg_current_wal_lsn()")
  while [ "$(psql_ "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn')::bigint")" -lt $(( (NSEG - have + 1) * 16777216 )) ]; do
    psql_ "INSERT INTO filler SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series(1, 200000) g"
  done
  switch_archive
  psql_ "DROP TABLE filler"; psql_ "CHECKPOINT"
fi
spool_segs | head -n "$NSEG" > "$WAL/list"
for s in $(cat "$WAL/list"); do cp "$work/spool/$s" "$WAL/$s"; done
cp "$work/pgdata/global/pg_control" "$work/walpg/global/"; cp "$work/pgdata/PG_VERSION" "$work/walpg/"
give_to_pg "$work/walpg"
NSEG=$(wc -l < "$WAL/list")
datasize=$(pgdata_bytes "$work/pgdata")
echo "dataset 1: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB (loaded in $(( $(date +%s) - t0 )) s)"
if part_on pgbench; then backup_keys pgbench "pgbench scale $SCALE"; rounds run_backup; fi

# --- WAL archiving -----------------------------------------------------------------------------------
if part_on wal; then
KEYS=()
walrow() { add "wal:$1" "pgbench scale $SCALE" "archive $NSEG WAL segments, zstd-1" "$2" "$((NSEG * 16777216))" wal "${3:-}"; }
walrow cp "cp + fsync (uncompressed)"
walrow pgbak "pgbak archive-wal"
walrow pgbak-p4 "pgbak archive-wal, cloud_wal_archive_parallel = 4"
walrow pgbr "pgbackrest archive-push" "$PGBR_WHY"
walrow pgbr-async "pgbackrest archive-push, archive-async, process-max 4" "$PGBR_WHY"
walrow barman "barman-wal-archive -> put-wal (local pipe, no ssh), then archive-wal" "$BARMAN_WHY"
run_wal() { # key
  as_pg find "$WAL/archive_status" -type f -delete
  as_pg sh -c "for s in \$(cat '$WAL/list'); do touch '$WAL/archive_status/'\$s.ready; done"
  case ${1#wal:} in
    cp) as_pg mkdir -p "$work/cpdest"
      timed "$1" "$work/cpdest" "$work/bin/archive-all.sh" "$WAL" "$work/bin/cp-fsync.sh" "$work/cpdest"
      gone "$work/cpdest" ;;
    pgbak|pgbak-p4)
      timed "$1" "$work/pgbak-home/bench/wals" "$work/bin/archive-all.sh" "$WAL" "$PGBAK" -q -c "$work/${1#wal:}.conf" archive-wal bench
      gone "$work/pgbak-home" ;;
    pgbr|pgbr-async)
      local conf=$work/${1#wal:}.conf
      gone "$work/pgbr"; as_pg mkdir -p "$work/pgbr/repo" "$work/pgbr/lock" "$work/pgbr/spool"
      as_pg pgbackrest --config="$conf" --stanza=bench stanza-create >/dev/null
      timed "$1" "$work/pgbr/repo/archive" "$work/bin/archive-all.sh" "$WAL" \
        pgbackrest --config="$conf" --stanza=bench --pg1-path="$work/walpg" archive-push
      # The asynchronous archiver may still be finishing in the background: let it end.
      for _ in $(seq 100); do pgrep -u "$PG_USER" -f "pgbackrest --config=$conf" >/dev/null || break; sleep 0.1; done
      gone "$work/pgbr" ;;
    barman)
      gone "$work/barman-home"; as_pg mkdir -p "$work/barman-home"
      timed "$1" "$work/barman-home/main" env PATH="$work/sshshim:$work/venv/bin:$PATH" \
        FINISH="barman -q -c $work/barman-wal.conf archive-wal main" \
        "$work/bin/archive-all.sh" "$WAL" barman-wal-archive -c "$work/barman-wal.conf" 127.0.0.1 main
      gone "$work/barman-home" ;;
  esac
}
echo "WAL archiving: $NSEG segments of 16 MiB, from $(head -n 1 "$WAL/list") to $(tail -n 1 "$WAL/list")"
rounds run_wal
fi

# --- dataset 2: random bytes, pgbench dropped ------------------------------------------------------
if part_on random; then
t0=$(date +%s)
psql_ "DROP TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;
       CREATE TABLE rnd (id int, h text, b bytea); ALTER TABLE rnd ALTER COLUMN b SET STORAGE EXTERNAL"
psql_ "INSERT INTO rnd SELECT id, md5(b), b FROM (SELECT g AS id, (SELECT decode(string_agg(replace(gen_random_uuid()::text, '-', ''), ''), 'hex')
       FROM generate_series(1, 128) WHERE g > 0) AS b FROM generate_series(1, $(( RANDOM_MB * 1000000 / 2048 ))) g) s"
psql_ "VACUUM ANALYZE rnd"; psql_ "CHECKPOINT"
switch_archive
datasize=$(pgdata_bytes "$work/pgdata")
echo "dataset 2: random bytes, $RANDOM_MB MB in 2 kB values, PGDATA without pg_wal = $((datasize / 1000000)) MB (loaded in $(( $(date +%s) - t0 )) s)"
backup_keys random "incompressible ($RANDOM_MB MB random)"
rounds run_backup
fi

# --- the table -------------------------------------------------------------------------------------
{
echo "## pgbak, pg_basebackup, pgBackRest, Barman: local disk, $ROUNDS round(s), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "$versions; $(nproc) cores. MB/s: PGDATA without pg_wal / median seconds (backups), 16 MiB x segments / median seconds (WAL)."
echo
python3 - "$RES" <<'PY'
import sys, statistics
rows, res, fail, skip = [], {}, {}, {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "row": rows.append(f[1:])
    elif f[0] == "res": res.setdefault(f[1], []).append([float(x) for x in f[2:]])
    elif f[0] == "fail": fail.setdefault(f[1], []).append(f[2])
    elif f[0] == "skip": skip[f[1]] = f[2]
print("| dataset | work | tool | median s | MB/s | segments/s | CPU s (user+sys, median) | peak RSS MB (max) | stored MB |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for key, ds, work, tool, size, kind in rows:
    r = res.get(key)
    if not r:
        why = skip.get(key) or "failed: " + (fail.get(key) or ["not run"])[-1]
        print(f"| {ds} | {work} | {tool} | {why} | | | | | |")
        continue
    med = statistics.median(x[0] for x in r)
    cpu = statistics.median(x[1] for x in r)
    rss = max(x[2] for x in r) / 1024
    stored = statistics.median(x[3] for x in r) / 1e6
    mbs = f"{int(size) / 1e6 / med:.0f}" if med > 0 else "-"
    sps = f"{int(size) / 16777216 / med:.1f}" if kind == "wal" and med > 0 else ""
    if key in fail: tool += f" ({len(fail[key])} of {len(r) + len(fail[key])} runs failed)"
    print(f"| {ds} | {work} | {tool} | {med:.2f} | {mbs} | {sps} | {cpu:.2f} | {rss:.0f} | {stored:.1f} |")
PY
echo
cat <<'NOTES'
Notes: CPU and RSS cover the processes each tool waits for: not PostgreSQL's (server-side compression runs in
the walsender), nor pgbackrest's asynchronous archiver, which runs detached. pgbak and Barman backups run
without --wait and end WAITING_FOR_WALS (the copy is complete). The Barman WAL row replaces ssh with a local
pipe to barman put-wal, which stores segments uncompressed in incoming/; one barman archive-wal at the end
(inside the timing) compresses them into the archive.
NOTES
} > "$work/table.md"
[ -n "${OUT:-}" ] && cp "$work/table.md" "$OUT"
echo "finished in $(( $(date +%s) - T_START )) s"
cat "$work/table.md" >&3
