#!/usr/bin/env bash
# Fuzzes the hub's HTTP API with schemathesis against the OpenAPI document
# the hub serves (/api/v1/openapi.json), so routes added to the document are
# fuzzed without changing this script.
#
# Starts a throwaway hub on loopback port 0 (SQLite, or PostgreSQL in a
# throwaway cluster with --db postgres), seeds it through the API
# (hil/apifuzz/seed.py), runs every schemathesis check over every operation
# (coverage, fuzzing and stateful phases), prints a summary, stops the hub and
# exits non-zero when a check failed, schemathesis errored, the time budget
# ran out, or the hub crashed or panicked. Reports go to target/api-fuzz/<db>/:
# junit.xml, report.json (schemathesis's run report), events.ndjson (every
# request and response), schemathesis.log, summary.txt, hub.log and
# filter-stats.json (failures dropped by the hooks as refusals no request
# schema can express, by reason).
#
# Tokens: generated requests carry tokens from self-healing fuzz accounts
# (hil/apifuzz/fuzzlib.py), so logout, password changes and user
# disabling are fuzzed like everything else without locking the run out.
#
# Usage: scripts/api-fuzz.sh [--db sqlite|postgres]
# Environment:
#   DCMMS_FUZZ_EXAMPLES  test cases per operation and phase (default 50)
#   DCMMS_FUZZ_MAX_TIME  seconds for seeding and fuzzing together (default 240;
#                        the defaults take about 90 s per database on two
#                        cores, so both databases stay within 8 minutes)
#   DCMMS_FUZZ_WORKERS   concurrent schemathesis workers (default 2)
#   DCMMS_FUZZ_SEED      schemathesis seed, to replay a run
#   DCMMS_FUZZ_OUT       report folder (default target/api-fuzz)
#   DCMMS_HUB_BIN        hub binary to test (default: target/debug/dcmms-hub,
#                        built when older than the sources)
#   DCMMS_PYTHON         Python interpreter (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[api-fuzz] %s\n' "$*"; }
die() {
  printf '[api-fuzz] error: %s\n' "$*" >&2
  exit 2
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DB=sqlite
while [ $# -gt 0 ]; do
  case $1 in
    --db) [ $# -ge 2 ] || die "--db needs sqlite or postgres"; DB=$2; shift 2 ;;
    --db=*) DB=${1#--db=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
case $DB in sqlite | postgres) ;; *) die "--db must be sqlite or postgres, not $DB" ;; esac

EXAMPLES=${DCMMS_FUZZ_EXAMPLES:-50}
MAX_TIME=${DCMMS_FUZZ_MAX_TIME:-240}
WORKERS=${DCMMS_FUZZ_WORKERS:-2}
PY=${DCMMS_PYTHON:-python3}
OUT=${DCMMS_FUZZ_OUT:-$ROOT/target/api-fuzz}/$DB
for n in "$EXAMPLES" "$MAX_TIME" "$WORKERS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "DCMMS_FUZZ_EXAMPLES, DCMMS_FUZZ_MAX_TIME and DCMMS_FUZZ_WORKERS must be positive integers"
done

# ---- schemathesis ------------------------------------------------------------
if ! "$PY" -c 'import schemathesis, sys; sys.exit(0 if schemathesis.__version__.startswith("4.") else 1)' 2>/dev/null; then
  log "installing schemathesis from hil/apifuzz/requirements.txt"
  pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@" -r hil/apifuzz/requirements.txt; }
  if ! err=$(pip_install 2>&1); then
    if grep -q externally-managed-environment <<<"$err"; then
      pip_install --break-system-packages
    else
      printf '%s\n' "$err" >&2
      die "pip could not install schemathesis"
    fi
  fi
fi
ST_VERSION=$("$PY" -c 'import schemathesis; print(schemathesis.__version__)')

