"""The size limit applies to some content types only.

**How it is judged.** Among plain Content-Length variants (no gzip, no ``Expect``): one content type
was refused *for its size*, and another was read well past that size. Refused for size: the type's
smallest size tried was not refused (a type refused at every size is a type filter), and its
smallest refusal either said so by status (413, or an error status its small bodies did not get) or
came after the server had read part of the body. A refusal that comes before any body byte can have
been read, with the status the type's small bodies got (a 403 for every non-JSON type), is the same
answer at every size, not a size limit. Read well past: the other type accepted a body at least the
bypass factor times that size, and larger than the socket buffers (a body that fits in them is "sent"
whether or not the server reads it). The largest such acceptance is reported, with every type's largest
accepted and smallest refused size in the evidence.

**Thresholds and why.** ``bypass_factor`` 2: two types under one cap bracket it a little differently
(the ladder's rungs, bisection to within 10%), so a type accepted up to the size another is refused at
is one limit seen twice, not a bypass. The content-type probes start at the primary's largest accepted
and smallest refused rung and, when the primary refused nothing, climb to the large-body threshold
(10 MiB), so a bypass is looked for where it matters.

**What can make it wrong.** A limit that differs between types by less than the factor is not
reported. A server that answers some type before reading it only above the socket buffers' size
(about 256 KiB on loopback) shows its small bodies as accepted; that is why such an answer, with the
small bodies' status, does not count as a refusal for size. Typical cause of a real bypass: a body
parser's limit (Express's ``json({limit})``) that only runs for its own content type, while another
route reads the raw stream.
"""

from __future__ import annotations

from hmacguard.findings import Category, EvidenceValue, Finding, Severity
from hmacguard.scan.model import Measurement, Refusal, Variant, Verdict
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule
from hmacguard.scan.summary import SIZE_PHASES, VariantSummary
from hmacguard.scan.wire import Framing


def _probes(facts: ScanFacts, variant: Variant, verdict: Verdict) -> list[Measurement]:
    return [
        m for m in facts.measurements
        if m.variant == variant and m.phase in SIZE_PHASES and m.verdict is verdict
    ]  # fmt: skip


def _refused_for_size(facts: ScanFacts, summary: VariantSummary) -> Measurement | None:
    """The type's smallest refusal, if it is one of size (see the module's docstring)."""
    if not summary.limits_size:
        return None
    refused = min(_probes(facts, summary.variant, Verdict.REFUSED), key=lambda m: m.size, default=None)
    if refused is None:
        return None
    if refused.refusal is Refusal.STATUS:
        return refused
    ex = refused.exchange
    sent = ex.sent_at_response if ex.sent_at_response is not None else ex.body_sent
    return refused if sent > ex.uncertainty else None  # something was read before the answer (or cut)


def _read_past(facts: ScanFacts, summary: VariantSummary) -> Measurement | None:
    """The type's largest accepted body that the server must have read (it outgrew the buffers)."""
    read = [m for m in _probes(facts, summary.variant, Verdict.ACCEPTED) if m.size > m.exchange.uncertainty]
    return max(read, key=lambda m: m.size, default=None)


@scan_rule(
    id="content-type-bypass",
    title="Size limit applies to some content types only",
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Apply the cap to the raw body before any content-type-specific parser, for every type.",
    phases=("content-type",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    plain = [
        s for s in facts.summaries()
        if s.variant.framing is Framing.CONTENT_LENGTH and not s.variant.gzip and not s.variant.expect
    ]  # fmt: skip
    best: tuple[Measurement, Measurement] | None = None
    for limited in plain:
        refused = _refused_for_size(facts, limited)
        if refused is None:
            continue
        for other in plain:
            read = _read_past(facts, other) if other is not limited else None
            if read is None or read.size < th.bypass_factor * refused.size:
                continue
            if best is None or read.size > best[1].size:
                best = (refused, read)
    if best is None:
        return None
    refused, read = best
    per_type: dict[str, EvidenceValue] = {
        s.variant.content_type: {"largest_accepted": s.accepted, "smallest_refused": s.refused} for s in plain
    }
    limited_type, bypass_type = refused.variant.content_type, read.variant.content_type
    return scan_finding(
        "content-type-bypass", facts,
        f"refuses {size_text(refused.size)} as {limited_type} but accepted {size_text(read.size)} as "
        f"{bypass_type}",
        f"{limited_type}: refused at {size_text(refused.size)} ({refused.exchange.status}); "
        f"{bypass_type}: accepted {size_text(read.size)}",
        {"limited_type": limited_type, "limited_refused": refused.size,
         "bypass_type": bypass_type, "bypass_accepted": read.size, "bypass_factor": th.bypass_factor,
         "per_type": per_type},
    )  # fmt: skip
