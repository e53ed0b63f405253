"""The size limit holds for a Content-Length body but not for the same body sent chunked.

**How it is judged.** For each content type: a chunked body (``Transfer-Encoding: chunked``, no
Content-Length) was accepted at or above the smallest size the same content type was refused with a
Content-Length, where that refusal is a size limit (the smallest Content-Length size was not
refused). The largest such chunked acceptance is reported.

**Thresholds and why.** None of its own: any chunked acceptance at or above the Content-Length
refusal is a bypass, since a check that trusts the header is skipped when there is no header.

**What can make it wrong.** Near a limit the two framings are compared at the ladder's and the
bisection's sizes; a server whose limit differs by less than the bisection precision between framings
is not reported. A server that refuses chunked bodies at every size shows no bypass (correctly).
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.model import Variant
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule
from hmacguard.scan.summary import VariantSummary, summarize
from hmacguard.scan.wire import Framing


@scan_rule(
    id="chunked-bypass",
    title="Size limit is skipped for chunked bodies (no Content-Length)",
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Count bytes while reading the stream instead of trusting Content-Length; refuse with 413 "
    "the moment the count passes the cap.",
    phases=("chunked",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    best: tuple[int, VariantSummary, VariantSummary] | None = None
    for ch in facts.summaries():
        if ch.variant.framing is not Framing.CHUNKED or ch.accepted is None:
            continue
        cl = summarize(facts.measurements, Variant(Framing.CONTENT_LENGTH, ch.variant.content_type))
        bypassed = cl.limits_size and cl.refused is not None and ch.accepted >= cl.refused
        if bypassed and (best is None or ch.accepted > best[0]):
            best = (ch.accepted, cl, ch)
    if best is None:
        return None
    _, cl, ch = best
    if cl.refused is None or ch.accepted is None:
        return None
    return scan_finding(
        "chunked-bypass", facts,
        f"refuses {size_text(cl.refused)} with Content-Length but accepted {size_text(ch.accepted)} chunked",
        f"Content-Length: refused at {size_text(cl.refused)}; chunked: accepted {size_text(ch.accepted)}"
        + ("" if ch.bounded else ", and refused no chunked size"),
        {"content_length_refused": cl.refused, "chunked_accepted": ch.accepted,
         "chunked_refused": ch.refused, "content_type": ch.variant.content_type},
    )  # fmt: skip
