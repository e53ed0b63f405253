"""Store outages: a Redis that is down, or up but silent, costs at most one timeout per request, and
one per breaker window once the breaker is open -- fail-open passes at once, fail-closed answers 503
at once.

The silent Redis is a real listening socket that accepts connections and never answers (what a
hung or overloaded Redis, or a black-holing network path, looks like to a client).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hmacguard import RateLimiter, RedisReplayStore, Signer, Verifier, WSGIGuard
from hmacguard.guard.breaker import CircuitBreaker, CircuitOpen

from ._inprocess import wsgi_request

SECRET = "outage-secret"
TIMEOUT = 0.5
signer = Signer("github", secrets=SECRET)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accepts every connection and never says a word; closed (with its sockets) on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def ok_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [])  # type: ignore[operator]
    return [b"ok"]


def _guarded(port: int, *, fail_open: bool, breaker_reset: float = 2.0) -> WSGIGuard:
    url = f"redis://127.0.0.1:{port}/0"
    return WSGIGuard(
        ok_app,
        verifier=Verifier(
            "github",
            secrets=SECRET,
            replay=RedisReplayStore(url, fail_open=fail_open, timeout=TIMEOUT, breaker_reset=breaker_reset),
        ),
        rate_limiter=RateLimiter(
            limit="100/minute",
            failure_limit="50/minute",
            storage=url,
            fail_open=fail_open,
            timeout=TIMEOUT,
            breaker_reset=breaker_reset,
        ),
    )


def _timed(app: WSGIGuard, n: int) -> tuple[list[int], list[float]]:
    statuses, seconds = [], []
    for i in range(n):
        body = b'{"n": %d}' % i
        t0 = time.perf_counter()
        statuses.append(wsgi_request(app, body, signer.sign(body)).status)
        seconds.append(time.perf_counter() - t0)
    return statuses, seconds


@pytest.mark.slow
def test_a_silent_redis_costs_one_timeout_per_breaker_window_when_fail_open() -> None:
    with silent_server() as port:
        app = _guarded(port, fail_open=True)
        statuses, seconds = _timed(app, 20)
    assert statuses == [200] * 20
    # The first request pays one store timeout (not one per store call: admit alone makes four).
    assert TIMEOUT * 0.9 <= seconds[0] <= TIMEOUT * 2, seconds[0]
    # Then the breaker is open: every other request passes at once.
    assert max(seconds[1:]) < 0.05, seconds


@pytest.mark.slow
def test_a_silent_redis_fails_closed_at_once_while_the_breaker_is_open() -> None:
    with silent_server() as port:
        app = _guarded(port, fail_open=False)
        statuses, seconds = _timed(app, 10)
    assert statuses == [503] * 10
    assert seconds[0] <= TIMEOUT * 2
    assert max(seconds[1:]) < 0.05, seconds


@pytest.mark.slow
def test_after_the_window_one_probe_pays_the_timeout_again() -> None:
    with silent_server() as port:
        app = _guarded(port, fail_open=True, breaker_reset=0.5)
        _timed(app, 1)
        time.sleep(0.6)
        _, seconds = _timed(app, 3)
    assert seconds[0] >= TIMEOUT * 0.9  # the probe
    assert max(seconds[1:]) < 0.05


def test_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(reset_after=5, clock=lambda: now[0])

    def fail() -> None:
        raise ConnectionError("down")

    assert breaker.call(lambda: 1, (ConnectionError,)) == 1
    with pytest.raises(ConnectionError):
        breaker.call(fail, (ConnectionError,))
    assert breaker.is_open
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1, (ConnectionError,))
    now[0] = 5.1  # half-open: one probe; its failure opens the breaker again
    with pytest.raises(ConnectionError):
        breaker.call(fail, (ConnectionError,))
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1, (ConnectionError,))
    now[0] = 10.2  # the probe succeeds: closed
    assert breaker.call(lambda: 2, (ConnectionError,)) == 2
    assert not breaker.is_open
    # Errors the caller did not name do not open it.
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"], (ConnectionError,))
    assert not breaker.is_open


def test_only_one_probe_goes_out_while_half_open() -> None:
    now = [0.0]
    breaker = CircuitBreaker(reset_after=1, clock=lambda: now[0])
    with pytest.raises(ConnectionError):
        breaker.call(lambda: (_ for _ in ()).throw(ConnectionError()), (ConnectionError,))
    now[0] = 2.0
    inside = threading.Event()
    done = threading.Event()

    def slow_probe() -> int:
        inside.set()
        done.wait(5)
        return 1

    probe = threading.Thread(target=lambda: breaker.call(slow_probe, (ConnectionError,)))
    probe.start()
    inside.wait(5)
    with pytest.raises(CircuitOpen):  # a second caller does not pile onto the probe
        breaker.call(lambda: 1, (ConnectionError,))
    done.set()
    probe.join(5)
    assert breaker.call(lambda: 3, (ConnectionError,)) == 3
