#!/usr/bin/env bash
# Installs everything the test suite needs beyond cargo: the Python peers
# (hil/requirements.txt), socat, PostgreSQL server binaries, and cargo-fuzz with a nightly
# toolchain for the fuzz smoke run. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-test-deps] %s\n' "$*"; }

PY=${DCMMS_PYTHON:-python3}
# Reinstall whenever hil/requirements.txt names something not installed at
# that exact version (pip check of the pinned lines).
if ! "$PY" - hil/requirements.txt <<'PYEOF' 2>/dev/null; then
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line or "==" not in line:
        continue
    name, want = [x.strip() for x in line.split("==", 1)]
    try:
        ok &= version(name) == want
    except PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PYEOF
  log "installing Python peers from hil/requirements.txt"
  "$PY" -m pip install --quiet --disable-pip-version-check -r hil/requirements.txt
fi

need_apt=()
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} with apt-get"
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null
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
