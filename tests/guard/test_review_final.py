"""Adversarial review of eff3796 (nested guards: covers() always extends the outer hold, a lapsed
hold is held again by the inner guard) and 9b9d105 (Redis fixed windows: both rooms answered by one
pipelined GET+PTTL read after both in-flight takes).

Change A (in process, a memory store that lets the outer hold lapse right before ``extend``):

1. hold()'s retry keeps the key only for the INNER guard's replay_ttl: outer [B] replay_ttl 48 h
   (pending 1 s), inner [B] replay_ttl 1 h (pending 300 s); the outer hold lapses before extend,
   the inner guard holds the key itself under a new token and commits it for 1 h; the outer
   guard's commit under its lapsed token is a no-op (the key is committed by somebody else). The
   same delivery 2 h later is processed again. DEFECT (was a strict xfail; fixed since: the
   retaken hold is kept as long as the lapsed one would have been).
2. hold()'s retry with a guard further inside (3 guards, WSGI; 4 guards, ASGI): the retaking middle
   guard's delivery inherits the outer (lapsed) token for its own key, owner_of(key) names the outer
   delivery, so the innermost guard's covers() extends the dead token (False), retries, finds the
   key held (by the middle guard, for this very request) and answers 409. The middle guard commits
   a delivery nobody processed; the sender's retry is 409: LOST. DEFECT (was a strict xfail; fixed
   since: a delivery does not inherit an outer hold of a key it holds itself).
3. hold()'s retry with earlier keys (outer and inner [B, A], both holds lapse): no loop (each key
   held at most twice per guard), no double hold left pending, processed once, every key committed,
   the retry 409: HELD.
4. A fail-open store whose ``extend`` passes (True) though the hold has lapsed: processed once, no
   500, the key committed afterwards (the outer commit of its lapsed token keeps it): HELD.
5. A reserve-only custom store shared by nested guards: 409 as documented (never a 500), nothing
   processed twice: HELD.

Change B (a real redis-server, a Cluster):

6. 32 threads admitting at once, three rounds, against a tight bytes budget and against a tight
   failure budget (both rooms deferred to the one read): never more admitted than the budget,
   nothing left in flight once settled: HELD.
7. Budgets whose windows differ (requests per second, bytes per hour, failures per minute):
   decisions identical to limits' test() with the same cost, each refusal's Retry-After from its
   own window (bytes > 60 s, failures <= 60 s), every count given back: HELD.
8. A declared_bytes larger than the whole budget: 429 (not 500/503), counts given back: HELD.
9. The bytes window expiring between the take and the read: admitted (as limits would), the
   RateLimit field r=amount, t=0, no error: HELD.
10. Redis failing on the read after both takes: fail-closed 503 (never 500) and both takes owed,
    paid at the next admission once Redis answers; fail-open: admitted without a RateLimit field:
    HELD.
11. Key prefixes: RateLimiter(prefix=...) with braces, slashes and colons, on a limits RedisStorage
    with its own key_prefix: the one read reads the windows limits writes: HELD.
12. Redis Cluster, window keys in three different slots in one pipeline: the same decisions and
    fields as limits: HELD.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, RateLimiter, Verifier
from hmacguard.errors import RateLimited, RequestRejected
from hmacguard.guard.breaker import CircuitBreaker
from hmacguard.guard.limit_stores import in_flight_keys
from hmacguard.schemes import sign_body

from ._clock import Clock
from ._nesting import Seen, asgi_app, post, stacked, wsgi_app
from ._servers import RedisServer, redis_server

A, B = "review-final-a", "review-final-b"
H = 3600.0
counter = itertools.count()


class LapsingStore(MemoryReplayStore):
    """Right before the first ``extend`` of a live hold, 2 s pass: the outer (1 s) holds lapse.
    Every ``hold`` is recorded (key, token)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.clock = clock
        self.armed = True
        self.taken: list[tuple[str, str | None]] = []

    def hold(self, key: str, ttl: float) -> str | None:
        token = super().hold(key, ttl)
        self.taken.append((key, token))
        return token

    def extend(self, key: str, token: str, ttl: float) -> bool:
        if self.armed and super().holds(key, token):
            self.armed = False
            self.clock.now += 2
        return super().extend(key, token, ttl)


