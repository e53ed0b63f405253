"""Claims: a full default scan of a lab target takes at most 60 s of wall time (goal: 20 s), and the
enforcement phase (unsigned, forged and path-spelling probes) adds at most 20% to it (1.2x).

"Full default": the default budget (1 GiB, 60 s, ladder 1 KiB / 1 MiB / 10 MiB / 100 MiB, every
phase) with the server's memory observed by pid, so that retention runs too. Side by side in one
run, each target is scanned twice, each time on a fresh server: with every phase but enforcement
(``--skip-phase enforcement``: the scan as it was before the phase existed) and with every phase.
The targets: a vulnerable one that reads every body whole (``flask-get-data``: nothing is refused,
every rung is sent), a correct one (``flask-streaming-capped``: refusals are cheap, bisection runs),
and the slowest lab target (``express-json-limit``: its small JSON requests never get an answer, so
two probes wait out the 5 s request timeout). Each line shows both wall times, their ratio, the
bytes and requests sent and the grade; ``--repeat N`` takes the median of N pairs.

Bounded: loopback only, the scan's own budget. Run: ``python bench/bench_scan_wall.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from hmacguard.lab import run_target
from hmacguard.scan import Budget, PhaseSelection, PidObserver, ScanReport, ScanTarget, run_scan

GOAL = 20.0
LIMIT = 60.0
RATIO = 1.2
MiB = 1024 * 1024
WITHOUT = PhaseSelection.of(skip=["enforcement"])


def scan_once(name: str, selection: PhaseSelection | None) -> tuple[float, ScanReport]:
    with run_target(name) as t:
        started = time.monotonic()
        report = run_scan(
            ScanTarget(t.url, scheme=t.scheme), Budget(), observer=PidObserver(t.pid), selection=selection
        )
        return time.monotonic() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "targets", nargs="*", default=["flask-get-data", "flask-streaming-capped", "express-json-limit"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="pairs of scans per target (median)")
    args = parser.parse_args()
    print(f"{'target':<26}{'without s':>10}{'with s':>8}{'ratio':>7}{'/ goal':>8}{'sent':>11}{'requests':>10}"
          "  grade  findings")  # fmt: skip
    worst, ratios = 0.0, []
    for name in args.targets:
        before, after = [], []
        for _ in range(args.repeat):
            before.append(scan_once(name, WITHOUT)[0])
            wall, report = scan_once(name, None)
            after.append(wall)
        without, with_ = statistics.median(before), statistics.median(after)
        ratio = with_ / without
        worst, ratios = max(worst, with_), [*ratios, ratio]
        rules = ", ".join(f.rule for f in report.findings) or "none"
        sent = report.bytes_sent / MiB
        print(f"{name:<26}{without:>10.1f}{with_:>8.1f}{ratio:>7.2f}{with_ / GOAL:>8.2f}"
              f"{sent:>7.0f} MiB{report.requests:>10}  {report.grade:>5}  {rules}")  # fmt: skip
        if report.untested:
            print(f"{'':<26}untested: " + "; ".join(f"{u.what} ({u.reason})" for u in report.untested))
    ok_wall = worst <= LIMIT
    ok_ratio = max(ratios) <= RATIO
    print(
        f"claim: a full default scan <= {LIMIT:.0f} s (goal {GOAL:.0f} s): {'PASS' if ok_wall else 'FAIL'} "
        f"(slowest {worst:.1f} s{', within the goal' if worst <= GOAL else ', over the goal'})"
    )
    print(
        f"claim: the enforcement phase costs <= {RATIO:.1f}x: {'PASS' if ok_ratio else 'FAIL'} "
        f"(ratio with / without: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"overall {statistics.mean(ratios):.2f})"
    )
    return 0 if ok_wall and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
