"""What large bodies do to lab targets' memory, as a table: ``hmacguard lab measure`` and ``make demo``.

Each target gets a small signed request, then one body of ``size`` with Content-Length and one
chunked, each on a fresh server, while its whole process tree's RSS is sampled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rich.table import Table

from hmacguard.lab.client import Exchange, send
from hmacguard.lab.serve import run_target
from hmacguard.lab.targets import get_target

__all__ = ["memory_table"]

MiB = 1024 * 1024


def _status(status: int | None, error: str | None) -> str:
    if status is None:
        return f"no answer ({error})"
    return str(status) if error is None else f"{status} (then {error})"


def _measured(name: str, size: int) -> list[tuple[str, Exchange]]:
    """A small signed request, then each large body on a fresh one-worker server warmed by one small
    request: freed memory of an earlier large request stays resident (glibc's heap, V8's old space)
    and would hide the next one's growth, and a framework's first request is set-up, not body."""
    rows: list[tuple[str, Exchange]] = []
    target = get_target(name)
    for chunked in (False, True):
        with run_target(dataclasses.replace(target, workers=1)) as running:
            first = send(running, 1024)
            if not chunked:
                rows.append(("1 KiB, signed (first request)", first))
            label = f"{size // MiB} MiB, " + ("chunked" if chunked else "Content-Length")
            rows.append((label, send(running, size, chunked=chunked)))
    return rows


def memory_table(names: Sequence[str], size: int = 64 * MiB) -> Table:
    """The table of :func:`_measured` rows for each target, growth over 32 MiB in red."""
    table = Table(
        title=f"What a {size // MiB} MiB body does to each server's memory",
        caption="Peak RSS growth of the server's whole process tree, sampled every 5 ms; each large body "
        "on a fresh one-worker server.",
    )
    for col in ("target", "request", "status", "body sent", "peak RSS growth", "seconds"):
        table.add_column(col, justify="left" if col in ("target", "request") else "right")
    for name in names:
        for label, ex in _measured(name, size):
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
