#!/usr/bin/env bash
# End-to-end restore benchmark: pgbak recover against pgbackrest restore and barman restore of the
# same pgbench database, all measured in one run on this machine.
#
#   bash benches/e2e/restore.sh [SCALE] [ROUNDS]     (default scale 100, about 1.5 GB; 3 rounds)
#
#   1. full restore into an empty folder on the same disk, interleaved (each round runs every row
#      once, in the same order): pgbak recover --jobs 1 and --jobs 2 of a plain, an lz4 tar and
#      a zstd tar backup; pgbackrest restore --process-max=2 of a full lz4 and a full zst backup;
#      barman restore of a plain (backup_compression none, rsync --jobs 2) and an lz4 tar backup.
#      Every restore targets the end of the backup (--target-immediate / --type=immediate) and
#      leaves WAL in the archive for a restore_command (pgbak and barman --get-wal; pgbackrest
#      always does), so each writes the data directory only; the server is not started: the time
#      is the restore command alone;
#   2. delta restore after 1% of pgbench_accounts changed: pgbak recover --delta-restore of a new
#      zstd backup onto a copy of the old restore, against a full pgbak restore of the new backup
#      and pgbackrest restore --delta onto a copy of its old restore (the copy is not timed);
#   3. PostgreSQL 17 (summarize_wal = on): pgbak backup --incremental latest against a full
#      backup after 1% of the rows changed, and recover of the incremental (the chain combined)
#      against recover of a full backup.
#
# Prints one line per run as it goes, then one markdown table: median seconds, min-max, MB/s
# (PGDATA without pg_wal / median seconds), peak RSS (the largest process of the tool's process
# tree, from /usr/bin/time) and, where it applies, the bytes written or stored.
# pgBackRest (Debian package) and Barman (PyPI, in a virtualenv) are installed by this script
# only; a tool that cannot be installed is reported as such and skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-100}
ROUNDS=${2:-3}
PG17BIN=/opt/pgbak-postgres/17/bin
bench_setup pgbak-bench-restore /usr/lib/postgresql/15/bin
mkdir -p "$work/home" "$work/home17" "$work/r"
PORT=$(free_port)
PORT17=$(free_port)
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

# --- results: rows in the order of the final table, and one line per timed run -----------------
# row KEY<TAB>section<TAB>label<TAB>data bytes for MB/s (0: none)
# res KEY<TAB>seconds<TAB>peak RSS kB   |   fail KEY   |   note KEY<TAB>text (last one wins)
RES="$work/results.tsv"
: > "$RES"
row() { printf 'row\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RES"; }
note() { printf 'note\t%s\t%s\n' "$1" "$2" >> "$RES"; }
# timed KEY OUTFILE CMD...: runs CMD as the cluster owner under /usr/bin/time, after a sync
# (outside the timing) so that earlier writes are not charged to it; its stdout goes to OUTFILE.
timed() {
  local key=$1 out=$2 secs rss
  shift 2
  sync
  if as_pg /usr/bin/time -o "$work/time.txt" -f "%e %M" "$@" > "$out" 2> "$work/err.txt"; then
    read -r secs rss < <(tail -n 1 "$work/time.txt")
    printf 'res\t%s\t%s\t%s\n' "$key" "$secs" "$rss" >> "$RES"
    awk -v k="$key" -v s="$secs" -v r="$rss" 'BEGIN { printf "  %-34s %8.2f s  peak RSS %7.1f MB\n", k, s, r/1024 }'
    return 0
  fi
  printf 'fail\t%s\n' "$key" >> "$RES"
  echo "  $key FAILED: $(tail -n 3 "$work/err.txt" | tr '\n' ' ')"
  return 1
}
# A restored folder is checked for a data directory of about the right size (a restore that
# wrote nothing would look fast).
check_restore() { # key dir expected_bytes
  local got
  if [ ! -f "$2/PG_VERSION" ] || [ ! -f "$2/global/pg_control" ]; then
    echo "  ($1: $2 holds no data directory)"; note "$1" "restored folder incomplete"; return 0
  fi
  got=$(pgdata_bytes "$2")
  awk -v g="$got" -v e="$3" 'BEGIN { exit !(g < e * 0.95 || g > e * 1.05) }' \
    && { echo "  ($1: restored $got bytes, expected about $3)"; note "$1" "restored $((got / 1000000)) MB of $(($3 / 1000000)) MB"; }
  return 0
}
gone() { rm -rf "$@"; }

# --- tools ---------------------------------------------------------------------------------------
HAVE_PGBR=0
if pgbackrest_installed; then
  HAVE_PGBR=1
  PGBR_VERSION=$(pgbackrest version)
else
  echo "pgbackrest: not installed (apt-get install pgbackrest failed); its rows are skipped"
fi
HAVE_BARMAN=0
if venv_install psycopg2-binary python-dateutil argcomplete && venv_install --no-deps barman; then
  HAVE_BARMAN=1
  BARMAN="$work/venv/bin/barman"
  BARMAN_VERSION=$("$BARMAN" --version 2>&1 | head -n 1)
else
  echo "barman: not installed (pip install barman failed); its rows are skipped"
fi

# --- PostgreSQL 15 cluster; its WAL goes to pgbak, pgbackrest and barman -------------------------
# Three pgbak configurations of the same server and home (one WAL archive), differing only in how
# base backups are stored; each backup records its own format, and each is restored with its own.
for v in plain lz4 zstd; do
  case $v in
    plain) comp=("backup_compression_format = plain") ;;
    *) comp=("backup_compression = $v" "backup_compression_format = tar") ;;
  esac
  write_pgbak_conf "$work/pgbak-$v.conf" "$work/home" main "$PORT" "backup_method = postgres" \
    "immediate_checkpoint = true" "compression = zstd" "${comp[@]}"
