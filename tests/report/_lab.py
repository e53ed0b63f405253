"""Real lab scans shared by the report tests: each target is scanned once per test session.

The budget is small (a 32 MiB top rung, a short burst; retention as by default, 80 requests of
1 MiB, which is what keeps an allocator's noise from looking like a leak) but large enough for the
memory-amplification rule (judged on bodies of 32 MiB and more) to show on flask-get-data.
"""

from __future__ import annotations

import functools

from hmacguard.lab import run_target
from hmacguard.scan import Budget, PidObserver, ScanReport, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB

BUDGET = Budget(
    bytes=400 * MiB,
    seconds=60,
    request_timeout=2.0,
    ladder=(KiB, MiB, 8 * MiB, 32 * MiB),
    max_size=32 * MiB,
    burst_requests=12,
    burst_concurrency=4,
    burst_size=256 * KiB,
)


@functools.cache
def lab_scan(name: str) -> ScanReport:
    """Scan lab target ``name`` under its real server, its memory observed by pid (forged signatures,
    as an attacker would send them)."""
    with run_target(name) as t:
        return run_scan(ScanTarget(t.url, scheme=t.scheme), BUDGET, observer=PidObserver(t.pid))
