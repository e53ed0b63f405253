"""``hmacguard rules``: every registered rule (scan, audit, leaks), and ``--explain ID``."""

from __future__ import annotations

import enum

import typer

from hmacguard.cli._common import one_line_errors, write_text


class RulesFormat(str, enum.Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@one_line_errors
def rules_command(
    explain: str | None = typer.Option(None, "--explain", help="Show one rule's documentation."),
    output_format: RulesFormat = typer.Option(RulesFormat.table, "--format", "-f"),  # noqa: B008
    source: str | None = typer.Option(
        None, "--source", help="Only rules of this detector (scan, audit, leaks)."
    ),
) -> None:
    """List every rule hmacguard can report, or explain one (how it is judged, and why)."""
    from hmacguard.commands.rules import catalogue
    from hmacguard.commands.rules import explain as explain_rule

    if explain is not None:
        from hmacguard.report.terminal.rules import render_explanation

        render_explanation(explain_rule(explain))
        return
    rules = catalogue(source)
    if output_format is RulesFormat.markdown:
        from hmacguard.report.markdown import rules_markdown

        write_text(rules_markdown(rules))
    elif output_format is RulesFormat.json:
        from hmacguard.report.json import rules_json

        write_text(rules_json(rules))
    else:
        from hmacguard.report.terminal.rules import render_rules

        render_rules(rules)
