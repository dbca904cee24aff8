#!/usr/bin/env bash
# Object storage benchmark, all measured in one run on this machine, rows interleaved round by
# round (on shared disks, runs one after another can differ by 2x):
#
#   1. base backups of two datasets (pgbench, and a table of random bytes that no codec can
#      shrink), zstd level 1: pgbak to local disk, S3 (moto), Azure (Azurite) and GCS
#      (fake-gcs-server); pgBackRest (Debian package, repo1-type=s3, process-max 1 and 2) to the
#      same S3 emulator; barman-cloud-backup (PyPI), which has no zstd for backups, with lz4 next
#      to pgbak with lz4; pg_basebackup to local disk for reference. Seconds, MB/s (PGDATA
#      without pg_wal / wall time), peak RSS, stored size.
#   2. WAL archiving to S3, one process per segment as archive_command runs it (each segment
#      marked ready, then done after its call, as PostgreSQL does), zstd: pgbak archive-wal,
#      one at a time and with --parallel 4 and 8; pgbackrest archive-push, synchronous and
#      asynchronous (process-max 4); barman-cloud-wal-archive. Segments/s.
#
#   bash benches/e2e/cloud.sh [SCALE] [RANDOM_MB] [ROUNDS] [SEGMENTS]   (default 50 300 2 32)
#
# PGBAK_BENCH_PARTS="wal" runs the WAL part only (default "backups wal").
#
# The S3 emulator speaks TLS with a certificate made here (pgBackRest only speaks HTTPS to S3):
# pgbak trusts it through SSL_CERT_FILE, pgBackRest through repo1-storage-ca-file, boto3
# through AWS_CA_BUNDLE. A tool that cannot be installed is reported and skipped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
RANDOM_MB=${2:-300}
ROUNDS=${3:-2}
NSEG=${4:-32}
PARTS=" ${PGBAK_BENCH_PARTS:-backups wal} "
bench_setup pgbak-cloudbench
cargo build --release -p pgbak-tests --bin pgbak-storage-load >/dev/null 2>&1
LOAD_BIN=target/release/pgbak-storage-load
EMU=${PGBAK_EMULATORS_DIR:-/opt/pgbak-emulators}
mkdir -p "$work/spool" "$work/tls" "$work/azurite" "$work/gcs" "$work/raw"
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# --- TLS for the S3 emulator ---------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/tls/ca.key" -out "$work/tls/ca.crt" \
  -days 2 -subj /CN=pgbak-bench-ca >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$work/tls/s3.key" -out "$work/tls/s3.csr" \
  -subj /CN=127.0.0.1 >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$work/tls/ext"
openssl x509 -req -in "$work/tls/s3.csr" -CA "$work/tls/ca.crt" -CAkey "$work/tls/ca.key" \
  -CAcreateserial -out "$work/tls/s3.crt" -days 2 -extfile "$work/tls/ext" >/dev/null 2>&1
chmod 644 "$work/tls/"*

# --- the emulators -------------------------------------------------------------------------------
S3_PORT=$(free_port); AZ_PORT=$(free_port); GCS_PORT=$(free_port)
MOTO_PORT=$(free_port)
run_in_background "$EMU/venv-moto/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$work/moto.log" 2>&1
# moto's own TLS closes connections without a TLS close_notify, which pgBackRest reports as an
# error; a small TLS terminator in front of it ends every connection properly. Every tool goes
# through it.
run_in_background python3 benches/e2e/tls_proxy.py "$S3_PORT" "$MOTO_PORT" "$work/tls/s3.crt" "$work/tls/s3.key" \
  > "$work/tls-proxy.log" 2>&1
run_in_background "$EMU/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
  --disableTelemetry --skipApiVersionCheck --silent --location "$work/azurite" > "$work/azurite.log" 2>&1
run_in_background "$EMU/bin/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$GCS_PORT" \
  -external-url "http://127.0.0.1:$GCS_PORT" -public-host "127.0.0.1:$GCS_PORT" -log-level error \
  -backend filesystem -filesystem-root "$work/gcs" > "$work/gcs.log" 2>&1
wait_port "$MOTO_PORT"; wait_port "$S3_PORT"; wait_port "$AZ_PORT"; wait_port "$GCS_PORT"

