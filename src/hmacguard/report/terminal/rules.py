"""``hmacguard rules`` for a human: the catalogue as a table, and one rule explained."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from hmacguard.findings import Rule
from hmacguard.report.rest import rest_to_text
from hmacguard.report.terminal.table import print_rows

__all__ = ["render_explanation", "render_rules"]


def render_rules(rules: Sequence[Rule], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(show_lines=False)
    for column in ("id", "source", "severity", "title"):
        table.add_column(column, overflow="fold")
    print_rows(table, [(r.id, r.source, r.severity.label, r.title) for r in rules], console)


def render_explanation(rule: Rule, console: Console | None = None) -> None:
    """The rule's documentation (its module docstring) without reST markup, then its remediation."""
    console = console or Console(highlight=False)
    cwe = ", ".join(f"CWE-{c}" for c in rule.cwe)
    console.print(f"[bold]{rule.id}[/bold] — {rule.title}")
    console.print(
        f"{rule.source} rule, {rule.severity.label}, {rule.category.value}, {cwe}, OWASP {rule.owasp}\n"
    )
    if rule.doc:
        console.print(rest_to_text(rule.doc), markup=False)
    console.print(f"[green]Remediation:[/green] {rule.remediation}")
