"""Review of the failure budget under concurrency (issue 10): the in-flight counter and its settlement.

The promise: at most ``failure_limit`` bodies read per window and client, however many requests run
at once; every admission settled exactly once, so the in-flight counter never drifts.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hmacguard import RateLimited, RateLimiter, StoreUnavailable
from hmacguard.guard.ratelimit import RateState

from ._servers import RedisServer, redis_server

STRATEGIES = ["fixed-window", "moving-window", "sliding-window"]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _admit_all(limiter: RateLimiter, key: str, tries: int) -> list[RateState]:
    admitted = []
    for _ in range(tries):
        with contextlib.suppress(RateLimited):
            admitted.append(limiter.admit(key, declared_bytes=None))
    return admitted


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_concurrent_admissions_from_many_threads_never_exceed_the_budget(strategy: str) -> None:
    """32 threads admit at once, 4 rounds: never more in flight than the budget, and afterwards the
    counter is back to zero."""
    limiter = RateLimiter(limit=None, failure_limit="5/minute", strategy=strategy)
    barrier = threading.Barrier(32)
    admitted: list[RateState] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        try:
            state = limiter.admit("k", declared_bytes=None)
        except RateLimited:
            return
        with lock:
            admitted.append(state)

    threads = [threading.Thread(target=one) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 5
    for state in admitted:
        limiter.settle(state, 0, failed=False)
    assert limiter._in_flight("k", 0, "in-flight") == 0


class _Clock:
    """A wall clock the test moves (limits' memory storage keeps expiries in time.time())."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_memory_in_flight_count_does_not_lapse_while_requests_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The in-flight key expires a fixed time after it was *created* (limits sets the expiry only
    when a counter starts), however busy it has been since. Requests still in flight when it lapses
    stop counting, and the budget admits that many bodies again: here 3 + 2 for a budget of 3."""
    import limits.storage.memory as memory

    clock = _Clock(1_000_000.0)
    monkeypatch.setattr(memory, "time", clock)
    limiter = RateLimiter(limit=None, failure_limit="3/minute", storage="memory://")
    first = limiter.admit("k", declared_bytes=None)  # t=0: the in-flight key is created
    clock.now += 31
    in_flight = _admit_all(limiter, "k", 2)  # t=31: two slow bodies, well inside a 30 s body timeout
    assert len(in_flight) == 2
    limiter.settle(first, 1024, failed=True)  # t=31: the first one was forged
    clock.now += 29.5  # t=60.5: both still in flight (29.5 s old)
    # One failure spent, two in flight: the budget of three is full.
    assert _admit_all(limiter, "k", 5) == []


@pytest.mark.redis
def test_redis_in_flight_count_never_goes_negative(redis: RedisServer) -> None:
    """limits' incr sets a key's expiry only when the counter starts, so the count lapsed with
    requests in flight and their decrements took it below zero; the guard's own script clamps at
    zero and keeps the key alive while it is used."""
    limiter = RateLimiter(
        limit=None, failure_limit="3/minute", storage=redis.url, prefix=f"review-{uuid.uuid4().hex}"
    )
    limiter._in_flight_expiry = 1  # stands for the 60 s a real deployment waits
    admitted = _admit_all(limiter, "k", 3)
    assert len(admitted) == 3
    time.sleep(1.5)  # the key lapses; all three are still in flight
    for state in admitted:
        limiter.settle(state, 0, failed=False)  # verified fine: no failure spent
    assert limiter._in_flight("k", 0, "in-flight") == 0
    # With the counter at -3, six concurrent requests fit a budget of three.
    assert len(_admit_all(limiter, "k", 10)) == 3


def test_an_admission_whose_store_fails_after_counting_it_in_flight_does_not_leak_it() -> None:
    """The store fails (fail-closed: 503) after the request was counted in flight -- on the budget
    test or on the window stats of the RateLimit field: nothing settles that count."""
    limiter = RateLimiter(limit=None, failure_limit="3/minute", storage="memory://", breaker_reset=0.05)
    from limits.errors import StorageError

    calls = {"n": 0}
    real = limiter._limiter.get_window_stats

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StorageError(ConnectionError("Redis went away"))
        return real(*args, **kwargs)

    limiter._limiter.get_window_stats = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        limiter.admit("k", declared_bytes=None)
    time.sleep(0.1)  # the breaker closes again
    assert limiter._in_flight("k", 0, "in-flight") == 0


@pytest.mark.redis
def test_redis_in_flight_count_lives_per_request_not_per_key(redis: RedisServer) -> None:
    """A request in flight counts for its own lease, however long ago the count was started by
    others (limits' ``incr`` had the key lapse a fixed time after it was created, with requests in
    flight), and no longer than its lease (a key kept alive by every touch kept a dead worker's
    count for as long as traffic came)."""
    limiter = RateLimiter(
        limit=None, failure_limit="3/minute", storage=redis.url, prefix=f"review-{uuid.uuid4().hex}"
    )
    limiter._in_flight_expiry = 1
    assert len(_admit_all(limiter, "k", 1)) == 1  # t=0: an early request, never settled
    time.sleep(0.7)
    assert len(_admit_all(limiter, "k", 1)) == 1  # t=0.7: a later one, in flight below
    time.sleep(0.5)  # t=1.2: the early one's lease lapsed; the later one's has not
    assert limiter._in_flight("k", 0, "in-flight") == 1
    assert len(_admit_all(limiter, "k", 5)) == 2  # room for 3, one of them in flight
