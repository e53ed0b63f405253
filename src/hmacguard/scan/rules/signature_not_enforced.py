"""The endpoint takes a request whose signature is missing or wrong.

**How it is judged.** The enforcement phase sends the scanned URL two small requests carrying the
probe event: one with no signature header at all (the provider's other headers only), one with a
well-formed but wrong signature. Either answered 2xx is reported: the endpoint took an
unauthenticated request as a delivery. The evidence gives both answers, and whether the scanned path
answered exactly as a random path beside it does (then the URL may not be the receiver at all).

**Thresholds and why.** None: a receiver that verifies answers both with a 4xx (400 for a missing
header, 401 or 403 for a wrong one). A 2xx says the request was accepted, whether its handler acted on
it at once or queued it.

**What can make it wrong.** A receiver that acknowledges every request with 2xx and verifies later
(queue first) is reported; it should refuse at the door, and if it truly drops such deliveries
later, accept the finding in a baseline. A URL that is not the receiver (a typo answered by a
catch-all route, a page that answers POST with 200) is reported too: the evidence says when the
scanned path answered like a random one. The probes carry a test event (or ``--probe-body``): a
receiver that verifies some event types only is judged on that one.
"""

from __future__ import annotations

from hmacguard.findings import Finding, Severity
from hmacguard.scan.model import EnforcementResult, ProbeKind
from hmacguard.scan.rules.enforcement_rule import enforcement_rule
from hmacguard.scan.rules.facts import ScanFacts, enforcement_brief, scan_finding


@enforcement_rule(
    id="signature-not-enforced",
    title="Requests without a valid signature are accepted",
    severity=Severity.CRITICAL,
    cwe=(347, 306),
    remediation="Verify the signature of every request before acting on it: refuse (400) when the "
    "header is missing or empty and (401) when it does not match; never skip the check because the "
    "header is absent.",
)
def check(facts: ScanFacts, result: EnforcementResult) -> Finding | None:
    asked = result.of(ProbeKind.UNSIGNED, ProbeKind.FORGED)
    accepted = [p for p in asked if p.accepted]
    if not accepted:
        return None
    kinds = " and ".join(
        "no signature" if p.kind is ProbeKind.UNSIGNED else "a forged signature" for p in accepted
    )
    first = accepted[0]
    like_random = any(s.answer == first.answer for s in result.of(ProbeKind.SIBLING))
    return scan_finding(
        "signature-not-enforced", facts,
        f"answered {first.exchange.status} to a request with {kinds}",
        ", ".join(f"{p.kind.value}: {p.exchange.status}" for p in asked)
        + ("; a random path beside it answers the same" if like_random else ""),
        {"probes": [enforcement_brief(p) for p in asked], "answers_like_random_path": like_random,
         "probe_body": result.body, "content_type": result.content_type},
    )  # fmt: skip
