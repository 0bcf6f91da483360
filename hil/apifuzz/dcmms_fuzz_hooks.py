"""Schemathesis hooks of scripts/api-fuzz.sh (loaded via SCHEMATHESIS_HOOKS).

Owns the bearer tokens of the generated requests (see fuzzlib for why
they come from two self-healing identities rather than one fixed header)
and which refusals of schema-valid requests are the API's to make
(SCHEMA_BLIND_REFUSALS; test_hooks.py checks them). Every operation is
fuzzed: nothing is excluded.

Environment (set by the script):
  DCMMS_FUZZ_IDENTITIES    JSON file written by seed.py
  DCMMS_FUZZ_AUTH_STATS    where re-login and account-restore counts go
  DCMMS_FUZZ_FILTER_STATS  where counts of dropped failures go, by reason
"""

from __future__ import annotations

import ast
import json
import os
import re
import threading
from dataclasses import dataclass

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
# foresee: ids that name nothing stored, values tied to another field or
# to a stored record, the content of a CSV file. Each is checked by the
# hub's own tests; the fuzzer cannot know them, so the
# rejected_positive_data failures they cause are dropped. Any other
# refusal, and any other check on the same response, still counts.
#
# An entry names the operation (method and path template; None: every
# operation), the status and the error `code`, and then what the refusal
# says, as a regular expression over the whole text:
# - `message`: the error message;
# - `field` and `message`: ONE problem of a 422's `fields` (the path of the
#   field, and its message). A response is dropped only when EVERY one of
#   its fields matches an entry of its operation;
# - `report_codes`: a refused import file, whose every problem has one of
#   these codes.
# Keep in step with the messages in hub/src/api/ (page, telemetry, auth,
# cmms/registry, cmms/work) and the codes of dcmms_shared::cmms::csv.


@dataclass(frozen=True)
class Blind:
    reason: str
    method: str | None
    path: str | None
    status: int
    code: str
    message: str | None = None
    field: str | None = None
    report_codes: frozenset[str] | None = None

    def applies(self, method: str, path: str, status: int, code: object) -> bool:
        return (
            self.status == status
            and self.code == code
            and (self.method is None or (self.method, self.path) == (method, path))
        )


def _fields(reason: str, ops: list[tuple[str, str]], field: str, message: str) -> list[Blind]:
    return [Blind(reason, m, p, 422, "invalid", message=message, field=field) for m, p in ops]


# The users a work order names (check_workers in hub/src/api/cmms/work).
_WORKER = r"no user .*|user .+ is disabled|user .+ has no technician \(or higher\) role at site .+"
# Checklist rules between items (unique keys) or fields (min <= max).
_CHECKLIST = r".* \((duplicate_checklist_key|bad_reading_limits)\)"
_PLANS = [("POST", "/api/v1/pm-plans"), ("PUT", "/api/v1/pm-plans/{id}")]
_ASSET_WRITES = [("POST", "/api/v1/assets"), ("PATCH", "/api/v1/assets/{id}")]
# Every problem code of the CSV formats (dcmms_shared::cmms::csv::code).
_CSV_CODES = frozenset(
    """missing_header missing_columns unknown_column duplicate_column unnamed_column
    missing_fields too_many_rows invalid_utf8 malformed_csv required too_long invalid_id
    invalid_choice invalid_date invalid_number invalid_amount invalid_timezone
    bad_point_name duplicate already_exists unknown_site unknown_asset
    point_at_other_site""".split()
)