done
# pgbackrest backup refuses an archive_command without the word pgbackrest in it: the name says it.
ARCHIVE_SH="$work/bin/archive-to-pgbak-pgbackrest-barman.sh"
cat > "$ARCHIVE_SH" <<SH
#!/bin/sh
# archive_command: one WAL file into every tool's archive.
set -e
$PGBAK -q -c $work/pgbak-plain.conf archive-wal main "\$1"
if [ $HAVE_PGBR = 1 ]; then pgbackrest --config=$work/pgbr.conf --stanza=bench archive-push "\$1"; fi
if [ $HAVE_BARMAN = 1 ]; then
  cp "\$1" "$work/barman-home/main/incoming/.\$2.tmp" && mv "$work/barman-home/main/incoming/.\$2.tmp" "$work/barman-home/main/incoming/\$2"
fi
SH
chmod 755 "$ARCHIVE_SH"
write_pgbackrest_conf "$work/pgbr.conf" "repo1-path=$work/pgbr/repo" "log-path=$work/pgbr/log" "lock-path=$work/pgbr/lock" \
  "compress-type=lz4" "process-max=2" "start-fast=y" "repo1-retention-full=99"
mkdir -p "$work/pgbr/repo" "$work/pgbr/log" "$work/pgbr/lock" "$work/barman-home/main/incoming" "$work/barman-log"
# Barman: two configurations of one server (one WAL archive), plain and lz4 tar base backups.
# Barman's postgres method takes gzip, lz4 or zstd (tar, compressed by pg_basebackup on the
# client) or none (plain).
for v in none lz4; do
  write_barman_conf "$work/barman-$v.conf" "$work/barman-home" "$work/barman-log/barman.log" "path_prefix = $PGBIN" \
    "streaming_conninfo = host=127.0.0.1 port=$PORT user=postgres dbname=postgres" "immediate_checkpoint = true" \
    "$( [ "$v" = lz4 ] && echo "backup_compression = lz4" )"
done
give_to_pg "$work"

start_cluster "$PGBIN" "$work/pgdata" "$PORT" "$ARCHIVE_SH %p %f" "shared_buffers = 256MB"
if [ $HAVE_PGBR = 1 ] && ! as_pg pgbackrest --config="$work/pgbr.conf" --stanza=bench stanza-create >/dev/null 2>"$work/pgbr-stanza.err"; then
  echo "pgbackrest: stanza-create failed, its rows are skipped: $(tail -n 2 "$work/pgbr-stanza.err")"
  HAVE_PGBR=0
  sed -i 's/^if \[ 1 = 1 \]; then pgbackrest/if [ 0 = 1 ]; then pgbackrest/' "$ARCHIVE_SH"
