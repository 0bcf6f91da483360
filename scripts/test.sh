#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/integration/end-to-end
# tests (against pymodbus and a throwaway PostgreSQL cluster), checks of the
# systemd units and the Yocto layer, a schemathesis run against the hub API
# on both databases, then a bounded fuzz run of every decoder of untrusted bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "test dependencies"
scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The DNP3 driver is only in gateways built with the `dnp3` feature.
cargo clippy -p dcmms-gateway --features dnp3 --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
step "cargo test (gateway with the dnp3 feature)"
cargo test -p dcmms-gateway --features dnp3 --locked

if [ "${DCMMS_SKIP_API_FUZZ:-0}" != "1" ]; then
  step "API fuzz (schemathesis, SQLite)"
  scripts/api-fuzz.sh --db sqlite
  step "API fuzz (schemathesis, PostgreSQL)"
  scripts/api-fuzz.sh --db postgres
fi

step "systemd units"
scripts/check-systemd.sh

step "Yocto layer"
scripts/check-yocto.sh

if [ "${DCMMS_SKIP_FUZZ:-0}" != "1" ]; then
  step "fuzz smoke run"
  scripts/fuzz.sh "${DCMMS_FUZZ_SECONDS:-30}"
fi
step "all tests passed"
