"""``hmacguard audit``: source and configuration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hmacguard.audit import AuditResult, audit
from hmacguard.commands.outcome import Outcome, exit_status, load_baseline
from hmacguard.findings import Severity

__all__ = ["audit_paths"]


def audit_paths(
    paths: Sequence[Path],
    *,
    rules: Sequence[str] = (),
    baseline: Path | None = None,
    fail_on: Severity = Severity.LOW,
) -> Outcome[AuditResult]:
    """Audit ``paths`` (only ``rules`` when given), without the findings ``baseline`` already has."""
    known = load_baseline(baseline, "audit")
    result = audit(paths, rules=list(rules) or None)
    if known is not None:
        result = result.without_baseline(known)
    return Outcome(result, exit_status((f.severity for f in result.findings), fail_on))
