"""``hmacguard scan --openapi`` for a human: the operations found, spec against server, then each scan."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hmacguard.report.scan_terminal import render_scan
from hmacguard.scan.openapi import OpenApiScan
from hmacguard.scan.probes.base import size_text

__all__ = ["render_openapi_scan"]

_VERDICT_STYLE = {"enforced": "green", "not-enforced": "bold red", "stricter": "yellow"}


def render_openapi_scan(
    result: OpenApiScan, console: Console | None = None, *, verbose: bool = False
) -> None:
    console = console or Console()
    share = result.budget_per_operation
    console.print(
        f"[bold]hmacguard scan --openapi[/bold]  {escape(result.spec.title)} at {escape(result.base_url)}  "
        f"[dim]({len(result.operations)} signed operation(s), each {size_text(share['bytes'])} and "
        f"{share['seconds']:.0f}s)[/dim]"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("operation", "signature", "grade", "findings", "declared", "spec vs server"):
        table.add_column(column)
    for op, report, comparison in zip(result.operations, result.reports, result.comparisons, strict=True):
        style = _VERDICT_STYLE.get(comparison.verdict, "dim")
        table.add_row(
            escape(op.key),
            escape(f"{op.signature_header} ({op.scheme})"),
            f"{report.grade} ({report.score})",
            str(len(report.findings)),
            size_text(op.declared_limit.bytes) if op.declared_limit else "—",
            f"[{style}]{comparison.verdict}[/{style}]: {escape(comparison.message)}",
        )
    console.print(table)
    for skipped in result.skipped:
        console.print(
            f"  [dim]not scanned: {escape(skipped.method)} {escape(skipped.path)} "
            f"({escape(skipped.reason)})[/dim]"
        )
    for report in result.reports:
        console.rule()
        render_scan(report, console, verbose=verbose)
