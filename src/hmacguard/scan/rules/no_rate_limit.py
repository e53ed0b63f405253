"""No rate limiting under a burst of large requests.

**How it is judged.** The burst phase sends a few quiet requests, then a burst of requests of the
largest accepted size (at most 1 MiB), several at a time. Reported when no request of the burst was
throttled (429) and no response of the whole scan advertised a rate limit (``RateLimit``,
``RateLimit-Policy``, ``X-RateLimit-*``, ``Retry-After``).

**Thresholds and why.** None of its own: the burst is ``--burst`` requests (20), ``--concurrency``
at a time (4), enough for any per-client limit meant to stop a flood of large bodies to bite.

**What can make it wrong.** A limit larger than the burst (or keyed on something the scanner does not
vary) is not seen unless it is advertised in headers. A limit enforced by a proxy the scan does not
pass through is not seen at all.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.probes.ratelimit import rate_limit_headers
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="no-rate-limit",
    title="No rate limiting under a burst of large requests",
    category=Category.RATE_LIMITING,
    severity=Severity.MEDIUM,
    cwe=(770,),
    remediation="Rate-limit per client before reading the body; answer 429 with Retry-After and RateLimit "
    "headers.",
    phases=("burst",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    b = facts.burst
    if b is None or b.throttled:
        return None
    advertised = {h for m in facts.measurements for h in rate_limit_headers(m.exchange)}
    advertised |= {h for ex in facts.side_exchanges for h in rate_limit_headers(ex)}
    if facts.enforcement is not None:
        advertised |= {h for p in facts.enforcement.probes for h in rate_limit_headers(p.exchange)}
    if advertised or b.rate_limit_headers:
        return None
    return scan_finding(
        "no-rate-limit", facts,
        f"{b.requests} requests of {size_text(b.size)} ({b.concurrency} at a time) were all let through",
        f"{b.requests} x {size_text(b.size)} in {b.duration_s:.2f}s: "
        + ", ".join(f"{k} x{v}" for k, v in b.statuses.items())
        + "; no 429, Retry-After or RateLimit headers",
        {"requests": b.requests, "concurrency": b.concurrency, "body_size": b.size,
         "outcomes": dict(b.statuses), "seconds": round(b.duration_s, 3)},
    )  # fmt: skip
