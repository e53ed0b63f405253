"""Review of the per-node circuit breakers on a Redis Cluster (breaker.py's ``_breaker_for``,
redis_urls.cluster_node, KeyedScript): attacks on real Clusters on loopback, one primary SIGKILLed
(``cluster-require-full-coverage no``, so the live primaries keep serving their slots).

A store call must go through the breaker of the node that really serves its key: routed through
another node's, a dead node's failures open a live node's breaker, and that live node's keys --
replay checks among them -- are refused (fail-closed) or skipped (fail-open) for a window.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import limits
import pytest

from hmacguard import RateLimiter, Signer
from hmacguard.errors import RateLimited
from hmacguard.guard.limit_stores import in_flight_keys

from ._cluster_app import APP, ASGI_APP, DEAD, RATE, counter, replay_key, signer
from ._redis_topologies import redis_cluster
from ._servers import Server, gunicorn, uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def window_name(client: str, rate: str = RATE, budget: str = "requests") -> str:
    """limits' name of a client's window (without its storage prefix)."""
    return limits.parse(rate).key_for("hmacguard", budget, client)


def first(predicate: Callable[[str], bool], stem: str) -> str:
    return next(name for name in (f"{stem}_{uuid.uuid4().hex}" for _ in range(100_000)) if predicate(name))


def post(server: Server, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(server.base_url + "/webhook", content=body, headers=headers, timeout=20).status_code


def signed(message_id: str, client: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(counter)
    headers = signer.sign(body, message_id=message_id)
    headers["X-Test-Client"] = client
    return body, headers


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open-uvicorn", "fail-closed-gunicorn"])
def test_sliding_windows_are_charged_to_the_node_that_serves_them(fail_open: bool) -> None:
    """Was (strict xfail, BUG): with ``strategy="sliding-window"`` the rate limiter routed its calls
    by ``LIMITS:<name>``, but limits keeps a sliding window in ``LIMITS:{<name>}`` and
    ``LIMITS:{<name>}/-1`` -- hash-tagged, so in the slot of ``<name>``, most often another node.
    A client whose windows are on the dead primary then had its calls fail through a *live*
    node's breaker and open it: every delivery whose replay key that live node serves was refused
    (fail-closed: 503) or -- fail-open -- let through unchecked, a replay of a processed delivery
    answered 200. Measured before the fix (6 rounds): fail-open replays {200: 6}; fail-closed
    replays {503: 6}, fresh live deliveries 503 too. After: replays {409: 6}, live deliveries 200."""
    with redis_cluster(3, full_coverage=False) as cluster:
        live = 0  # the live node both the replayed delivery and the misrouted windows name

        def real(client: str) -> int:
            return cluster.node_of(window_name(f"id:{client}"))  # the hash tag: limits' name

        def routed(client: str) -> int:
            return cluster.node_of("LIMITS:" + window_name(f"id:{client}"))  # what was routed by

        # Windows really on the dead node, routed (before the fix) through the live node's breaker.
        attacker = first(lambda c: real(c) == DEAD and routed(c) == live, "client")
        # A well-behaved client whose windows are on a live node whichever way they are routed.
        good = first(lambda c: DEAD not in (real(c), routed(c)), "client")
        message = first(lambda m: cluster.node_of(replay_key(m)) == live, "msg")
        env = {
            "HMACGUARD_TEST_REDIS": cluster.url,
            "HMACGUARD_TEST_RATE": RATE,
            "HMACGUARD_TEST_BREAKER": "1",
            "HMACGUARD_TEST_STRATEGY": "sliding-window",
            "HMACGUARD_TEST_FAIL_OPEN": "1" if fail_open else "0",
        }
        serve = uvicorn(ASGI_APP, env) if fail_open else gunicorn(APP, env, workers=1)
        with serve as server:
            processed = signed(message, good)
            assert post(server, *processed) == 200
            cluster.kill(DEAD)
            seen: dict[str, Counter[int]] = {"replay": Counter(), "live": Counter(), "dead": Counter()}
            for _ in range(6):
                other = first(lambda m: cluster.node_of(replay_key(m)) not in (live, DEAD), "msg")
                seen["dead"][post(server, *signed(other, attacker))] += 1
                seen["replay"][post(server, *processed)] += 1
                fresh = first(lambda m: cluster.node_of(replay_key(m)) == live, "msg")
                seen["live"][post(server, *signed(fresh, good))] += 1
            log = server.log()
    print("\nsliding windows, one primary down:", {kind: dict(s) for kind, s in seen.items()})
    assert "Traceback" not in log, log
    assert dict(seen["replay"]) == {409: 6}, seen  # a processed delivery is never processed twice
    assert dict(seen["live"]) == {200: 6}, seen
    assert set(seen["dead"]) == ({200} if fail_open else {503}), seen


def test_a_give_back_owed_on_a_live_node_is_paid_while_another_node_stays_dead() -> None:
    """Was (strict xfail, BUG): owed in-flight give-backs (``RateLimiter._owed``) were paid in
    order, stopping at the first the store refused -- right for one server (one breaker: all down
    or none), wrong on a Cluster: one owed on the dead node first kept every one owed on the live
    nodes unpaid for as long as the node stayed dead, and those live clients' in-flight counts
    held what nothing was using (refused with 429 until their leases lapsed, a minute at least)."""
    import redis

    rate = "1000/minute"
    with redis_cluster(3, full_coverage=False) as cluster:

        def in_flight_node(client: str) -> int:
            return cluster.node_of(in_flight_keys(f"hmacguard/in-flight-bytes/{client}")[0])

        def window_node(client: str) -> int:
            return cluster.node_of("LIMITS:" + window_name(client, rate, "bytes"))

        stranded = first(lambda c: in_flight_node(c) == DEAD, "ip")
        client = first(lambda c: DEAD not in (in_flight_node(c), window_node(c)), "ip")
        limiter = RateLimiter(
            limit=None, bytes_limit=rate, storage=cluster.url, timeout=0.3, breaker_reset=0.5
        )
        cluster.kill(DEAD)
        with pytest.raises(Exception, match="unavailable"):  # its take may have run: owed
            limiter.admit(stranded, declared_bytes=10)
        assert len(limiter._owed) == 1
        state = limiter.admit(client, declared_bytes=600)
        assert state.bytes_in_flight == 600
        # A blip on the live node as the request ends: its give-back times out, and is owed.
        paused = redis.Redis(port=cluster.ports[in_flight_node(client)])
        paused.execute_command("CLIENT", "PAUSE", 4000, "WRITE")
        limiter.settle(state, 0, failed=False)
        assert len(limiter._owed) == 2
        time.sleep(4.5)  # the blip is over, and every breaker's window with it
        try:
            state = limiter.admit(client, declared_bytes=600)  # nothing of the client's is in flight
        except RateLimited:
            pytest.fail("the live node's give-back was never paid: 600 bytes still count in flight")
        limiter.settle(state, 0, failed=False)
        assert {owed_by for owed_by, _, _ in limiter._owed} == {stranded}  # the dead node's, still owed


def test_a_callers_cluster_storage_counts_on_live_nodes_with_a_primary_dead() -> None:
    """Was (strict xfail, BUG): a ``limits`` ``RedisClusterStorage`` the caller built (flask-limiter's,
    say) ran limits' scripts with redis-py's ``Script``: on a node that lacks one, ``SCRIPT LOAD`` to
    every primary, which fails with one dead -- and that failure opened the *live* node's breaker,
    which the replay store shares: failing open, a processed delivery's replay on that node was let
    through. Now its scripts are loaded per node (``keyed_scripts``), as for a Cluster URL."""
    from limits.storage import RedisClusterStorage

    from hmacguard import RedisReplayStore

    with redis_cluster(3, full_coverage=False) as cluster:
        live_hosts = ",".join(f"127.0.0.1:{port}" for i, port in enumerate(cluster.ports) if i != DEAD)
        cluster.kill(DEAD)  # before any script ran: every node's script cache is empty
        storage = RedisClusterStorage(f"redis+cluster://{live_hosts}", socket_timeout=0.5)
        limiter = RateLimiter(limit="100/minute", storage=storage, fail_open=True, breaker_reset=5)
        replay = RedisReplayStore(cluster.url, fail_open=True, breaker_reset=5)
        client = first(lambda c: cluster.node_of("LIMITS:" + window_name(c, "100/minute")) != DEAD, "ip")
        live = cluster.node_of("LIMITS:" + window_name(client, "100/minute"))
        key = first(lambda k: cluster.node_of(replay.prefix + k) == live, "k")
        token = replay.hold(key, 60)
        assert token is not None
        replay.commit(key, token, 60)  # a processed delivery
        limiter.admit(client, declared_bytes=10)  # its window on the live node
        assert replay.hold(key, 60) is None, "the replay of a processed delivery was let through"
        assert storage.get_connection().get("LIMITS:" + window_name(client, "100/minute")) == b"1"
        replay.close()


def _held_under_both_secrets(cluster_nodes: Callable[[str], int], dead_key: str) -> bytes:
    """A body whose replay keys under the two secrets (digest-keyed: one per secret) are on
    different nodes, the ``dead_key`` one ("current" or "earlier") on the dead primary."""
    from hmacguard import Verifier

    verifier = Verifier("github", secrets=[SECRET_A, SECRET_B], replay=None)
    for n in range(10_000):
        body = b'{"rotation": %d}' % n
        verification = verifier.begin(Signer("github", secrets=SECRET_A).sign(body))
        verification.feed(body)
        verification.feed(b"")
        verification.finish().close()
        current = cluster_nodes(PREFIX + str(verification.replay_key))
        (earlier,) = (cluster_nodes(PREFIX + key) for key in verification.earlier_replay_keys)
        dead, live = (current, earlier) if dead_key == "current" else (earlier, current)
        if dead == DEAD and live != DEAD:
            return body
    raise AssertionError("no such body")


SECRET_A, SECRET_B = "new-rotation-secret", "old-rotation-secret"
PREFIX = "hmacguard:replay:"


@pytest.mark.parametrize("dead_key", ["current", "earlier"])
@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_a_rotation_whose_keys_span_a_dead_and_a_live_node(fail_open: bool, dead_key: str) -> None:
    """A delivery under two secrets is held under one key per secret, here on two nodes, one dead.
    Fail-closed: refused (503), and the live key not left held (the sender's retry, once the node
    is back, is processed). Fail-open: processed, noted as failed open, and its replay refused
    (409) by receivers on either order of the secrets (a rolling deploy's two halves)."""
    from hmacguard import RedisReplayStore, Verifier
    from hmacguard.errors import ReplayDetected, StoreUnavailable
    from hmacguard.guard.breaker import noting_failures_open

    with redis_cluster(3, full_coverage=False) as cluster:
        body = _held_under_both_secrets(cluster.node_of, dead_key)
        headers = Signer("github", secrets=SECRET_A).sign(body)
        store = RedisReplayStore(cluster.url, fail_open=fail_open, timeout=0.3)
        orders = [[SECRET_A, SECRET_B], [SECRET_B, SECRET_A]]
        verifiers = [Verifier("github", secrets=order, replay=store) for order in orders]
        cluster.kill(DEAD)

        def hold(verifier: Verifier) -> object:
            verification = verifier.begin(headers)
            verification.feed(body)
            verification.feed(b"")
            verification.finish().close()
            noted: list[str] = []
            return noting_failures_open(noted, lambda: verifier.hold(verification))(), noted

        if not fail_open:
            with pytest.raises(StoreUnavailable):
                hold(verifiers[0])
            import redis

            live = [port for i, port in enumerate(cluster.ports) if i != DEAD]
            live_keys = [k for port in live for k in redis.Redis(port=port).scan_iter(f"{PREFIX}*")]
            assert live_keys == [], live_keys  # nothing left held on the live node
            store.close()
            return
        delivery, noted = hold(verifiers[0])
        assert noted == ["replay"]
        delivery.settle(True)  # type: ignore[attr-defined]
        for verifier in verifiers:  # a replay, to either half of a rolling deploy
            with pytest.raises(ReplayDetected):
                hold(verifier)
        store.close()


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a call ASKed to a dead node fails through the live node's breaker (chosen before the call)",
)
def test_a_slot_migrating_to_a_dead_node_does_not_open_the_live_source_nodes_breaker() -> None:
    """A slot is being migrated from a live primary to one that dies (``redis-cli --cluster
    reshard`` interrupted by a crash): for a key already moved, the live source answers ``ASK`` to
    the dead target, and the call fails. The breaker was chosen before the call, from the slot map
    -- the live source's -- so that failure opens it, and for a window every key it serves is
    refused, or failing open, unchecked: a processed delivery on the live node, in another slot,
    replayed and let through. Left as is: the failure would have to be charged to the node that
    failed, and redis-py does not say which reliably (after an ASK its error's ``connection`` is
    still the source's; only the message names the target, and a timeout's names nothing)."""
    import redis

    from hmacguard import RedisReplayStore
    from hmacguard.guard.redis_urls import cluster_node

    source, target = 0, DEAD
    with redis_cluster(3, full_coverage=False) as cluster:
        store = RedisReplayStore(cluster.url, fail_open=True, breaker_reset=5)
        moved = first(lambda k: cluster.node_of(store.prefix + k) == source, "moved")
        kept = first(lambda k: cluster.node_of(store.prefix + k) == source, "kept")
        for key in (moved, kept):  # both processed
            token = store.hold(key, 60)
            assert token is not None
            store.commit(key, token, 60)
        slot = store.client.keyslot(store.prefix + moved)
        assert slot != store.client.keyslot(store.prefix + kept)
        nodes = [redis.Redis(port=port) for port in cluster.ports]
        ids = [node.execute_command("CLUSTER MYID").decode() for node in nodes]
        nodes[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
        nodes[source].execute_command(
            "MIGRATE", "127.0.0.1", cluster.ports[target], store.prefix + moved, 0, 5000
        )
        cluster.kill(target)
        before = cluster_node(store.client, store.prefix + kept)
        assert store.hold(moved, 60) is not None  # ASKed to the dead node: fails open (its price)
        assert cluster_node(store.client, store.prefix + kept) == before  # the live source, as before
        assert store.hold(kept, 60) is None, "a processed delivery on the live source let through"
        store.close()


def test_fail_open_a_budget_on_a_live_node_holds_when_another_budgets_window_is_dead() -> None:
    """Was (strict xfail, BUG): fail-open, a client whose bytes window is on the dead primary and
    whose failure window is on a live one: the failure budget (what bounds guessing signatures)
    must still hold -- only the dead node's budget is the price of failing open. The windows are
    read one pipeline per node; when one read failed open, none was used: forged signatures were
    admitted without end."""
    bytes_rate, failure_rate = "1000000/minute", "2/minute"
    with redis_cluster(3, full_coverage=False) as cluster:

        def node(name: str) -> int:
            return cluster.node_of(name)

        def fits(client: str) -> bool:
            return (
                node("LIMITS:" + window_name(client, bytes_rate, "bytes")) == DEAD
                and node("LIMITS:" + window_name(client, failure_rate, "failures")) != DEAD
                and all(
                    node(in_flight_keys(f"hmacguard/{c}/{client}")[0]) != DEAD
                    for c in ("in-flight", "in-flight-bytes")
                )
            )

        client = first(fits, "ip")
        limiter = RateLimiter(
            limit=None,
            bytes_limit=bytes_rate,
            failure_limit=failure_rate,
            storage=cluster.url,
            fail_open=True,
        )
        cluster.kill(DEAD)
        for _ in range(2):  # two forged signatures: the budget spent
            limiter.settle(limiter.admit(client, declared_bytes=10), 10, failed=True)
        with pytest.raises(RateLimited, match="failed verifications"):
            limiter.admit(client, declared_bytes=10)


def test_the_breakers_are_one_per_node_whatever_keys_clients_choose() -> None:
    """The per-node breakers are named by the slot map's nodes (``host:port``), never by a key: two
    thousand keys a client chooses (braces that pick a hash tag, long, non-ASCII) add one breaker
    per primary they land on, and nothing else."""
    from hmacguard import RedisReplayStore
    from hmacguard.guard import breaker

    with redis_cluster(3) as cluster:
        before = set(breaker._SHARED)
        store = RedisReplayStore(cluster.url)
        limiter = RateLimiter(limit="1000000/hour", failure_limit="1000000/hour", storage=cluster.url)
        shapes = ["{%d}", "a{%d}b", "}{%d", "%d{}", "é%d" + "x" * 300, "{{%d}}"]
        for n in range(2000):
            key = shapes[n % len(shapes)] % n
            assert store.hold(key, 5) is not None
            limiter.settle(limiter.admit(key, declared_bytes=1), 1, failed=True)
        added = set(breaker._SHARED) - before
        store.close()
    nodes = {f"cluster node 127.0.0.1:{port}" for port in cluster.ports}
    assert added <= nodes | {cluster.url.partition("://")[2]}, added
    assert added & nodes == nodes


def test_a_hung_cluster_costs_a_request_one_stall_not_one_per_node() -> None:
    """Was (strict xfail, BUG: 1.20 s, then 2.41 s more; now 0.00 s more): the whole Cluster hung
    (every primary SIGSTOPped: a partition, a frozen host), a request whose replay key and budget
    windows are on three nodes must pay one stall, as with one breaker -- the breaker module's
    promise, "a request pays at most one timeout" -- not one per node (each a timeout plus
    redis-py's re-reading of the slot map from every node: about 1.2 s here)."""
    import os
    import signal

    from hmacguard import RedisReplayStore

    rate, failures = "1000/minute", "100/minute"
    with redis_cluster(3, full_coverage=False) as cluster:
        store = RedisReplayStore(cluster.url, fail_open=True, timeout=0.3)
        limiter = RateLimiter(
            limit=rate, failure_limit=failures, storage=cluster.url, fail_open=True, timeout=0.3
        )
        key = first(lambda k: cluster.node_of(store.prefix + k) == 0, "k")
        client = first(
            lambda c: (
                cluster.node_of("LIMITS:" + window_name(c, rate)) == 1
                and cluster.node_of("LIMITS:" + window_name(c, failures, "failures")) == 2
            ),
            "ip",
        )
        for n in range(10):  # warm: clients built, scripts on every node
            limiter.settle(limiter.admit(f"{client}{n}", declared_bytes=1), 1, failed=False)
            store.hold(f"{key}{n}", 5)
        for process in cluster.processes:
            os.killpg(process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            store.hold(key, 5)  # the first stall: the Cluster is found down
            first_stall = time.monotonic() - started
            started = time.monotonic()
            limiter.settle(limiter.admit(client, declared_bytes=1), 1, failed=True)
            rest = time.monotonic() - started
        finally:
            for process in cluster.processes:
                os.killpg(process.pid, signal.SIGCONT)
        store.close()
    print(f"\nhung Cluster: first call {first_stall:.2f} s, the rest of the request {rest:.2f} s")
    assert first_stall > 0.3
    assert rest < first_stall / 2, (first_stall, rest)


def test_a_slot_no_node_serves_costs_only_its_own_keys() -> None:
    """Was (strict xfail, BUG: the new worker's stores could not start, every delivery refused):
    a slot no primary serves (``CLUSTER DELSLOTS``: a resharding gone wrong, a node removed
    before its slots moved), with ``cluster-require-full-coverage no``: its keys fail, those of
    the other slots keep working -- in a process already running, and in a new one (a worker
    restarted, a deploy), whose client must start on a slot map with a hole (redis-py's
    ``require_full_coverage`` defaults to refusing one)."""
    import redis

    from hmacguard import RedisReplayStore

    with redis_cluster(3, full_coverage=False) as cluster:
        store = RedisReplayStore(cluster.url, breaker_reset=5)
        lost = first(lambda k: cluster.node_of(store.prefix + k) == 0, "lost")
        kept = first(lambda k: cluster.node_of(store.prefix + k) == 1, "kept")
        assert store.hold(kept, 60) is not None  # the client built, its slot map read
        slot = store.client.keyslot(store.prefix + lost)
        for port in cluster.ports:
            redis.Redis(port=port).execute_command("CLUSTER DELSLOTS", slot)
        for _ in range(2):  # the first, on the stale map; the second, on a map without the slot
            with pytest.raises(Exception, match="unavailable"):
                store.hold(lost, 60)
        again = first(lambda k: cluster.node_of(store.prefix + k) == 1, "kept")
        assert store.hold(again, 60) is not None
        store.close()
        fresh = RedisReplayStore(cluster.url, breaker_reset=5)  # a new worker: its map lacks the slot
        assert fresh.hold(first(lambda k: cluster.node_of(store.prefix + k) == 1, "kept"), 60) is not None
        for _ in range(2):
            with pytest.raises(Exception, match="unavailable"):
                fresh.hold(lost, 60)
        assert fresh.hold(first(lambda k: cluster.node_of(store.prefix + k) == 1, "kept"), 60) is not None
        fresh.close()
        limiter = RateLimiter(limit="100/minute", storage=cluster.url)  # the new worker's limiter
        client = first(lambda c: cluster.node_of("LIMITS:" + window_name(c, "100/minute")) == 1, "ip")
        limiter.settle(limiter.admit(client, declared_bytes=1), 1, failed=False)


def test_fail_open_a_failover_never_lets_a_live_replay_through_under_uvicorn() -> None:
    """Failing open through a failover (the dead primary's replica promoted): the live keys' replay
    checks are never skipped, and once the replica serves the dead keys their replays are refused
    again (it has the keys, replicated) -- the Cluster's breaker, around every node's, is not opened
    by one node's death (the client re-reads the slot map from the live ones)."""
    from .test_redis_cluster_node_down import _summary, app_env, failover_timeline

    with (
        redis_cluster(3, full_coverage=False, replica_of=DEAD) as cluster,
        uvicorn(ASGI_APP, {**app_env(cluster), "HMACGUARD_TEST_FAIL_OPEN": "1"}) as server,
    ):
        timeline = failover_timeline(cluster, server)  # 30 s: failing open, nothing is refused
        log = server.log()
    seen = _summary(timeline)
    print("\nfail-open failover:", seen)
    assert "Traceback" not in log, log
    assert {status for _, _, status in timeline} <= {200, 409}, timeline
    assert set(seen["live replay"]) == {409}, seen
    assert set(seen["live"]) == {200}, seen
    replays = [status for _, kind, status in timeline if kind == "dead replay"]
    assert replays[-3:] == [409] * 3, timeline  # after the promotion: checked again
