"""A Sentinel that accepts connections and never answers costs the guard one timeout, not ten.

redis-py 8 gives every client it builds 10 retries with back-off by default, the Sentinel clients
too: a Sentinel that accepts and stays silent (a hung process, a stalled host behind a live port)
made the first store call of every worker wait about 8 s at ``timeout=0.5`` before the breaker could
open -- the breaker's promise is one ``timeout`` per window. The Sentinels are now asked once each
(the next Sentinel is the retry), by both stores. Found by the store check's review, where the same
clients made ``hmacguard store check`` take 10 s. Was (strict xfail, BUG): 9.8 s for each store.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hmacguard import RateLimiter, RedisReplayStore
from hmacguard.errors import RequestRejected

TIMEOUT = 0.5


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def _timed(call: object) -> float:
    started = time.monotonic()
    with pytest.raises(RequestRejected) as refused:
        call()  # type: ignore[operator]
    assert refused.value.status == 503
    return time.monotonic() - started


def test_a_silent_sentinel_costs_the_replay_store_about_one_timeout(silent_port: int) -> None:
    store = RedisReplayStore(f"redis+sentinel://127.0.0.1:{silent_port}/svc", timeout=TIMEOUT)
    assert _timed(lambda: store.hold("a-delivery", 60)) < 6 * TIMEOUT


def test_a_silent_sentinel_costs_the_rate_limiter_about_one_timeout(silent_port: int) -> None:
    limiter = RateLimiter(
        limit="10/minute", storage=f"redis+sentinel://127.0.0.1:{silent_port}/svc", timeout=TIMEOUT
    )
    assert _timed(lambda: limiter.admit("client", declared_bytes=None)) < 6 * TIMEOUT
