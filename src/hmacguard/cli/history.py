"""``hmacguard history`` (list saved scans) and ``hmacguard diff A B`` (what changed between two)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli import app
from hmacguard.cli._common import EXIT_CLEAN, EXIT_FINDINGS, one_line_errors
from hmacguard.findings import Severity


class ListFormat(str, Enum):
    terminal = "terminal"
    json = "json"


_HISTORY_HELP = "History file (default: $HMACGUARD_HISTORY, else the user's data directory)."


@app.command("history")
@one_line_errors
def history(
    history_path: Annotated[Path | None, typer.Option("--history", help=_HISTORY_HELP)] = None,
    url: Annotated[str | None, typer.Option("--url", help="Only scans of this exact URL.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100_000, help="Newest N scans.")] = 50,
    output: Annotated[ListFormat, typer.Option("--format")] = ListFormat.terminal,
) -> None:
    """List the scans saved with ``hmacguard scan --save``, newest first."""
    from hmacguard.report.history import History
    from hmacguard.report.history_terminal import render_history, render_history_json

    with History(history_path) as store:
        entries = store.entries(url=url, limit=limit)
        where = str(store.path)
    if output is ListFormat.json:
        sys.stdout.write(render_history_json(entries, where))
    else:
        render_history(entries, where)


@app.command("diff")
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
    from hmacguard.report.history import load_scan
    from hmacguard.report.history_terminal import render_diff, render_diff_json
    from hmacguard.report.scan_diff import diff_scans

    threshold = Severity.parse(fail_on)
    result = diff_scans(load_scan(before, history_path), load_scan(after, history_path))
    if output is ListFormat.json:
        sys.stdout.write(render_diff_json(result))
    else:
        render_diff(result)
    raise typer.Exit(EXIT_FINDINGS if result.new_at_or_above(threshold) else EXIT_CLEAN)