# The hooks drop refusals no request schema can express; their own test
# checks that they drop those and nothing else before they are trusted.
if ! out=$(cd hil/apifuzz && PYTHONDONTWRITEBYTECODE=1 "$PY" -m unittest -q test_hooks 2>&1); then
  printf '%s\n' "$out" >&2
  die "the test of hil/apifuzz/dcmms_fuzz_hooks.py failed"
fi

# ---- the hub binary ----------------------------------------------------------
if [ -n "${DCMMS_HUB_BIN:-}" ]; then
  HUB_BIN=$DCMMS_HUB_BIN
  [ -x "$HUB_BIN" ] || die "DCMMS_HUB_BIN=$HUB_BIN is not an executable"
else
  HUB_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/dcmms-hub
  stale=
  if [ ! -x "$HUB_BIN" ]; then
    stale=missing
  else
    stale=$(find hub shared Cargo.toml Cargo.lock -newer "$HUB_BIN" -type f \
      \( -name '*.rs' -o -name '*.sql' -o -name '*.toml' -o -name Cargo.lock \) \
      -not -path '*/fuzz/*' -print -quit)
  fi
  if [ -n "$stale" ]; then
    log "building dcmms-hub ($stale is newer than the binary)"
    cargo build --locked -p dcmms-hub --bin dcmms-hub
  fi
fi

