#!/usr/bin/env python3
"""Writes or checks the crate list of the dcmms-gateway Yocto recipe.

The recipe builds the workspace with `cargo build --frozen` and no network:
every crates.io package in the repository's Cargo.lock has to be fetched by
bitbake beforehand. This script turns Cargo.lock into
`recipes-dcmms/dcmms-gateway/dcmms-gateway-crates.inc`: per package one
`SRC_URI += "crate://crates.io/NAME/VERSION;name=NAME-VERSION"` line and one
`SRC_URI[NAME-VERSION.sha256sum]` line, the entries oe-core's
cargo-update-recipe-crates class produces (one assignment per line instead of
one long continued value), sorted by name and version.

All crates.io packages of the lock are listed, not only the ones the gateway
links: cargo resolves the whole workspace even for `--package dcmms-gateway`,
and with `--frozen` it stops with "no matching package named ..." as soon as
any locked package (a hub-only or Windows-only one included) is missing from
the vendored source. Path packages (workspace members and the patched
rumqttd under third_party/) come with the source tree and are not listed.
Only the root Cargo.lock counts: shared/fuzz has its own lock but is not
part of the firmware build.

Usage (Python 3.11+, standard library only):
  gen-crates-inc.py                 write the .inc from Cargo.lock
  gen-crates-inc.py --check         exit 1, naming each crate, if it differs
  gen-crates-inc.py --srcrev [REV]  also pin SRCREV (default HEAD) in
                                    dcmms-gateway-srcrev.inc
Options --lock PATH and --inc PATH choose other files (used by the self-test
in scripts/check-yocto.sh).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

LAYER_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = LAYER_DIR.parents[1]
RECIPE_DIR = LAYER_DIR / "recipes-dcmms" / "dcmms-gateway"
DEFAULT_INC = RECIPE_DIR / "dcmms-gateway-crates.inc"
SRCREV_INC = RECIPE_DIR / "dcmms-gateway-srcrev.inc"
DEFAULT_LOCK = REPO_ROOT / "Cargo.lock"

CRATES_IO_SOURCES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)
SCRIPT = "yocto/meta-dcmms/scripts/gen-crates-inc.py"
MAX_SHOWN = 60  # differences listed by --check; the rest are counted

CRATE_RE = re.compile(
    r'crate://crates\.io/(?P<name>[^/\s"]+)/(?P<version>[^;\s"\\]+)'
    r'(?:;name=(?P<key>[^\s"\\]+))?'
)
CHECKSUM_RE = re.compile(
    r'^SRC_URI\[(?P<key>[^\]]+)\.sha256sum\]\s*=\s*"(?P<sha>[^"]*)"', re.M
)
SRCREV_RE = re.compile(r'^SRCREV\s*=\s*"(?P<rev>[0-9a-f]{40})"', re.M)


class LockError(Exception):
    """Cargo.lock holds something the recipe cannot fetch as listed."""


@dataclass(frozen=True, order=True)
class Crate:
    name: str
    version: str
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def version_key(version: str) -> tuple:
    """Orders 1.2.10 after 1.2.9; pre-release and build tags compare as text."""
    core, _, rest = version.partition("+")[0].partition("-")
    parts = tuple(int(p) if p.isdigit() else -1 for p in core.split("."))
    return (parts, rest == "", rest, version)


def sort_key(crate: Crate) -> tuple:
    return (crate.name, version_key(crate.version))


def crates_from_lock(text: str, lock_name: str) -> list[Crate]:
    """The crates.io packages of a Cargo.lock, sorted; other sources refused."""
    try:
        lock = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{lock_name}: not valid TOML: {e}") from e
    crates: dict[str, Crate] = {}
    problems = []
    for pkg in lock.get("package", []):
        name, version = pkg.get("name"), pkg.get("version")
        source = pkg.get("source")
        if source is None:
            continue  # path package: part of the source tree
        if source.startswith("git+"):
            problems.append(
                f"{name} {version} comes from git ({source}): list it in the "
                "recipe's SRC_URI with name= and destsuffix= so cargo_common "
                "can patch it in, then extend this script"
            )
            continue
        if source not in CRATES_IO_SOURCES:
            problems.append(f"{name} {version}: unsupported source {source}")
            continue
        sha = pkg.get("checksum")
        if not sha or not re.fullmatch(r"[0-9a-f]{64}", sha):
            problems.append(f"{name} {version}: no sha256 checksum in the lock")
            continue
        crate = Crate(name, version, sha)
        crates[crate.key] = crate
    if problems:
        raise LockError(
            f"{lock_name}:\n" + "\n".join(f"  {p}" for p in problems)
        )
    if not crates:
        raise LockError(f"{lock_name}: no crates.io packages found")
    return sorted(crates.values(), key=sort_key)


def render(crates: list[Crate], lock_name: str) -> str:
    out = [
        "# Generated from Cargo.lock by "
        f"{SCRIPT}; do not edit.",
        "# After a Cargo.lock change run, from the repository root:",
        f"#   python3 {SCRIPT}",
        "# CI runs it with --check (scripts/check-yocto.sh).",
        "#",
        "# Every crates.io package of the workspace lock is listed: cargo",
        "# resolves the whole workspace even for --package dcmms-gateway and",
        "# fails with --frozen on any locked package it cannot find. Path",
        "# packages (workspace members, third_party/rumqttd) are in the source.",
        f"# {len(crates)} crates from {lock_name}.",
        "",
    ]
    out += [
        f'SRC_URI += "crate://crates.io/{c.name}/{c.version};name={c.key}"'
        for c in crates
    ]
    out += [""]
    out += [f'SRC_URI[{c.key}.sha256sum] = "{c.sha256}"' for c in crates]
    return "\n".join(out) + "\n"


def crates_from_inc(text: str) -> tuple[dict[str, Crate], list[str]]:
    """Reads back an .inc: crate entries joined with their checksums."""
    problems = []
    listed: dict[str, tuple[str, str]] = {}
    for m in CRATE_RE.finditer(text):
        key = m.group("key") or f"{m.group('name')}-{m.group('version')}"
        if key in listed:
            problems.append(f"{key} is listed twice")
        listed[key] = (m.group("name"), m.group("version"))
    sums: dict[str, str] = {}
    for m in CHECKSUM_RE.finditer(text):
        if m.group("key") in sums:
            problems.append(f"{m.group('key')} has two checksums")
        sums[m.group("key")] = m.group("sha")
    crates = {}
    for key, (name, version) in listed.items():
        if key not in sums:
            problems.append(f"{name} {version} has no sha256sum line")
            continue
        crates[key] = Crate(name, version, sums[key])
    for key in sorted(set(sums) - set(listed)):
        problems.append(f"checksum for {key} without a crate:// entry")
    return crates, problems


def compare(expected: list[Crate], inc_text: str, inc_name: str) -> list[str]:
    """Lines describing every difference; empty when the .inc is current."""
    want = {c.key: c for c in expected}
    have, problems = crates_from_inc(inc_text)
    lines = [f"  ! {p}" for p in problems]
    for key in sorted(set(want) - set(have), key=lambda k: sort_key(want[k])):
        c = want[key]
        lines.append(f"  - missing   {c.name} {c.version} (in Cargo.lock, not in {inc_name})")
    for key in sorted(set(have) - set(want), key=lambda k: sort_key(have[k])):
        c = have[key]
        lines.append(f"  + extra     {c.name} {c.version} (in {inc_name}, not in Cargo.lock)")
    for key in sorted(set(want) & set(have), key=lambda k: sort_key(want[k])):
        if want[key].sha256 != have[key].sha256:
            c = want[key]
            lines.append(
                f"  ~ checksum  {c.name} {c.version}: Cargo.lock {c.sha256[:12]}..., "
                f"{inc_name} {have[key].sha256[:12]}..."
            )
    return lines


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def render_srcrev(rev: str) -> str:
    return "\n".join(
        [
            "# Commit of the dcmms-edge repository that the recipe fetches when",
            "# it is not built from a local checkout (externalsrc). Written by",
            f"#   python3 {SCRIPT} --srcrev REV",
            "# The crate list must match that commit's Cargo.lock; a BSP may pin",
            "# another commit with SRCREV:pn-dcmms-gateway in its configuration.",
            f'SRCREV = "{rev}"',
            "",
        ]
    )


def srcrev_note(expected: list[Crate]) -> str | None:
    """Says whether the pinned SRCREV's Cargo.lock matches the crate list."""
    try:
        m = SRCREV_RE.search(SRCREV_INC.read_text())
    except OSError:
        return f"note: {SRCREV_INC.name} is missing; a git-fetching build needs SRCREV set"
    if not m:
        return f"note: {SRCREV_INC.name} has no SRCREV = \"<40 hex digits>\" line"
    rev = m.group("rev")
    try:
        lock_text = git("show", f"{rev}:Cargo.lock")
        pinned = crates_from_lock(lock_text, f"{rev[:12]}:Cargo.lock")
    except (OSError, subprocess.CalledProcessError):
        return f"note: SRCREV {rev[:12]} is not in the local git history; not compared"
    except LockError as e:
        return f"note: SRCREV {rev[:12]}: {e}"
    if {c.key: c for c in pinned} == {c.key: c for c in expected}:
        return f"SRCREV {rev[:12]}: its Cargo.lock matches the crate list"
    return (
        f"note: SRCREV {rev[:12]} has a different Cargo.lock than this checkout; "
        "builds that fetch it need the crate list of that commit (re-pin with "
        "--srcrev once the change is committed). externalsrc builds are not affected."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="Cargo.lock to read")
    ap.add_argument("--inc", type=Path, default=DEFAULT_INC, help=".inc to write or check")
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument(
        "--srcrev",
        nargs="?",
        const="HEAD",
        metavar="REV",
        help="also write dcmms-gateway-srcrev.inc pinning REV (default HEAD)",
    )
    args = ap.parse_args()
    if args.check and args.srcrev:
        ap.error("--check and --srcrev do not go together")

    try:
        lock_text = args.lock.read_text()
        crates = crates_from_lock(lock_text, args.lock.name)
    except OSError as e:
        print(f"error: cannot read {args.lock}: {e}", file=sys.stderr)
        return 2
    except LockError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = render(crates, args.lock.name)

    if args.check:
        try:
            current = args.inc.read_text()
        except OSError as e:
            print(f"error: cannot read {args.inc}: {e}", file=sys.stderr)
            return 1
        diff = compare(crates, current, args.inc.name)
        if diff:
            print(
                f"{args.inc} does not match {args.lock} ({len(diff)} differences):",
                file=sys.stderr,
            )
            shown = diff if len(diff) <= MAX_SHOWN else diff[:MAX_SHOWN]
            print("\n".join(shown), file=sys.stderr)
            if len(diff) > len(shown):
                print(f"  ... and {len(diff) - len(shown)} more", file=sys.stderr)
            print(f"Regenerate with: python3 {SCRIPT}", file=sys.stderr)
            return 1
        if current != text:
            print(
                f"{args.inc}: same crates as {args.lock.name}, but not in generated "
                f"form (header, order or count line); regenerate with: python3 {SCRIPT}",
                file=sys.stderr,
            )
            return 1
        print(f"{args.inc.name}: {len(crates)} crates, matches {args.lock.name}")
        if args.inc == DEFAULT_INC and args.lock == DEFAULT_LOCK:
            note = srcrev_note(crates)
            if note:
                print(note)
        return 0

    rev = None
    if args.srcrev:
        try:
            rev = git("rev-parse", "--verify", f"{args.srcrev}^{{commit}}")
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"error: cannot resolve {args.srcrev}: {e}", file=sys.stderr)
            return 2
    try:
        args.inc.write_text(text)
        print(f"wrote {args.inc}: {len(crates)} crates")
        if rev:
            SRCREV_INC.write_text(render_srcrev(rev))
            print(f"wrote {SRCREV_INC}: SRCREV {rev}")
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