fi
t0=$(date +%s)
pgbench_init "$SCALE"
psql_ "CHECKPOINT"
# pgbak backs up a server whose archive holds WAL: the load's WAL is archived by now, and one
# more segment is switched and archived to be sure.
as_pg "$PGBAK" -q -c "$work/pgbak-plain.conf" switch-wal main --force --archive --archive-timeout 600 >/dev/null
datasize=$(pgdata_bytes "$work/pgdata")
echo "PostgreSQL 15: pgbench scale $SCALE, PGDATA without pg_wal = $((datasize / 1000000)) MB (loaded in $(( $(date +%s) - t0 )) s)"
echo "versions: $("$PGBAK" --version)${PGBR_VERSION:+, $PGBR_VERSION}${BARMAN_VERSION:+, barman $BARMAN_VERSION}"

# --- backups (not timed) -------------------------------------------------------------------------
declare -A PGBAK_ID PGBR_SET BARMAN_ID
pgbak_backup() { # variant -> backup id
  as_pg "$PGBAK" -q -c "$work/pgbak-$1.conf" backup main --wait --wait-timeout 600 >/dev/null
  as_pg "$PGBAK" -f json -c "$work/pgbak-$1.conf" show-backup main latest | json 'd["backup_id"]'
}
pgbr_backup() { # compress-type -> label
  as_pg pgbackrest --config="$work/pgbr.conf" --stanza=bench backup --type=full --compress-type="$1" >&2 || return 1
  as_pg pgbackrest --config="$work/pgbr.conf" --stanza=bench info --output=json | json 'd[0]["backup"][-1]["label"]'
}
echo "backups:"
for v in plain lz4 zstd; do
  PGBAK_ID[$v]=$(pgbak_backup "$v")
  sz=$(as_pg "$PGBAK" -f json -c "$work/pgbak-$v.conf" show-backup main "${PGBAK_ID[$v]}" | json 'd["size"]')
  echo "  pgbak $v: ${PGBAK_ID[$v]}, $((sz / 1000000)) MB stored"
  sleep 1
done
if [ $HAVE_PGBR = 1 ]; then
  for v in lz4 zst; do
    if PGBR_SET[$v]=$(pgbr_backup "$v" 2>"$work/pgbr-backup.err"); then
      echo "  pgbackrest $v: ${PGBR_SET[$v]}, $(( $(du -sb "$work/pgbr/repo/backup/bench/${PGBR_SET[$v]}" | cut -f1) / 1000000 )) MB stored"
    else
      echo "  pgbackrest $v: backup failed, skipped: $(tail -n 2 "$work/pgbr-backup.err")"
      unset "PGBR_SET[$v]"
    fi
  done
fi
if [ $HAVE_BARMAN = 1 ]; then
  BARMAN_RESTORE=restore
  as_pg "$BARMAN" -c "$work/barman-none.conf" restore --help >/dev/null 2>&1 || BARMAN_RESTORE=recover
  for v in none lz4; do
    if as_pg "$BARMAN" -q -c "$work/barman-$v.conf" backup main --wait --wait-timeout 600 > "$work/barman-backup.out" 2>&1; then
      BARMAN_ID[$v]=$(as_pg "$BARMAN" -c "$work/barman-$v.conf" -f json list-backups main | json 'sorted(b["backup_id"] for b in d["main"])[-1]')
      status=$(as_pg "$BARMAN" -c "$work/barman-$v.conf" -f json show-backup main "${BARMAN_ID[$v]}" | json 'd["main"]["base_backup_information"].get("status", d["main"].get("status", "?"))' 2>/dev/null || echo "?")
      echo "  barman $v: ${BARMAN_ID[$v]} ($status), $(( $(du -sb "$work/barman-home/main/base/${BARMAN_ID[$v]}" | cut -f1) / 1000000 )) MB stored"
    else
      echo "  barman $v: backup failed, skipped: $(tail -n 3 "$work/barman-backup.out" | tr '\n' ' ')"
    fi
    sleep 1
  done
fi