S3_KEY=pgbak-bench
S3_SECRET=pgbak-bench-secret
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
CLOUD_ENV=(
  AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1
  AWS_EC2_METADATA_DISABLED=true SSL_CERT_FILE=$work/tls/ca.crt AWS_CA_BUNDLE=$work/tls/ca.crt
  "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZ_KEY;BlobEndpoint=http://127.0.0.1:$AZ_PORT/devstoreaccount1;"
  STORAGE_EMULATOR_HOST=http://127.0.0.1:$GCS_PORT
)
# The tools run with it (as_pg_env, measure).
PG_ENV=("${CLOUD_ENV[@]}")
# The storage load helper: pgbak's own storage layer, for bucket creation and stored sizes.
load() { # url op key
  if [ "${1%%:*}" = s3 ]; then
    env "${CLOUD_ENV[@]}" PGBAK_LOAD_ENDPOINT_URL="https://127.0.0.1:$S3_PORT" "$LOAD_BIN" "$@"
  else
    env "${CLOUD_ENV[@]}" "$LOAD_BIN" "$@"
  fi
}
for url in s3://pgbak-bench azure://pgbak-bench gs://pgbak-bench; do
  load "$url" create-bucket x >/dev/null
done

# --- the database --------------------------------------------------------------------------------
PORT=$(free_port)
give_to_pg "$work"
start_cluster "$PGBIN" "$work/pgdata" "$PORT" "cp %p $work/spool/%f"

# --- the other tools -----------------------------------------------------------------------------
HAVE_PGBR=0
if pgbackrest_installed; then
  HAVE_PGBR=1
  as_pg mkdir -p "$work/pgbr-lock" "$work/pgbr-log"
  for p in 1 2; do
    write_pgbackrest_conf "$work/pgbr-$p.conf" repo1-type=s3 "repo1-path=/pgbackrest-p$p" repo1-s3-bucket=pgbak-bench \
      repo1-s3-endpoint=localhost "repo1-storage-port=$S3_PORT" repo1-s3-region=us-east-1 "repo1-s3-key=$S3_KEY" \
      "repo1-s3-key-secret=$S3_SECRET" repo1-s3-uri-style=path "repo1-storage-ca-file=$work/tls/ca.crt" \
      repo1-retention-full=9999 compress-type=zst compress-level=1 "process-max=$p" start-fast=y archive-check=n \
      "lock-path=$work/pgbr-lock" "log-path=$work/pgbr-log"
    as_pg pgbackrest --config="$work/pgbr-$p.conf" --stanza=bench stanza-create >/dev/null
  done
  # The same repository settings, archiving asynchronously (a spool of acknowledgements). Its
  # queue is read in pg1-path/pg_wal: a data directory whose pg_wal is the segments' folder.
  as_pg mkdir -p "$work/pgbr-spool" "$work/pgbr-pg"
  as_pg ln -s "$work/pgdata/global" "$work/pgbr-pg/global"
  as_pg ln -s "$work/raw" "$work/pgbr-pg/pg_wal"
  as_pg cp "$work/pgdata/PG_VERSION" "$work/pgbr-pg/"
  sed -e 's/^process-max=.*/process-max=4/' "$work/pgbr-1.conf" \
    | sed -e "s|^\[global\]|[global]\narchive-async=y\nspool-path=$work/pgbr-spool|" \
    | sed -e "s|^pg1-path=.*|pg1-path=$work/pgbr-pg|" \
    | as_pg tee "$work/pgbr-async.conf" >/dev/null
else
  echo "pgBackRest: not installed (apt-get install pgbackrest failed); its rows are skipped"
fi
HAVE_BARMAN=0
if venv_install "barman[cloud,zstandard,lz4]"; then
  HAVE_BARMAN=1
  give_to_pg "$work/venv"
else
  echo "Barman: not installed (pip install barman[cloud] failed); its rows are skipped"
fi
BARMAN_S3=(--cloud-provider aws-s3 --endpoint-url "https://127.0.0.1:$S3_PORT")

# --- measuring -----------------------------------------------------------------------------------
report() { # tool target seconds rss_kb bytes
  awk -v t="$1" -v g="$2" -v s="$3" -v r="$4" -v b="$5" -v d="$datasize" \
    'BEGIN { printf "  %-26s %-6s %7.2f s %7.1f MB/s  peak RSS %6.1f MB  stored %8.1f MB\n", t, g, s, d/1e6/s, r/1024, b/1e6 }'
}
# Bytes stored under a prefix of a repository, listed through pgbak's storage layer.
stored() { # url
  load "$1" du / | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'
}
pgbak_conf() { # name basebackups wals [backup codec]
  local extra="" codec=${4:-zstd}
  [ "${2%%:*}" = s3 ] && extra="cloud_endpoint_url = https://127.0.0.1:$S3_PORT"
  write_pgbak_conf "$work/$1.conf" "$work/home-$1" bench "$PORT" "backup_compression = $codec" \
    "backup_compression_level = 1" "compression = zstd" "immediate_checkpoint = true" \
    "basebackups_directory = $2" "wals_directory = $3" "$extra"
}

