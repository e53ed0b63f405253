"""A body limit exists, but far above what an HMAC endpoint needs.

**How it is judged.** On the primary variant: a size was refused, the smallest size tried was not
(a refusal at every size is a type filter, not a size limit), and the largest size not refused
(accepted, or taken whole without an answer) is at least the large-body threshold.

**Thresholds and why.** ``large_body`` 10 MiB, as for ``unbounded-body``: an HMAC endpoint's
legitimate payloads are kilobytes, so a limit that lets 10 MiB through protects little.

**What can make it wrong.** The limit is bracketed by the ladder's rungs and then bisected to within
10%; with too small a budget for bisection the bracket is wide and the message says so. A limit set
deliberately high for a known large payload is still reported: lower it, or accept the finding.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule
from hmacguard.scan.summary import summarize


@scan_rule(
    id="high-limit",
    title="Body limit is set, but far above what an HMAC endpoint needs",
    category=Category.INPUT_VALIDATION,
    severity=Severity.MEDIUM,
    cwe=(770,),
    remediation="Lower the body limit to what the largest legitimate payload needs (usually ≤ 1 MiB).",
    phases=("ladder",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    s = summarize(facts.measurements, facts.primary)
    low = s.not_refused
    if not s.limits_size or s.refused is None or low is None or low < th.large_body:
        return None
    return scan_finding(
        "high-limit", facts,
        f"the body limit is between {size_text(low)} and {size_text(s.refused)} ({facts.primary.label})",
        f"accepted {size_text(low)}, refused {size_text(s.refused)}"
        f" ({s.refusal.value if s.refusal else 'unknown'})",
        {"largest_accepted": low, "smallest_refused": s.refused, "threshold": th.large_body,
         "variant": facts.primary.label},
    )  # fmt: skip
