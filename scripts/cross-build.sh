#!/usr/bin/env bash
# Cross builds of the gateway firmware for ARM Linux boards, without
# containers: Debian's GNU cross toolchains link, qemu-user runs the result.
#
#   scripts/cross-build.sh [TARGET...]
#
# TARGET is aarch64-unknown-linux-gnu and/or armv7-unknown-linux-gnueabihf
# (default: both). For each target it
#   1. builds `dcmms-gateway` with the `firmware` profile (LTO, stripped) and
#      checks with `file` that the binary is for that architecture and stripped;
#   2. runs `--version` and `generate-config` under qemu;
#   3. times start-up under qemu: from spawn until the ready file appears and
#      /health answers (a config without devices, an uplink to a closed
#      loopback port, a certificate bundle from the host-built hub), then
#      stops the gateway with SIGTERM and checks it exits 0;
#   4. runs the unit tests and the pure integration tests under qemu.
# Missing Debian packages and rustup targets are installed first.
#
# Environment: DCMMS_CROSS_STARTUP_RUNS (default 5) start-ups to time;
# DCMMS_CROSS_SKIP_TESTS=1 skips step 4; DCMMS_CROSS_SKIP_SLOW_TESTS=1 leaves
# out the ring buffer's power-cut test (4-7 minutes per target under qemu).
# Linker and runner per target come from .cargo/config.toml; cross-rs users
# see cross.toml instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ALL_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
RUNS=${DCMMS_CROSS_STARTUP_RUNS:-5}
SKIP_TESTS=${DCMMS_CROSS_SKIP_TESTS:-0}
SKIP_SLOW=${DCMMS_CROSS_SKIP_SLOW_TESTS:-0}
# The gateway's uplink goes here: nothing listens on port 1, so it keeps
# retrying with backoff, which is what a gateway does while the hub is away.
CLOSED_PORT=1

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
info() { printf '   %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now_ns() { date +%s%N; }
# Seconds with one decimal between two now_ns values.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

SCRIPT_START=$(now_ns)

if [ $# -eq 0 ]; then
  TARGETS=("${ALL_TARGETS[@]}")
else
  TARGETS=("$@")
fi

# Per-target facts: Debian packages, qemu runner, sysroot, cross binutils
# prefix and what `file` says about the architecture.
target_facts() {
  case "$1" in
    aarch64-unknown-linux-gnu)
      PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
      QEMU=qemu-aarch64-static
      SYSROOT=/usr/aarch64-linux-gnu
      PREFIX=aarch64-linux-gnu-
      FILE_ARCH='ELF 64-bit LSB .*ARM aarch64'
      ;;
    armv7-unknown-linux-gnueabihf)
      PKGS=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
      QEMU=qemu-arm-static
      SYSROOT=/usr/arm-linux-gnueabihf
      PREFIX=arm-linux-gnueabihf-
      FILE_ARCH='ELF 32-bit LSB .*ARM, EABI5'
      ;;
    *) die "unsupported target $1 (supported: ${ALL_TARGETS[*]})" ;;
  esac
}
for t in "${TARGETS[@]}"; do target_facts "$t"; done

# ---------------------------------------------------------------- tools
step "tools"
want=(qemu-user-static file curl)
for t in "${TARGETS[@]}"; do
  target_facts "$t"
  want+=("${PKGS[@]}")
done
missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]}"
    SUDO=(sudo)
  fi
  info "installing ${missing[*]}"
  t0=$(now_ns)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
  info "installed in $(secs "$t0" "$(now_ns)") s"
else
  info "Debian packages present: ${want[*]}"
fi
installed_targets=$(rustup target list --installed)
for t in "${TARGETS[@]}"; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    info "rustup target add $t"
    rustup target add "$t"
  fi
done
info "$(rustc --version)"

# ---------------------------------------------------------------- scratch
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dcmms-cross.XXXXXX")
GW_PID=
cleanup() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -KILL "$GW_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A certificate bundle for the start-up test, issued by the host-built hub.
step "certificate bundle from the host hub"
t0=$(now_ns)
cargo build --locked -p dcmms-hub --bin dcmms-hub
cat >"$TMP/hub.toml" <<'TOML'
state_dir = "hub-state"
[database]
url = "sqlite://hub.db"
[broker]
listen = "127.0.0.1:0"
hostnames = ["localhost", "127.0.0.1"]
[api]
listen = "127.0.0.1:0"
TOML
"$ROOT/target/debug/dcmms-hub" enroll --config "$TMP/hub.toml" \
  --site s --gateway g --out "$TMP/certs" >/dev/null
