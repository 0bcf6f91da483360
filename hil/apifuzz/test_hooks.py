"""Checks that dcmms_fuzz_hooks drops exactly the refusals it names.

scripts/api-fuzz.sh runs it before fuzzing (python3 -m unittest
test_hooks, from this folder): a filter that grew too wide would hide real
failures of the API, one that no longer matches the hub's wording would
fail the run on refusals the API is right to make.
"""

from __future__ import annotations

import json
import os
import tempfile
import unittest

# The hooks load the fuzz accounts when imported; any will do here.
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as _f:
    json.dump({"base": "http://127.0.0.1:1", "admins": [], "session": {"username": "u", "password": "p", "id": "i"}}, _f)
os.environ["DCMMS_FUZZ_IDENTITIES"] = _f.name
os.environ.pop("DCMMS_FUZZ_FILTER_STATS", None)

from dcmms_fuzz_hooks import blind_reasons  # noqa: E402

os.unlink(_f.name)


def fields(*pairs: tuple[str, str]) -> dict:
    return {
        "code": "invalid",
        "message": "422",
        "fields": [{"field": f, "message": m} for f, m in pairs],
    }


def report(*codes: str) -> dict:
    return {"code": "invalid", "message": "refused", "report": {"errors": [{"code": c} for c in codes]}}


class SchemaBlindRefusals(unittest.TestCase):
    def blind(self, method: str, path: str, status: int, error: dict) -> bool:
        return blind_reasons(method, path, status, error) is not None

    def test_references_and_rules_between_fields_are_dropped(self):
        dropped = [
            ("POST", "/api/v1/assets", fields(("site", "no site g"))),
            ("POST", "/api/v1/assets", fields(("points", "telemetry point \"0/0/0\" is not at the asset's site north"))),
            ("PUT", "/api/v1/assets/{id}/points", fields(("points", "telemetry point \"a/b/c\" is not at the asset's site north"))),
            ("POST", "/api/v1/pm-plans", fields(("asset", "no asset 0"))),
            ("PUT", "/api/v1/pm-plans/{id}", fields(("asset", "asset inv-01 is at site north, not x"))),
            ("POST", "/api/v1/work-orders", fields(("asset", "no asset ë"))),
            (
                "POST",
                "/api/v1/pm-plans",
                fields(
                    ("checklist", 'item "v" has limits min 3 > max 1 or not finite (bad_reading_limits)'),
                    ("trigger.meter.point", "is not at the plan's site north"),
                ),
            ),
            ("POST", "/api/v1/pm-plans", fields(("trigger.calendar.lead_days", "must be shorter than the interval (7 days at the shortest)"))),
            ("PUT", "/api/v1/pm-plans/{id}", fields(("trigger.meter.rule.every.lead", "must be shorter than the interval"))),
            ("PUT", "/api/v1/pm-plans/{id}", fields(("site", "a plan stays at its site (north)"))),
            ("POST", "/api/v1/work-orders", fields(("checklist", 'checklist has two items with key "a" (duplicate_checklist_key)'))),
            ("POST", "/api/v1/work-orders/{id}/transitions", fields(("assignees[0]", 'no user ""'), ("assignees[12]", "no user x"))),
            ("POST", "/api/v1/work-orders/{id}/transitions", fields(("assignees[1]", "user u1 has no technician (or higher) role at site north"))),
            ("POST", "/api/v1/work-orders/{id}/edits", fields(("edit.log_labour.technician", "no user 0"))),
            ("POST", "/api/v1/work-orders/{id}/edits", fields(("edit.use_part.part", "part x is not in the catalogue of site north: give unit_cost_cents"))),
            ("POST", "/api/v1/work-orders/{id}/parts", fields(("part", "part x is not in the catalogue of site north"))),
            ("POST", "/api/v1/import/{kind}", report("missing_header")),
            ("POST", "/api/v1/import/{kind}", report("missing_columns", "unknown_column", "invalid_id")),
        ]
        for method, path, error in dropped:
            with self.subTest(f"{method} {path} {error}"):
                self.assertTrue(self.blind(method, path, 422, error))
        self.assertTrue(
            self.blind("GET", "/api/v1/work-orders", 400, {"code": "bad_request", "message": "`cursor` is not a value returned as `next` by this listing and sort"})
        )
        self.assertTrue(
            self.blind(
                "POST",
                "/api/v1/users/me/password",
                422,
                {"code": "invalid", "message": "`current` is not your current password", "fields": [{"field": "current", "message": "is not your current password"}]},
            )
        )

    def test_everything_else_still_counts(self):
        kept = [
            # One field the schema does describe spoils the whole response.
            ("POST", "/api/v1/assets", 422, fields(("site", "no site g"), ("name", "must be 1 to 200 characters"))),
            # The same words on another operation, field or status.
            ("POST", "/api/v1/pm-plans", 422, fields(("site", "a plan stays at its site (north)"))),
            ("POST", "/api/v1/sites", 422, fields(("site", "no site g"))),
            ("POST", "/api/v1/assets", 422, fields(("parent", "no site g"))),
            ("POST", "/api/v1/assets", 409, fields(("site", "no site g"))),
            # Refusals the document states: a malformed point, a bad number.
            ("POST", "/api/v1/pm-plans", 422, fields(("trigger.meter.point", "must be a telemetry point `north/device/point` of the plan's site"))),
            ("POST", "/api/v1/pm-plans", 422, fields(("trigger.meter.rule.every.interval", "must be a number above 0"))),
            ("POST", "/api/v1/pm-plans", 422, fields(("checklist", 'item "a" is bad (something_else)'))),
            # A file problem no format code names, or no problem listed.
            ("POST", "/api/v1/import/{kind}", 422, report("boom")),
            ("POST", "/api/v1/import/{kind}", 422, report()),
            # A 400 that merely mentions a cursor, or with another code.
            ("GET", "/api/v1/assets", 400, {"code": "bad_request", "message": "the cursor is bad"}),
            ("GET", "/api/v1/assets", 400, {"code": "invalid", "message": "`cursor` is bad"}),
            ("POST", "/api/v1/assets", 422, {"code": "invalid", "message": "no site g"}),
        ]
        for method, path, status, error in kept:
            with self.subTest(f"{method} {path} {status} {error}"):
                self.assertFalse(self.blind(method, path, status, error))


if __name__ == "__main__":
    unittest.main()