def _github(secret: str = B) -> tuple[bytes, dict[str, str]]:
    body = b'{"review-final": %d}' % next(counter)
    return body, sign_body("github", secret, body)


def _app(kind: str, seen: Seen) -> Any:
    return wsgi_app(seen) if kind == "wsgi" else asgi_app(seen)


# -- A1. The retry keeps the key only for the inner guard's replay_ttl ------------------------------


def test_a_retaken_key_is_kept_for_the_longest_replay_ttl() -> None:
    clock = Clock()
    store = LapsingStore(clock)
    verifiers = [
        Verifier("github", secrets=[B], replay=store, replay_pending_ttl=1, replay_ttl=48 * H),
        Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300, replay_ttl=H),
    ]
    seen = Seen()
    body, headers = _github()
    assert post("wsgi", stacked("wsgi", _app("wsgi", seen), verifiers), body, headers) == 200
    assert len(seen) == 1
    assert not store.armed  # the lapse was staged, and the inner guard held the key itself
    clock.now += 2 * H  # well inside the outer guard's 48 h
    again = post("wsgi", stacked("wsgi", _app("wsgi", seen), verifiers), body, headers)
    assert len(seen) == 1, "the same delivery processed again 2 h later"  # now: 2
    assert again == 409


# -- A2. The retry with guards further inside: the delivery is lost ---------------------------------


@pytest.mark.parametrize(("kind", "guards"), [("wsgi", 3), ("asgi", 4)])
def test_a_retaken_key_covers_the_guards_further_inside(kind: str, guards: int) -> None:
    clock = Clock()
    store = LapsingStore(clock)
    verifiers = [Verifier("github", secrets=[B], replay=store, replay_pending_ttl=1)]
    verifiers += [
        Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300) for _ in range(guards - 1)
    ]
    seen = Seen()
    body, headers = _github()
    first = post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers)
    retry = post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers)
    assert len(seen) <= 1  # never processed twice (held)
    assert (first, retry) in ((200, 409), (409, 200))  # now: (409, 409), nothing processed
    assert len(seen) == 1


# -- A3. The retry with earlier keys ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_the_retry_with_earlier_keys_neither_loops_nor_leaves_a_hold(kind: str) -> None:
    clock = Clock()
    store = LapsingStore(clock)
    verifiers = [
        Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=1, replay_ttl=H),
        Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=300, replay_ttl=H),
    ]
    seen = Seen()
    body, headers = _github(B)
    assert post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers) == 200
    assert len(seen) == 1
    assert not store.armed
    keys = {key for key, _ in store.taken}
    assert len(keys) == 2  # B's key and A's
    for key in keys:  # outer once, inner at most once refused and once retaken
        assert sum(1 for k, _ in store.taken if k == key) <= 3
    # Nothing left pending, everything committed for the replay TTL.
    for key in keys:
        expiry, token = store._entries[key]
        assert token is None
        assert expiry >= clock.now + H - 1
    assert post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers) == 409
    assert len(seen) == 1


# -- A4. A fail-open extend that passes though the hold lapsed ----------------------------------------


