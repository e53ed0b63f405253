"""Another spelling of the path reaches the handler without a signature.

**How it is judged.** Only when the scanned URL refuses an unsigned request (when it accepts one, that
is ``signature-not-enforced``). The same unsigned request then goes to other spellings of the path,
each sent as the raw request target: a repeated slash (leading and inner), a trailing slash, a
percent-encoded slash (inside and trailing), a percent-encoded letter, dot segments (``.``, ``..``,
``%2e``, a trailing ``/.``), a ``;`` parameter, and upper case (a server that folds case routes it;
one that does not answers 404). A spelling answered 2xx is reported, judged against two random
sibling paths: when the siblings are refused, any 2xx counts; when they are answered 2xx (a catch-all
route), a spelling counts only if its answer (status and body) differs from theirs, which must be the
same for both; when the two siblings' answers differ, the rule is listed as untested.

**Thresholds and why.** None: a 2xx to an unsigned request that the scanned spelling refuses means
the check and the router disagree on the path.

**What can make it wrong.** A spelling that reaches another route which takes unsigned requests on
purpose (a public endpoint at ``/webhook/``) is reported: the evidence lists each spelling's answer.
A catch-all whose answer varies (it echoes the path, a request id) leaves the rule untested rather
than guessing. A proxy in front of the application may normalise spellings; the scan then shows what
reaches it through the proxy, not what reaches it from inside the network.
"""

from __future__ import annotations

from hmacguard.findings import Finding, Severity
from hmacguard.scan.model import EnforcementResult, ProbeKind
from hmacguard.scan.rules.enforcement_rule import enforcement_rule
from hmacguard.scan.rules.facts import ScanFacts, enforcement_brief, scan_finding


@enforcement_rule(
    id="signature-bypass-path",
    title="Another spelling of the path skips signature verification",
    severity=Severity.CRITICAL,
    cwe=(288, 41),
    remediation="Decide that a request needs a signature on the route the router chose, not by "
    "comparing the raw path: protect the route or view itself, or normalise the path exactly as the "
    "server and router do (decoding, merged slashes, dot segments, case, trailing slash) and fail "
    "closed when in doubt.",
)
def check(facts: ScanFacts, result: EnforcementResult) -> Finding | None:
    unsigned = result.first(ProbeKind.UNSIGNED)
    if unsigned is None or unsigned.accepted or not unsigned.exchange.responded:
        return None
    siblings = result.of(ProbeKind.SIBLING)
    catch_all = {s.answer for s in siblings if s.accepted}
    if len(catch_all) > 1 or (catch_all and not all(s.accepted for s in siblings)):
        return None  # the catch-all's own answer varies: listed as untested by the phase
    bypasses = [p for p in result.of(ProbeKind.SPELLING) if p.accepted and p.answer not in catch_all]
    if not bypasses:
        return None
    first = bypasses[0]
    return scan_finding(
        "signature-bypass-path", facts,
        f"refuses an unsigned request ({unsigned.exchange.status}) but answered {first.exchange.status} "
        f"to it at {first.target}",
        ", ".join(f"{p.target}: {p.exchange.status}" for p in bypasses)
        + f"; the scanned path: {unsigned.exchange.status}"
        + "".join(f"; random sibling path: {s.exchange.status}" for s in siblings[:1]),
        {"bypasses": [enforcement_brief(p) for p in bypasses],
         "scanned_path": enforcement_brief(unsigned),
         "siblings": [enforcement_brief(s) for s in siblings],
         "catch_all": bool(catch_all),
         "spellings_tried": len(result.of(ProbeKind.SPELLING))},
        confidence="medium" if catch_all else "high",
    )  # fmt: skip
