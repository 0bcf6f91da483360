"""Schemathesis hooks of scripts/api-fuzz.sh (loaded via SCHEMATHESIS_HOOKS).

Owns the bearer tokens of the generated requests; see fuzzlib for why
they come from two self-healing identities rather than one fixed header.
Every operation is fuzzed: nothing is excluded.

Environment (set by the script):
  DCMMS_FUZZ_IDENTITIES    JSON file written by seed.py
  DCMMS_FUZZ_AUTH_STATS    where re-login and account-restore counts go
  DCMMS_FUZZ_FILTER_STATS  where counts of dropped failures go, by reason
"""

from __future__ import annotations

import ast
import json
import os
import threading

import schemathesis
from fuzzlib import Identities, ends_own_session, is_secured

# CPython 3.11 keeps the AST converter's recursion depth in state shared
# by threads, and schemathesis's workers are threads: two of them parsing
# at once (hypothesis parses source to describe a filter's lambda) can
# fail with "SystemError: AST constructor recursion depth mismatch", which
# schemathesis reports as an error of the operation being generated. One
# parse at a time avoids it; parsing is rare and cheap next to the requests.
_ast_parse = ast.parse
_ast_lock = threading.Lock()


def _serial_ast_parse(*args, **kwargs):
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _serial_ast_parse

IDS = Identities.load(os.environ["DCMMS_FUZZ_IDENTITIES"], os.environ.get("DCMMS_FUZZ_AUTH_STATS"))

# Identities caches the tokens itself (see its docs); a zero refresh makes
# schemathesis ask it for every request, and keeps schemathesis's own
# reaction to a 401 in the coverage and fuzzing phases: fetch a token
# again and replay the request once. Its stateful phase has no such
# replay, so after_call below drops a token as soon as it is refused.
REFRESH_S = 0


def _secured(ctx) -> bool:
    op = ctx.operation
    return is_secured(op.schema.raw_schema, op.definition.raw)


def _bearer(case, token: str) -> None:
    if case.headers is None:
        case.headers = {}
    case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.auth(refresh_interval=REFRESH_S).apply_to(
    lambda ctx: _secured(ctx) and not ends_own_session(ctx.operation.path)
)
class FleetAdmin:
    """A fleet administrator from the pool, for every secured operation but
    the ones that end the caller's own session."""

    def get(self, case, ctx):
        return IDS.admin_token()

    def set(self, case, data, ctx):
        _bearer(case, data)


@schemathesis.auth(refresh_interval=REFRESH_S).apply_to(
    lambda ctx: _secured(ctx) and ends_own_session(ctx.operation.path)
)
class SessionUser:
    """A plain staff user for logout and the own-password change: the
    token they revoke or the password they change is never an
    administrator's."""

    def get(self, case, ctx):
        return IDS.session_token()

    def set(self, case, data, ctx):
        _bearer(case, data)


@schemathesis.hook
def after_call(ctx, case, response) -> None:
    """A 401 to a request carrying a token handed out here means the
    fuzzer revoked it (logout, password change, a user disabled or
    re-keyed): the next request gets a fresh one."""
    if response.status_code == 401:
        auth = (case.headers or {}).get("Authorization")
        if isinstance(auth, str) and auth.startswith("Bearer "):
            IDS.note_unauthorized(auth[len("Bearer ") :])


# Refusals of schema-valid requests that no JSON Schema of the request can
# foresee, as (method, path template or None for every operation, status,
# how the error message starts). Each is checked by the hub's own tests;
# the fuzzer cannot know them, so the rejected_positive_data failures they
# cause are dropped. Any other refusal, and any other check on the same
# response, still counts. Keep in step with the messages in the hub's
# hub/src/api/{page,telemetry,users,auth}.rs.
SCHEMA_BLIND_REFUSALS = (
    # A cursor is opaque (a value the server handed out as `next`): a
    # schema-valid random one is refused.
    ("opaque cursor", None, None, 400, "`cursor`"),
    # Rules tying two query parameters together: OpenAPI parameters are
    # described one by one, so the document tells these in prose.
    ("step and bucket_ms", "GET", "/api/v1/telemetry", 400, "give `step` or `bucket_ms`, not both"),
    ("limit or cursor with buckets", "GET", "/api/v1/telemetry", 400, "`limit` and `cursor` apply to raw samples"),
    ("too many buckets for the range", "GET", "/api/v1/telemetry", 400, "more than 100000 buckets"),
    # The caller's current password: the fuzzer cannot know it, as it
    # cannot know valid credentials at login (schemathesis forgives a
    # refused login on its own, but not this).
    ("wrong current password", "POST", "/api/v1/users/me/password", 422, "`current` is not your current password"),
)

_FILTER_STATS_PATH = os.environ.get("DCMMS_FUZZ_FILTER_STATS")
_filtered: dict[str, int] = {}
_filtered_lock = threading.Lock()


def _note_filtered(reason: str) -> None:
    with _filtered_lock:
        _filtered[reason] = _filtered.get(reason, 0) + 1
        if _FILTER_STATS_PATH:
            with open(_FILTER_STATS_PATH, "w", encoding="utf-8") as f:
                json.dump(_filtered, f)


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    """Keeps every failure but a positive_data_acceptance failure whose
    refusal is one of SCHEMA_BLIND_REFUSALS."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return True
    if not isinstance(message, str):
        return True
    method, path = case.operation.method.upper(), case.operation.path
    for reason, r_method, r_path, status, prefix in SCHEMA_BLIND_REFUSALS:
        if (
            response.status_code == status
            and (r_method is None or (r_method, r_path) == (method, path))
            and message.startswith(prefix)
        ):
            _note_filtered(reason)
            return False
    return True
