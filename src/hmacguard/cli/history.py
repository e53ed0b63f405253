"""``hmacguard history`` (list saved scans) and ``hmacguard diff A B`` (what changed between two)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli._common import ListFormat, one_line_errors, write_text
from hmacguard.findings import Severity

_HISTORY_HELP = "History file (default: $HMACGUARD_HISTORY, else the user's data directory)."


@one_line_errors
def history(
    history_path: Annotated[Path | None, typer.Option("--history", help=_HISTORY_HELP)] = None,
    url: Annotated[str | None, typer.Option("--url", help="Only scans of this exact URL.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100_000, help="Newest N scans.")] = 50,
    output: Annotated[ListFormat, typer.Option("--format")] = ListFormat.terminal,
) -> None:
    """List the scans saved with 'hmacguard scan --save', newest first."""
    from hmacguard.commands.history import history_entries

    entries, where = history_entries(history_path, url=url, limit=limit)
    if output is ListFormat.json:
        from hmacguard.report.json import history_json

        write_text(history_json(entries, where))
    else:
        from hmacguard.report.terminal.history import render_history

        render_history(entries, where)


@one_line_errors
def diff(
    before: Annotated[
        str, typer.Argument(help="Earlier scan: history id, latest, latest~N, or a JSON report.")
    ],
    after: Annotated[str, typer.Argument(help="Later scan, named the same way.")],
    history_path: Annotated[Path | None, typer.Option("--history", help=_HISTORY_HELP)] = None,
    output: Annotated[ListFormat, typer.Option("--format")] = ListFormat.terminal,
    fail_on: Annotated[
        str, typer.Option("--fail-on", help="Exit 1 when a NEW finding has this severity or above.")
    ] = "low",
) -> None:
    """Show new and fixed findings, the score and grade change, and body-limit changes per framing.

    Exit 0 when no new finding reaches --fail-on, 1 when one does, 2 on a usage error.
    """
    from hmacguard.commands.history import diff as diff_command

    outcome = diff_command(before, after, history=history_path, fail_on=Severity.parse(fail_on))
    if output is ListFormat.json:
        from hmacguard.report.json import diff_json

        write_text(diff_json(outcome.result))
    else:
        from hmacguard.report.terminal.history import render_diff

        render_diff(outcome.result)
    raise typer.Exit(outcome.status)
