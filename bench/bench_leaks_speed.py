"""Claim: ``hmacguard leaks`` measures 1,000 requests to a small Flask app in 10 s or less.

Side by side in one process, on the same app and the same signed 1 KiB GitHub-style deliveries:

- plain: the harness's own loop sends the requests in-process with no tracing at all -- the floor any
  in-process driver pays (Flask's request handling plus signing each request);
- traced: ``find_leaks`` over the same number of requests, everything included: warm-up, tracemalloc
  with 48-frame tracebacks, a snapshot and two full collections per round, the keeper analysis and
  the store watch.

The ratio traced/plain is what the measurement costs on top of running the requests at all. Each
side keeps the best of ``--repeat`` runs so that a noisy neighbour on a shared machine inflates
neither. The small app keeps one body in a bounded deque (a plateau) so the analysis has something
to do; nothing leaves the process.

Run: ``python bench/bench_leaks_speed.py [--requests 1000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
import time
from collections import deque

from flask import Flask, request

from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import AppWorkload, Recipe, find_leaks

LIMIT_SECONDS = 10.0
KEY = LAB_SECRET.encode()

app = Flask(__name__)
RECENT: deque[bytes] = deque(maxlen=16)


@app.post("/webhook")
def webhook() -> tuple[dict[str, object], int]:
    body = request.get_data()
    expected = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return {"ok": False}, 401
    RECENT.append(body)
    return {"ok": True, "bytes": len(body)}, 200


def recipe() -> Recipe:
    return Recipe(body_size=1024, scheme="github", secret=LAB_SECRET)


def plain(requests: int) -> float:
    workload = AppWorkload(app, recipe())
    t0 = time.perf_counter()
    workload.run(requests)
    elapsed = time.perf_counter() - t0
    if workload.statuses.get(200) != requests:
        raise SystemExit(f"plain loop: unexpected statuses {dict(workload.statuses)}")
    return elapsed


def traced(requests: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    report = find_leaks(app, recipe(), requests=requests)
    elapsed = time.perf_counter() - t0
    if report.growing:
        raise SystemExit(f"traced run reported a leak in a bounded app: {report.growing}")
    return elapsed, len(report.sites)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    plain(50)  # import and first-request costs belong to neither side
    plain_best = min(plain(args.requests) for _ in range(args.repeat))
    traced_runs = [traced(args.requests) for _ in range(args.repeat)]
    traced_best = min(t for t, _ in traced_runs)
    print(f"{args.requests} signed 1 KiB requests to a small Flask app, in-process, best of {args.repeat}")
    print(f"  plain loop (no tracing):    {plain_best:6.2f} s  ({args.requests / plain_best:,.0f} req/s)")
    print(f"  hmacguard leaks (traced):   {traced_best:6.2f} s  ({args.requests / traced_best:,.0f} req/s)")
    print(f"  ratio traced/plain:         {traced_best / plain_best:6.2f}x")
    ok = traced_best <= LIMIT_SECONDS
    print(f"  claim (<= {LIMIT_SECONDS:.0f} s for {args.requests} requests): {'holds' if ok else 'FAILS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
