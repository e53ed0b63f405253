"""One primary of a 3-primary Redis Cluster dies (SIGKILL, no replica to take over): what a delivery
whose keys live on the two live primaries gets, under real servers.

The Cluster runs with ``cluster-require-full-coverage no`` -- what an operator sets who wants the
live primaries to keep serving their slots (with Redis's default every node answers CLUSTERDOWN once
the Cluster has seen the failure, and no client can do better; see docs/guide.md). A delivery has two
keys here: its replay key (``hmacguard:replay:standard-webhooks:id:<message id>``) and its client's
request window (``LIMITS:LIMITER/hmacguard/requests/id:<client>/...``); the tests pick message ids and
clients so that both keys are on a live primary ("live"), or both on the dead one ("dead").

What an SRE expects, and what is checked:

- fail-closed (gunicorn): live deliveries 200, their replays 409; dead ones 503; never a 500;
- fail-open (uvicorn): live replays still 409 -- their replay check is not skipped because another
  node is down; dead deliveries pass;
- a fresh process (a new worker, a deploy during the outage) on nodes that never loaded the guard's
  Lua scripts serves live deliveries too: loading a script must not need every primary.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import limits
import pytest

from ._cluster_app import APP, ASGI_APP, DEAD, RATE, counter, replay_key, signer
from ._redis_topologies import Cluster, redis_cluster
from ._servers import Server, gunicorn, uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def window_key(client: str) -> str:
    return "LIMITS:" + limits.parse(RATE).key_for("hmacguard", "requests", f"id:{client}")


def _named(cluster: Cluster, on_dead: bool, key_of: object, stem: str) -> Iterator[str]:
    """Names whose key (``key_of(name)``) is on the dead primary, or on a live one."""
    while True:
        name = f"{stem}_{uuid.uuid4().hex}"
        if (cluster.node_of(key_of(name)) == DEAD) == on_dead:  # type: ignore[operator]
            yield name


def delivery(cluster: Cluster, *, on_dead: bool, client: str) -> tuple[bytes, dict[str, str]]:
    message_id = next(_named(cluster, on_dead, replay_key, "msg"))
    body = b'{"n": %d}' % next(counter)
    headers = signer.sign(body, message_id=message_id)
    headers["X-Test-Client"] = client
    return body, headers


def client_on(cluster: Cluster, *, on_dead: bool) -> str:
    return next(_named(cluster, on_dead, window_key, "client"))


def app_env(cluster: Cluster) -> dict[str, str]:
    """The guarded app on the Cluster, its breaker open for one second per failure."""
    return {"HMACGUARD_TEST_REDIS": cluster.url, "HMACGUARD_TEST_RATE": RATE, "HMACGUARD_TEST_BREAKER": "1"}


def post(server: Server, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(server.base_url + "/webhook", content=body, headers=headers, timeout=20).status_code


def run_outage(cluster: Cluster, server: Server, seconds: float) -> dict[str, Counter[int]]:
    """Kill the dead primary, then send, for ``seconds``, in turn: the replay of the last live
    delivery processed, a fresh live delivery, the same two for the dead node. Statuses by kind."""
    live_client, dead_client = client_on(cluster, on_dead=False), client_on(cluster, on_dead=True)
    # Before the outage: both kinds work, and the keys are where the test thinks they are.
    import redis

    for on_dead, client in ((False, live_client), (True, dead_client)):
        body, headers = delivery(cluster, on_dead=on_dead, client=client)
        assert post(server, body, headers) == 200
        port = cluster.ports[cluster.node_of(replay_key(headers["webhook-id"]))]
        assert redis.Redis(port=port).exists(replay_key(headers["webhook-id"])), "the key model is wrong"
        assert redis.Redis(port=cluster.ports[cluster.node_of(window_key(client))]).exists(window_key(client))
    cluster.kill(DEAD)
    kinds = ("live", "live replay", "dead", "dead replay")
    seen: dict[str, Counter[int]] = {kind: Counter() for kind in kinds}
    previous: dict[bool, tuple[bytes, dict[str, str]]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for on_dead, client in ((False, live_client), (True, dead_client)):
            kind = "dead" if on_dead else "live"
            if on_dead in previous:
                seen[f"{kind} replay"][post(server, *previous[on_dead])] += 1
            fresh = delivery(cluster, on_dead=on_dead, client=client)
            status = post(server, *fresh)
            seen[kind][status] += 1
            if status == 200:  # only a delivery processed has a replay to refuse
                previous[on_dead] = fresh
        time.sleep(0.02)
    print("\none primary down:", {kind: dict(statuses) for kind, statuses in seen.items()})
    return seen


def test_fail_closed_a_dead_primary_costs_only_its_own_keys_under_gunicorn() -> None:
    with redis_cluster(3, full_coverage=False) as cluster:
        env = app_env(cluster)
        with gunicorn(APP, env, workers=2) as server:
            seen = run_outage(cluster, server, seconds=6)
            log = server.log()
    assert "Traceback" not in log, log
    assert set(seen["dead"]) | set(seen["dead replay"]) <= {503}  # fail-closed: refused, never a 500
    assert seen["dead"][503] >= 10
    assert dict(seen["live"]) == {200: sum(seen["live"].values())}, seen  # every one processed
    assert dict(seen["live replay"]) == {409: sum(seen["live replay"].values())}, seen


def test_fail_open_a_dead_primary_keeps_live_replays_refused_under_uvicorn() -> None:
    with redis_cluster(3, full_coverage=False) as cluster:
        env = {**app_env(cluster), "HMACGUARD_TEST_FAIL_OPEN": "1"}
        with uvicorn(ASGI_APP, env) as server:
            seen = run_outage(cluster, server, seconds=6)
            log = server.log()
    assert "Traceback" not in log, log
    assert set(seen["dead"]) <= {200}  # fail-open: passed unchecked, never a 500
    assert set(seen["dead replay"]) <= {200}  # (the price of failing open, on the dead node only)
    assert dict(seen["live"]) == {200: sum(seen["live"].values())}, seen
    assert dict(seen["live replay"]) == {409: sum(seen["live replay"].values())}, seen


def test_a_fresh_process_on_cold_nodes_serves_live_deliveries_under_gunicorn() -> None:
    """The primary dies before any guard has run a script on the Cluster (a new Cluster, or nodes
    restarted: their script caches are empty); then a server starts, whose first delivery has its
    keys on the dead node (its stores build their Cluster clients then: that failure is the dead
    node's, not the Cluster's)."""
    with redis_cluster(3, full_coverage=False) as cluster:
        cluster.kill(DEAD)
        env = app_env(cluster)
        with gunicorn(APP, env, workers=1) as server:
            client = client_on(cluster, on_dead=False)
            # Its first delivery is the dead node's (its client's window and its replay key): the
            # rate limiter, first to fail, must not make the replay store -- whose client is not
            # built yet -- refuse the live deliveries after it.
            dead = delivery(cluster, on_dead=True, client=client_on(cluster, on_dead=True))
            statuses = [post(server, *dead)]
            for _ in range(5):
                body, headers = delivery(cluster, on_dead=False, client=client)
                statuses.append(post(server, body, headers))
                statuses.append(post(server, body, headers))  # its replay
            log = server.log()
    assert "Traceback" not in log, log
    assert statuses == [503] + [200, 409] * 5, statuses


def test_a_fresh_store_releases_and_settles_on_a_live_node_with_a_primary_dead() -> None:
    """In process: the first calls of fresh stores are the scripted ones (commit, release, the
    in-flight count), on keys of live primaries."""
    from hmacguard import RateLimiter, RedisReplayStore

    with redis_cluster(3, full_coverage=False) as cluster:
        warm = RedisReplayStore(cluster.url)
        keys = [k for k in (f"k{i}" for i in range(50)) if cluster.node_of(warm.prefix + k) != DEAD][:3]
        tokens = [warm.hold(k, 60) for k in keys]  # a plain SET: no script yet
        assert all(tokens)
        cluster.kill(DEAD)
        store = RedisReplayStore(cluster.url)  # a fresh process's store
        store.release(keys[0], str(tokens[0]))
        store.commit(keys[1], str(tokens[1]), 60)
        assert store.extend(keys[2], str(tokens[2]), 60)
        assert store.client.get(store.prefix + keys[0]) is None
        assert store.client.get(store.prefix + keys[1]) == b"1"
        failures = "LIMITS:" + limits.parse("5/minute").key_for("hmacguard", "failures", "{c}")
        client = next(
            c for c in (f"ip:10.0.0.{i}" for i in range(200))
            if cluster.node_of("{hmacguard/in-flight/" + c + "}/total") != DEAD
            and cluster.node_of(failures.replace("{c}", c)) != DEAD
        )  # fmt: skip
        limiter = RateLimiter(limit=None, failure_limit="5/minute", storage=cluster.url)
        state = limiter.admit(client, declared_bytes=10)  # the in-flight script, cold
        assert state.in_flight
        limiter.settle(state, 10, failed=False)
        assert limiter._in_flight(client, 0, "in-flight") == 0
        warm.close()
        store.close()


def failover_timeline(cluster: Cluster, server: Server) -> list[tuple[float, str, int]]:
    """Kill the dead primary (which has a replica), then send live and dead deliveries -- each a
    fresh one and the replay of the last processed -- until the dead ones are processed again
    (five in a row) or 30 s pass. ``(seconds after the kill, kind, status)``."""
    live_client, dead_client = client_on(cluster, on_dead=False), client_on(cluster, on_dead=True)
    for on_dead, client in ((False, live_client), (True, dead_client)):
        assert post(server, *delivery(cluster, on_dead=on_dead, client=client)) == 200
    cluster.kill(DEAD)
    killed = time.monotonic()
    timeline: list[tuple[float, str, int]] = []
    previous: dict[bool, tuple[bytes, dict[str, str]]] = {}
    while time.monotonic() - killed < 30:
        for on_dead, client in ((False, live_client), (True, dead_client)):
            kind = "dead" if on_dead else "live"
            if on_dead in previous:
                timeline.append(
                    (time.monotonic() - killed, f"{kind} replay", post(server, *previous[on_dead]))
                )
            fresh = delivery(cluster, on_dead=on_dead, client=client)
            status = post(server, *fresh)
            timeline.append((time.monotonic() - killed, kind, status))
            if status == 200:
                previous[on_dead] = fresh
        dead = [status for _, kind, status in timeline if kind == "dead"]
        if 503 in dead and dead[-5:] == [200] * 5:
            break
        time.sleep(0.05)
    return timeline


def _summary(timeline: list[tuple[float, str, int]]) -> dict[str, dict[int, int]]:
    out: dict[str, Counter[int]] = {}
    for _, kind, status in timeline:
        out.setdefault(kind, Counter())[status] += 1
    return {kind: dict(statuses) for kind, statuses in out.items()}


@pytest.mark.parametrize("full_coverage", [False, True], ids=["coverage-no", "coverage-default"])
def test_a_failover_moves_the_dead_keys_to_the_promoted_replica_under_gunicorn(full_coverage: bool) -> None:
    """The dead primary has a replica, promoted after the Cluster's node timeout (2 s here). The
    dead node's keys are refused (503) until then and processed again after, without a restart:
    the half-open probe reaches the old address, redis-py re-reads the slot map, and the keys go
    to the promoted node (and its breaker). Live keys: never refused with full coverage off; with
    Redis's default, only while the whole Cluster answers CLUSTERDOWN (between the failure being
    agreed and the promotion)."""
    import redis

    with redis_cluster(3, full_coverage=full_coverage, replica_of=DEAD) as cluster:
        with gunicorn(APP, app_env(cluster), workers=2) as server:
            workers = server.worker_pids()
            timeline = failover_timeline(cluster, server)
            assert server.worker_pids() == workers  # nothing restarted
            log = server.log()
        assert cluster.replica_port is not None
        role = redis.Redis(port=cluster.replica_port).info("replication")["role"]
    seen = _summary(timeline)
    down = [t for t, kind, status in timeline if status == 503]
    print(
        f"\nfailover (full coverage {'yes' if full_coverage else 'no'}): {seen}; 503s from "
        f"{min(down, default=0):.1f} s to {max(down, default=0):.1f} s after the kill"
    )
    assert role == "master"
    assert "Traceback" not in log, log
    assert {status for _, _, status in timeline} <= {200, 409, 503}, timeline  # never a 500
    assert seen["dead"].get(503, 0) >= 1 and [s for _, k, s in timeline if k == "dead"][-5:] == [200] * 5
    assert set(seen["live replay"]) <= {409, 503}  # a processed delivery is never processed twice
    assert set(seen.get("dead replay", {})) <= {409, 503}
    if not full_coverage:
        assert set(seen["live"]) == {200} and set(seen["live replay"]) == {409}, seen
