#!/usr/bin/env python3
"""Small API steps of scripts/bench-cmms.sh, with the standard library only.

  api.py login BASE PASSWORD
      logs in as the first administrator and prints the bearer token
  api.py transition-ids BASE TOKEN OUT
      writes "<id> <state> <version>" for every in-progress and on-hold
      work order to OUT (the work orders hil/bench/cmms_mix.lua holds and
      resumes) and prints how many
  api.py latency BASE TOKEN [REPEAT [TOP]]
      times every request shape of hil/bench/cmms_mix.lua alone (one
      client on one kept-alive connection, REPEAT times each, default 7)
      and prints the median and slowest of the TOP slowest shapes (default
      all), slowest first: the service time of each request without any
      queueing
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request

ADMIN = "admin"


def call(url, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def login(base, password):
    answer = call(base + "/api/v1/auth/login", body={"username": ADMIN, "password": password})
    print(answer["token"])


def transition_ids(base, token, out):
    rows, cursor = [], None
    while True:
        query = {"state": "in_progress,on_hold", "limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        page = call(base + "/api/v1/work-orders?" + urllib.parse.urlencode(query), token)
        rows += [(w["id"], w["state"], w["version"]) for w in page["work_orders"]]
        cursor = page.get("next")
        if not cursor:
            break
    with open(out, "w") as f:
        for row in rows:
            f.write("%s %s %d\n" % row)
    print(len(rows))


# The filters of cmms_mix.lua, with fixed values.
FILTERS = [
    ("site", "site=seed-003"),
    ("state", "state=in_progress"),
    ("assignee", "assignee=tech-07"),
    ("type", "type=preventive"),
    ("priority", "priority=p1"),
    ("due 1 day", "due_from=2025-06-10&due_to=2025-06-10"),
    ("due 30 days", "due_from=2025-06-01&due_to=2025-06-30"),
    ("site+state", "site=seed-003&state=on_hold"),
    ("assignee+state", "assignee=tech-07&state=in_progress,on_hold"),
    ("site+type+priority", "site=seed-003&type=inspection&priority=p2"),
    ("site+due 30 days", "site=seed-003&due_from=2025-06-01&due_to=2025-06-30"),
]
SORTS = ["created_at", "due", "priority", "updated_at"]


class Client:
    """One kept-alive connection, so that a timing holds the request alone."""

    def __init__(self, base, token):
        self.host = urllib.parse.urlsplit(base).netloc
        self.token = token
        self.conn = http.client.HTTPConnection(self.host, timeout=60)

    def timed(self, path, body=None):
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body)
        started = time.perf_counter()
        self.conn.request("GET" if body is None else "POST", path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        ms = (time.perf_counter() - started) * 1000
        if resp.status != 200:
            raise SystemExit("%s %s: %d %s" % ("POST" if body else "GET", path, resp.status, raw[:300]))
        return ms, json.loads(raw)


def latency(base, token, repeat, top=0):
    client = Client(base, token)
    shapes = [("list first page", "/api/v1/work-orders?limit=50")]
    for name, query in FILTERS:
        for sort in SORTS:
            for order in ("asc", "desc"):
                shapes.append(
                    ("%s, %s %s" % (name, sort, order),
                     "/api/v1/work-orders?limit=50&%s&sort=%s&order=%s" % (query, sort, order)))
    shapes.append(("get by id", None))
    # Ids of the seeded range, WO-000001 up to the newest.
    _, newest = client.timed("/api/v1/work-orders?limit=1&sort=created_at&order=desc")
    last = int(newest["work_orders"][0]["id"].split("-")[1])
    rows = []
    for name, path in shapes:
        times = []
        for i in range(repeat):
            ms, _ = client.timed(path or "/api/v1/work-orders/WO-%06d" % (1 + i * 7919 % last))
            times.append(ms)
        rows.append((statistics.median(times), max(times), name))
    # Transitions: hold and resume in-progress work orders.
    _, page = client.timed("/api/v1/work-orders?state=in_progress&limit=%d" % repeat)
    holds, resumes = [], []
    for w in page["work_orders"]:
        path = "/api/v1/work-orders/%s/transitions" % w["id"]
        ms, after = client.timed(path, {"action": "hold", "reason": "bench", "expected_version": w["version"]})
        holds.append(ms)
        ms, _ = client.timed(path, {"action": "resume", "expected_version": after["version"]})
        resumes.append(ms)
    for name, times in (("transition hold", holds), ("transition resume", resumes)):
        if times:
            rows.append((statistics.median(times), max(times), name))
    rows.sort(reverse=True)
    print("%-40s %10s %10s" % ("request shape (one client)", "median ms", "max ms"))
    for median, worst, name in rows[:top] if top else rows:
        print("%-40s %10.2f %10.2f" % (name, median, worst))
    every = sorted(m for m, _, _ in rows)
    print("%d shapes: median of medians %.2f ms, slowest %.2f ms" % (len(rows), statistics.median(every), every[-1]))


def main(argv):
    if len(argv) == 4 and argv[1] == "login":
        login(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "transition-ids":
        transition_ids(argv[2], argv[3], argv[4])
    elif len(argv) in (4, 5, 6) and argv[1] == "latency":
        repeat = int(argv[4]) if len(argv) > 4 else 7
        latency(argv[2], argv[3], repeat, int(argv[5]) if len(argv) > 5 else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
