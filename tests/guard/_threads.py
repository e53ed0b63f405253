"""Threads made to interleave: for races on a store's lock."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def run_racing(target: Callable[[int], None], workers: int) -> None:
    """``target(n)`` for n in ``range(workers)``, on as many threads at once, the interpreter
    switching between them every 10 us (its default, 5 ms, would let most run alone)."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(workers)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