# --- 1. full restore into an empty folder --------------------------------------------------------
KEYS=()
for v in plain lz4 zstd; do
  for j in 1 2; do
    KEYS+=("pgbak-$v-j$j"); row "pgbak-$v-j$j" restore "pgbak recover $v --jobs $j" "$datasize"
  done
done
for v in lz4 zst; do
  [ -n "${PGBR_SET[$v]:-}" ] || continue
  KEYS+=("pgbr-$v"); row "pgbr-$v" restore "pgbackrest restore $v --process-max=2" "$datasize"
done
for v in none lz4; do
  [ -n "${BARMAN_ID[$v]:-}" ] || continue
  label="barman $BARMAN_RESTORE $( [ $v = none ] && echo "plain --jobs 2" || echo "lz4 tar" )"
  KEYS+=("barman-$v"); row "barman-$v" restore "$label" "$datasize"
done
restore_one() { # key dest
  local key=$1 dest=$2 v j
  case $key in
    pgbak-*)
      v=${key#pgbak-}; j=${v##*-j}; v=${v%-j*}
      timed "$key" "$work/recover.json" "$PGBAK" -f json -c "$work/pgbak-$v.conf" recover main "${PGBAK_ID[$v]}" "$dest" \
        --target-immediate --get-wal --jobs "$j" ;;
    pgbr-*)
      v=${key#pgbr-}
      as_pg mkdir -m 700 "$dest"
      timed "$key" /dev/null pgbackrest --config="$work/pgbr.conf" --stanza=bench restore --set="${PGBR_SET[$v]}" \
        --pg1-path="$dest" --type=immediate --process-max=2 ;;
    barman-*)
      v=${key#barman-}
      timed "$key" /dev/null "$BARMAN" -q -c "$work/barman-$v.conf" "$BARMAN_RESTORE" main "${BARMAN_ID[$v]}" "$dest" \
        --target-immediate --get-wal --jobs 2 ;;
  esac
}
echo "1. full restore into an empty folder ($ROUNDS rounds, interleaved):"
for r in $(seq "$ROUNDS"); do
  echo " round $r"
  for key in "${KEYS[@]}"; do
    dest="$work/r/$key"
    if restore_one "$key" "$dest"; then
      [ "$r" = 1 ] && check_restore "$key" "$dest" "$datasize"
    fi
    # Round 1 keeps a restore of the old zstd backup (pgbak) and of the old zst one (pgbackrest)
    # for the delta restores of part 2.
    if [ "$r" = 1 ] && [ "$key" = pgbak-zstd-j2 ] && [ -d "$dest" ]; then mv "$dest" "$work/old-pgbak"
    elif [ "$r" = 1 ] && [ "$key" = pgbr-zst ] && [ -d "$dest" ]; then mv "$dest" "$work/old-pgbr"
    else gone "$dest"; fi
  done
done

# --- 2. delta restore after 1% of the rows changed -----------------------------------------------
psql_ "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"
psql_ "CHECKPOINT"
datasize2=$(pgdata_bytes "$work/pgdata")
NEW_ID=$(pgbak_backup zstd)
echo "2. delta restore: 1% of pgbench_accounts updated, new pgbak zstd backup $NEW_ID$( [ -n "${PGBR_SET[zst]:-}" ] && echo ", new pgbackrest zst backup" )"
NEW_PGBR=
if [ -n "${PGBR_SET[zst]:-}" ] && [ -d "$work/old-pgbr" ]; then
  NEW_PGBR=$(pgbr_backup zst 2>"$work/pgbr-backup.err") || { echo "  pgbackrest: new backup failed: $(tail -n 2 "$work/pgbr-backup.err")"; NEW_PGBR=; }
fi
DKEYS=()
if [ -d "$work/old-pgbak" ]; then
  DKEYS+=(delta-pgbak); row delta-pgbak delta "pgbak recover --delta-restore zstd --jobs 2 (onto old copy)" "$datasize2"
fi
DKEYS+=(delta-pgbak-full); row delta-pgbak-full delta "pgbak recover zstd --jobs 2 (empty folder)" "$datasize2"
if [ -n "$NEW_PGBR" ]; then
  DKEYS+=(delta-pgbr); row delta-pgbr delta "pgbackrest restore --delta zst --process-max=2 (onto old copy)" "$datasize2"
