"""Resident memory of a process tree, sampled in the background.

A gunicorn master forks its workers, uvicorn and node may spawn helpers: what a server costs is the
sum over the whole tree, re-read on every sample because workers come and go. Shared by the scanner
(``--pid``/``--launch``), the lab (``lab measure``), the guard's tests and the benchmarks.

It is a core helper on purpose: the scanner and the lab both sample it, and a detector never imports a
sibling (import-linter checks it), so it sits below them, beside :mod:`hmacguard._process` (stopping the
process groups they start). psutil (the ``cli`` extra) is imported lazily, so ``import hmacguard``
stays standard-library only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from hmacguard.errors import TargetError

__all__ = ["MemorySampler", "tree_rss"]


def tree_rss(pid: int) -> int:
    """Sum of RSS over ``pid`` and all its descendants, in bytes (processes that vanish count 0)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        raise TargetError(f"process {pid} does not exist") from None
    except psutil.AccessDenied:
        raise TargetError(f"not allowed to read process {pid}") from None
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return total


@dataclass
class MemorySampler:
    """Samples :func:`tree_rss` every ``interval`` seconds on a daemon thread.

    Use as a context manager; ``peak`` is the highest sample (including one taken at entry and one at
    exit, so a short request between two ticks still has a bracket), ``samples`` the timeline as
    ``(seconds since start, bytes)``.
    """

    pid: int
    interval: float = 0.01
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def sample(self) -> int:
        try:
            rss = tree_rss(self.pid)
        except TargetError:
            rss = 0  # the process died; a zero in the timeline says so
        self.samples.append((time.monotonic() - self._t0, rss))
        return rss

    def __enter__(self) -> MemorySampler:
        self._t0 = time.monotonic()
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="hmacguard-rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def baseline(self) -> int:
        return self.samples[0][1] if self.samples else 0

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    @property
    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0
