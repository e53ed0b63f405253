"""The ``RateLimit`` field on Redis: each fixed window read in one pipelined round trip, with what
``limits`` itself reads -- remaining exactly, the reset within a second -- on a real redis-server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

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
