"""The same signed delivery is accepted twice: a captured request can be replayed.

**How it is judged.** With ``--secret``: a correctly signed, fresh delivery (the probe event with an id
of its own) is sent; when it is accepted (2xx), the very same request (same body, same delivery id,
same timestamp, same signature) is sent again at once. Reported when the second is accepted too.
When the second is refused and the scheme's signature header has another spelling every receiver
must accept (Stripe: a ``v0=`` entry after the ``v1=``; Standard Webhooks: a ``v1a,`` entry after the
``v1,``), the same delivery is sent a third time so spelled: reported when that one is accepted -- the
receiver remembers the header's text, not the delivery, and anyone holding one delivery replays it.

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

from hmacguard.findings import EvidenceValue, Finding, Severity
from hmacguard.scan.model import EnforcementResult, ProbeKind
from hmacguard.scan.rules.enforcement_rule import enforcement_rule
from hmacguard.scan.rules.facts import ScanFacts, enforcement_brief, scan_finding


@enforcement_rule(
    id="replay-accepted",
    title="A replayed delivery is accepted again",
    severity=Severity.MEDIUM,
    cwe=(294,),
    remediation="Remember each processed delivery (its id when the signature covers it, otherwise "
    "the signature value that verified or a digest of what was signed -- never the header's text, "
    "which can be spelled another way) in a store every worker shares, for longer than the "
    "provider's retry window and the timestamp tolerance, and answer 409 to a repeat; release it when "
    "processing fails, so that the provider's retry still works.",
)
def check(facts: ScanFacts, result: EnforcementResult) -> Finding | None:
    first, again = result.first(ProbeKind.SIGNED), result.first(ProbeKind.REPLAY)
    if first is None or again is None or not first.accepted:
        return None
    evidence: dict[str, EvidenceValue] = {
        "first": enforcement_brief(first),
        "replay": enforcement_brief(again),
        "probe_body": result.body,
    }
    statuses = first.exchange.status, again.exchange.status
    answers = f"first delivery: {statuses[0]}; the identical request again: {statuses[1]}"
    if again.accepted:
        summary = f"accepted the same signed delivery twice ({statuses[0]}, then {statuses[1]})"
        return scan_finding("replay-accepted", facts, summary, answers, evidence)
    respelled = result.first(ProbeKind.REPLAY_RESPELLED)
    if respelled is None or not respelled.accepted:
        return None
    return scan_finding(
        "replay-accepted", facts,
        f"refused the identical replay ({statuses[1]}) but accepted the same delivery with its "
        f"signature header spelled another way ({respelled.exchange.status}): it remembers the header's "
        "text, not the delivery -- or remembers deliveries per worker process, or only briefly (the "
        "respelled replay reached another worker, or came later): keep them in one shared store",
        f"{answers}; again with an entry verifiers skip added to the signature header: "
        f"{respelled.exchange.status}",
        {**evidence, "replay_respelled": enforcement_brief(respelled)},
    )  # fmt: skip
