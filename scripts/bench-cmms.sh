#!/usr/bin/env bash
# Load benchmark of the hub's maintenance (CMMS) API: with 100,000 work
# orders and 20,000 assets loaded, 200 concurrent clients on loopback mix
# work-order listings (first page and filtered/sorted), GETs by id and
# state transitions (hold/resume with the expected version); reports
# p50/p95/p99 latency and requests/s on SQLite and PostgreSQL against the
# target p95 < 50 ms.
#
# For each database: a throwaway data folder (and for PostgreSQL a throwaway
# cluster on a loopback port), `dcmms-hub seed` into it, the release hub on
# loopback port 0 (address read from its ready file), a bearer token of the
# first administrator, then wrk with hil/bench/cmms_mix.lua: a warm-up, the
# mixed run (the figure the target applies to), then one run per request
# kind (list, filter, get, transition) so each kind's latency is known,
# and last every request shape timed alone (one client, no queueing: the
# service time of each listing filter and sort, GET and transition).
# Prints a table per database, with the load average before and after each
# run (the machine may be busy with other work: figures are only comparable
# within one run of this script).
#
# A 409 is a refusal the API gives under concurrency (version conflict) and
# is counted apart; any 5xx, any other non-2xx answer, a socket error or
# timeout, or a hub that panics or logs an ERROR fails the run.
# Exit status: 0 all runs clean and every mixed run met the target, 1 errors,
# 2 bad usage or set-up failure, 3 clean but a mixed run missed the target.
#
# Usage: scripts/bench-cmms.sh [--db sqlite|postgres|both] [--duration S]
#          [--connections C] [--threads T] [--kind-duration S] [--warmup S]
#          [--think MS] [--work-orders N] [--assets M] [--sites K]
#          [--pool P] [--keep]
#   --db             database(s) to measure (default both)
#   --duration       seconds of the mixed run (default 30)
#   --connections    concurrent clients (default 200)
#   --threads        wrk threads (default 2)
#   --kind-duration  seconds of each per-kind run; 0 skips them (default 10)
#   --warmup         seconds of an unreported mixed run first (default 5)
#   --think          mean think time in ms before each request of a client
#                    (default 0: every client sends its next request as soon
#                    as it has the answer, so the hub runs flat out and the
#                    latency is mostly queueing; 1000 models 200 users each
#                    sending a request a second, about 200 requests/s)
#   --work-orders, --assets, --sites  seed size (default 100000, 20000, 10)
#   --pool           the hub's database.max_connections (default: the hub's)
#   --keep           keep the data folders and logs (printed at the end)
# Environment:
#   DCMMS_BENCH_MIX  request mix of the mixed run, as weights
#                    (default "list=20,filter=30,get=40,transition=10")
#   DCMMS_HUB_BIN    hub binary (default: target/release/dcmms-hub, built)
#   DCMMS_BENCH_OUT  report folder (default target/bench-cmms): results.txt
#                    (one key=value line per run), shapes-<db>.txt and the
#                    hub logs
#   DCMMS_PG_OPTS    extra postgres server options (default
#                    "-c synchronous_commit=off": commits are not flushed
#                    before they are answered, like the hub's SQLite in WAL
#                    mode with synchronous=NORMAL)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[bench-cmms] %s\n' "$*"; }
die() {
  printf '[bench-cmms] error: %s\n' "$*" >&2
  exit 2
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DBS=both DURATION=30 CONNECTIONS=200 THREADS=2 KIND_DURATION=10 WARMUP=5 THINK=0
WORK_ORDERS=100000 ASSETS=20000 SITES=10 POOL='' KEEP=0
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --keep) KEEP=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
  esac
  [ $# -ge 2 ] || { usage >&2; die "$opt needs a value"; }
  case $opt in
    --db) DBS=$2 ;;
    --duration) DURATION=$2 ;;
    --connections) CONNECTIONS=$2 ;;
    --threads) THREADS=$2 ;;
    --kind-duration) KIND_DURATION=$2 ;;
    --warmup) WARMUP=$2 ;;
    --think) THINK=$2 ;;
    --work-orders) WORK_ORDERS=$2 ;;
    --assets) ASSETS=$2 ;;
    --sites) SITES=$2 ;;
    --pool) POOL=$2 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift 2
