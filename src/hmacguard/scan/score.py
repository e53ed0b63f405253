"""The score (0–100) and grade (A–F) of a scan, from its findings.

The formula (also in docs/scan.md)::

    score = 100 - sum(penalty[severity of each rule])     (each rule id counts once, at its worst)
    penalty: critical 40, high 20, medium 10, low 4, info 0
    score is clamped to 0..100, and capped at 50 when any finding is critical
    grade:  A >= 90,  B >= 80,  C >= 70,  D >= 60,  F below 60

Counting each rule once keeps the score about *which* weaknesses exist, not how many probes showed
them (the evidence says that). The critical cap exists because a target that stopped answering
during a bounded scan has failed, whatever else it got right.
"""

from __future__ import annotations

from collections.abc import Iterable

from hmacguard.findings import Finding, Severity

__all__ = ["GRADES", "PENALTY", "grade", "score"]

PENALTY: dict[Severity, int] = {
    Severity.CRITICAL: 40,
    Severity.HIGH: 20,
    Severity.MEDIUM: 10,
    Severity.LOW: 4,
    Severity.INFO: 0,
}
#: (lowest score for the grade, grade), best first.
GRADES: tuple[tuple[int, str], ...] = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))
_CRITICAL_CAP = 50


def score(findings: Iterable[Finding]) -> int:
    worst: dict[str, Severity] = {}
    for f in findings:
        worst[f.rule] = max(worst.get(f.rule, Severity.INFO), f.severity)
    value = 100 - sum(PENALTY[s] for s in worst.values())
    if Severity.CRITICAL in worst.values():
        value = min(value, _CRITICAL_CAP)
    return max(0, min(100, value))


def grade(value: int) -> str:
    if not 0 <= value <= 100:
        raise ValueError(f"score {value} is outside 0..100")
    return next(letter for floor, letter in GRADES if value >= floor)
