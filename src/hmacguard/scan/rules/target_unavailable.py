"""The target stopped answering during the scan.

**How it is judged.** After any probe that did not end in an HTTP response, the scanner checks that
the target still answers anything: a GET for a random path, then a tiny request of the last kind that
was answered, three tries over about two seconds (a server may be restarting a worker). When none is
answered, probing ends and this rule reports the probes that preceded it.

**Thresholds and why.** None: a target that stops answering a bounded scan has failed, whatever else
it got right (the score is capped at 50 for any critical finding).

**What can make it wrong.** A server that restarts a crashed worker more slowly than the retries
last is reported even though it came back; one restarted by a supervisor between probes can hide a
crash. The probes listed before it are what to look at first, not proof of which one did it.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, probe_brief, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="target-unavailable",
    title="Target stopped answering during the scan",
    category=Category.AVAILABILITY,
    severity=Severity.CRITICAL,
    cwe=(400,),
    remediation="Find what the preceding probe did to the service (crash, OOM kill, hang) and cap bodies "
    "and concurrency so that it cannot recur.",
    phases=(),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    if facts.unavailable_reason is None:
        return None
    before = [probe_brief(m) for m in facts.measurements[-3:]]
    return scan_finding(
        "target-unavailable", facts,
        "the target stopped answering during the scan",
        facts.unavailable_reason,
        {"reason": facts.unavailable_reason, "preceding_probes": list(before),
         "probes_before": len(facts.measurements)},
    )  # fmt: skip