class _FailOpenExtend(MemoryReplayStore):
    """``extend`` as a fail-open store answers while its server is down: True, nothing done; the
    outer hold has lapsed meanwhile."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.clock = clock
        self.asked = 0

    def extend(self, key: str, token: str, ttl: float) -> bool:
        self.asked += 1
        self.clock.now += 2
        return True


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_fail_open_extend_over_a_lapsed_hold_still_commits(kind: str) -> None:
    clock = Clock()
    store = _FailOpenExtend(clock)
    verifiers = [
        Verifier("github", secrets=[B], replay=store, replay_pending_ttl=1),
        Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300),
    ]
    seen = Seen()
    body, headers = _github()
    assert post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers) == 200
    assert store.asked == 1 and len(seen) == 1
    (key,) = store._entries
    assert store._entries[key][1] is None  # committed, though its hold had lapsed
    assert post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers) == 409
    assert len(seen) == 1


# -- A5. Reserve-only custom stores ---------------------------------------------------------------------


class _ReserveOnly:
    blocking = False

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def reserve(self, key: str, ttl: float) -> bool:
        if key in self.keys:
            return False
        self.keys.add(key)
        return True


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_nested_guards_on_a_reserve_only_store_answer_409_never_500(kind: str) -> None:
    store = _ReserveOnly()
    verifiers = [Verifier("github", secrets=[B], replay=store) for _ in range(3)]
    seen = Seen()
    body, headers = _github()
    first = post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers)
    again = post(kind, stacked(kind, _app(kind, seen), verifiers), body, headers)
    assert first in (200, 409) and again == 409  # documented: 409 inside, never a 500
    assert len(seen) <= 1


# -- B. The rate limiter on Redis -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


prefixes = itertools.count()


def _prefix() -> str:
    return f"final{next(prefixes)}-{time.monotonic_ns()}"


def _in_flight(limiter: RateLimiter, key: str, counter: str) -> int:
    connection = limiter._storage.get_connection()
    total = connection.get(in_flight_keys(f"{limiter.prefix}/{counter}/{key}")[0])
    return int(total or 0)


def _limits_test(limiter: RateLimiter, name: str, key: str, cost: int) -> bool:
    budget = limiter._budgets[name]
    return bool(limiter._limiter.test(budget.item, limiter.prefix, name, key, cost=cost))


@pytest.mark.slow
@pytest.mark.parametrize("tight", ["bytes", "failures"])
def test_32_concurrent_admissions_never_exceed_a_budget(redis: RedisServer, tight: str) -> None:
    bytes_limit, failure_limit = (
        ("10000/hour", "100/minute") if tight == "bytes" else ("1000000/hour", "8/minute")
    )
    limiter = RateLimiter(
        limit=None, bytes_limit=bytes_limit, failure_limit=failure_limit, storage=redis.url, prefix=_prefix()
    )
    admitted_total = 0
    for _ in range(3):
        barrier = threading.Barrier(32)
        admitted: list[Any] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def one() -> None:
            barrier.wait()
            try:
                state = limiter.admit("client", declared_bytes=1000, longest=5)
            except RateLimited:
                return
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                admitted.append(state)

        threads = [threading.Thread(target=one) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors
        admitted_total += len(admitted)
        if tight == "bytes":
            assert admitted_total * 1000 <= 10000  # spent + in flight never past the budget
        else:
            assert admitted_total <= 8
        for state in admitted:
            limiter.settle(state, 1000, failed=True)
    assert admitted_total >= 1
    assert _in_flight(limiter, "client", "in-flight-bytes") == 0
    assert _in_flight(limiter, "client", "in-flight") == 0


@pytest.mark.slow
def test_budgets_with_different_windows_decide_as_limits(redis: RedisServer) -> None:
    limiter = RateLimiter(
        limit="100/second",
        bytes_limit="5000/hour",
        failure_limit="3/minute",
        storage=redis.url,
        prefix=_prefix(),
    )
    key = "k"
    limiter.spend_bytes(key, 4000)
    limiter.record_failure(key)
    limiter.record_failure(key)
    assert not _limits_test(limiter, "bytes", key, 1500)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(key, declared_bytes=1500, longest=5)
    assert refused.value.budget == "bytes" and 60 < refused.value.retry_after <= 3600
    assert _in_flight(limiter, key, "in-flight-bytes") == 0 and _in_flight(limiter, key, "in-flight") == 0
    assert _limits_test(limiter, "bytes", key, 1000) and _limits_test(limiter, "failures", key, 1)
    state = limiter.admit(key, declared_bytes=1000, longest=5)
    fields = {name: (r, t) for name, r, t in state.remaining}
    assert fields["bytes"][0] == 1000 and 60 < fields["bytes"][1] <= 3600
    assert fields["failures"][0] == 1 and 0 < fields["failures"][1] <= 60
    assert 0 <= fields["requests"][1] <= 1
    with pytest.raises(RateLimited) as refused:  # 4000 spent + 1000 in flight + 1: no room
        limiter.admit(key, declared_bytes=1, longest=5)
    assert refused.value.budget in ("bytes", "failures")
    limiter.settle(state, 0, failed=True)  # failures: 3 of 3
    assert not _limits_test(limiter, "failures", key, 1)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(key, declared_bytes=10, longest=5)
    assert refused.value.budget == "failures" and 1 <= refused.value.retry_after <= 60
    assert _in_flight(limiter, key, "in-flight-bytes") == 0 and _in_flight(limiter, key, "in-flight") == 0


@pytest.mark.slow
def test_declared_bytes_past_the_whole_budget_is_a_429(redis: RedisServer) -> None:
    limiter = RateLimiter(
        limit=None, bytes_limit="10000/hour", failure_limit="3/minute", storage=redis.url, prefix=_prefix()
    )
    for declared in (10001, 10**12):
        with pytest.raises(RateLimited) as refused:
            limiter.admit("big", declared_bytes=declared, longest=5)
        assert refused.value.status == 429 and refused.value.retry_after >= 1
    assert _in_flight(limiter, "big", "in-flight-bytes") == 0 and _in_flight(limiter, "big", "in-flight") == 0
    assert not limiter.breaker.is_open
    state = limiter.admit("big", declared_bytes=10000, longest=5)  # the whole budget still fits
    limiter.settle(state, 0, failed=False)


@pytest.mark.slow
def test_a_window_expiring_between_take_and_read(redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter(limit=None, bytes_limit="5000/hour", storage=redis.url, prefix=_prefix())
    limiter.spend_bytes("w", 4900)
    item = limiter._budgets["bytes"].item
    window = limiter._storage.prefixed_key(item.key_for(limiter.prefix, "bytes", "w"))
    take = limiter._count_in_flight

    def take_then_expire(*args: Any, **kwargs: Any) -> Any:
        counted = take(*args, **kwargs)
        limiter._storage.get_connection().delete(window)  # the hour ends right here
        return counted

    monkeypatch.setattr(limiter, "_count_in_flight", take_then_expire)
    state = limiter.admit("w", declared_bytes=1000, longest=5)
    monkeypatch.undo()
    assert state.remaining == (("bytes", 5000, 0),)
    limiter.settle(state, 1000, failed=False)
    assert _in_flight(limiter, "w", "in-flight-bytes") == 0


class _BrokenReads:
    """A redis-py client whose pipelines fail on execute (the read after the takes)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        import redis as redis_py

        pipe = self.client.pipeline(*args, **kwargs)

        def execute(*_: Any, **__: Any) -> Any:
            raise redis_py.ConnectionError("the server went away")

        pipe.execute = execute
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.slow
@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_failing_after_the_takes(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch, fail_open: bool
) -> None:
    limiter = RateLimiter(
        limit=None,
        bytes_limit="10000/hour",
        failure_limit="3/minute",
        storage=redis.url,
        prefix=_prefix(),
        fail_open=fail_open,
    )
    limiter.breaker = CircuitBreaker(reset_after=0.2)  # its own: the shared one is the first caller's
    limiter.admit("warm", declared_bytes=1, longest=5)  # the script registered, the breaker closed
    storage = limiter._storage
    connection = storage.get_connection

    def broken(readonly: bool = False) -> Any:
        # Every connection's pipelines: the window read is on the primary since 9a378af (it was a
        # readonly connection), and the takes before it are scripts, which still go through.
        return _BrokenReads(connection(readonly))

    monkeypatch.setattr(storage, "get_connection", broken)
    if fail_open:
        state = limiter.admit("down", declared_bytes=1000, longest=5)
        assert state.remaining == () and state.bytes_in_flight == 1000 and state.in_flight
        monkeypatch.undo()
        time.sleep(0.3)  # the breaker the failed read opened closes
        limiter.settle(state, 1000, failed=False)
    else:
        with pytest.raises(RequestRejected) as refused:
            limiter.admit("down", declared_bytes=1000, longest=5)
        assert refused.value.status == 503
        monkeypatch.undo()
        assert _in_flight(limiter, "down", "in-flight-bytes") == 1000  # owed, the breaker open
        assert limiter._owed
        time.sleep(0.3)
        state = limiter.admit("other", declared_bytes=1, longest=5)  # pays what is owed
        limiter.settle(state, 1, failed=False)
    assert not limiter._owed
    assert (
        _in_flight(limiter, "down", "in-flight-bytes") == 0 and _in_flight(limiter, "down", "in-flight") == 0
    )


