"""Prints the figures of one fuzz run of scripts/api-fuzz.sh.

Reads schemathesis's JSON run report, its events and the hooks'
re-login counts, prints operations, test cases, checks run, failures by
check, errors and warnings, and writes the same text to summary.txt
beside the report.

Usage: summary.py REPORT_DIR LABEL
REPORT_DIR holds report.json, events.ndjson, openapi.json (the document
fuzzed), auth-stats.json and filter-stats.json. Exit status: 0 when the
run completed with no failure and no error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Failure type in the report -> the schemathesis check that raises it.
CHECK_OF = {
    "ServerError": "not_a_server_error",
    "ContentTypeServerError": "not_a_server_error",
    "UndefinedStatusCode": "status_code_conformance",
    "MissingContentType": "content_type_conformance",
    "UndefinedContentType": "content_type_conformance",
    "MalformedMediaType": "content_type_conformance",
    "MissingHeaders": "response_headers_conformance",
    "JsonSchemaError": "response_schema_conformance",
    "MalformedJson": "response_schema_conformance",
    "ContentDeserializationError": "response_schema_conformance",
    "DiscriminatorMismatch": "response_schema_conformance",
    "ResponseTimeExceeded": "max_response_time",
    "AcceptedNegativeData": "negative_data_rejection",
    "RejectedPositiveData": "positive_data_acceptance",
    "MissingHeaderNotRejected": "missing_required_header",
    "UnsupportedMethodResponse": "unsupported_method",
    "AllowHeaderMismatch": "allow_header_conformance",
    "UseAfterFree": "use_after_free",
    "EnsureResourceAvailability": "ensure_resource_availability",
    "IgnoredAuth": "ignored_auth",
    "ObjectLevelAuthorizationViolation": "object_level_authorization",
}


def statuses(events_path: str) -> dict[tuple[str, str], Counter]:
    """Response status counts by (method, path template), over all phases."""
    out: dict[tuple[str, str], Counter] = defaultdict(Counter)
    with open(events_path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith('{"ScenarioFinished"'):
                continue
            rec = json.loads(line)["ScenarioFinished"]["recorder"]
            cases = rec.get("cases") or {}
            for case_id, inter in (rec.get("interactions") or {}).items():
                case = cases.get(case_id, {}).get("value", {})
                status = (inter.get("response") or {}).get("status_code", "no response")
                out[(case.get("method", "?"), case.get("path", "?"))][status] += 1
    return out


def check_line(events_path: str) -> str:
    """How many checks ran on the responses, and how many failed."""
    runs: Counter = Counter()
    with open(events_path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith('{"ScenarioFinished"'):
                continue
            rec = json.loads(line)["ScenarioFinished"]["recorder"]
            for results in (rec.get("checks") or {}).values():
                for c in results:
                    runs[(c.get("name"), c.get("status"))] += 1
    total = sum(runs.values())
    failed = sum(n for (_, status), n in runs.items() if status == "failure")
    kinds = len({name for name, _ in runs})
    return f"checks: {total} run ({kinds} kinds of check), {failed} failed"


def status_lines(doc_path: str, events_path: str) -> list[str]:
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    documented = [
        (m.upper(), p) for p, item in doc.get("paths", {}).items() for m in item if m in HTTP_METHODS
    ]
    seen = statuses(events_path)
    width = max((len(f"{m} {p}") for m, p in documented), default=0)
    lines = ["responses by operation (requests: status x count):"]
    never_ok = []
    for m, p in sorted(documented, key=lambda x: (x[1], x[0])):
        c = seen.pop((m, p), Counter())
        counts = " ".join(f"{k}x{v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))
        lines.append(f"  {m + ' ' + p:<{width}}  {sum(c.values()):>5}: {counts}")
        if not any(isinstance(k, int) and 200 <= k < 300 for k in c):
            never_ok.append(f"{m} {p}")
    probes = Counter()
    for c in seen.values():
        probes.update(c)
    if probes:
        counts = " ".join(f"{k}x{v}" for k, v in sorted(probes.items(), key=lambda kv: str(kv[0])))
        lines.append(f"  undocumented methods (probes): {sum(probes.values())}: {counts}")
    lines.append("never answered 2xx: " + (", ".join(never_ok) or "none"))
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    folder, label = argv[1:]
    report_path = os.path.join(folder, "report.json")
    stats_path = os.path.join(folder, "auth-stats.json")
    with open(report_path, encoding="utf-8") as f:
        r = json.load(f)
    stats = {"admin_logins": 0, "session_logins": 0, "restores": 0}
    if os.path.exists(stats_path):
        with open(stats_path, encoding="utf-8") as f:
            stats.update(json.load(f))

    ops, cases = r["operations"], r["test_cases"]
    lines = [
        f"== API fuzz summary ({label}) ==",
        f"schemathesis {r['schemathesis_version']}, seed {r['seed']}, "
        f"{r['running_time']:.1f} s, stop reason: {r['stop_reason']}",
        f"operations: {ops['total']} in the document, {ops['selected']} selected, "
        f"{ops['tested']} tested, {ops['errored']} errored, {ops['skipped']} skipped",
        f"test cases: {cases['generated']} generated, {cases['with_failures']} failing, "
        f"{cases['unique_failures']} unique failures, {cases['errored']} errored, "
        f"{cases['without_checks']} without checks",
        "phases: " + ", ".join(f"{name} {p['status']}" for name, p in r["phases"].items()),
        f"fuzz accounts: {stats['admin_logins']} administrator logins (at start, every 60 s and after a 401), "
        f"{stats['restores']} account restores, {stats['session_logins']} session-user logins "
        f"(logout and password-change cases)",
    ]
    if r.get("filtered"):
        lines.append(f"dropped by filter_failure (refusals no request schema can express): {r['filtered']}")
        filter_path = os.path.join(folder, "filter-stats.json")
        if os.path.exists(filter_path):
            with open(filter_path, encoding="utf-8") as f:
                by_reason = json.load(f)
            lines.extend(f"  {reason}: {n}" for reason, n in sorted(by_reason.items()))
    failures = sorted(r["failures"], key=lambda x: x["code"])
    if failures:
        lines.append("failures by check:")
        for f in failures:
            check = CHECK_OF.get(f["type"], f["type"])
            lines.append(f"  {f['code']} {check} ({f['title']}): {f['count']}")
            lines.extend(f"      {op}" for op in f["operations"])
    else:
        lines.append("failures by check: none")
    events, doc = os.path.join(folder, "events.ndjson"), os.path.join(folder, "openapi.json")
    if os.path.exists(events):
        lines.insert(5, check_line(events))
    if os.path.exists(events) and os.path.exists(doc):
        lines.extend(status_lines(doc, events))
    for e in r["errors"]:
        lines.append(f"error: {json.dumps(e)[:400]}")
    for kind, items in r.get("warnings", {}).items():
        if items:
            lines.append(f"warning {kind}: {json.dumps(items)[:400]}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(folder, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    clean = not failures and not r["errors"] and r["stop_reason"] == "completed" and ops["errored"] == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