SCHEMA_BLIND_REFUSALS: tuple[Blind, ...] = (
    # A cursor is opaque (a value the server handed out as `next`): a
    # schema-valid random one is refused.
    Blind("opaque cursor", None, None, 400, "bad_request", message=r"`cursor` .*"),
    # Rules tying two query parameters together: OpenAPI parameters are
    # described one by one, so the document tells these in prose.
    Blind("step and bucket_ms", "GET", "/api/v1/telemetry", 400, "bad_request",
          message=r"give `step` or `bucket_ms`, not both"),
    Blind("limit or cursor with buckets", "GET", "/api/v1/telemetry", 400, "bad_request",
          message=r"`limit` and `cursor` apply to raw samples.*"),
    Blind("too many buckets for the range", "GET", "/api/v1/telemetry", 400, "bad_request",
          message=r"more than 100000 buckets.*"),
    # The caller's current password: the fuzzer cannot know it, as it
    # cannot know valid credentials at login (schemathesis forgives a
    # refused login on its own, but not this).
    Blind("wrong current password", "POST", "/api/v1/users/me/password", 422, "invalid",
          message=r"`current` is not your current password"),
    # A CSV file is a string to the document; its format is prose.
    Blind("CSV file content", "POST", "/api/v1/import/{kind}", 422, "invalid",
          report_codes=_CSV_CODES),
    # Ids in a body that name no stored record.
    *_fields("unknown site", _ASSET_WRITES, "site", r"no site .+"),
    *_fields("unknown asset", _PLANS + [("POST", "/api/v1/work-orders")], "asset", r"no asset .+"),
    *_fields("unknown user", [("POST", "/api/v1/work-orders/{id}/transitions")],
             r"assignees\[\d+\]", _WORKER),
    *_fields("unknown user", [("POST", "/api/v1/work-orders/{id}/edits")],
             r"edit\.log_labour\.technician", _WORKER),
    *_fields("unknown part", [("POST", "/api/v1/work-orders/{id}/parts")], "part",
             r"part .+ is not in the catalogue of site .+"),
    *_fields("unknown part without a cost", [("POST", "/api/v1/work-orders/{id}/edits")],
             r"edit\.use_part\.part", r"part .+ is not in the catalogue of site .+: give unit_cost_cents"),
    # Values that must agree with another field or with the stored record.
    *_fields("point at another site", _ASSET_WRITES + [("PUT", "/api/v1/assets/{id}/points")],
             "points", r"telemetry point .+ is not at the asset's site .+"),
    *_fields("asset at another site", _PLANS + [("POST", "/api/v1/work-orders")], "asset",
             r"asset .+ is at site .+, not .+"),
    *_fields("meter point at another site", _PLANS, r"trigger\.meter\.point",
             r"is not at the plan's site .+"),
    *_fields("lead not below the interval", _PLANS,
             r"trigger\.(calendar\.lead_days|meter\.rule\.every\.lead)",
             r"must be shorter than the interval.*"),
    *_fields("checklist keys and limits", _PLANS + [("POST", "/api/v1/work-orders")],
             "checklist", _CHECKLIST),
    *_fields("plan moved to another site", [("PUT", "/api/v1/pm-plans/{id}")], "site",
             r"a plan stays at its site \(.+\)"),
)

_FILTER_STATS_PATH = os.environ.get("DCMMS_FUZZ_FILTER_STATS")
_filtered: dict[str, int] = {}
_filtered_lock = threading.Lock()


def _note_filtered(reasons: set[str]) -> None:
    with _filtered_lock:
        for reason in reasons:
            _filtered[reason] = _filtered.get(reason, 0) + 1
        if _FILTER_STATS_PATH:
            with open(_FILTER_STATS_PATH, "w", encoding="utf-8") as f:
                json.dump(_filtered, f)


def _full(pattern: str | None, text: object) -> bool:
    return pattern is None or (isinstance(text, str) and re.fullmatch(pattern, text, re.DOTALL) is not None)


def blind_reasons(method: str, path: str, status: int, error: dict) -> set[str] | None:
    """The reasons why this refusal is one no request schema can express,
    or None when it is not (every part of it must be covered)."""
    entries = [b for b in SCHEMA_BLIND_REFUSALS if b.applies(method, path, status, error.get("code"))]
    for b in entries:
        if b.field is None and b.report_codes is None and _full(b.message, error.get("message")):
            return {b.reason}
    report = error.get("report")
    if isinstance(report, dict):
        problems = report.get("errors") or []
        for b in entries:
            if b.report_codes is not None and problems and all(
                isinstance(p, dict) and p.get("code") in b.report_codes for p in problems
            ):
                return {b.reason}
        return None
    fields = error.get("fields")
    if isinstance(fields, list) and fields:
        reasons = set()
        for f in fields:
            hit = next(
                (
                    b
                    for b in entries
                    if b.field is not None
                    and isinstance(f, dict)
                    and _full(b.field, f.get("field"))
                    and _full(b.message, f.get("message"))
                ),
                None,
            )
            if hit is None:
                return None
            reasons.add(hit.reason)
        return reasons
    return None


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    """Keeps every failure but a positive_data_acceptance failure whose
    refusal is one of SCHEMA_BLIND_REFUSALS."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return True
    if not isinstance(error, dict):
        return True
    reasons = blind_reasons(case.operation.method.upper(), case.operation.path, response.status_code, error)
    if reasons is None:
        return True
    _note_filtered(reasons)
    return False
