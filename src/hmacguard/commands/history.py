"""``hmacguard history`` (the saved scans) and ``hmacguard diff A B`` (what changed between two)."""

from __future__ import annotations

from pathlib import Path

from hmacguard.commands.outcome import Outcome, exit_status
from hmacguard.findings import Severity
from hmacguard.scan.diff import ScanDiff, diff_scans
from hmacguard.scan.history import History, HistoryEntry, load_scan

__all__ = ["diff", "history_entries"]


def history_entries(path: Path | None, *, url: str | None, limit: int) -> tuple[list[HistoryEntry], str]:
    """The newest ``limit`` saved scans (of ``url`` only, when given), and the history file's path."""
    with History(path) as store:
        return store.entries(url=url, limit=limit), str(store.path)


def diff(before: str, after: str, *, history: Path | None, fail_on: Severity) -> Outcome[ScanDiff]:
    """Compare two scans, each named by a history id, ``latest``, ``latest~N`` or a JSON report.

    Exit 1 when a *new* finding reaches ``fail_on``.
    """
    result = diff_scans(load_scan(before, history), load_scan(after, history))
    new = (Severity.parse(str(f.get("severity", "info"))) for f in result.new)
    return Outcome(result, exit_status(new, fail_on))
