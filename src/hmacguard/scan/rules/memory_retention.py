"""Memory is kept after each request: bodies (or what was built from them) outlive the request.

**How it is judged.** The retention phase sends warm-up requests, then rounds of identical requests,
and reads the server's RSS after each round. Reported when the growth per request fitted over all
rounds reaches the floor, *and* the second half of the rounds and the median round still grow at half
that rate (a leak keeps growing; a one-off allocation does not).

**Thresholds and why.** ``retention_ratio`` 0.5 of the body per request, and at least
``retention_min_bytes`` 16 KiB. The lab's leaking targets keep 0.98–1.2 body per request; Node's
garbage collector alone swings RSS by up to 0.3 body per request over the same window.

**What can make it wrong.** It needs server memory (``--pid``, ``--metrics`` or ``--launch``). A leak
of much less than half a body per request is below what the window can tell from allocator and
collector noise (``hmacguard leaks`` finds those, in-process). Requests spread over several workers
dilute the growth per worker; a rate limit too small for the rounds skips the phase (listed as
untested).
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="memory-retention",
    title="Memory is kept after each request",
    category=Category.MEMORY_LEAK,
    severity=Severity.HIGH,
    cwe=(401,),
    remediation="Keep bodies and signatures request-scoped: no module-level lists or caches holding them, "
    "no attributes on long-lived objects; key caches by a hash of the body.",
    phases=("retention",),
    needs_memory=True,
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    r = facts.retention
    if r is None:
        return None
    floor = max(th.retention_ratio * r.size, th.retention_min_bytes)
    if r.bytes_per_request < floor:
        return None
    if r.late_bytes_per_request < 0.5 * floor or r.median_bytes_per_request < 0.5 * floor:
        return None
    return scan_finding(
        "memory-retention", facts,
        f"memory grows by {size_text(r.bytes_per_request)} per request of {size_text(r.size)} "
        f"({r.bytes_per_request / r.size:.0%} of the body) and keeps growing",
        f"{r.answered} requests of {size_text(r.size)}: RSS {size_text(r.rss[0])} -> {size_text(r.rss[-1])}, "
        f"{size_text(r.bytes_per_request)}/request overall, {size_text(r.late_bytes_per_request)}/request "
        "in the later rounds",
        {"bytes_per_request": round(r.bytes_per_request), "late_bytes_per_request":
         round(r.late_bytes_per_request), "median_bytes_per_request":
         round(r.median_bytes_per_request), "body_size": r.size,
         "ratio_to_body": round(r.bytes_per_request / r.size, 3), "rss_after_each_round": list(r.rss),
         "requests_per_round": r.per_round, "warmup": r.warmup, "variant": r.variant.label},
    )  # fmt: skip
