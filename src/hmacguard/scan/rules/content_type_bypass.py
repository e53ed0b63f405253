"""The size limit applies to some content types only.

**How it is judged.** Among plain Content-Length variants (no gzip, no ``Expect``): one content type
was refused at a size that is a size limit (its smallest size tried was not refused), and another was
accepted at or above that size. The largest such acceptance is reported, with every type's largest
accepted and smallest refused size in the evidence.

**Thresholds and why.** None of its own; the content-type probes start at the primary's largest
accepted and smallest refused rung and, when the primary refused nothing, climb to the large-body
threshold (10 MiB), so a bypass is looked for where it matters.

**What can make it wrong.** A type refused at every size is a type filter, not a limit, and is not
compared. Typical cause: a body parser's limit (Express's ``json({limit})``) that only runs for its
own content type, while another route reads the raw stream.
"""

from __future__ import annotations

from hmacguard.findings import Category, EvidenceValue, Finding, Severity
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule
from hmacguard.scan.summary import VariantSummary
from hmacguard.scan.wire import Framing


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
    best: tuple[int, VariantSummary, VariantSummary] | None = None
    for limited in plain:
        if not limited.limits_size or limited.refused is None:
            continue
        for other in plain:
            if other is limited or other.accepted is None or other.accepted < limited.refused:
                continue
            if best is None or other.accepted > best[0]:
                best = (other.accepted, limited, other)
    if best is None:
        return None
    _, limited, other = best
    if limited.refused is None or other.accepted is None:
        return None
    per_type: dict[str, EvidenceValue] = {
        s.variant.content_type: {"largest_accepted": s.accepted, "smallest_refused": s.refused} for s in plain
    }
    return scan_finding(
        "content-type-bypass", facts,
        f"refuses {size_text(limited.refused)} as {limited.variant.content_type} but accepted "
        f"{size_text(other.accepted)} as {other.variant.content_type}",
        f"{limited.variant.content_type}: refused at {size_text(limited.refused)}; "
        f"{other.variant.content_type}: accepted {size_text(other.accepted)}",
        {"limited_type": limited.variant.content_type, "limited_refused": limited.refused,
         "bypass_type": other.variant.content_type, "bypass_accepted": other.accepted,
         "per_type": per_type},
    )  # fmt: skip
