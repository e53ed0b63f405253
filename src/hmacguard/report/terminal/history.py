"""``hmacguard history`` and ``hmacguard diff`` for a human (rich), and as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hmacguard.findings import endpoint_path
from hmacguard.report.terminal.table import print_rows
from hmacguard.scan.diff import ScanDiff
from hmacguard.scan.history import HistoryEntry

__all__ = ["render_diff", "render_history"]

_GRADE_STYLE = {"A": "bold green", "B": "green", "C": "yellow", "D": "red", "F": "bold red"}
_SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan"}


def render_history(entries: Sequence[HistoryEntry], path: str, console: Console | None = None) -> None:
    console = console or Console()
    if not entries:
        console.print(f"No saved scans in {escape(path)} (save one with [bold]hmacguard scan --save[/bold]).")
        return
    rows = []
    for e in entries:
        style = _GRADE_STYLE.get(e.grade or "", "")
        rows.append(
            (
                str(e.id),
                e.saved_at.replace("T", " ").removesuffix("+00:00"),
                escape(f"{e.method} {e.url}"),
                f"[{style}]{e.grade}[/{style}]" if style else escape(e.grade or "—"),
                "—" if e.score is None else str(e.score),
                str(e.findings),
                escape(e.label or ""),
            )
        )
    table = Table(title=f"Saved scans ({escape(path)})", title_justify="left", box=None, pad_edge=False)
    for column in ("id", "saved", "target", "grade", "score", "findings", "label"):
        table.add_column(column, justify="right" if column in ("id", "score", "findings") else "left")
    print_rows(table, rows, console)


def _side(scan: Mapping[str, Any]) -> str:
    target = scan.get("target") or {}
    when = str(scan.get("started_at") or "").replace("T", " ").removesuffix("+00:00")
    return f"{target.get('method', 'POST')} {target.get('url')}" + (f" ({when})" if when else "")


def _finding_line(f: Mapping[str, Any]) -> str:
    severity = str(f.get("severity", "info"))
    style = _SEVERITY_STYLE.get(severity, "dim")
    location = f.get("location") or {}
    where = f"{location.get('method') or 'POST'} {endpoint_path(str(location.get('url') or ''))}"
    return (
        f"  [{style}]{severity.upper():>8}[/{style}]  [bold]{escape(str(f.get('rule')))}[/bold]  "
        f"{escape(str(f.get('title', '')))}  [dim]{escape(where)}[/dim]"
    )


def render_diff(diff: ScanDiff, console: Console | None = None) -> None:
    console = console or Console()
    before, after = diff.before, diff.after
    console.print(
        f"[bold]hmacguard diff[/bold]\n  before: {escape(_side(before))}\n  after:  {escape(_side(after))}"
    )
    grade_a, grade_b = before.get("grade"), after.get("grade")
    change = diff.score_change
    delta = "" if change is None else f" ({change:+d})"
    style = _GRADE_STYLE.get(str(grade_b), "bold")
    console.print(
        f"Score {before.get('score', '—')} -> [{style}]{after.get('score', '—')}{delta}[/{style}]   "
        f"Grade {grade_a or '—'} -> [{style}]{grade_b or '—'}[/{style}]"
    )
    for title, items, colour in (("Fixed", diff.fixed, "green"), ("New", diff.new, "red")):
        console.print(f"\n[bold {colour}]{title} ({len(items)})[/bold {colour}]")
        for f in items:
            console.print(_finding_line(f), overflow="fold")
    if diff.unchanged:
        console.print(f"\n[bold]Still present ({len(diff.unchanged)})[/bold]")
        for f in diff.unchanged:
            console.print(_finding_line(f), overflow="fold")
    console.print("\n[bold]Effective body limit per framing[/bold]")
    changed = {c.framing for c in diff.limit_changes}
    for c in diff.limit_changes:
        console.print(f"  [yellow]changed[/yellow]  {escape(c.text())}")
    for framing, limit in diff.limits_after.items():
        if framing not in changed:
            console.print(f"  [dim]same[/dim]     {escape(framing)}: {escape(limit.text())}")
    if not diff.limit_changes and not diff.limits_after:
        console.print("  [dim]no limits measured in either scan[/dim]")
