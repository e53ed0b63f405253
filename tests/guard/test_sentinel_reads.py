"""Under Sentinel the rate limiter decides on the primary's counts, not a replica's.

``limits``' Sentinel storage reads from a replica by default (``use_replicas=True``): the budget
test behind every admission (a ``GET`` of the window) went to the replica, while the hits and the
in-flight leases went to the primary. Replication is asynchronous, so for the lag the two disagreed
-- and the settle order that keeps the failure budget exact (the failure is spent *before* the
request leaves the in-flight count: ``RateLimiter.settle``) holds only when both are read in one
place. A replica that stops following (a broken link, a network split, a replica being resynced)
made the lag unbounded: the budget read empty for as long as it lasted.

Was (strict xfail, BUG): a limiter built from a Sentinel URL now reads the primary only. The test
detaches the replica (``REPLICAOF NO ONE``: it keeps answering reads with what it had), spends the
failure budget, and asks again: the primary says 429; a replica read said 200 for ever.
"""

from __future__ import annotations

import pytest

from hmacguard import RateLimited, RateLimiter

from ._redis_topologies import _client, redis_sentinel

pytestmark = pytest.mark.slow


def test_the_failure_budget_is_read_on_the_primary_under_sentinel() -> None:
    with redis_sentinel(down_after_ms=5000) as sentinel:
        limiter = RateLimiter(limit=None, failure_limit="3/minute", storage=sentinel.url, timeout=2.0)
        assert limiter.admit("warm-up", declared_bytes=None)  # the storage built, the replica known
        _client(sentinel.replica_port, sentinel.access).execute_command("REPLICAOF", "NO", "ONE")
        for _ in range(3):
            limiter.settle(limiter.admit("client", declared_bytes=None), 10, failed=True)
        with pytest.raises(RateLimited):  # three failures spend a budget of three
            limiter.admit("client", declared_bytes=None)
