"""Claim: a full default scan of a lab target takes at most 60 s of wall time (goal: 20 s).

"Full default": the default budget (1 GiB, 60 s, ladder 1 KiB / 1 MiB / 10 MiB / 100 MiB, every
phase) with the server's memory observed by pid, so that retention runs too. Side by side in one
run: a vulnerable target that reads every body whole (``flask-get-data``: nothing is refused, every
rung is sent), a correct one (``flask-streaming-capped``: refusals are cheap, bisection runs), and the
slowest lab target (``express-json-limit``: its small JSON requests never get an answer, so two
probes wait out the 5 s request timeout). Each line shows the wall seconds, its ratio to the 20 s
goal, the bytes and requests sent and the grade.

Bounded: loopback only, the scan's own budget. Run: ``python bench/bench_scan_wall.py``.
"""

from __future__ import annotations

import argparse
import sys
import time

from hmacguard.lab import run_target
from hmacguard.scan import Budget, PidObserver, ScanTarget, run_scan

GOAL = 20.0
LIMIT = 60.0
MiB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "targets", nargs="*", default=["flask-get-data", "flask-streaming-capped", "express-json-limit"]
    )
    args = parser.parse_args()
    print(f"{'target':<26}{'wall s':>8}{'/ goal':>8}{'sent':>11}{'requests':>10}  grade  findings")
    worst = 0.0
    for name in args.targets:
        with run_target(name) as t:
            started = time.monotonic()
            report = run_scan(ScanTarget(t.url, scheme=t.scheme), Budget(), observer=PidObserver(t.pid))
            wall = time.monotonic() - started
        worst = max(worst, wall)
        rules = ", ".join(f.rule for f in report.findings) or "none"
        print(f"{name:<26}{wall:>8.1f}{wall / GOAL:>8.2f}{report.bytes_sent / MiB:>7.0f} MiB"
              f"{report.requests:>10}  {report.grade:>5}  {rules}")  # fmt: skip
        if report.untested:
            print(f"{'':<26}untested: " + "; ".join(f"{u.what} ({u.reason})" for u in report.untested))
    ok = worst <= LIMIT
    print(
        f"claim: a full default scan <= {LIMIT:.0f} s (goal {GOAL:.0f} s): {'PASS' if ok else 'FAIL'} "
        f"(slowest {worst:.1f} s{', within the goal' if worst <= GOAL else ', over the goal'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
