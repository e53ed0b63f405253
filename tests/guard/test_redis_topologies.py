"""Replay protection and rate limits on Redis Cluster and Sentinel, across two real server processes.

- A 3-primary Cluster (``redis+cluster://``): a delivery accepted by a gunicorn server is a replay
  (409) at a uvicorn server, one client's budget is spent across both, and the keys really spread
  over the primaries.
- A primary + replica under Sentinel (``redis+sentinel://.../service``): the same, then the primary
  is killed (SIGKILL) under steady traffic. Fail-closed servers answer 503 while no primary is known
  and the breaker is open, and 200 again once the replica is promoted -- without restarting
  anything; never a 500.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from ._redis_topologies import redis_cluster, redis_sentinel
from ._servers import gunicorn, uvicorn
from .test_redis_servers import APP, delivery, post

pytestmark = [pytest.mark.slow, pytest.mark.redis]
ASGI_APP = "tests.guard._apps.redis_guarded:asgi"


def _replays_and_budgets_hold(env: dict[str, str]) -> None:
    env = {**env, "HMACGUARD_TEST_RATE": "3/hour"}
    with gunicorn(APP, env, workers=2) as wsgi, uvicorn(ASGI_APP, env) as asgi:
        for _ in range(3):
            body, headers = delivery(f"client-{time.monotonic_ns()}")
            assert post(wsgi, body, headers).status_code == 200
            assert post(asgi, body, headers).status_code == 409
            assert post(wsgi, body, headers).status_code == 409
        client = f"budget-{time.monotonic_ns()}"
        statuses = [post(server, *delivery(client)).status_code for server in [asgi, wsgi] * 3]
        assert statuses == [200, 200, 200, 429, 429, 429]
        assert "Traceback" not in wsgi.log() + asgi.log()


def test_a_redis_cluster_shares_replays_and_budgets_across_servers() -> None:
    import redis

    with redis_cluster(3) as cluster:
        _replays_and_budgets_hold({"HMACGUARD_TEST_REDIS": cluster.url})
        # The guard's keys landed on more than one primary: a real cluster, not one node.
        holders = [port for port in cluster.ports if redis.Redis(port=port).keys("hmacguard:replay:*")]
        assert len(holders) >= 2, holders


def test_in_flight_leases_work_on_a_redis_cluster_whatever_the_key_holds() -> None:
    """The in-flight count is two keys (a total and its leases) that must share a Cluster slot, or
    the script is refused (CROSSSLOT: the store is unavailable). Keys written by the client, braces
    included, land together; budgets hold and return to zero."""
    from hmacguard import RateLimiter
    from hmacguard.errors import RateLimited

    with redis_cluster(3) as cluster:
        limiter = RateLimiter(
            limit=None, bytes_limit="100000/minute", failure_limit="2/minute", storage=cluster.url
        )
        for key in ["ip:127.0.0.1", "id:{a}b", "id:}{", "id:{}", "id:" + "x" * 128]:
            first = limiter.admit(key, declared_bytes=60_000)
            with pytest.raises(RateLimited):  # 60,000 in flight: 50,000 more do not fit
                limiter.admit(key, declared_bytes=50_000)
            second = limiter.admit(key, declared_bytes=30_000)
            with pytest.raises(RateLimited):  # two in flight against two failures a minute
                limiter.admit(key, declared_bytes=1)
            assert limiter._in_flight(key, 0, "in-flight-bytes") == 90_000
            limiter.settle(first, 0, failed=False)
            limiter.settle(second, 0, failed=False)
            assert limiter._in_flight(key, 0, "in-flight-bytes") == 0
            assert limiter._in_flight(key, 0, "in-flight") == 0


def test_sentinel_shares_replays_and_budgets_and_rides_a_failover() -> None:
    with redis_sentinel(down_after_ms=1000) as sentinel:
        env = {"HMACGUARD_TEST_REDIS": sentinel.url, "HMACGUARD_TEST_BREAKER": "1"}
        _replays_and_budgets_hold(env)
        with gunicorn(APP, {**env, "HMACGUARD_TEST_RATE": "100000/hour"}, workers=2) as server:
            workers = server.worker_pids()
            assert post(server, *delivery()).status_code == 200
            sentinel.kill_primary()
            killed = time.monotonic()
            timeline: list[tuple[float, int]] = []
            while time.monotonic() - killed < 30:
                timeline.append((time.monotonic() - killed, post(server, *delivery()).status_code))
                if len(timeline) > 5 and all(status == 200 for _, status in timeline[-5:]):
                    break
                time.sleep(0.1)
            promoted = sentinel.current_primary_port()
            log = server.log()
            assert server.worker_pids() == workers  # nothing was restarted
    statuses = Counter(status for _, status in timeline)
    last_503 = max((t for t, status in timeline if status == 503), default=0.0)
    print(f"\nsentinel failover: {dict(statuses)}; the last 503 {last_503:.1f} s after the kill")
    assert promoted == sentinel.replica_port
    assert set(statuses) <= {200, 503}, timeline  # fail-closed: 503 while no primary answers; no 500
    assert statuses[503] >= 1  # the outage was seen (and refused, not passed)
    assert [s for _, s in timeline[-5:]] == [200] * 5  # recovered without restarting the app
    assert "Traceback" not in log, log
