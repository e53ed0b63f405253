"""The ``RateLimit`` field on Redis: each fixed window read in one pipelined round trip, with what
``limits`` itself reads -- remaining exactly, the reset within a second -- on a real redis-server."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hmacguard import RateLimiter
from hmacguard.errors import RateLimited

from ._servers import RedisServer, redis_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _limiter(url: str) -> RateLimiter:
    return RateLimiter(
        limit="5/minute", bytes_limit="10000/hour", failure_limit="3/minute", storage=url, prefix="hdr"
    )


def _calls(client: object) -> dict[str, int]:
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def test_the_field_reads_what_limits_reads_in_one_round_trip(redis: RedisServer) -> None:
    import redis as redis_py

    limiter = _limiter(redis.url)
    client = redis_py.Redis.from_url(redis.url)
    try:
        for n, (received, failed) in enumerate([(100, False), (2500, True), (40, True)]):
            state = limiter.admit(f"client{n % 2}", declared_bytes=received, longest=5.0)
            limiter.settle(state, received, failed=failed)
        client.config_resetstat()
        state = limiter.admit("client0", declared_bytes=10)
        after = _calls(client)
        # What limits reads, budget by budget (its GET and TTL per window).
        now = int(time.time())
        expected = []
        for budget in limiter._budgets.values():
            stats = limiter._limiter.get_window_stats(budget.item, limiter.prefix, budget.name, "client0")
            expected.append((budget.name, int(stats.remaining), int(stats.reset_time)))
        limiter.settle(state, 10, failed=False)
        got = state.remaining
        assert [(name, remaining) for name, remaining, _ in got] == [(n, r) for n, r, _ in expected]
        assert [name for name, _, _ in got] == ["requests", "bytes", "failures"]
        # client0: two requests before (100 and 40 bytes, one failed), this one not yet settled.
        assert {n: r for n, r, _ in got} == {"requests": 2, "bytes": 10000 - 140, "failures": 2}
        for (_, _, reset), (_, _, stats_reset) in zip(got, expected, strict=True):
            assert abs(reset - (stats_reset - now)) <= 1, (reset, stats_reset - now)
        # One pipeline for the three windows: three PTTLs and no TTL (limits would send three
        # TTLs, each its own round trip).
        assert after.get("pttl", 0) == 3 and "ttl" not in after
    finally:
        client.close()


def test_a_refusal_still_names_the_budget_and_when_it_resets(redis: RedisServer) -> None:
    """And the reset is never past the window: read through limits (a TTL in seconds plus the clock
    read after the one it was compared with, rounded up) it said 61 s for a 60 s window."""
    limiter = RateLimiter(limit="2/minute", storage=redis.url, prefix="hdr2")
    for _ in range(2):
        limiter.settle(limiter.admit("c", declared_bytes=1), 1, failed=False)
    with pytest.raises(RateLimited) as refused:
        limiter.admit("c", declared_bytes=1)
    assert 1 <= refused.value.retry_after <= 60
    with contextlib.suppress(RateLimited):
        state = limiter.admit("other", declared_bytes=1)
        assert state.remaining[0][:2] == ("requests", 1)
        assert 1 <= state.remaining[0][2] <= 60
        limiter.settle(state, 1, failed=False)


def _outcome(limiter: RateLimiter, key: str, declared: int | None, most: int) -> tuple[Any, ...]:
    try:
        state = limiter.admit(key, declared_bytes=declared, most_bytes=most)
    except RateLimited as refused:
        return ("429", refused.budget, None)
    return ("admitted", tuple((n, r) for n, r, _ in state.remaining), state)


TIGHT = {
    "bytes": {"limit": "1000/minute", "bytes_limit": "30000/minute", "failure_limit": "100/minute"},
    "failures": {"limit": "1000/minute", "bytes_limit": "10000000/minute", "failure_limit": "5/minute"},
}


@pytest.mark.parametrize("tight", sorted(TIGHT))
def test_deciding_from_one_read_answers_as_asking_limits_budget_by_budget(
    redis: RedisServer, tight: str
) -> None:
    """Since the rooms are asked in the read that fills the RateLimit field (four round trips for an
    admission), every decision -- admitted or which budget refused, and what remains -- must be
    the one limits' own test() gives, op for op, on the same traffic: 400 random admissions and
    settles of 4 clients, some bodies chunked, some failing, some left in flight a while."""
    rng = random.Random(7)
    options = TIGHT[tight]
    pipelined = RateLimiter(**options, storage=redis.url, prefix=f"one-read-{tight}")
    asking = RateLimiter(**options, storage=redis.url, prefix=f"budget-by-budget-{tight}")
    asking._pipelined = False  # limits' test() and get_window_stats(), as before
    assert pipelined._windows_pipelined()
    open_states: list[tuple[Any, Any, int, bool]] = []
    refusals = set()
    for _ in range(400):
        if open_states and rng.random() < 0.45:
            first, second, received, failed = open_states.pop(rng.randrange(len(open_states)))
            pipelined.settle(first, received, failed=failed)
            asking.settle(second, received, failed=failed)
            continue
        key = f"client{rng.randrange(4)}"
        declared = None if rng.random() < 0.2 else rng.randrange(0, 6000)
        most = 8000
        got = _outcome(pipelined, key, declared, most)
        expected = _outcome(asking, key, declared, most)
        assert got[:2] == expected[:2], (key, declared)
        if got[0] == "429":
            refusals.add(got[1])
        else:
            received = declared if declared is not None else rng.randrange(0, most)
            open_states.append((got[2], expected[2], received, rng.random() < 0.4))
    for first, second, received, failed in open_states:
        pipelined.settle(first, received, failed=failed)
        asking.settle(second, received, failed=failed)
    assert tight in refusals  # the traffic reached the deferred budget


def test_a_length_past_64_bits_is_refused_429_without_opening_the_breaker(redis: RedisServer) -> None:
    """Review of 9b9d105: a declared length of 2**63 or more overflowed Redis's INCRBY -- a store
    error: 503, and the breaker (shared with a replay store on that Redis) opened. It is past the
    whole budget anyway: capped, it is refused 429 like any length over the budget."""
    limiter = RateLimiter(limit=None, bytes_limit="10000/hour", storage=redis.url, prefix="huge")
    for declared in (10_001, 2**63, 2**70):
        with pytest.raises(RateLimited):
            limiter.admit("c", declared_bytes=declared)
    assert not limiter.breaker.is_open
    state = limiter.admit("c", declared_bytes=10)
    limiter.settle(state, 10, failed=False)
