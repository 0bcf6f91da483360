#!/usr/bin/env bash
# Checks the Yocto layer yocto/meta-dcmms without bitbake:
#  1. its crate list (dcmms-gateway-crates.inc) matches Cargo.lock;
#  2. the generator's --check catches a missing, an extra and a changed crate;
#  3. the appliance gateway.toml is valid TOML with the appliance paths, and,
#     when a built dcmms-gateway is at hand, passes --check-config up to the
#     certificate bundle (which only enrolment provides);
#  4. the recipe agrees with the source tree (licence checksum, PV, unit);
#  5. oelint-adv finds no error or warning in the layer's metadata, for every
#     release in LAYERSERIES_COMPAT.
# Installs oelint-adv 9.x from PyPI when it is missing. Needs Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER=yocto/meta-dcmms
GEN=$LAYER/scripts/gen-crates-inc.py
INC=$LAYER/recipes-dcmms/dcmms-gateway/dcmms-gateway-crates.inc
APPLIANCE_TOML=$LAYER/recipes-dcmms/dcmms-gateway/files/gateway.toml
PY=${DCMMS_PYTHON:-python3}
OELINT_SPEC='oelint-adv>=9,<10'

log() { printf '[check-yocto] %s\n' "$*"; }
fail() { printf '[check-yocto] FAILED: %s\n' "$*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); log "ok: $*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- oelint-adv ---------------------------------------------------------
oelint_ok() {
  "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("oelint-adv").split(".")[0] == "9" else 1)
EOF
}
if ! oelint_ok; then
  log "installing $OELINT_SPEC"
  if ! "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$OELINT_SPEC" \
      </dev/null >"$tmp/pip.log" 2>&1; then
    if grep -q externally-managed "$tmp/pip.log"; then
      "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --break-system-packages \
        "$OELINT_SPEC" </dev/null
    else
      cat "$tmp/pip.log" >&2
      fail "pip could not install $OELINT_SPEC"
    fi
  fi
  oelint_ok || fail "oelint-adv 9.x is still not importable by $PY"
fi
OELINT_VERSION=$("$PY" -m oelint_adv --version </dev/null)

# --- 1. crate list ------------------------------------------------------
"$PY" "$GEN" --check </dev/null | tee "$tmp/check.out"
crates=$(sed -n 's/.*: \([0-9]*\) crates, matches.*/\1/p' "$tmp/check.out")
pass "crate list matches Cargo.lock ($crates crates)"

# --- 2. generator self-test ---------------------------------------------
# expect_mismatch NAME PATTERN: --check on $tmp/case.inc fails and says PATTERN.
expect_mismatch() {
  local name=$1 pattern=$2 rc=0
  "$PY" "$GEN" --check --inc "$tmp/case.inc" </dev/null >"$tmp/case.out" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    cat "$tmp/case.out" >&2
    fail "generator self-test '$name': --check passed on a wrong crate list"
  fi
  if ! grep -qE -- "$pattern" "$tmp/case.out"; then
    cat "$tmp/case.out" >&2
    fail "generator self-test '$name': the message does not say /$pattern/"
  fi
}
# The first crate of the list, NAME and VERSION.
read -r first_name first_version < <(
  sed -n 's|^SRC_URI += "crate://crates.io/\([^/]*\)/\([^;]*\);.*|\1 \2|p' "$INC" | head -n 1)
[ -n "${first_name:-}" ] || fail "no crate:// line found in $INC"
key="$first_name-$first_version"

cp "$INC" "$tmp/case.inc"
"$PY" "$GEN" --check --inc "$tmp/case.inc" </dev/null >/dev/null \
  || fail "generator self-test: an unchanged copy of the .inc does not pass"

grep -vF -e "crates.io/$first_name/$first_version;" -e "SRC_URI[$key.sha256sum]" \
  "$INC" >"$tmp/case.inc"
expect_mismatch "missing crate" "missing +$first_name $first_version"

{ cat "$INC"
  echo 'SRC_URI += "crate://crates.io/not-in-the-lock/0.0.1;name=not-in-the-lock-0.0.1"'
  echo "SRC_URI[not-in-the-lock-0.0.1.sha256sum] = \"$(printf '0%.0s' {1..64})\""
} >"$tmp/case.inc"
expect_mismatch "extra crate" "extra +not-in-the-lock 0.0.1"

sed "s|^\(SRC_URI\[$key\.sha256sum\] = \"\)[0-9a-f]*\"|\1$(printf 'f%.0s' {1..64})\"|" \
  "$INC" >"$tmp/case.inc"
expect_mismatch "changed checksum" "checksum +$first_name $first_version"
pass "generator --check reports a missing, an extra and a changed crate"

# --- 3. appliance configuration ------------------------------------------
"$PY" - "$APPLIANCE_TOML" <<'EOF' || fail "$APPLIANCE_TOML"
import sys, tomllib
path = sys.argv[1]
with open(path, "rb") as f:
    c = tomllib.load(f)
want = {"state_dir": "/var/lib/dcmms-gateway"}
problems = [f"{k} = {c.get(k)!r}, expected {v!r}" for k, v in want.items() if c.get(k) != v]
if c.get("uplink", {}).get("bundle_dir") != "/etc/dcmms/certs":
    problems.append("uplink.bundle_dir is not /etc/dcmms/certs")
if not c.get("http", {}).get("listen", "").endswith(":9100"):
    problems.append("http.listen is not on port 9100")
if c.get("modbus"):
    problems.append("the appliance default must not configure devices")
if problems:
    sys.exit(f"{path}: " + "; ".join(problems))
EOF
gw_bin=${DCMMS_GATEWAY_BIN:-target/debug/dcmms-gateway}
if [ -x "$gw_bin" ]; then
  cp "$APPLIANCE_TOML" "$tmp/gateway.toml"
  rc=0
  "$gw_bin" --config "$tmp/gateway.toml" --check-config </dev/null >"$tmp/gw.out" 2>&1 || rc=$?
  # Without an enrolled bundle in /etc/dcmms/certs the check stops at the
  # certificates, after parsing the file and building every driver.
  if [ "$rc" -ne 0 ] && ! grep -q 'uplink certificate bundle' "$tmp/gw.out"; then
    cat "$tmp/gw.out" >&2
    fail "$gw_bin --check-config rejects $APPLIANCE_TOML"
  fi
  pass "appliance gateway.toml: TOML checks and $gw_bin --check-config (up to the certificates)"
else
  pass "appliance gateway.toml: TOML checks ($gw_bin not built: --check-config skipped)"
fi

# --- 4. recipe against the source tree -------------------------------------
"$PY" - "$LAYER/recipes-dcmms/dcmms-gateway/dcmms-gateway_git.bb" <<'EOF' || fail "recipe and source tree disagree"
import hashlib, re, sys, tomllib
recipe = open(sys.argv[1]).read()
problems = []
# LIC_FILES_CHKSUM: bitbake hashes lines beginline..endline, newlines included.
m = re.search(r'LIC_FILES_CHKSUM = "file://([^;]+);beginline=(\d+);endline=(\d+);md5=([0-9a-f]+)"', recipe)
if not m:
    problems.append("no LIC_FILES_CHKSUM with beginline/endline/md5")
else:
    path, begin, end, md5 = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    with open(path, "rb") as f:
        lines = f.readlines()[begin - 1:end]
    got = hashlib.md5(b"".join(lines)).hexdigest()
    if got != md5:
        problems.append(f"LIC_FILES_CHKSUM: lines {begin}-{end} of {path} now hash to {got} "
                        f"({b''.join(lines).decode().strip()!r}), the recipe says {md5}")
    elif b"license" not in b"".join(lines):
        problems.append(f"LIC_FILES_CHKSUM: lines {begin}-{end} of {path} are not the license line")
# PV follows the workspace version.
with open("Cargo.toml", "rb") as f:
    version = tomllib.load(f)["workspace"]["package"]["version"]
pv = re.search(r'^PV = "([^"+]+)', recipe, re.M)
if not pv or pv.group(1) != version:
    problems.append(f"PV {pv.group(1) if pv else None!r} differs from the workspace version {version!r}")
# The unit the recipe installs from the source tree.
unit = "systemd/dcmms-gateway.service"
try:
    text = open(unit).read()
    for want in ("ExecStart=/usr/bin/dcmms-gateway", "User=dcmms"):
        if want not in text:
            problems.append(f"{unit} has no {want!r}, which the recipe's install and user assume")
except OSError as e:
    problems.append(f"{unit}, installed by the recipe from the source tree: {e.strerror}")
if problems:
    sys.exit("\n".join(problems))
EOF
pass "recipe matches the source tree (licence checksum, PV, systemd unit)"

# --- 5. oelint-adv ------------------------------------------------------
releases=$(sed -n 's/^LAYERSERIES_COMPAT_dcmms *= *"\(.*\)"/\1/p' "$LAYER/conf/layer.conf")
[ -n "$releases" ] || fail "no LAYERSERIES_COMPAT_dcmms in $LAYER/conf/layer.conf"
# Bitbake metadata only: files/ holds installed files (TOML, RAUC ini).
mapfile -t files < <(cd "$LAYER" && find . -path ./scripts -prune -o -path '*/files' -prune -o \
  -type f \( -name '*.bb' -o -name '*.bbappend' -o -name '*.bbclass' -o -name '*.inc' \
  -o -name '*.conf' \) -print | sort)
[ "${#files[@]}" -gt 0 ] || fail "no metadata files found in $LAYER"
for release in $releases; do
  # The layer's .oelint.cfg: hides info-level findings, lists the (few,
  # commented) suppressions and the layer's own variables.
  if ! (cd "$LAYER" && OELINT_CONFIG="$PWD/.oelint.cfg" "$PY" -m oelint_adv --quiet \
      --relpaths --release "$release" "${files[@]}" </dev/null); then
    fail "oelint-adv --release $release reported the findings above"
  fi
done
pass "$OELINT_VERSION: ${#files[@]} files clean for $releases"

log "summary: $passed passed, 0 failed ($crates crates, $OELINT_VERSION)"
