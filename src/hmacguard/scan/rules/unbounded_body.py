"""The endpoint reads a very large body whole and refuses no size.

**How it is judged.** On the primary variant (Content-Length framing, the scheme's content type):
the largest accepted body is at least the large-body threshold and no size it was sent was refused
(no 413, no early answer, no cut connection). Other variants that are unbounded too are listed in the
evidence.

**Thresholds and why.** ``large_body`` 10 MiB: the seed's "abnormally large (over about 10 MB)";
webhook payloads are kilobytes (GitHub caps deliveries at 25 MB, Stripe's events are far smaller).

**What can make it wrong.** A byte budget or ``--max-size`` below 10 MiB cannot show it (the ladder
never gets there; accepting 4 MiB is not "abnormally large"). A server that accepts large bodies only
because a proxy in front of it buffers them is still unbounded from outside, but the fix then belongs
to the proxy. A limit above the largest rung looks like no limit.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.model import Verdict
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, largest, probe_brief, scan_finding
from hmacguard.scan.rules.registry import scan_rule
from hmacguard.scan.summary import summarize


@scan_rule(
    id="unbounded-body",
    title="Endpoint accepts very large bodies without refusing them",
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Enforce a hard body cap (1 MiB is ample for webhooks) that holds for every framing, "
    "answer 413 before reading past it, and compute the HMAC while streaming.",
    phases=("ladder",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    s = summarize(facts.measurements, facts.primary)
    if s.bounded or s.accepted is None or s.accepted < th.large_body:
        return None
    top = largest(facts, facts.primary, Verdict.ACCEPTED)
    if top is None:
        return None
    also = [
        o.variant.label for o in facts.summaries()
        if o.variant != facts.primary and not o.bounded and (o.accepted or 0) >= th.large_body
    ]  # fmt: skip
    return scan_finding(
        "unbounded-body", facts,
        f"accepted a {size_text(s.accepted)} body ({facts.primary.label}) and refused no size it was sent",
        f"read {size_text(s.accepted)} whole and answered {top.exchange.status} after "
        f"{top.exchange.total_s:.2f}s; no 413 at any size",
        {"largest_accepted": s.accepted, "variant": facts.primary.label, "status": top.exchange.status,
         "seconds": round(top.exchange.total_s, 3), "threshold": th.large_body,
         "also_unbounded": list(also), "probe": probe_brief(top)},
    )  # fmt: skip