@pytest.mark.slow
def test_key_prefixes_read_the_windows_limits_writes(redis: RedisServer) -> None:
    from limits.storage import RedisStorage

    storage = RedisStorage(redis.url, key_prefix=f"custom{{x}}:{_prefix()}")
    limiter = RateLimiter(
        limit="50/minute",
        bytes_limit="5000/hour",
        failure_limit="3/minute",
        storage=storage,
        prefix="p{x}/y:z%" + _prefix(),
    )
    key = "id:a/b{c}"
    limiter.spend_bytes(key, 4500)
    limiter.record_failure(key)
    state = limiter.admit(key, declared_bytes=400, longest=5)
    assert dict((n, r) for n, r, _ in state.remaining) == {"requests": 49, "bytes": 500, "failures": 2}
    assert _limits_test(limiter, "bytes", key, 500) and not _limits_test(limiter, "bytes", key, 501)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(key, declared_bytes=101, longest=5)
    assert refused.value.budget == "bytes"
    limiter.settle(state, 400, failed=True)
    assert _in_flight(limiter, key, "in-flight-bytes") == 0


@pytest.mark.slow
def test_cluster_windows_in_different_slots_decide_as_limits() -> None:
    from redis.cluster import key_slot

    from ._redis_topologies import redis_cluster

    with redis_cluster() as cluster:
        limiter = RateLimiter(
            limit="50/minute",
            bytes_limit="5000/hour",
            failure_limit="3/minute",
            storage=cluster.url,
            prefix=_prefix(),
        )
        key = "c"
        names = [
            limiter._storage.prefixed_key(b.item.key_for(limiter.prefix, b.name, key))
            for b in limiter._budgets.values()
        ]
        assert len({key_slot(name.encode()) for name in names}) > 1
        limiter.spend_bytes(key, 4500)
        limiter.record_failure(key)
        limiter.record_failure(key)
        state = limiter.admit(key, declared_bytes=500, longest=5)
        assert dict((n, r) for n, r, _ in state.remaining) == {"requests": 49, "bytes": 500, "failures": 1}
        with pytest.raises(RateLimited) as refused:
            limiter.admit(key, declared_bytes=1, longest=5)
        assert refused.value.budget in ("bytes", "failures") and refused.value.retry_after >= 1
        limiter.settle(state, 500, failed=True)
        assert not _limits_test(limiter, "failures", key, 1)
        with pytest.raises(RateLimited) as refused:
            limiter.admit(key, declared_bytes=0, longest=5)
        assert refused.value.budget in ("bytes", "failures") and 1 <= refused.value.retry_after <= 3600
        assert _in_flight(limiter, key, "in-flight-bytes") == 0 and _in_flight(limiter, key, "in-flight") == 0
