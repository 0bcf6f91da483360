#!/usr/bin/env bash
# Gateway resource benchmark: RSS and CPU of the release gateway with a large
# device per field protocol of the default build (Modbus TCP, IEC 61850 and
# OPC UA, 1,000 points each by default), every point read (Modbus, IEC 61850)
# or changed and notified (OPC UA subscription) once a second, samples
# flowing through the ring buffer to a hub on loopback.
#
# The peers are the PyPI stacks of the driver tests (hil/bench/field_peers.py:
# pymodbus, and the libiec61850 server of pyiec61850-ng;
# hil/peers/opcua_server.py: asyncua). The baseline,
# measured in the same run, is the same gateway with the same uplink and no
# devices. Only the gateway process is measured.
#
# DNP3 is left out: its library's licence forbids publishing benchmark
# results of it (README, Licensing).
#
# Usage: scripts/bench-gateway.sh [--points N] [--seconds S] [--warmup S]
#   --points   points per device (default 1000)
#   --seconds  measuring window per phase (default 60)
#   --warmup   seconds before measuring (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

POINTS=1000
SECONDS_=60
WARMUP=20
die() { echo "bench-gateway: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --points) POINTS=${2:?}; shift 2 ;;
    --seconds) SECONDS_=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for v in "$POINTS" "$SECONDS_" "$WARMUP"; do
  [[ $v =~ ^[0-9]+$ ]] || die "numbers only, not $v"
done
PY=${DCMMS_PYTHON:-python3}
"$PY" -c 'import pymodbus, pyiec61850, asyncua' 2> /dev/null \
  || die "the Python peers are missing: run scripts/install-test-deps.sh"

echo "building the release gateway and hub..."
cargo build --release --locked -p dcmms-gateway -p dcmms-hub --bin dcmms-gateway --bin dcmms-hub
BIN=$ROOT/target/release