# ---- clean-up ----------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dcmms-apifuzz.XXXXXX")
PG_DIR='' PG_BIN='' HUB_PID=''
RUN_AS=()
rm -rf "$OUT"
mkdir -p "$OUT"
HUB_LOG=$OUT/hub.log

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
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
cleanup() {
  stop_hub || true
  stop_pg
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- the database ------------------------------------------------------------
if [ "$DB" = postgres ]; then
  # The newest installed server version.
  PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | while read -r d; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | tail -n 1)
  [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/install-test-deps.sh)"
  # PostgreSQL refuses to run as root: as root, run it as user postgres.
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dcmms-apifuzz-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres is needed to run PostgreSQL as non-root"
    RUN_AS=(runuser -u postgres --)
    chown postgres: "$PG_DIR"
  fi
  "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --no-sync \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  PG_PORT=
  for _ in 1 2 3; do # a free port may be taken before the server binds it
    port=$(free_port)
    if "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
      -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1; then
      PG_PORT=$port
      break
    fi
  done
  [ -n "$PG_PORT" ] || { cat "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  "${RUN_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres dcmms
  DB_URL=postgres://postgres@127.0.0.1:$PG_PORT/dcmms
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
else
  DB_URL=sqlite://hub.db
fi

# ---- the hub -----------------------------------------------------------------
cat >"$WORK/hub.toml" <<EOF
state_dir = "state"
[database]
url = "$DB_URL"
[broker]
listen = "127.0.0.1:0"
hostnames = ["localhost", "127.0.0.1"]
[api]
listen = "127.0.0.1:0"
EOF
ADMIN_PASSWORD=fz-admin-$("$PY" -c 'import secrets; print(secrets.token_hex(12))')
DCMMS_ADMIN_PASSWORD=$ADMIN_PASSWORD "$HUB_BIN" --config "$WORK/hub.toml" --ready-file "$WORK/hub.ready" \
  >"$HUB_LOG" 2>&1 </dev/null &
HUB_PID=$!
API=
for ((i = 0; i < 600; i++)); do
  if ! kill -0 "$HUB_PID" 2>/dev/null; then
    tail -n 40 "$HUB_LOG" >&2
    die "the hub exited before it was ready"
  fi
  if [ -s "$WORK/hub.ready" ] &&
    API=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["api"])' "$WORK/hub.ready" 2>/dev/null); then
    break
  fi
  sleep 0.1
done
[ -n "$API" ] || { tail -n 40 "$HUB_LOG" >&2; die "no ready file from the hub within 60 s"; }
BASE=http://$API
log "hub $("$HUB_BIN" --version | awk '{print $NF}') on $BASE ($DB), schemathesis $ST_VERSION"

# ---- seed and fuzz -----------------------------------------------------------
export PYTHONPATH=$ROOT/hil/apifuzz${PYTHONPATH:+:$PYTHONPATH}
export SCHEMATHESIS_HOOKS=dcmms_fuzz_hooks
export DCMMS_FUZZ_IDENTITIES=$WORK/identities.json
export DCMMS_FUZZ_AUTH_STATS=$OUT/auth-stats.json
export DCMMS_FUZZ_FILTER_STATS=$OUT/filter-stats.json
START=$SECONDS
timeout "$MAX_TIME" "$PY" hil/apifuzz/seed.py "$BASE" "$ADMIN_PASSWORD" "$DCMMS_FUZZ_IDENTITIES" ||
  { tail -n 40 "$HUB_LOG" >&2; die "seeding failed"; }
left=$((MAX_TIME - (SECONDS - START)))
[ "$left" -gt 0 ] || die "the time budget (DCMMS_FUZZ_MAX_TIME=$MAX_TIME s) was spent seeding"

"$PY" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$BASE/api/v1/openapi.json" "$OUT/openapi.json"
st_args=(
  run "$BASE/api/v1/openapi.json"
  # Schemathesis leaves out the operation that served the document unless a
  # filter names it; this filter selects every path, so that one is fuzzed too.
  --include-path-regex '^/'
  --checks all
  --max-examples "$EXAMPLES"
  --workers "$WORKERS"
  --report 'junit,json,ndjson'
  --report-dir "$OUT"
  --report-junit-path "$OUT/junit.xml"
  --report-json-path "$OUT/report.json"
  --report-ndjson-path "$OUT/events.ndjson"
)
[ -z "${DCMMS_FUZZ_SEED:-}" ] || st_args+=(--seed "$DCMMS_FUZZ_SEED")
log "fuzzing: $EXAMPLES examples per operation, at most $left s"
set +e
# SIGINT at the deadline lets schemathesis stop cleanly and still write its reports.
(cd "$WORK" && timeout -s INT -k 30 "$left" "$PY" -m schemathesis.cli \
  --config-file "$ROOT/hil/apifuzz/schemathesis.toml" "${st_args[@]}") 2>&1 | tee "$OUT/schemathesis.log"
st_rc=${PIPESTATUS[0]}
set -e

# ---- verdict -----------------------------------------------------------------
failed=0
if [ "$st_rc" = 124 ]; then
  log "FAILED: the time budget ran out before schemathesis finished (raise DCMMS_FUZZ_MAX_TIME or lower DCMMS_FUZZ_EXAMPLES)"
  failed=1
elif [ "$st_rc" != 0 ]; then
  failed=1
fi
hub_alive=1
kill -0 "$HUB_PID" 2>/dev/null || hub_alive=0
hub_rc=0
stop_hub || hub_rc=$?
if [ "$hub_alive" = 0 ] || [ "$hub_rc" != 0 ]; then
  log "FAILED: the hub $([ "$hub_alive" = 0 ] && echo "died during the run" || echo "exited with status $hub_rc at SIGTERM")"
  failed=1
fi
if grep -q 'panicked' "$HUB_LOG"; then
  log "FAILED: the hub panicked (see $HUB_LOG)"
  failed=1
fi
echo
if [ -f "$OUT/report.json" ]; then
  "$PY" hil/apifuzz/summary.py "$OUT" "$DB" || failed=1
else
  log "FAILED: schemathesis wrote no report"
  failed=1
fi
errors=$(grep -c ' ERROR ' "$HUB_LOG" || true)
echo "hub log: $errors ERROR lines of $(wc -l <"$HUB_LOG"); seeding and fuzzing took $((SECONDS - START)) s"
# Internal errors are logged, never sent: show them even when every check passed.
[ "$errors" = 0 ] || grep ' ERROR ' "$HUB_LOG" | head -n 20
echo "reports: $OUT"
if [ "$failed" != 0 ]; then
  echo "---- hub log, last 60 lines ($HUB_LOG)"
  tail -n 60 "$HUB_LOG"
  exit 1
fi
log "passed"
