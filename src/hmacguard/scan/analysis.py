"""From measurements to findings: every registered scan rule (:mod:`hmacguard.scan.rules`) reads the
same :class:`ScanFacts`; a rule that crashes becomes a diagnostic in the report, never a crashed scan.
Each rule's module docstring says how it is judged, its thresholds and why, and what can make it wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

from hmacguard.findings import Finding
from hmacguard.scan.rules import SCAN_RULES, ScanFacts, ScanRule, Thresholds

__all__ = ["ScanFacts", "Thresholds", "analyse"]


def analyse(
    facts: ScanFacts, thresholds: Thresholds | None = None, *, rules: Iterable[ScanRule] | None = None
) -> tuple[list[Finding], list[str]]:
    """Findings, most severe first, and diagnostics for rules that could not be evaluated."""
    th = thresholds or Thresholds()
    findings: list[Finding] = []
    diagnostics: list[str] = []
    for rule in SCAN_RULES.values() if rules is None else rules:
        try:
            found = rule.run(facts, th)
        except Exception as exc:  # a broken rule is a diagnostic, not a broken scan
            diagnostics.append(f"check {rule.id} could not be evaluated: {type(exc).__name__}: {exc}")
            continue
        if found is not None:
            findings.append(found)
    findings.sort(key=lambda f: -f.severity)
    return findings, diagnostics