info "bundle in $(secs "$t0" "$(now_ns)") s: $(cd "$TMP/certs" && echo *)"

# ---------------------------------------------------------------- per target
declare -A R_SIZE R_BUILD R_STARTUP R_TESTS R_GLIBC
FAILED=0

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One start-up: spawn under qemu, wait for the ready file and /health, stop
# with SIGTERM. Sets STARTUP_MS to the milliseconds from spawn to /health
# answering. (Not run in a subshell, so that the EXIT trap sees GW_PID.)
STARTUP_MS=
startup_once() {
  local run=$1 ready="$TMP/run/ready.json" log="$TMP/run/gateway-$1.log"
  rm -f "$ready"
  local t0 t1 addr rc i
  t0=$(now_ns)
  "$QEMU" -L "$SYSROOT" "$BIN" --config "$TMP/run/gateway.toml" --ready-file "$ready" \
    >"$log" 2>&1 &
  GW_PID=$!
  for ((i = 0; i < 6000; i++)); do
    [ -s "$ready" ] && break
    kill -0 "$GW_PID" 2>/dev/null || { cat "$log" >&2; die "gateway exited before it was ready"; }
    sleep 0.005
  done
  [ -s "$ready" ] || { cat "$log" >&2; die "no ready file after 30 s"; }
  addr=$(sed -E 's/.*"http":"([^"]+)".*/\1/' "$ready")
  for ((i = 0; i < 1000; i++)); do
    curl -fsS -o /dev/null "http://$addr/health" 2>/dev/null && break
    sleep 0.005
  done
  t1=$(now_ns)
  curl -fsS -o /dev/null "http://$addr/health" || { cat "$log" >&2; die "/health does not answer"; }
  kill -TERM "$GW_PID"
  for ((i = 0; i < 500; i++)); do
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.01
  done
  if kill -0 "$GW_PID" 2>/dev/null; then
    kill -KILL "$GW_PID"
    cat "$log" >&2
    die "gateway still running 5 s after SIGTERM"
  fi
  rc=0
  wait "$GW_PID" || rc=$?
  GW_PID=
  [ "$rc" -eq 0 ] || { cat "$log" >&2; die "gateway exited with $rc after SIGTERM"; }
  STARTUP_MS=$(((t1 - t0) / 1000000))
}

