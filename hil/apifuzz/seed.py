"""Seeds a fresh hub before the fuzz run of scripts/api-fuzz.sh.

Owns what exists before schemathesis starts: the fuzz accounts (see
fuzzlib), a few ordinary users with site roles, and one record for every
collection the document lets a client create (`POST` on a path without
parameters), so that list operations return real ids the fuzzer then
feeds into paths with parameters.

Only the accounts are required. Everything else is looked up in the
served document first and built from the request schema there, so
routes added later are seeded without changing this file; a route that
refuses the minimal body built for it is reported and skipped.

Usage: seed.py BASE_URL ADMIN_PASSWORD IDENTITIES_OUT
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import sys
from typing import Any

from fuzzlib import (
    Account,
    FuzzSetupError,
    Identities,
    call,
    ends_own_session,
    fetch_doc,
    has_operation,
    login,
    operations,
)

SITES = ["site-a", "site-b"]
# Field values preferred over generated ones, by field name.
PREFERRED = {
    "name": "seed-{noun}-1",
    "display_name": "Seed {noun}",
    "title": "Seed {noun}",
    "description": "Seeded for API fuzzing",
    "timezone": "Europe/Madrid",
    "tz": "Europe/Madrid",
    "code": "SEED-1",
    "sku": "SEED-1",
    "part_number": "SEED-1",
    "serial": "SN-1",
    "unit": "pcs",
    "currency": "EUR",
    "email": "seed@example.com",
    "point": "site-a/dev1/p1",
}


def log(msg: str) -> None:
    print(f"[seed] {msg}", flush=True)


def strong_password() -> str:
    return "fz-" + secrets.token_hex(12)


def create_user(base: str, token: str, username: str, *, admin: bool, kind: str = "staff") -> Account:
    password = strong_password()
    body = {"username": username, "password": password, "kind": kind, "is_admin": admin}
    status, resp = call(base, "POST", "/api/v1/users", token, body)
    if status != 201:
        raise FuzzSetupError(f"POST /api/v1/users ({username}): {status} {resp}")
    return Account(username, password, resp["id"])


def noun_of(path: str) -> str:
    """`/api/v1/work-orders` -> `work_order`."""
    last = path.rstrip("/").rsplit("/", 1)[-1].replace("-", "_")
    if last.endswith("ies"):
        return last[:-3] + "y"
    if last.endswith("s") and not last.endswith("ss"):
        return last[:-1]
    return last


class Builder:
    """Minimal request bodies from JSON Schema: required properties only,
    references to already seeded records where a field name says so."""

    def __init__(self, doc: dict, created: dict[str, list[str]]):
        self.doc = doc
        self.created = created

    def resolve(self, schema: Any, depth: int = 0) -> dict:
        if not isinstance(schema, dict) or depth > 20:
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.doc
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            return self.resolve(node, depth + 1)
        if "allOf" in schema:
            merged: dict = {"type": "object", "properties": {}, "required": []}
            for sub in schema["allOf"]:
                s = self.resolve(sub, depth + 1)
                merged["properties"].update(s.get("properties", {}))
                merged["required"] += s.get("required", [])
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                subs = [self.resolve(s, depth + 1) for s in schema[key]]
                subs = [s for s in subs if s.get("type") != "null"] or subs
                return subs[0] if subs else {}
        return schema

    def reference(self, field: str) -> str | None:
        base = re.sub(r"_ids?$", "", field)
        if base in ("parent",):
            return None
        ids = self.created.get(base)
        return ids[0] if ids else None

    def nullable(self, schema: Any) -> bool:
        if not isinstance(schema, dict):
            return False
        types = schema.get("type")
        if types == "null" or (isinstance(types, list) and "null" in types):
            return True
        subs = schema.get("oneOf", []) + schema.get("anyOf", [])
        return any(self.resolve(sub).get("type") == "null" for sub in subs)

    def string(self, s: dict, field: str, noun: str) -> str:
        """The first plausible string that fits the pattern and lengths."""
        lo, hi = s.get("minLength", 1), s.get("maxLength", 64)
        candidates = [f"seed-{field.replace('_', '-')}-1", "seed1", "seed", "SEED1", "s"]
        if field in PREFERRED:
            candidates.insert(0, PREFERRED[field].format(noun=noun.replace("_", "-")))
        pattern = s.get("pattern")
        for c in candidates:
            c = c[:hi]
            try:
                fits = pattern is None or re.search(pattern, c) is not None
            except re.error:
                fits = True
            if fits and len(c) >= lo:
                return c
        return candidates[0][:hi]

    def value(self, schema: Any, field: str, noun: str, depth: int = 0) -> Any:
        s = self.resolve(schema)
        ref = self.reference(field)
        if ref is None and self.nullable(schema):
            return None
        if "const" in s:
            return s["const"]
        if s.get("enum"):
            return next((e for e in s["enum"] if e is not None), s["enum"][0])
        if "default" in s and s["default"] is not None:
            return s["default"]
        if s.get("examples"):
            return s["examples"][0]
        if "example" in s:
            return s["example"]
        types = s.get("type", "object" if "properties" in s else "string")
        if isinstance(types, list):
            types = next((t for t in types if t != "null"), "null")
        if types == "string":
            if ref is not None:
                return ref
            fmt = s.get("format", "")
            today = dt.date.today()
            if fmt == "date":
                return today.isoformat()
            if fmt in ("date-time", "DateTime"):
                return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            if fmt == "uuid":
                return "00000000-0000-4000-8000-000000000001"
            if field == "site" or field.endswith("_site"):
                return SITES[0]
            return self.string(s, field, noun)
        if types in ("integer", "number"):
            lo = s.get("minimum", s.get("exclusiveMinimum", 0))
            v = max(1, int(lo) + (1 if "exclusiveMinimum" in s else 0))
            if "maximum" in s:
                v = min(v, int(s["maximum"]))
            return v
        if types == "boolean":
            return False
        if types == "array":
            if ref is not None:
                return [ref]
            n = s.get("minItems", 0)
            return [self.value(s.get("items", {}), field, noun, depth + 1) for _ in range(n)]
        if types == "object":
            if depth > 6:
                return {}
            props = s.get("properties", {})
            out = {}
            for name in s.get("required", []):
                out[name] = self.value(props.get(name, {}), name, noun, depth + 1)
            return out
        return None


def fill_path(template: str, created: dict[str, list[str]]) -> str | None:
    """`/sites/{site}/assets` or `/sites/{id}/assets` with a seeded site's
    id; None when some parameter names nothing seeded."""
    parts = template.split("/")
    for i, part in enumerate(parts):
        m = re.fullmatch(r"\{(\w+)\}", part)
        if not m:
            continue
        name = re.sub(r"_id$", "", m.group(1))
        if name == "id" and i > 0:
            name = noun_of("/".join(parts[:i]))
        ids = created.get(name)
        if not ids:
            return None
        parts[i] = ids[0]
    return "/".join(parts)


def seed_collections(base: str, token: str, doc: dict) -> tuple[int, int, dict[str, list[str]]]:
    """POSTs one record to every creatable collection; returns how many
    were accepted and refused, and the new ids by noun."""
    created: dict[str, list[str]] = {}
    builder = Builder(doc, created)
    targets = []
    for method, path, op in operations(doc):
        if method != "POST" or path.startswith("/api/v1/users") or "/auth/" in path or ends_own_session(path):
            continue
        if path.rstrip("/").endswith("}"):
            continue  # an action on one record, not a collection
        content = (op.get("requestBody") or {}).get("content", {})
        if "application/json" not in content:
            log(f"skip POST {path}: no JSON body ({', '.join(content) or 'none'})")
            continue
        targets.append((path, content["application/json"].get("schema", {})))
    # Parents before children: sites, then assets, then the rest; within
    # each, top-level collections before nested ones.
    rank = {"site": 0, "asset": 1}
    targets.sort(key=lambda t: (rank.get(noun_of(t[0]), 2), t[0].count("{"), t[0]))
    ok = refused = 0
    for template, schema in targets:
        # A nested collection (`/sites/{site}/assets`) takes the id of a
        # record seeded before it.
        path = fill_path(template, created)
        if path is None:
            log(f"skip POST {template}: no seeded record for its path parameters")
            continue
        noun = noun_of(template)
        body = builder.value(schema, noun, noun)
        status, resp = call(base, "POST", path, token, body)
        if 200 <= status < 300:
            ok += 1
            rid = resp.get("id") if isinstance(resp, dict) else None
            if rid is not None:
                created.setdefault(noun, []).append(str(rid))
            log(f"POST {path} -> {status}" + (f" (id {rid})" if rid is not None else ""))
        else:
            refused += 1
            text = str(resp)[:300]
            log(f"POST {path} refused the minimal body {body}: {status} {text}")
    return ok, refused, created


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base, admin_password, out = argv[1], argv[2], argv[3]
    doc = fetch_doc(base)
    token = login(base, "admin", admin_password)
    if token is None:
        raise FuzzSetupError("the first administrator cannot log in")
    for method, path in (("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/{id}")):
        if not has_operation(doc, method, path):
            raise FuzzSetupError(f"the document lacks {method} {path}, which the fuzz accounts need")
    status, me = call(base, "GET", "/api/v1/auth/me", token)
    if status != 200:
        raise FuzzSetupError(f"GET /api/v1/auth/me: {status} {me}")
    admins = [Account("admin", admin_password, me["id"])]
    admins += [create_user(base, token, f"fuzz-keeper-{i}", admin=True) for i in (1, 2)]
    session = create_user(base, token, "fuzz-session", admin=False)
    Identities(base=base, admins=admins, session=session).save(out)
    log(f"fuzz accounts: {', '.join(a.username for a in admins)} (administrators), {session.username}")

    ok, refused, created = seed_collections(base, token, doc)
    log(f"collections: {ok} seeded, {refused} refused the minimal body")
    sites = created.get("site") or SITES

    users = [
        (create_user(base, token, "seed-tech", admin=False, kind="contractor"), sites[0], "technician"),
        (create_user(base, token, "seed-super", admin=False), sites[-1], "supervisor"),
    ]
    if has_operation(doc, "PUT", "/api/v1/users/{id}/sites/{site}"):
        for user, site, role in users:
            status, resp = call(base, "PUT", f"/api/v1/users/{user.id}/sites/{site}", token, {"role": role})
            if status != 200:
                raise FuzzSetupError(f"PUT /api/v1/users/{user.id}/sites/{site}: {status} {resp}")
            log(f"{user.username}: {role} at {site}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except FuzzSetupError as e:
        print(f"[seed] error: {e}", file=sys.stderr)
        sys.exit(1)