# A new pgbak repository gets one archived segment first (seed_wal, outside the timings), as a
# server that archives with pgbak has: pgbak refuses to back up a server whose WAL archive is empty
# and stays so after a WAL switch (its archive_command here copies into a spool, for the WAL rows).
backups() { # dataset label
  local round tag t
  datasize=$(pgdata_bytes "$work/pgdata")
  echo "base backups, $2: PGDATA without pg_wal = $((datasize / 1000000)) MB, zstd level 1"
  for round in $(seq 1 "$ROUNDS"); do
    echo " round $round"
    tag="$1-r$round"
    # pgbak to local disk, S3, Azure, GCS.
    pgbak_conf "local-$tag" "$work/local-$tag/base" "$work/local-$tag/wals"
    seed_wal "$work/local-$tag.conf"
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/local-$tag.conf" backup bench)
    report "pgbak" local "$secs" "$rss" "$(du -sb "$work/local-$tag/base" | cut -f1)"
    for t in s3 azure gs; do
      pgbak_conf "$t-$tag" "$t://pgbak-bench/pgbak/$tag/base" "$t://pgbak-bench/pgbak/$tag/wals"
      seed_wal "$work/$t-$tag.conf"
      read -r secs rss < <(measure "$PGBAK" -q -c "$work/$t-$tag.conf" backup bench)
      report "pgbak" "$t" "$secs" "$rss" "$(stored "$t://pgbak-bench/pgbak/$tag/base")"
    done
    # pgBackRest to S3.
    if [ "$HAVE_PGBR" = 1 ]; then
      for p in 1 2; do
        read -r secs rss < <(measure pgbackrest --config="$work/pgbr-$p.conf" --stanza=bench --type=full backup)
        report "pgbackrest (process-max $p)" s3 "$secs" "$rss" \
          "$(as_pg pgbackrest --config="$work/pgbr-$p.conf" --stanza=bench info --output=json \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["info"]["repository"]["delta"])')"
      done
    fi
    # barman-cloud-backup to S3: it has no zstd for backups, so lz4, next to pgbak with lz4.
    pgbak_conf "s3-lz4-$tag" "s3://pgbak-bench/pgbak-lz4/$tag/base" "s3://pgbak-bench/pgbak-lz4/$tag/wals" lz4
    seed_wal "$work/s3-lz4-$tag.conf"
    read -r secs rss < <(measure "$PGBAK" -q -c "$work/s3-lz4-$tag.conf" backup bench)
    report "pgbak (lz4)" s3 "$secs" "$rss" "$(stored "s3://pgbak-bench/pgbak-lz4/$tag/base")"
    if [ "$HAVE_BARMAN" = 1 ]; then
      read -r secs rss < <(measure "$work/venv/bin/barman-cloud-backup" "${BARMAN_S3[@]}" --lz4 \
        -h 127.0.0.1 -p "$PORT" -U postgres --immediate-checkpoint "s3://pgbak-bench/barman/$tag" bench)
      report "barman-cloud-backup (lz4)" s3 "$secs" "$rss" "$(stored "s3://pgbak-bench/barman/$tag")"
    fi
    # pg_basebackup to local disk, for reference.
    as_pg mkdir -p "$work/pgbb-$tag"
    read -r secs rss < <(measure "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres \
      -D "$work/pgbb-$tag" -Ft --compress=client-zstd:1 -X none --no-sync -c fast)
    report "pg_basebackup" local "$secs" "$rss" "$(du -sb "$work/pgbb-$tag" | cut -f1)"
    rm -rf "$work/pgbb-$tag" "$work/local-$tag"
  done
}

# --- dataset 1: pgbench ---------------------------------------------------------------------------
pgbench_init "$SCALE"
psql_ "CHECKPOINT" >/dev/null
psql_ "SELECT pg_switch_wal()" >/dev/null
sleep 1
[[ $PARTS == *" backups "* ]] && backups pgbench "pgbench scale $SCALE"

# --- WAL archiving to S3: real segments of this cluster -------------------------------------------
if [[ $PARTS == *" wal "* ]]; then
psql_ "SELECT pg_switch_wal()" >/dev/null
sleep 1
mapfile -t segs < <(spool_segs | head -n "$NSEG")
n=${#segs[@]}
# $work/raw is laid out as pg_wal: archive_status/<segment>.ready for each segment, turned into
# .done after each successful call, as PostgreSQL does (parallel archivers look there).
mkdir -p "$work/raw/archive_status"
for s in "${segs[@]}"; do cp "$work/spool/$s" "$work/raw/$s"; done
give_to_pg "$work/raw"
rate() { # label seconds count rss_kb
  awk -v l="$1" -v s="$2" -v n="$3" -v r="$4" \
    'BEGIN { printf "  %-40s %7.2f s  %7.1f segments/s  %6.1f ms/segment  peak RSS %5.1f MB\n", l, s, n/s, s*1000/n, r/1024 }'
}
# Archives every segment with one process each; prints "seconds max_peak_rss_kb".
archive_all() { # command... (the segment path is appended)
  local t0 t1 max=0 out
  rm -f "$work/raw/archive_status/"*
  for s in "${segs[@]}"; do as_pg touch "$work/raw/archive_status/$s.ready"; done
  t0=$(now)
  for s in "${segs[@]}"; do
    if ! out=$(as_pg_env /usr/bin/time -f "%M" "$@" "${WALDIR:-$work/raw}/$s" 2>&1 >/dev/null); then
      echo "FAILED: $* $s" >&2; echo "$out" | tail -n 20 >&2; exit 1
    fi
    mv "$work/raw/archive_status/$s.ready" "$work/raw/archive_status/$s.done"
    r=$(echo "$out" | tail -n 1); [ "$r" -gt "$max" ] && max=$r
  done
  t1=$(now)
  echo "$(elapsed "$t0" "$t1") $max"
}
echo "WAL archiving to S3: $n segments of 16 MiB, one process per segment, zstd"
for round in $(seq 1 "$ROUNDS"); do
  echo " round $round"
  pgbak_conf "wal-r$round" "s3://pgbak-bench/walbench/r$round/base" "s3://pgbak-bench/walbench/r$round/wals"
  read -r secs rss < <(archive_all "$PGBAK" -q -c "$work/wal-r$round.conf" archive-wal bench)
  rate "pgbak archive-wal" "$secs" "$n" "$rss"
  for p in 4 8; do
    pgbak_conf "wal-r$round-p$p" "s3://pgbak-bench/walbench/r$round-p$p/base" "s3://pgbak-bench/walbench/r$round-p$p/wals"
    read -r secs rss < <(archive_all "$PGBAK" -q -c "$work/wal-r$round-p$p.conf" archive-wal --parallel "$p" bench)
    rate "pgbak archive-wal --parallel $p" "$secs" "$n" "$rss"
  done
  if [ "$HAVE_PGBR" = 1 ]; then
    sed -i "s|^repo1-path=.*|repo1-path=/pgbackrest-wal-r$round|" "$work/pgbr-1.conf"
    as_pg pgbackrest --config="$work/pgbr-1.conf" --stanza=bench stanza-create >/dev/null
    read -r secs rss < <(archive_all pgbackrest --config="$work/pgbr-1.conf" --stanza=bench archive-push)
    rate "pgbackrest archive-push" "$secs" "$n" "$rss"
    # Asynchronous: a background process pushes the ready segments, process-max at a time.
    sed -i "s|^repo1-path=.*|repo1-path=/pgbackrest-wal-async-r$round|" "$work/pgbr-async.conf"
    # Acknowledgements of an earlier round would answer for the same segment names.
    rm -rf "$work/pgbr-spool/"*
    # The stanza is made with the real data directory (stanza-create asks the server).
    as_pg pgbackrest --config="$work/pgbr-1.conf" --repo1-path="/pgbackrest-wal-async-r$round" \
      --stanza=bench stanza-create >/dev/null
    read -r secs rss < <(WALDIR="$work/pgbr-pg/pg_wal" archive_all pgbackrest --config="$work/pgbr-async.conf" --stanza=bench archive-push)
    rate "pgbackrest archive-push (async, process-max 4)" "$secs" "$n" "$rss"
  fi
  if [ "$HAVE_BARMAN" = 1 ]; then
    read -r secs rss < <(archive_all "$work/venv/bin/barman-cloud-wal-archive" "${BARMAN_S3[@]}" --zstd \
      "s3://pgbak-bench/barman-wal/r$round" bench)
    rate "barman-cloud-wal-archive" "$secs" "$n" "$rss"
  fi
done
if [ "$HAVE_PGBR" = 1 ]; then
  sed -i "s|^repo1-path=.*|repo1-path=/pgbackrest-p1|" "$work/pgbr-1.conf"
fi
fi
[[ $PARTS == *" backups "* ]] || exit 0

# --- dataset 2: random bytes (incompressible), pgbench dropped -------------------------------------
psql_ "DROP TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers" >/dev/null
psql_ "CREATE TABLE rnd (id int, b bytea)" >/dev/null
psql_ "ALTER TABLE rnd ALTER COLUMN b SET STORAGE EXTERNAL" >/dev/null
rows=$(( RANDOM_MB * 1000000 / 2048 ))
psql_ "INSERT INTO rnd SELECT g, (SELECT decode(string_agg(replace(gen_random_uuid()::text, '-', ''), ''), 'hex')
       FROM generate_series(1, 128) WHERE g > 0) FROM generate_series(1, $rows) g" >/dev/null
psql_ "CHECKPOINT" >/dev/null
backups random "random bytes, $RANDOM_MB MB in 2 kB values"