fi
restore_stats() { # key json_file: what the recover report says it wrote
  local s
  s=$(json '"written %d files / %.1f MB, unchanged %d files / %.1f MB" % (d["restore"]["files_written"], d["restore"]["bytes_written"]/1e6, d["restore"]["files_unchanged"], d["restore"]["bytes_unchanged"]/1e6)' < "$2" 2>/dev/null) \
    && note "$1" "$s" && echo "    $s"
  return 0
}
for r in $(seq "$ROUNDS"); do
  echo " round $r"
  for key in "${DKEYS[@]}"; do
    dest="$work/r/$key"
    case $key in
      delta-pgbak)
        as_pg cp -a "$work/old-pgbak" "$dest"
        timed "$key" "$work/recover.json" "$PGBAK" -f json -c "$work/pgbak-zstd.conf" recover main "$NEW_ID" "$dest" \
          --target-immediate --get-wal --jobs 2 --delta-restore && restore_stats "$key" "$work/recover.json" ;;
      delta-pgbak-full)
        timed "$key" "$work/recover.json" "$PGBAK" -f json -c "$work/pgbak-zstd.conf" recover main "$NEW_ID" "$dest" \
          --target-immediate --get-wal --jobs 2 && restore_stats "$key" "$work/recover.json" ;;
      delta-pgbr)
        as_pg cp -a "$work/old-pgbr" "$dest"
        timed "$key" /dev/null pgbackrest --config="$work/pgbr.conf" --stanza=bench restore --set="$NEW_PGBR" \
          --pg1-path="$dest" --type=immediate --process-max=2 --delta || true ;;
    esac
    [ "$r" = 1 ] && [ -d "$dest" ] && check_restore "$key" "$dest" "$datasize2"
    gone "$dest"
  done
done
gone "$work/old-pgbak" "$work/old-pgbr"
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m fast -w stop >/dev/null
# The PostgreSQL 15 backups are not needed any more: free the disk for part 3.
gone "$work/home/main/base" "$work/pgbr/repo" "$work/barman-home/main/base" "$work/pgdata"

