#!/usr/bin/env bash
# A demo site on embedded defaults: a hub (SQLite), a gateway (redb buffer)
# and two simulated Modbus solar inverters, all on loopback. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=${DCMMS_DEMO_DIR:-.demo}
API_PORT=${DCMMS_DEMO_API_PORT:-8080}
MQTT_PORT=${DCMMS_DEMO_MQTT_PORT:-8883}
GW_PORT=${DCMMS_DEMO_GATEWAY_PORT:-9100}
SIM_PORT=${DCMMS_DEMO_SIM_PORT:-5020}

echo "building (release)..."
cargo build --release --locked --bin dcmms-hub --bin dcmms-gateway --bin dcmms-sim
BIN=target/release
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)

cat > "$DEMO/hub.toml" <<TOML
state_dir = "hub-state"
[database]
url = "sqlite://hub.db"
[broker]
listen = "127.0.0.1:$MQTT_PORT"
hostnames = ["localhost", "127.0.0.1"]
[api]
listen = "127.0.0.1:$API_PORT"
TOML

[ -f "$DEMO/certs/cert.pem" ] || "$BIN/dcmms-hub" enroll --config "$DEMO/hub.toml" \
  --site demo-site --gateway gw-01 --out "$DEMO/certs"

cp hil/points/solar-inverter.csv "$DEMO/solar-inverter.csv"
cat > "$DEMO/gateway.toml" <<TOML
site = "demo-site"
gateway = "gw-01"
state_dir = "gw-state"
[uplink]
host = "127.0.0.1"
port = $MQTT_PORT
bundle_dir = "certs"
status_interval_s = 5
[http]
listen = "127.0.0.1:$GW_PORT"
[[modbus]]
name = "inv-01"
address = "127.0.0.1:$SIM_PORT"
unit_id = 1
points_csv = "solar-inverter.csv"
[[modbus]]
name = "inv-02"
address = "127.0.0.1:$SIM_PORT"
unit_id = 2
points_csv = "solar-inverter.csv"
TOML

# The hub has no default password: its first administrator `admin` gets
# DCMMS_ADMIN_PASSWORD at the first start. The demo makes one up once and
# keeps it beside the demo's state (mode 0600).
if [ -z "${DCMMS_ADMIN_PASSWORD:-}" ]; then
  if [ ! -s "$DEMO/admin-password" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$DEMO/admin-password")
  fi
  DCMMS_ADMIN_PASSWORD=$(cat "$DEMO/admin-password")
fi
export DCMMS_ADMIN_PASSWORD

pids=()
cleanup() {
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

rm -f "$DEMO/hub.ready" "$DEMO/gateway.ready"
"$BIN/dcmms-sim" --listen "127.0.0.1:$SIM_PORT" --inverters 2 --start-hour 10 > "$DEMO/sim.log" 2>&1 & pids+=($!)
"$BIN/dcmms-hub" --config "$DEMO/hub.toml" --ready-file "$DEMO/hub.ready" > "$DEMO/hub.log" 2>&1 & pids+=($!)
for _ in $(seq 300); do [ -f "$DEMO/hub.ready" ] && break; sleep 0.1; done
[ -f "$DEMO/hub.ready" ] || { echo "hub did not start; see $DEMO/hub.log"; tail "$DEMO/hub.log"; exit 1; }
"$BIN/dcmms-gateway" --config "$DEMO/gateway.toml" --ready-file "$DEMO/gateway.ready" > "$DEMO/gateway.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -f "$DEMO/gateway.ready" ] && break; sleep 0.1; done
[ -f "$DEMO/gateway.ready" ] || { echo "gateway did not start; see $DEMO/gateway.log"; tail "$DEMO/gateway.log"; exit 1; }

TOKEN=""
if command -v curl > /dev/null; then
  TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$DCMMS_ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$API_PORT/api/v1/auth/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' || true)
fi

# The demo site's maintenance registers (hil/onboarding/): upsert, so a
# second run changes nothing; then one corrective work order per run.
if [ -n "$TOKEN" ]; then
  for kind in sites assets points parts; do
    out=$(curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/csv' \
      --data-binary "@hil/onboarding/$kind.csv" \
      "http://127.0.0.1:$API_PORT/api/v1/import/$kind?mode=upsert" || true)
    echo "import $kind: $out"
  done
  curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"site":"demo-site","asset":"inv-01","work_type":"corrective","priority":"p2","title":"Inverter 1: fan noise, check cooling"}' \
    "http://127.0.0.1:$API_PORT/api/v1/work-orders" || true
fi

FROM=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
cat <<TXT

dCMMS Edge demo site is running (logs in $DEMO/*.log):

  hub API       http://127.0.0.1:$API_PORT/api/v1/gateways
  telemetry     http://127.0.0.1:$API_PORT/api/v1/telemetry?point=demo-site/inv-01/ac_power&from=$FROM&to=$TO
  downsampled   http://127.0.0.1:$API_PORT/api/v1/telemetry?point=demo-site/inv-01/ac_power&from=$FROM&to=$TO&step=60s
  hub metrics   http://127.0.0.1:$API_PORT/metrics   (no login needed)
  API document  http://127.0.0.1:$API_PORT/api/v1/openapi.json
  work orders   http://127.0.0.1:$API_PORT/api/v1/work-orders?site=demo-site
  assets        http://127.0.0.1:$API_PORT/api/v1/assets?site=demo-site
  gateway       http://127.0.0.1:$GW_PORT/api/v1/status   (and /metrics)

The hub API needs a bearer token. Administrator: user admin, password in
$DEMO/admin-password (unless you set DCMMS_ADMIN_PASSWORD before the first run).
Log in:
  curl -s -H 'Content-Type: application/json' \\
    -d '{"username":"admin","password":"'"\$(cat $DEMO/admin-password)"'"}' \\
    http://127.0.0.1:$API_PORT/api/v1/auth/login
then send  -H "Authorization: Bearer <token>"  with each request.
TXT
if [ -n "$TOKEN" ]; then
  echo "A token for this session (12 h):"
  echo "  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:$API_PORT/api/v1/gateways"
fi
echo "Press Ctrl-C to stop."
wait