WORK=$(mktemp -d /tmp/dcmms-bench-gw.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
MQTT_PORT=$(free_port)
GW_PORT=$(free_port)

cat > "$WORK/hub.toml" << TOML
state_dir = "hub-state"
[database]
url = "sqlite://hub.db"
[broker]
listen = "127.0.0.1:$MQTT_PORT"
hostnames = ["localhost", "127.0.0.1"]
[api]
listen = "127.0.0.1:$API_PORT"
TOML
"$BIN/dcmms-hub" enroll --config "$WORK/hub.toml" --site bench --gateway gw-01 --out "$WORK/certs" > /dev/null
DCMMS_ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n') \
  "$BIN/dcmms-hub" --config "$WORK/hub.toml" --ready-file "$WORK/hub.ready" > "$WORK/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -f "$WORK/hub.ready" ] && break; sleep 0.1; done
[ -f "$WORK/hub.ready" ] || { tail "$WORK/hub.log"; die "hub did not start"; }

# One peer per protocol; its POINT lines become the device's point map.
start_peer() {
  local proto=$1
  mkfifo "$WORK/$proto.in"
  "$PY" hil/bench/field_peers.py "$proto" --points "$POINTS" < "$WORK/$proto.in" > "$WORK/$proto.out" 2> "$WORK/$proto.err" &
  pids+=($!)
  # Holding the fifo open keeps the peer's stdin open until we exit.
  exec {fd}> "$WORK/$proto.in"
  for _ in $(seq 600); do grep -q '^END' "$WORK/$proto.out" 2> /dev/null && break; sleep 0.1; done
  grep -q '^END' "$WORK/$proto.out" || { cat "$WORK/$proto.err" >&2; die "$proto peer did not start"; }
  echo "  $proto peer on port $(sed -n 's/^PORT //p' "$WORK/$proto.out"), $(grep -c '^POINT' "$WORK/$proto.out") points"
}
echo "starting peers ($POINTS points each)..."
for p in modbus iec61850; do start_peer "$p"; done
# The OPC UA server changes every variable once a second.
"$PY" hil/peers/opcua_server.py --bulk "$POINTS" --period-ms 1000 --pki "$WORK/opcua-server-pki" \
  > "$WORK/opcua.out" 2> "$WORK/opcua.err" &
pids+=($!)
for _ in $(seq 600); do grep -q '^READY' "$WORK/opcua.out" 2> /dev/null && break; sleep 0.1; done
grep -q '^READY' "$WORK/opcua.out" || { cat "$WORK/opcua.err" >&2; die "opcua peer did not start"; }
OPCUA_ENDPOINT=$(sed -n 's/^READY //p' "$WORK/opcua.out")
echo "  opcua peer at $OPCUA_ENDPOINT, $POINTS variables"
PROTOCOLS=(modbus iec61850 opcua)
port_of() { sed -n 's/^PORT //p' "$WORK/$1.out"; }
points_of() { sed -n 's/^POINT //p' "$WORK/$1.out"; }

{ echo "name,table,address,data_type"; points_of modbus | awk '{print $1",holding,"$2",i16"}'; } > "$WORK/modbus.csv"
{ echo "name,reference,fc"; points_of iec61850 | awk '{print $1","$2",MX"}'; } > "$WORK/iec61850.csv"
{ echo "name,node_id,sampling_interval_ms"; for ((i = 0; i < POINTS; i++)); do printf 'v%04d,ns=2;s=Bulk.V%04d,1000\n' "$i" "$i"; done; } > "$WORK/opcua.csv"

gateway_config() { # $1 = file, $2 = with devices (1/0)
  cat > "$1" << TOML
site = "bench"
gateway = "gw-01"
state_dir = "gw-state-$2"
[uplink]
host = "127.0.0.1"
port = $MQTT_PORT
bundle_dir = "certs"
[http]
listen = "127.0.0.1:$GW_PORT"
TOML
  [ "$2" = 1 ] || return 0
  cat >> "$1" << TOML
[[modbus]]
name = "modbus-01"
address = "127.0.0.1:$(port_of modbus)"
unit_id = 1
poll_interval_ms = 1000
points_csv = "modbus.csv"

[[iec61850]]
name = "iec61850-01"
address = "127.0.0.1:$(port_of iec61850)"
ied_name = "IED1"
poll_interval_ms = 1000
points_file = "iec61850.csv"

[[opcua]]
name = "opcua-01"
endpoint = "$OPCUA_ENDPOINT"
publishing_interval_ms = 1000
pki_dir = "opcua-pki"
points_file = "opcua.csv"

TOML
}

metric() { # sum of a Prometheus counter/gauge family
  curl -fsS "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m || index($1, m"{") == 1 {s += $2} END {printf "%.0f\n", s}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
TCK=$(getconf CLK_TCK)

# Runs one phase; sets RSS_KIB, HWM_KIB, CPU_PCT, RATE, CONNECTED.
phase() { # $1 = label, $2 = with devices
  local cfg=$WORK/gateway-$2.toml
  gateway_config "$cfg" "$2"
  rm -f "$WORK/gw.ready"
  "$BIN/dcmms-gateway" --config "$cfg" --ready-file "$WORK/gw.ready" > "$WORK/gateway-$2.log" 2>&1 &
  local gw=$!
  for _ in $(seq 300); do [ -f "$WORK/gw.ready" ] && break; sleep 0.1; done
  [ -f "$WORK/gw.ready" ] || { tail "$WORK/gateway-$2.log"; die "gateway did not start ($1)"; }
  echo "$1: warming up ${WARMUP}s, then measuring ${SECONDS_}s..."
  sleep "$WARMUP"
  local t0 c0 s0 t1 c1 s1
  t0=$(date +%s.%N); c0=$(cpu_ticks $gw); s0=$(metric dcmms_gateway_samples_committed_total)
  local left=$SECONDS_
  while [ "$left" -gt 0 ]; do
    local step=$((left < 15 ? left : 15))
    sleep "$step"; left=$((left - step))
    echo "  ... $((SECONDS_ - left))/${SECONDS_}s, samples committed $(metric dcmms_gateway_samples_committed_total), RSS $(($(status_kib $gw VmRSS) / 1024)) MiB"
  done
  t1=$(date +%s.%N); c1=$(cpu_ticks $gw); s1=$(metric dcmms_gateway_samples_committed_total)
  RSS_KIB=$(status_kib $gw VmRSS)
  HWM_KIB=$(status_kib $gw VmHWM)
  CONNECTED=$(metric dcmms_gateway_device_connected)
  CPU_PCT=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$TCK" 'BEGIN {printf "%.1f", 100 * (b - a) / hz / (t1 - t0)}')
  RATE=$(awk -v a="$s0" -v b="$s1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.0f", (b - a) / (t1 - t0)}')
  kill -TERM $gw; wait $gw || true
}

phase "baseline (no devices)" 0
B_RSS=$RSS_KIB B_HWM=$HWM_KIB B_CPU=$CPU_PCT
phase "${#PROTOCOLS[@]} devices x $POINTS points" 1
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
cat << TXT

gateway resources, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)
                       RSS MiB  peak MiB  CPU % of one core  samples/s
  baseline, no devices  $(printf '%7s %9s %18s %10s' "$(mib $B_RSS)" "$(mib $B_HWM)" "$B_CPU" 0)
  ${#PROTOCOLS[@]} x $POINTS points      $(printf '%7s %9s %18s %10s' "$(mib $RSS_KIB)" "$(mib $HWM_KIB)" "$CPU_PCT" "$RATE")
  devices connected: $CONNECTED of ${#PROTOCOLS[@]} (${PROTOCOLS[*]}); RSS ratio to baseline $(awk -v a="$RSS_KIB" -v b="$B_RSS" 'BEGIN {printf "%.2f", a / b}')x
TXT
[ "$CONNECTED" = "${#PROTOCOLS[@]}" ] || die "not every device was connected: see the gateway log"
