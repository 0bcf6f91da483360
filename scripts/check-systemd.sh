#!/usr/bin/env bash
# Checks the systemd units in systemd/: `systemd-analyze verify` (syntax,
# directives, the binary on ExecStart) and `systemd-analyze security
# --offline=true` with an exposure of at most 2.5 ("OK"). Also proves the
# score gate can fail, and that each ExecStart's flags are understood by the
# binary, and that systemd/dcmms.sysusers.conf creates every user and group
# the units name. Uses the binaries in target/debug (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${DCMMS_MAX_EXPOSURE:-2.5}
threshold=$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 }')
log() { printf '[check-systemd] %s\n' "$*"; }

if ! command -v systemd-analyze >/dev/null; then
  log "systemd-analyze is missing: installing systemd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
log "$(systemd-analyze --version | head -1)"

for b in dcmms-gateway dcmms-hub; do
  if [ ! -x "target/debug/$b" ]; then
    log "building $b"
    cargo build --locked --quiet -p "$b" --bin "$b"
  fi
done
bindir=$(cd target/debug && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The users and groups the units run as come from systemd/dcmms.sysusers.conf.
mkdir -p "$work/root/etc"
if ! out=$(systemd-sysusers --root="$work/root" "$PWD/systemd/dcmms.sysusers.conf" 2>&1); then
  printf '%s\n' "$out"
  log "FAIL: systemd-sysusers systemd/dcmms.sysusers.conf"
  exit 1
fi
for unit in systemd/*.service; do
  for key in User Group SupplementaryGroups; do
    for name in $(sed -n "s/^$key=//p" "$unit"); do
      db=group; [ "$key" = User ] && db=passwd
      if ! grep -q "^$name:" "$work/root/etc/$db"; then
        log "FAIL: $(basename "$unit"): $key=$name is not created by systemd/dcmms.sysusers.conf"
        exit 1
      fi
    done
  done
done
log "sysusers: every User/Group of the units is declared"
summary=()
for unit in systemd/*.service; do
  name=$(basename "$unit")
  # The unit as installed names /usr/bin; check it against the built binary.
  sed "s#/usr/bin/dcmms-#$bindir/dcmms-#" "$unit" >"$work/$name"
  log "verify $name"
  if ! out=$(systemd-analyze verify --man=no "$work/$name" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out"
    log "FAIL: systemd-analyze verify $name"
    exit 1
  fi

  # ExecStart's flags must be the binary's: with a missing config file the
  # daemon must complain about the file, not about its command line.
  exec_start=$(sed -n 's/^ExecStart=//p' "$work/$name")
  read -r -a argv <<<"${exec_start//\/etc\//$work/missing/}"
  if out=$("${argv[@]}" 2>&1); then
    log "FAIL: $name: ExecStart succeeded without its config file"
    exit 1
  fi
  if grep -qiE 'unexpected argument|usage:' <<<"$out"; then
    printf '%s\n' "$out"
    log "FAIL: $name: ExecStart's command line is not understood by the binary"
    exit 1
  fi

  report=$(systemd-analyze security --offline=true "$work/$name" 2>&1 || true)
  score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$report")
  log "$name exposure: ${score:-unknown}"
  if ! systemd-analyze security --offline=true --threshold="$threshold" "$work/$name" >/dev/null 2>&1; then
    printf '%s\n' "$report" | grep '✗' || true
    log "FAIL: $name exposure ${score:-?} is above $MAX_EXPOSURE"
    exit 1
  fi
  summary+=("$name=${score// /(}")

  # The gate itself: the same unit without its sandbox must fail it.
  grep -vE '^(Protect|Private|Restrict|SystemCall|Capability|NoNewPrivileges|Device|MemoryDeny|LockPersonality|RemoveIPC|KeyringMode|ProcSubset)' \
    "$work/$name" >"$work/bare-$name"
  if systemd-analyze security --offline=true --threshold="$threshold" "$work/bare-$name" >/dev/null 2>&1; then
    log "FAIL: the exposure gate passed an unsandboxed copy of $name"
    exit 1
  fi
done
log "ok: ${summary[*]/%/)} (limit $MAX_EXPOSURE)"