done
case $DBS in
  both) DBS='sqlite postgres' ;;
  sqlite | postgres) ;;
  *) die "--db must be sqlite, postgres or both, not $DBS" ;;
esac
for n in "$DURATION" "$CONNECTIONS" "$THREADS" "$WORK_ORDERS" "$ASSETS" "$SITES" ${POOL:+"$POOL"}; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "durations, counts and sizes must be positive integers (got $n)"
done
for n in "$KIND_DURATION" "$WARMUP" "$THINK"; do
  [[ $n =~ ^[0-9]+$ ]] || die "--kind-duration, --warmup and --think must be whole numbers (got $n)"
done
[ "$THREADS" -le "$CONNECTIONS" ] || die "--threads must not exceed --connections"
[ "$SITES" -le "$ASSETS" ] || die "--sites must not exceed --assets"
PY=${DCMMS_PYTHON:-python3}
OUT=${DCMMS_BENCH_OUT:-$ROOT/target/bench-cmms}
PG_OPTS=${DCMMS_PG_OPTS:--c synchronous_commit=off}
TARGET_P95_MS=50

# ---- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null; } ||
    die "could not install wrk with apt-get"
fi
command -v "$PY" >/dev/null || die "$PY is needed"

if [ -n "${DCMMS_HUB_BIN:-}" ]; then
  HUB_BIN=$DCMMS_HUB_BIN
  [ -x "$HUB_BIN" ] || die "DCMMS_HUB_BIN=$HUB_BIN is not an executable"
else
  log "building the release hub (cargo build --release -p dcmms-hub)"
  cargo build --release --locked -p dcmms-hub --bin dcmms-hub
  HUB_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/dcmms-hub
fi

# ---- clean-up ----------------------------------------------------------------
WORK='' PG_DIR='' PG_BIN='' HUB_PID=''
RUN_AS=()
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"

