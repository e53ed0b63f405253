"""What large bodies do to lab targets' memory: ``hmacguard lab measure`` and ``make demo``.

Each target gets a small signed request, then one body of ``size`` with Content-Length and one
chunked, each on a fresh server, while its whole process tree's RSS is sampled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hmacguard.lab.client import Exchange, send
from hmacguard.lab.serve import run_target
from hmacguard.lab.targets import get_target

__all__ = ["MemoryRow", "measure_memory"]

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class MemoryRow:
    """One request to one target and what its server's memory did."""

    target: str
    request: str
    exchange: Exchange


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


def measure_memory(names: Sequence[str], size: int = 64 * MiB) -> list[MemoryRow]:
    """For each target: a small signed request, then one ``size`` body with Content-Length and one
    chunked, each on a fresh one-worker server."""
    return [MemoryRow(name, label, ex) for name in names for label, ex in _measured(name, size)]
