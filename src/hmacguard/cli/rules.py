"""``hmacguard rules``: every registered rule (audit, scanner, ...), and ``--explain ID``."""

from __future__ import annotations

import enum
import importlib
import json

import typer
from rich.console import Console
from rich.table import Table

from hmacguard.cli import app
from hmacguard.cli._common import one_line_errors

#: Detector packages whose import registers their rules.
_DETECTORS = ("hmacguard.audit", "hmacguard.scan", "hmacguard.leaks")


class RulesFormat(str, enum.Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


def _load() -> None:
    for name in _DETECTORS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # An optional detector whose dependencies are not installed has no rules to list.
            if not (exc.name or "").startswith(name):
                continue


@app.command("rules")
@one_line_errors
def rules_command(
    explain: str | None = typer.Option(None, "--explain", help="Show one rule's documentation."),
    output_format: RulesFormat = typer.Option(RulesFormat.table, "--format", "-f"),  # noqa: B008
    source: str | None = typer.Option(None, "--source", help="Only rules of this detector (audit, scan...)."),
) -> None:
    """List every rule hmacguard can report, or explain one."""
    from hmacguard.findings import RULES, get_rule
    from hmacguard.report import rules_markdown

    _load()
    if explain is not None:
        rule = get_rule(explain)
        console = Console(highlight=False)
        cwe = ", ".join(f"CWE-{c}" for c in rule.cwe)
        console.print(f"[bold]{rule.id}[/bold] — {rule.title}")
        console.print(
            f"{rule.source} rule, {rule.severity.label}, {rule.category.value}, {cwe}, OWASP {rule.owasp}\n"
        )
        if rule.doc:
            console.print(rule.doc, markup=False)
            console.print()
        console.print(f"[green]Remediation:[/green] {rule.remediation}")
        return
    rules = [r for r in RULES.values() if source is None or r.source == source]
    if output_format is RulesFormat.markdown:
        typer.echo(rules_markdown(rules), nl=False)
    elif output_format is RulesFormat.json:
        data = [
            {
                "id": r.id,
                "source": r.source,
                "title": r.title,
                "severity": r.severity.label,
                "category": r.category.value,
                "cwe": [f"CWE-{c}" for c in r.cwe],
                "owasp": r.owasp,
                "remediation": r.remediation,
                "doc": r.doc,
            }
            for r in rules
        ]
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        table = Table(show_lines=False)
        for column in ("id", "source", "severity", "title"):
            table.add_column(column, overflow="fold")
        for r in rules:
            table.add_row(r.id, r.source, r.severity.label, r.title)
        Console().print(table)
