"""``hmacguard lab list`` and ``hmacguard lab measure`` for a human."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

from hmacguard.lab.measure import MemoryRow, MiB
from hmacguard.lab.targets import Target
from hmacguard.report.terminal.table import print_rows

__all__ = ["memory_table", "render_targets", "scan_expectation"]


def scan_expectation(t: Target) -> str:
    """What ``hmacguard scan`` should report for ``t``, without and with ``--secret``."""
    plain = ", ".join(t.scan_findings) or "nothing"
    added = [r for r in t.scan_findings_signed if r not in t.scan_findings]
    gone = [r for r in t.scan_findings if r not in t.scan_findings_signed]
    if not added and not gone:
        return f"{plain} (with --secret too)"
    change = [*(f"+ {r}" for r in added), *(f"- {r}" for r in gone)]
    return f"{plain}; with --secret: {', '.join(change)}"


def render_targets(targets: Iterable[Target], console: Console | None = None) -> None:
    """Every lab target: framework, server, its flaw in one line, what to expect, and what the scan
    should report."""
    table = Table(show_lines=True)
    for column in ("name", "framework", "server", "flaw", "expected", "hmacguard scan finds"):
        table.add_column(column, overflow="fold")
    rows = [
        (
            t.name,
            t.framework,
            t.server.value,
            f"[green]{t.flaw}[/green]" if not t.vulnerable else t.flaw,
            t.expected,
            scan_expectation(t),
        )
        for t in targets
    ]
    print_rows(table, rows, console or Console())


def _status(status: int | None, error: str | None) -> str:
    if status is None:
        return f"no answer ({error})"
    return str(status) if error is None else f"{status} (then {error})"


def memory_table(rows: Sequence[MemoryRow], size: int) -> Table:
    """The measured rows as a table, peak growth of 32 MiB or more in red."""
    table = Table(
        title=f"What a {size // MiB} MiB body does to each server's memory",
        caption="Peak RSS growth of the server's whole process tree, sampled every 5 ms; each large body "
        "on a fresh one-worker server.",
    )
    for col in ("target", "request", "status", "body sent", "peak RSS growth", "seconds"):
        table.add_column(col, justify="left" if col in ("target", "request") else "right")
    for row in rows:
        ex = row.exchange
        growth = ex.peak_growth / MiB
        style = "red" if growth >= 32 else "green"
        table.add_row(
            row.target,
            row.request,
            _status(ex.status, ex.error),
            f"{ex.bytes_sent / MiB:.1f} MiB",
            f"[{style}]{growth:+.1f} MiB[/{style}]",
            f"{ex.seconds:.2f}",
        )
    return table