for T in "${TARGETS[@]}"; do
  target_facts "$T"
  BIN="$ROOT/target/$T/firmware/dcmms-gateway"

  step "$T: firmware build"
  t0=$(now_ns)
  cargo build --locked --profile firmware -p dcmms-gateway --target "$T"
  R_BUILD[$T]=$(secs "$t0" "$(now_ns)")
  size=$(stat -c %s "$BIN")
  R_SIZE[$T]=$size
  info "built in ${R_BUILD[$T]} s: $BIN"
  info "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
  desc=$(file -b "$BIN")
  info "file: $desc"
  grep -Eq "$FILE_ARCH" <<<"$desc" || die "$BIN is not a $T executable"
  if grep -q 'not stripped' <<<"$desc" || ! grep -q 'stripped' <<<"$desc"; then
    die "$BIN is not stripped"
  fi
  R_GLIBC[$T]=$("${PREFIX}objdump" -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
  info "newest glibc symbol version needed: ${R_GLIBC[$T]}"

  step "$T: --version and generate-config under qemu"
  version=$("$QEMU" -L "$SYSROOT" "$BIN" --version)
  info "$version"
  [[ "$version" == dcmms-gateway\ * ]] || die "unexpected --version output: $version"
  "$QEMU" -L "$SYSROOT" "$BIN" generate-config >"$TMP/generated.toml"
  cmp -s "$TMP/generated.toml" gateway/examples/gateway.toml ||
    die "generate-config differs from gateway/examples/gateway.toml"
  info "generate-config: $(wc -l <"$TMP/generated.toml") lines, same as gateway/examples/gateway.toml"

  step "$T: start-up under qemu ($RUNS runs)"
  rm -rf "$TMP/run"
  mkdir -p "$TMP/run"
  cp -r "$TMP/certs" "$TMP/run/certs"
  cat >"$TMP/run/gateway.toml" <<TOML
site = "s"
gateway = "g"
state_dir = "state"
[uplink]
host = "127.0.0.1"
port = $CLOSED_PORT
bundle_dir = "certs"
[http]
listen = "127.0.0.1:0"
TOML
  info "$("$QEMU" -L "$SYSROOT" "$BIN" --config "$TMP/run/gateway.toml" --check-config)"
  times=()
  for ((r = 1; r <= RUNS; r++)); do
    startup_once "$r"
    ms=$STARTUP_MS
    times+=("$ms")
    if [ "$r" -eq 1 ]; then
      info "run $r: $ms ms (new buffer), exit 0 after SIGTERM"
    else
      info "run $r: $ms ms (existing buffer), exit 0 after SIGTERM"
    fi
  done
  min=$(printf '%s\n' "${times[@]}" | sort -n | head -n 1)
  med=$(printf '%s\n' "${times[@]}" | median)
  R_STARTUP[$T]=$med
  info "start-up to /health: min $min ms, median $med ms"

  if [ "$SKIP_TESTS" = 1 ]; then
    R_TESTS[$T]="skipped"
    continue
  fi
  step "$T: tests under qemu"
  # Unit tests of the firmware crates, the ring buffer's integration tests
  # (in-memory and temp-dir disks) and the Modbus driver tests against
  # in-process Rust servers. The pymodbus peer test needs Python: not here.
  test_runs=(
    "-p dcmms-shared -p dcmms-protocols-core -p dcmms-modbus -p dcmms-gateway --lib"
    "-p dcmms-gateway --test ring_basic --test ring_model --test ring_power_loss"
    "-p dcmms-modbus --test dead_device --test misbehaving_server"
  )
  if [ "$SKIP_SLOW" = 1 ]; then
    test_runs[1]="-p dcmms-gateway --test ring_basic --test ring_model"
  fi
  passed=0
  failed=0
  runs_failed=0
  k=0
  tt0=$(now_ns)
  for args in "${test_runs[@]}"; do
    k=$((k + 1))
    log="$TMP/test-$T-$k.log"
    info "cargo test --locked --target $T $args"
    t0=$(now_ns)
    # shellcheck disable=SC2086 # $args is a list of words
    if cargo test --locked --target "$T" $args 2>&1 | tee "$log"; then
      :
    else
      FAILED=1
      runs_failed=$((runs_failed + 1))
      info "FAILED: cargo test --target $T $args"
    fi
    info "took $(secs "$t0" "$(now_ns)") s"
    # "test result: ok. 25 passed; 0 failed; ..." once per test binary.
    results=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" || true)
    p=$(awk '{ s += $4 } END { print s + 0 }' <<<"$results")
    f=$(awk '{ s += $6 } END { print s + 0 }' <<<"$results")
    passed=$((passed + p))
    failed=$((failed + f))
  done
  R_TESTS[$T]="$passed passed, $failed failed ($(secs "$tt0" "$(now_ns)") s)"
  if [ "$runs_failed" -gt 0 ]; then
    R_TESTS[$T]+="; $runs_failed of ${#test_runs[@]} cargo test runs failed"
  fi
  [ "$failed" -eq 0 ] || FAILED=1
done

# ---------------------------------------------------------------- summary
step "summary"
printf '%-32s %-22s %-12s %-10s %-14s %s\n' target "stripped size" build "start-up" "glibc needed" tests
for T in "${TARGETS[@]}"; do
  printf '%-32s %-22s %-12s %-10s %-14s %s\n' "$T" \
    "${R_SIZE[$T]} B ($(awk -v s="${R_SIZE[$T]}" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)" \
    "${R_BUILD[$T]} s" "${R_STARTUP[$T]} ms" "${R_GLIBC[$T]#GLIBC_}" "${R_TESTS[$T]}"
done
info "start-up: median of $RUNS, spawn under qemu until the ready file and /health"
info "total wall time: $(secs "$SCRIPT_START" "$(now_ns)") s"
if [ "$FAILED" -ne 0 ]; then
  die "some tests failed"
fi