stop_hub() {
  # Returns the hub's exit status after SIGTERM (KILL after 30 s).
  [ -n "$HUB_PID" ] || return 0
  local pid=$HUB_PID rc=0 i
  HUB_PID=
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "the hub did not stop within 30 s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}
stop_pg() {
  [ -n "$PG_DIR" ] || return 0
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  [ "$KEEP" = 1 ] || rm -rf "$PG_DIR"
  PG_DIR=
}
cleanup() {
  stop_hub || true
  stop_pg
  if [ -n "$WORK" ] && [ "$KEEP" = 0 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Starts a throwaway PostgreSQL cluster on a free loopback port; sets DB_URL.
start_pg() {
  PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | while read -r d; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | tail -n 1)
  [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/install-test-deps.sh)"
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dcmms-bench-pg.XXXXXX")
  # PostgreSQL refuses to run as root: as root, run it as user postgres.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres is needed to run PostgreSQL as root"
    RUN_AS=(runuser -u postgres --)
    chown postgres: "$PG_DIR"
  fi
  "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --no-sync \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  local port='' p
  for _ in 1 2 3; do # a free port may be taken before the server binds it
    p=$(free_port)
    if "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
      -o "-p $p -k $PG_DIR -c listen_addresses=127.0.0.1 $PG_OPTS" start >/dev/null 2>&1; then
      port=$p
      break
    fi
  done
  [ -n "$port" ] || { cat "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  "${RUN_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres dcmms
  DB_URL=postgres://postgres@127.0.0.1:$port/dcmms
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_OPTS)"
}

# Starts the hub on loopback port 0; sets BASE and HUB_PID.
start_hub() {
  local db=$1
  DCMMS_ADMIN_PASSWORD=$ADMIN_PASSWORD "$HUB_BIN" --config "$WORK/hub.toml" \
    --ready-file "$WORK/hub.ready" >"$HUB_LOG" 2>&1 </dev/null &
  HUB_PID=$!
  local api='' i
  for ((i = 0; i < 600; i++)); do
    if ! kill -0 "$HUB_PID" 2>/dev/null; then
      tail -n 40 "$HUB_LOG" >&2
      die "the hub exited before it was ready"
    fi
    if [ -s "$WORK/hub.ready" ] &&
      api=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["api"])' "$WORK/hub.ready" 2>/dev/null); then
      break
    fi
    sleep 0.1
  done
  [ -n "$api" ] || { tail -n 40 "$HUB_LOG" >&2; die "no ready file from the hub within 60 s"; }
  BASE=http://$api
  log "hub $("$HUB_BIN" --version | awk '{print $NF}') on $BASE ($db)"
}

# One wrk run of request kind $2 for $3 seconds; appends its figures, with
# the database and load averages, to $RESULTS unless $1 is "warmup".
run_wrk() {
  local label=$1 kind=$2 secs=$3 load0 load1 line
  if [ "$kind" = mix ] || [ "$kind" = transition ]; then
    local n
    n=$("$PY" hil/bench/api.py transition-ids "$BASE" "$TOKEN" "$WORK/ids.txt") ||
      { tail -n 20 "$HUB_LOG" >&2; die "listing the work orders to transition failed"; }
    [ "$n" -gt 0 ] || die "no in-progress or on-hold work orders to transition"
  fi
  : >"$WORK/run.txt"
  load0=$(loadavg)
  log "$label: $kind for $secs s, $CONNECTIONS connections, $THREADS threads, think time $THINK ms (load average $load0)"
  if ! DCMMS_BENCH_THINK_MS=$THINK DCMMS_BENCH_TOKEN=$TOKEN DCMMS_BENCH_KIND=$kind DCMMS_BENCH_IDS=$WORK/ids.txt \
    DCMMS_BENCH_WORK_ORDERS=$WORK_ORDERS DCMMS_BENCH_SITES=$SITES DCMMS_BENCH_THREADS=$THREADS \
    DCMMS_BENCH_OUT=$WORK/run.txt \
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --timeout 10s \
    -s hil/bench/cmms_mix.lua "$BASE" 2>&1 | sed 's/^/    /'; then
    die "wrk failed"
  fi
  load1=$(loadavg)
  line=$(tail -n 1 "$WORK/run.txt")
  [ -n "$line" ] || die "wrk wrote no figures"
  if [ "$label" != warmup ]; then
    printf 'db=%s run=%s %s load0=%s load1=%s\n' "$DB" "$label" "$line" "${load0// /,}" "${load1// /,}" >>"$RESULTS"
  fi
}

# ---- one database --------------------------------------------------------------
bench_db() {
  DB=$1
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/dcmms-bench.XXXXXX")
  HUB_LOG=$OUT/hub-$DB.log
  if [ "$DB" = postgres ]; then start_pg; else DB_URL=sqlite://hub.db; fi
  {
    echo 'state_dir = "state"'
    echo '[database]'
    echo "url = \"$DB_URL\""
    [ -z "$POOL" ] || echo "max_connections = $POOL"
    echo '[broker]'
    echo 'listen = "127.0.0.1:0"'
    echo 'hostnames = ["localhost", "127.0.0.1"]'
    echo '[api]'
    echo 'listen = "127.0.0.1:0"'
  } >"$WORK/hub.toml"

  log "seeding $DB: $SITES sites, $ASSETS assets, $WORK_ORDERS work orders (load average $(loadavg))"
  if ! RUST_LOG=info "$HUB_BIN" seed --config "$WORK/hub.toml" --work-orders "$WORK_ORDERS" \
    --assets "$ASSETS" --sites "$SITES" 2>&1 | sed 's/^/    /'; then
    die "seeding $DB failed"
  fi

  ADMIN_PASSWORD=bench-admin-$("$PY" -c 'import secrets; print(secrets.token_hex(12))')
  start_hub "$DB"
  TOKEN=$("$PY" hil/bench/api.py login "$BASE" "$ADMIN_PASSWORD") ||
    { tail -n 20 "$HUB_LOG" >&2; die "login failed"; }

  [ "$WARMUP" = 0 ] || run_wrk warmup mix "$WARMUP"
  run_wrk mixed mix "$DURATION"
  if [ "$KIND_DURATION" != 0 ]; then
    for kind in list filter get transition; do run_wrk "$kind" "$kind" "$KIND_DURATION"; done
  fi
  log "every request shape alone (one client, 5 times each)"
  if ! "$PY" hil/bench/api.py latency "$BASE" "$TOKEN" 5 >"$OUT/shapes-$DB.txt"; then
    die "timing the request shapes failed"
  fi

  HUB_ALIVE=1
  kill -0 "$HUB_PID" 2>/dev/null || HUB_ALIVE=0
  HUB_RC=0
  stop_hub || HUB_RC=$?
  stop_pg
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  WORK=
  hub_verdict "$DB"
}

FAILED=0 MISSED=0

# Fails the run when the hub died, exited badly, panicked or logged errors.
hub_verdict() {
  local db=$1 errors
  if [ "$HUB_ALIVE" = 0 ] || [ "$HUB_RC" != 0 ]; then
    log "FAILED ($db): the hub $([ "$HUB_ALIVE" = 0 ] && echo "died during the run" || echo "exited with status $HUB_RC at SIGTERM")"
    FAILED=1
  fi
  if grep -q panicked "$HUB_LOG"; then
    log "FAILED ($db): the hub panicked (see $HUB_LOG)"
    FAILED=1
  fi
  errors=$(grep -c ' ERROR ' "$HUB_LOG" || true)
  if [ "$errors" != 0 ]; then
    log "FAILED ($db): $errors ERROR lines in $HUB_LOG; the first:"
    grep ' ERROR ' "$HUB_LOG" | head -n 5
    FAILED=1
  fi
}

# The table of one database from $RESULTS; updates FAILED and MISSED.
report_db() {
  local db=$1 verdict
  echo
  echo "== $db: $WORK_ORDERS work orders, $ASSETS assets, $SITES sites; $CONNECTIONS connections, $THREADS wrk threads, think time $THINK ms${POOL:+, pool $POOL}; target p95 < $TARGET_P95_MS ms"
  verdict=$(mktemp)
  awk -v db="$db" -v target="$TARGET_P95_MS" -v verdict="$verdict" '
    function kv(line,   i, n, parts, k) {
      delete f
      n = split(line, parts, " ")
      for (i = 1; i <= n; i++) { k = parts[i]; sub(/=.*/, "", k); f[k] = substr(parts[i], length(k) + 2) }
    }
    BEGIN {
      printf "%-10s %4s %9s %7s %7s %7s %7s %8s %8s %5s %6s %-6s %s\n",
        "run", "s", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "2xx", "409", "errors", "p95<50", "load avg start -> end"
    }
    {
      kv($0)
      if (f["db"] != db) next
      errors = f["server"] + f["client"] + f["other"] + f["socket"]
      met = (f["p95"] + 0 < target) ? "yes" : "NO"
      if (errors > 0) failed = 1
      if (f["run"] == "mixed" && met == "NO") missed = 1
      l0 = f["load0"]; l1 = f["load1"]; gsub(",", " ", l0); gsub(",", " ", l1)
      printf "%-10s %4.0f %9d %7.0f %7.1f %7.1f %7.1f %8.1f %8d %5d %6d %-6s %s -> %s\n",
        f["run"], f["secs"], f["requests"], f["rps"], f["p50"], f["p95"], f["p99"], f["max"],
        f["ok"], f["conflicts"], errors, met, l0, l1
      if (errors > 0) bad = bad sprintf("  %s: statuses %s, socket errors %d\n", f["run"], f["statuses"], f["socket"])
      if (f["run"] == "mixed") mix = sprintf("mixed run, requests sent by kind: %s\n", f["sent"])
    }
    END {
      printf "%s", mix
      if (bad != "") printf "errors:\n%s", bad
      print (failed + 0), (missed + 0) > verdict
    }' "$RESULTS"
  read -r failed missed <"$verdict"
  if [ -s "$OUT/shapes-$db.txt" ]; then
    echo "slowest request shapes alone ($OUT/shapes-$db.txt has all):"
    sed -n '1,9p' "$OUT/shapes-$db.txt" | sed 's/^/  /'
    tail -n 1 "$OUT/shapes-$db.txt" | sed 's/^/  /'
  fi
  rm -f "$verdict"
  [ "$failed" = 0 ] || FAILED=1
  [ "$missed" = 0 ] || MISSED=1
}

for db in $DBS; do bench_db "$db"; done
for db in $DBS; do report_db "$db"; done
echo
echo "figures: $RESULTS; hub logs: $OUT/hub-<db>.log; request shapes: $OUT/shapes-<db>.txt"
if [ "$FAILED" != 0 ]; then
  log "FAILED: errors during the runs (see above)"
  exit 1
fi
if [ "$MISSED" != 0 ]; then
  log "clean, but p95 missed $TARGET_P95_MS ms in a mixed run"
  exit 3
fi
log "passed: every mixed run met p95 < $TARGET_P95_MS ms"
