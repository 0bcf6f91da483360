"""Schemathesis hooks of scripts/api-fuzz.sh (loaded via SCHEMATHESIS_HOOKS).

Owns the bearer tokens of the generated requests; see fuzzlib for why
they come from two self-healing identities rather than one fixed header.
Every operation is fuzzed: nothing is excluded.

Environment (set by the script):
  DCMMS_FUZZ_IDENTITIES  JSON file written by seed.py
  DCMMS_FUZZ_AUTH_STATS  where re-login and account-restore counts go
"""

from __future__ import annotations

import os

import schemathesis
from fuzzlib import Identities, ends_own_session, is_secured

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


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    """Keeps every failure but one: positive_data_acceptance on a refused
    `cursor`. A cursor is opaque (a value the server handed out as `next`);
    no JSON Schema can say which strings those are, so a schema-valid
    random cursor is always refused with 400. Any other refusal, and any
    other check on the same response, still counts."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return True
    return not (isinstance(message, str) and message.startswith("`cursor`"))