# --- 3. PostgreSQL 17: incremental backup and its restore ----------------------------------------
if [ -x "$PG17BIN/postgres" ]; then
  write_pgbak_conf "$work/pgbak17.conf" "$work/home17" pg17 "$PORT17" "backup_method = postgres" \
    "immediate_checkpoint = true" "compression = zstd" "backup_compression = zstd" "backup_compression_format = tar"
  start_cluster "$PG17BIN" "$work/pg17data" "$PORT17" "$PGBAK -q -c $work/pgbak17.conf archive-wal pg17 %p" \
    "summarize_wal = on" "shared_buffers = 256MB"
  pgbench_init "$SCALE" "$PORT17"
  psql_port "$PORT17" "CHECKPOINT"
  as_pg "$PGBAK" -q -c "$work/pgbak17.conf" switch-wal pg17 --force --archive --archive-timeout 600 >/dev/null
  datasize17=$(pgdata_bytes "$work/pg17data")
  echo "3. PostgreSQL 17 ($("$PG17BIN/postgres" --version)): pgbench scale $SCALE, PGDATA without pg_wal = $((datasize17 / 1000000)) MB"
  as_pg "$PGBAK" -q -c "$work/pgbak17.conf" backup pg17 --wait --wait-timeout 600 >/dev/null
  echo "  first full backup: $(as_pg "$PGBAK" -f json -c "$work/pgbak17.conf" show-backup pg17 latest | json 'd["backup_id"]')"
  row incr-backup incremental "pgbak backup --incremental latest (zstd, after 1% changed)" "$datasize17"
  row full-backup incremental "pgbak backup, full (zstd)" "$datasize17"
  stored() { # key -> note with the bytes stored by the latest backup
    local id sz
    id=$(as_pg "$PGBAK" -f json -c "$work/pgbak17.conf" show-backup pg17 latest | json 'd["backup_id"]')
    sz=$(as_pg "$PGBAK" -f json -c "$work/pgbak17.conf" show-backup pg17 "$id" | json 'd["size"]')
    printf 'stored\t%s\t%s\n' "$1" "$sz" >> "$RES"
    echo "$id"
  }
  # Each round: change 1% of the rows, then the incremental (its parent, the latest backup, is
  # the full one of the round before: one change behind, as every round), then a full backup of
  # the same data. Both wait until their WAL is archived.
  INCR_ID= FULL_ID=
  for r in $(seq "$ROUNDS"); do
    echo " round $r"
    psql_port "$PORT17" "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"
    if timed incr-backup /dev/null "$PGBAK" -q -c "$work/pgbak17.conf" backup pg17 --incremental latest --wait --wait-timeout 600; then
      INCR_ID=$(stored incr-backup)
    fi
    sleep 1
    if timed full-backup /dev/null "$PGBAK" -q -c "$work/pgbak17.conf" backup pg17 --wait --wait-timeout 600; then
      FULL_ID=$(stored full-backup)
    fi
    sleep 1
  done
  as_pg "$PG17BIN/pg_ctl" -D "$work/pg17data" -m fast -w stop >/dev/null
  if [ -n "$INCR_ID" ] && [ -n "$FULL_ID" ]; then
    parent=$(as_pg "$PGBAK" -f json -c "$work/pgbak17.conf" show-backup pg17 "$INCR_ID" | json 'd.get("parent_backup_id")')
    echo "  recover: incremental $INCR_ID (parent $parent) against full $FULL_ID"
    row incr-recover incremental "pgbak recover incremental (full + 1 incremental) --jobs 2" "$datasize17"
    row full-recover incremental "pgbak recover full --jobs 2" "$datasize17"
    for r in $(seq "$ROUNDS"); do
      echo " round $r"
      for key in incr-recover full-recover; do
        id=$INCR_ID; [ $key = full-recover ] && id=$FULL_ID
        dest="$work/r/$key"
        timed "$key" /dev/null "$PGBAK" -q -c "$work/pgbak17.conf" recover pg17 "$id" "$dest" --target-immediate --get-wal --jobs 2 \
          && [ "$r" = 1 ] && check_restore "$key" "$dest" "$datasize17"
        gone "$dest"
      done
    done
  fi
else
  echo "3. skipped: no PostgreSQL 17 server binaries in $PG17BIN"
fi

# --- the table -----------------------------------------------------------------------------------
echo
echo "## pgbak restore benchmark: pgbench scale $SCALE, $ROUNDS rounds, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "PGDATA without pg_wal: $((datasize / 1000000)) MB (PostgreSQL 15)$( [ -n "${datasize17:-}" ] && echo ", $((datasize17 / 1000000)) MB (PostgreSQL 17)"). $(nproc) cores."
echo
python3 - "$RES" <<'PY'
import sys, statistics
rows, res, fails, notes, stored = [], {}, {}, {}, {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "row" and f[1] not in [r[0] for r in rows]:
        rows.append((f[1], f[2], f[3], int(f[4])))
    elif f[0] == "res":
        res.setdefault(f[1], []).append((float(f[2]), int(f[3])))
    elif f[0] == "fail":
        fails[f[1]] = fails.get(f[1], 0) + 1
    elif f[0] == "note":
        notes[f[1]] = f[2]
    elif f[0] == "stored":
        stored.setdefault(f[1], []).append(int(f[2]))
print("| part | run | median s | min-max s | MB/s | peak RSS MB | bytes |")
print("|---|---|---:|---:|---:|---:|---|")
for key, section, label, size in rows:
    r = res.get(key, [])
    if not r:
        print(f"| {section} | {label} | failed | | | | |")
        continue
    secs = [s for s, _ in r]
    med = statistics.median(secs)
    rss = max(m for _, m in r) / 1024
    mbs = f"{size / 1e6 / med:.0f}" if size and med > 0 else ""
    extra = notes.get(key, "")
    if key in stored:
        extra = "stored " + ", ".join(f"{b / 1e6:.1f}" for b in stored[key]) + " MB"
    if fails.get(key):
        extra = (extra + "; " if extra else "") + f"{fails[key]} run(s) failed"
    print(f"| {section} | {label} | {med:.2f} | {min(secs):.2f}-{max(secs):.2f} | {mbs} | {rss:.0f} | {extra} |")
PY
