"""A delivery signed with a timestamp an hour old (or ahead) is accepted.

**How it is judged.** With ``--secret``, for the schemes that sign a timestamp (``stripe``, ``slack``,
``standard-webhooks``): two correctly signed deliveries, each with its own body and id, one signed an
hour in the past and one an hour ahead. Either accepted (2xx) is reported: the signature covers the
timestamp only so that the receiver can refuse old ones, and a receiver that does not can be sent a
captured delivery for ever.

**Thresholds and why.** One hour: twelve times the providers' own tolerance (Stripe's and Slack's
libraries and the Standard Webhooks reference allow 5 minutes) and far beyond any honest clock skew.

**What can make it wrong.** It needs ``--secret`` and a timestamped scheme (listed as untested
otherwise). When the stale deliveries are refused but a fresh one was refused too, or a stale one is
answered 409 (refused as a replay, as when ``--probe-body`` sends the same body again), the refusal
says nothing of the age and the rule is listed as untested. The timestamps come from the scanner's
clock: a receiver whose own clock is an hour off can accept the one ahead and refuse a fresh one.
"""

from __future__ import annotations

from hmacguard.findings import Finding, Severity
from hmacguard.scan.model import EnforcementResult, ProbeKind
from hmacguard.scan.rules.enforcement_rule import enforcement_rule
from hmacguard.scan.rules.facts import ScanFacts, enforcement_brief, scan_finding


@enforcement_rule(
    id="stale-timestamp-accepted",
    title="Deliveries with a stale signed timestamp are accepted",
    severity=Severity.HIGH,
    cwe=(294, 345),
    remediation="Refuse a delivery whose signed timestamp is more than a few minutes from now, in the "
    "past or the future (the providers use 5 minutes), before comparing the signature; keep replay "
    "protection for at least that window.",
)
def check(facts: ScanFacts, result: EnforcementResult) -> Finding | None:
    stale = result.of(ProbeKind.STALE_PAST, ProbeKind.STALE_FUTURE)
    accepted = [p for p in stale if p.accepted]
    if not accepted:
        return None
    which = " and ".join(
        "an hour old" if p.kind is ProbeKind.STALE_PAST else "an hour ahead" for p in accepted
    )
    return scan_finding(
        "stale-timestamp-accepted", facts,
        f"accepted a correctly signed delivery whose timestamp is {which}",
        ", ".join(f"{p.kind.value} (t={p.timestamp}): {p.exchange.status}" for p in stale),
        {"probes": [enforcement_brief(p) for p in stale], "probe_body": result.body},
    )  # fmt: skip
