"""``hmacguard lab list``, ``hmacguard lab measure`` and ``hmacguard lab serve NAME``."""

from __future__ import annotations

import typer

from hmacguard.cli._common import ListFormat, one_line_errors, parse_size, write_text
from hmacguard.lab import RunningTarget

lab_app = typer.Typer(
    help="The seeds' vulnerable and fixed endpoints as real services.", no_args_is_help=True
)


@lab_app.command("list")
@one_line_errors
def list_targets(
    output: ListFormat = typer.Option(ListFormat.terminal, "--format", help="terminal or json."),  # noqa: B008
) -> None:
    """Every lab target: framework, server, its flaw in one line, and what to expect."""
    from hmacguard.lab import TARGETS

    if output is ListFormat.json:
        from hmacguard.report.json import targets_json

        write_text(targets_json(TARGETS.values()))
    else:
        from hmacguard.report.terminal.lab import render_targets

        render_targets(TARGETS.values())


@lab_app.command("measure")
@one_line_errors
def measure(
    names: list[str] = typer.Argument(None, help="Targets (default: every target)."),  # noqa: B008
    size: str = typer.Option("64MiB", "--size", help="The large body's size."),
) -> None:
    """Send each target a small signed request and one large body (Content-Length, then chunked)
    on a fresh server, and show the peak RSS growth of its process tree."""
    from rich.console import Console

    from hmacguard.commands.lab import measure as measure_command
    from hmacguard.report.terminal.lab import memory_table

    size_bytes = parse_size(size)
    Console().print(memory_table(measure_command(names or [], size_bytes), size_bytes))


def _started(t: RunningTarget) -> None:
    print(f"{t.name} ({t.target.framework} under {t.target.server.value}, pid {t.pid})")
    print(f"  url:    {t.url}")
    print(f"  path:   {t.path}")
    print(f"  scheme: {t.scheme}")
    print(f"  secret: {t.secret}")
    print("Ctrl-C stops it.", flush=True)


@lab_app.command("serve")
@one_line_errors
def serve(
    name: str = typer.Argument(..., help="A target from 'hmacguard lab list'."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port on 127.0.0.1 (default: free)."
    ),
) -> None:
    """Start NAME under its real server on 127.0.0.1 until Ctrl-C or SIGTERM."""
    from hmacguard.commands.lab import serve as serve_command

    serve_command(name, port, _started)
