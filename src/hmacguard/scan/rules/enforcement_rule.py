"""What the enforcement phase's four rules share: :func:`enforcement_rule`, :func:`scan_rule` with the
category, phase and OWASP reference they all have, and a check that is handed the phase's probes
(a scan that did not run the phase has nothing for it to judge: no finding, and the phase is listed
as untested)."""

from __future__ import annotations

from collections.abc import Callable

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.model import EnforcementResult
from hmacguard.scan.rules.facts import ScanFacts, Thresholds
from hmacguard.scan.rules.registry import scan_rule

__all__ = ["EnforcementCheck", "enforcement_rule"]

EnforcementCheck = Callable[[ScanFacts, EnforcementResult], "Finding | None"]


def enforcement_rule(
    *, id: str, title: str, severity: Severity, cwe: tuple[int, ...], remediation: str
) -> Callable[[EnforcementCheck], EnforcementCheck]:
    """Register the decorated check as scan rule ``id`` of the enforcement phase; its module's
    docstring is its documentation, as for every rule."""

    def decorate(check: EnforcementCheck) -> EnforcementCheck:
        def judge(facts: ScanFacts, th: Thresholds) -> Finding | None:
            return None if facts.enforcement is None else check(facts, facts.enforcement)

        judge.__module__ = check.__module__  # the registry reads the documentation from there
        judge.__qualname__ = check.__qualname__
        scan_rule(
            id=id, title=title, category=Category.AUTHENTICATION, severity=severity, cwe=cwe,
            remediation=remediation, phases=("enforcement",), owasp="API2:2023 Broken Authentication",
        )(judge)  # fmt: skip
        return check

    return decorate
