"""``hmacguard audit``: source and configuration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hmacguard.audit import AuditResult, audit
from hmacguard.commands.outcome import EXIT_CLEAN, EXIT_INCOMPLETE, Outcome, exit_status, load_baseline
from hmacguard.findings import Severity

__all__ = ["audit_paths"]


def audit_paths(
    paths: Sequence[Path],
    *,
    rules: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_vendored: bool = False,
    include_tests: bool = False,
    baseline: Path | None = None,
    fail_on: Severity = Severity.LOW,
) -> Outcome[AuditResult]:
    """Audit ``paths`` (only ``rules`` when given), without the findings ``baseline`` already has.

    Exit 3 when nothing reaches ``fail_on`` but some file could not be audited: a clean result does
    not cover it.
    """
    known = load_baseline(baseline, "audit")
    result = audit(
        paths,
        rules=list(rules) or None,
        exclude=list(exclude),
        include_vendored=include_vendored,
        include_tests=include_tests,
    )
    if known is not None:
        result = result.without_baseline(known)
    status = exit_status((f.severity for f in result.findings), fail_on)
    if status == EXIT_CLEAN and result.incomplete:
        status = EXIT_INCOMPLETE
    return Outcome(result, status)
