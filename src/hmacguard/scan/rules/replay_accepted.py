"""The same signed delivery is accepted twice: a captured request can be replayed.

**How it is judged.** With ``--secret``: a correctly signed, fresh delivery (the probe event with an id
of its own) is sent; when it is accepted (2xx), the very same request (same body, same delivery id,
same timestamp, same signature) is sent again at once. Reported when the second is accepted too.

**Thresholds and why.** None: the timestamp is seconds old, well inside every provider's tolerance, so
only a memory of processed deliveries can refuse the repeat (409 is the usual answer).

**What can make it wrong.** It needs ``--secret`` (listed as untested without it) and a delivery the
endpoint accepts: one that parses events and refuses the test event needs ``--probe-body`` with a
real one. A receiver that answers a duplicate 2xx without processing it again (an idempotent handler
keyed on an id inside the body) is reported although it is safe: check it, and keep the finding in
a baseline. A memory of deliveries kept per process behind several workers refuses the repeat only
when it lands on the same worker: one replay can pass or fail by chance.
"""

from __future__ import annotations

from hmacguard.findings import Finding, Severity
from hmacguard.scan.model import EnforcementResult, ProbeKind
from hmacguard.scan.rules.enforcement_rule import enforcement_rule
from hmacguard.scan.rules.facts import ScanFacts, enforcement_brief, scan_finding


@enforcement_rule(
    id="replay-accepted",
    title="A replayed delivery is accepted again",
    severity=Severity.MEDIUM,
    cwe=(294,),
    remediation="Remember each processed delivery (its id when the signature covers it, otherwise "
    "its signature or a digest of the body) in a store every worker shares, for longer than the "
    "provider's retry window and the timestamp tolerance, and answer 409 to a repeat; release it when "
    "processing fails, so that the provider's retry still works.",
)
def check(facts: ScanFacts, result: EnforcementResult) -> Finding | None:
    first, again = result.first(ProbeKind.SIGNED), result.first(ProbeKind.REPLAY)
    if first is None or again is None or not (first.accepted and again.accepted):
        return None
    return scan_finding(
        "replay-accepted", facts,
        f"accepted the same signed delivery twice ({first.exchange.status}, then {again.exchange.status})",
        f"first delivery: {first.exchange.status}; the identical request again: {again.exchange.status}",
        {"first": enforcement_brief(first), "replay": enforcement_brief(again), "probe_body": result.body},
    )  # fmt: skip
