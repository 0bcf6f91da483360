#!/usr/bin/env bash
# Installs everything the test suite needs beyond cargo: the Python peers
# (pymodbus), PostgreSQL server binaries, and cargo-fuzz with a nightly
# toolchain for the fuzz smoke run. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-test-deps] %s\n' "$*"; }

PY=${DCMMS_PYTHON:-python3}
if ! "$PY" -c 'import pymodbus, sys; sys.exit(0 if pymodbus.__version__.startswith("3.16") else 1)' 2>/dev/null; then
  log "installing Python peers from hil/requirements.txt"
  "$PY" -m pip install --quiet --disable-pip-version-check -r hil/requirements.txt
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing PostgreSQL server binaries"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

if [ "${DCMMS_SKIP_FUZZ:-0}" != "1" ]; then
  if ! rustup toolchain list | grep -q nightly; then
    log "installing the nightly toolchain for cargo-fuzz"
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
fi
log "done"
