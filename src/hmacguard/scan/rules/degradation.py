"""The service degrades under large-body load: errors, dropped connections, hangs or slow answers.

**How it is judged.** High severity when a probe failed (5xx, or the connection dropped after the
whole body was sent) or the burst had errors or unanswered requests; medium when probes were left
unanswered while the service answered others, or when the burst's latency (90th percentile) exceeds
the quiet requests' median by both the factor and the floor. The probe that found the target gone
is ``target-unavailable``'s evidence, not this rule's.

**Thresholds and why.** ``latency_factor`` 10 and ``latency_floor_s`` 1 second: four concurrent
requests on two workers double latency by queueing alone; ten times, and a second more, is the
service struggling.

**What can make it wrong.** A loaded scanning machine slows answers too (the floor keeps small
jitter out). A server that answers an unsigned or forged request with 500 by design is reported as
failing, which it is from a client's point of view.
"""

from __future__ import annotations

import statistics

from hmacguard.findings import Category, EvidenceValue, Finding, Severity
from hmacguard.scan.model import Verdict
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, probe_brief, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="degradation",
    title="Service degrades under large-body load",
    category=Category.DOS_POTENTIAL,
    severity=Severity.HIGH,
    cwe=(400,),
    remediation="Cap bodies, stream the HMAC and rate-limit so that a burst cannot slow or break the "
    "service.",
    phases=("burst",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    problems: list[str] = []
    severity = Severity.MEDIUM
    values: dict[str, EvidenceValue] = {}
    measurements = list(facts.measurements)
    if facts.unavailable_reason is not None and measurements:
        measurements.pop()  # the probe that found the target gone is target-unavailable's evidence
    failed = [m for m in measurements if m.verdict is Verdict.ERROR]
    if failed:
        severity = Severity.HIGH
        problems.append(f"{len(failed)} probe(s) failed (5xx or dropped after the body)")
        values["failed_probes"] = [probe_brief(m) for m in failed[:10]]
    hung = [m for m in measurements if m.verdict is Verdict.NO_ANSWER]
    if hung:
        labels = sorted({m.variant.label for m in hung})
        problems.append(f"{len(hung)} probe(s) got no answer ({', '.join(labels)})")
        values["unanswered_probes"] = [probe_brief(m) for m in hung[:10]]
    b = facts.burst
    if b is not None:
        if b.errors or b.no_answer:
            severity = Severity.HIGH
            problems.append(f"burst: {b.errors} error(s), {b.no_answer} unanswered of {b.requests}")
        if b.quiet_latencies and b.latencies:
            quiet = statistics.median(b.quiet_latencies)
            p90 = sorted(b.latencies)[int(0.9 * (len(b.latencies) - 1))]
            values["burst_latency"] = {"quiet_median_s": round(quiet, 4), "burst_p90_s": round(p90, 4)}
            if p90 > max(quiet * th.latency_factor, quiet + th.latency_floor_s):
                problems.append(f"burst latency p90 {p90:.2f}s against {quiet:.2f}s quiet")
        values["burst_outcomes"] = dict(b.statuses)
    if not problems:
        return None
    return scan_finding("degradation", facts, "the service degraded: " + "; ".join(problems),
                        "; ".join(problems), values, severity=severity)  # fmt: skip
