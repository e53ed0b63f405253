"""``make demo``: the main job on the embedded default, the lab.

Starts a vulnerable target and a correct one under their real servers, sends each a small signed
request and a 64 MiB one (with Content-Length, then chunked), and shows what each server's memory did.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from hmacguard.lab import run_target
from hmacguard.lab.client import send

__all__ = ["DEFAULT_TARGETS", "run_demo"]

DEFAULT_TARGETS = ("flask-get-data", "flask-streaming-capped")
MiB = 1024 * 1024


def _status(status: int | None, error: str | None) -> str:
    if status is None:
        return f"no answer ({error})"
    return str(status) if error is None else f"{status} (then {error})"


def memory_table(names: Sequence[str], size: int = 64 * MiB) -> Table:
    table = Table(
        title=f"What a {size // MiB} MiB body does to each server's memory",
        caption="Peak RSS of the server's whole process tree, sampled every 5 ms; the first request "
        "also pays the framework's one-off set-up.",
    )
    for col in ("target", "request", "status", "body sent", "peak RSS growth", "seconds"):
        table.add_column(col, justify="left" if col in ("target", "request") else "right")
    for name in names:
        with run_target(name) as target:
            small = send(target, 1024)
            rows = [("1 KiB, signed", small)]
            for chunked in (False, True):
                label = f"{size // MiB} MiB, " + ("chunked" if chunked else "Content-Length")
                rows.append((label, send(target, size, chunked=chunked)))
            for label, ex in rows:
                growth = ex.peak_growth / MiB
                style = "red" if growth >= 32 else "green"
                table.add_row(
                    name,
                    label,
                    _status(ex.status, ex.error),
                    f"{ex.bytes_sent / MiB:.1f} MiB",
                    f"[{style}]{growth:+.1f} MiB[/{style}]",
                    f"{ex.seconds:.2f}",
                )
    return table


def run_demo(console: Console | None = None) -> None:
    console = console or Console()
    console.print(memory_table(DEFAULT_TARGETS))
