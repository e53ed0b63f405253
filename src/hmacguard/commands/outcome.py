"""Baseline, threshold and exit status: computed here once, for every command.

Exit codes are a contract (docs/ci.md): 0 clean, 1 a finding at or above the threshold (or a score
below ``--fail-under``), 2 a usage or target error (raised as :class:`~hmacguard.errors.HmacGuardError`
and turned into one line by the CLI), 3 (audit only) nothing at or above the threshold but some file
could not be audited, 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from hmacguard.errors import ConfigurationError
from hmacguard.findings import Severity
from hmacguard.report.baseline import read_baseline

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "Outcome",
    "exit_status",
    "load_baseline",
    "read_text",
]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
#: ``audit`` only: nothing at or above the threshold, but some file could not be audited.
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130

#: Covariant: an Outcome[AuditResult] is an Outcome[Result].
R = TypeVar("R", covariant=True)


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What a command hands the CLI: the result to render and the exit status."""

    result: R
    status: int


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file a user named; a one-line ConfigurationError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what} {path} is not UTF-8 text") from None


def load_baseline(baseline: Path | None, kind: str) -> frozenset[str] | None:
    """The fingerprints in the report or SARIF log at ``baseline`` (None: no baseline).

    Read before the detector runs, so that an unusable baseline fails the command (exit 2) before a
    scan sends any traffic; apply it with ``result.without_baseline(known)``.
    """
    if baseline is None:
        return None
    return read_baseline(read_text(baseline, "baseline"), kind=kind)


def exit_status(
    severities: Iterable[Severity],
    fail_on: Severity | None,
    *,
    score: int | None = None,
    fail_under: int | None = None,
) -> int:
    """1 when one of the findings' ``severities`` is at least ``fail_on``, or ``score`` is below
    ``fail_under``; else 0."""
    failed = fail_on is not None and any(severity >= fail_on for severity in severities)
    failed = failed or (fail_under is not None and score is not None and score < fail_under)
    return EXIT_FINDINGS if failed else EXIT_CLEAN
