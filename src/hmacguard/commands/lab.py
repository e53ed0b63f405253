"""``hmacguard lab``: list, measure and serve the lab's targets."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from hmacguard.lab import TARGETS, RunningTarget, get_target, run_target
from hmacguard.lab.measure import MemoryRow, measure_memory

__all__ = ["measure", "serve"]


def measure(names: Sequence[str], size: int) -> list[MemoryRow]:
    """``lab measure``: every target named (all by default), unknown names refused before any starts."""
    chosen = list(names) or list(TARGETS)
    for name in chosen:
        get_target(name)
    return measure_memory(chosen, size)


def serve(name: str, port: int | None, started: Callable[[RunningTarget], None]) -> None:
    """``lab serve``: run ``name`` until Ctrl-C or SIGTERM; ``started`` is told where it listens."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with run_target(name, port=port) as running:
            started(running)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("stopping…", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
