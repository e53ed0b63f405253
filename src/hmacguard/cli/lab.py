"""``hmacguard lab list`` and ``hmacguard lab serve NAME``."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from hmacguard.cli import app
from hmacguard.cli._common import one_line_errors
from hmacguard.lab import TARGETS, run_target

lab_app = typer.Typer(
    help="The seeds' vulnerable and fixed endpoints as real services.", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")


@lab_app.command("list")
@one_line_errors
def list_targets() -> None:
    """Every lab target: framework, server, its flaw in one line, and what to expect."""
    table = Table(show_lines=True)
    for column in ("name", "framework", "server", "flaw", "expected"):
        table.add_column(column, overflow="fold")
    for t in TARGETS.values():
        flaw = f"[green]{t.flaw}[/green]" if not t.vulnerable else t.flaw
        table.add_row(t.name, t.framework, t.server.value, flaw, t.expected)
    Console().print(table)


@lab_app.command("measure")
@one_line_errors
def measure(
    names: list[str] = typer.Argument(None, help="Targets (default: every target)."),  # noqa: B008
    size: str = typer.Option("64MiB", "--size", help="The large body's size."),
) -> None:
    """Send each target a small signed request and one large body (Content-Length, then chunked)
    on a fresh server, and show the peak RSS growth of its process tree."""
    from hmacguard.cli._common import parse_size
    from hmacguard.lab.measure import memory_table
    from hmacguard.lab.targets import get_target

    chosen = names or list(TARGETS)
    for name in chosen:
        get_target(name)  # an unknown name fails before any server starts
    Console().print(memory_table(chosen, parse_size(size)))


@lab_app.command("serve")
@one_line_errors
def serve(
    name: str = typer.Argument(..., help="A target from `hmacguard lab list`."),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port on 127.0.0.1 (default: free)."
    ),
) -> None:
    """Start NAME under its real server on 127.0.0.1 until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with run_target(name, port=port) as t:
            print(f"{t.name} ({t.target.framework} under {t.target.server.value}, pid {t.pid})")
            print(f"  url:    {t.url}")
            print(f"  path:   {t.path}")
            print(f"  scheme: {t.scheme}")
            print(f"  secret: {t.secret}")
            print("Ctrl-C stops it.", flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("stopping…", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
