"""Adversarial review of 7f1bc20 and 9e0f0f7 (nested guards on one store: keep_for raises the TTL
of the delivery that settles a covered key; OuterHold.covers has the store hold an outer key at
least the inner guard's pending time under the outer token, ``extend``).

Promises attacked: nested guards sharing one store never process a replay (nor a concurrent
duplicate sent while the first copy is being processed), never lose a delivery (one the application
did not process stays deliverable), keep a processed id at least as long as the longest replay_ttl
among the guards that verified it, and never answer 500 from our code (store outages: 503
fail-closed, pass fail-open). Each attack and its outcome:

1. An inner guard whose *earlier* key is already held around it (``_hold_earlier_for``: "held
   around this guard for this very request") -- that hold is never extended (only keep_for): outer
   [A, B] 1 s, inner [A, B] 300 s, the key under B held 1 s while the inner application runs. A
   receiver on [B] on the same store (the other half of a rotation) processes a duplicate 2 s in:
   DEFECT (WSGI and ASGI).
2. The shortcut in covers() (``owner is delivery`` and the outer verifier's pending time is the
   longer): a key in the outer delivery's ``also`` that a *covered middle guard* held with its own,
   shorter, pending time (guards [A] 300 s, [A, B] 1 s, [B, A] 300 s) is taken as held 300 s; it is
   held 1 s, and the receiver on [B] processes a duplicate 2 s in: DEFECT (WSGI and ASGI).
3. The consequence of 1 inside the nest: guards [A] 1 s, [C, A] 1 s, [C, A] 300 s. A duplicate 2 s
   in passes the outermost guard (its key lapsed, never extended) and is refused by the middle one
   (409) -- so the outermost guard *commits* its key for the duplicate. The first copy then fails
   (500) and the sender's retry is refused, 409, for the replay TTL: the delivery is LOST. DEFECT
   (WSGI, ASGI, and under gunicorn and uvicorn on a real redis-server, #13).
4. Extend racing a lapse: the outer hold is still held when covers() asks (still_held), lapses
   before ``extend``: extend says False, the inner guard answers 409, and the outer guard commits
   a delivery nobody processed (its own lapsed token: memory and Redis both commit it). The
   sender's retry is 409: LOST. DEFECT (memory and Redis). A replay is never processed (held).
5. Extend on holds a duplicate (through the same outer guard) re-took after they lapsed (token
   differs): extend says False, 409 for this copy, the duplicate's holds are left alone by the outer
   guard's commit, and once the duplicate fails the retry is processed once: HELD (memory, Redis).
6. A Redis blip right after the inner guard found its key taken (covers' still_held GET fails):
   still_held reads the outage as "not ours", the answer is 409 -- neither 503 (fail-closed) nor a
   pass (fail-open); a sender reads 409 as "already received" (the outer guard's commit of it is
   refused by the breaker here, so the hold lapses). DEFECT (both modes).
7. A Redis blip between still_held and extend (the EVALSHA fails): fail-closed 503, nothing
   processed, the outer hold lapses (its release is refused by the breaker the failure opened) and
   the retry is processed once; fail-open: extend says True, processed once, no 500: HELD.
8. Fail-open Redis down for the whole request (nothing listening): processed once, 200, no 500,
   WSGI and ASGI: HELD (both holds pass; extend is never asked).
9. A custom store without ``extend`` (and one without ``holds`` either): 409 as documented, never
   a 500, the application not run: HELD.
10. ASGI with a blocking store: ``extend`` runs in a worker thread, never on the event loop: HELD.
11. The inner application raising (or answering 500) after the outer hold was extended: every key
    released (memory and Redis), the retry processed once: HELD.
12. TTLs: three guards in every order of replay_ttl (1 h, 1 h, 48 h), with rotations ([A], [C, A],
    [A, C], [B, C, A]) and mixed pending times (1 s / 300 s) -- every guard's every key committed
    for at least its replay_ttl, nothing left pending, processed once -- and 4-guard stacks drawn
    at random: HELD (WSGI; a sample under ASGI).
13. A real server (gunicorn gthread, uvicorn) on its own redis-server, attack 3 under real
    concurrency (outer pending 0.2 s, processing 1.5 s): the duplicate is refused, but the failed
    first copy's retry is refused too -- LOST. DEFECT. (App: tests/guard/_apps/review_extend.py.)

Every DEFECT above is fixed since, and its test passes (it was a strict xfail): covers() always asks
the store to extend the hold it finds (under the token this request holds it by, with the store's
own outage semantics -- 503 or a pass, no more still_held), _hold_earlier_for asks covers() for an
earlier key held around it and holds it itself once that hold has lapsed, and hold() holds a key
itself once when the hold it found for this very request lapsed before the extend. The lapse and
retake of 4 and 5 are now staged right before ``extend`` (there is no still_held call any more).

Exploration behind 1-3 and 12: every 2- and 3-guard stack over seven secret orders and pending
times 1 s / 300 s on a clocked memory store, checking each guard's every key while the application
runs (held at least that guard's pending time) and after (committed at least its replay_ttl).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, RedisReplayStore, Verifier, WSGIGuard
from hmacguard.schemes import sign_body

from ._apps.recording import handled_on, post_status
from ._clock import Clock
from ._nesting import post, stacked

A, B, C = "review-extend-a", "review-extend-b", "review-extend-c"
H = 3600.0
KINDS = pytest.mark.parametrize("kind", ["wsgi", "asgi"])
counter = itertools.count()


def _body() -> bytes:
    return b'{"review-extend": %d}' % next(counter)


def _github(secret: str = A) -> tuple[bytes, dict[str, str]]:
    body = _body()
    return body, sign_body("github", secret, body)


def _stripe(*secrets: str) -> tuple[bytes, dict[str, str]]:
    """A Stripe delivery signed under each of ``secrets`` (as Stripe signs during a roll)."""
    body = _body()
    timestamp = int(time.time())
    sigs = ",".join(
        "v1=" + hmac.new(s.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest() for s in secrets
    )
    return body, {"Stripe-Signature": f"t={timestamp},{sigs}", "Content-Type": "application/json"}


async def _apost(app: Any, body: bytes, headers: Mapping[str, str], path: str = "/hooks/b") -> int:
    """One request through an ASGI app on the running loop (from inside another request)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50001),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def _receiver(
    kind: str, calls: list[bytes], during: Callable[[], Any] | None = None, first: int = 200
) -> Any:
    """The innermost application: records each body; on the first call runs ``during`` (for ASGI a
    coroutine function) while it is being processed, then answers ``first`` (later calls 200)."""
    if kind == "wsgi":

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            calls.append(environ["wsgi.input"].read())
            status = 200
            if len(calls) == 1:
                if during is not None:
                    during()
                status = first
            start_response(f"{status} X", [])
            return [b"ok"]

        return app

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        calls.append(body)
        status = 200
        if len(calls) == 1:
            if during is not None:
                await during()
            status = first
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return asgi


def _during(kind: str, func: Callable[[], Any]) -> Callable[[], Any]:
    """``func`` (which may return an awaitable for ASGI) as the hook _receiver expects."""
    if kind == "wsgi":
        return func

    async def hook() -> None:
        result = func()
        if asyncio.iscoroutine(result):
            await result

    return hook


def _post_to(
    kind: str, app: Any, body: bytes, headers: Mapping[str, str], out: list[int]
) -> Callable[[], Any]:
    """A request through ``app`` (same kind as the running one), its status appended to ``out``."""
    if kind == "wsgi":
        return lambda: out.append(post("wsgi", app, body, headers))

    async def send() -> None:
        out.append(await _apost(app, body, headers))

    return send


# -- 1, 2. A key held around an inner guard, for less than the inner guard's pending time ---------


def _duplicate_to_other_receiver(
    kind: str, specs: list[tuple[list[str], float]]
) -> tuple[int, list[bytes], int]:
    """Nested guards (secrets, pending) on one memory store, a Stripe delivery signed under A and B;
    2 s into the first copy's processing a duplicate goes to a receiver on [B] alone on the same
    store. Returns the first copy's status, the nested application's calls, the duplicate's status."""
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    verifiers = [Verifier("stripe", secrets=s, replay=store, replay_pending_ttl=p) for s, p in specs]
    other_calls: list[bytes] = []
    other = WSGIGuard(
        _receiver("wsgi", other_calls),
        verifier=Verifier("stripe", secrets=[B], replay=store),
        paths=["/hooks/*"],
    )
    body, headers = _stripe(A, B)
    duplicate: list[int] = []

    def during() -> None:
        clock.now += 2  # far inside the innermost guard's 300 s
        duplicate.append(post("wsgi", other, body, headers))

    calls: list[bytes] = []
    app = stacked(kind, _receiver(kind, calls, _during(kind, during)), verifiers)
    status = post(kind, app, body, headers)
    return status, calls + other_calls, duplicate[0]


@KINDS
def test_an_earlier_key_held_around_is_held_for_the_inner_guards_pending_time(kind: str) -> None:
    """Outer [A, B] holding 1 s, inner [A, B] holding 300 s on one store. The inner guard's current
    key (A's) is covered and extended to 300 s; its earlier key (B's), held by the outer guard, is
    only kept (keep_for), never extended -- it lapses after 1 s while the inner application still
    runs. The inner guard alone would hold it 300 s. A receiver on [B] on the same store then takes
    the duplicate 2 s in and processes it: the delivery is handled twice at once."""
    status, calls, duplicate = _duplicate_to_other_receiver(kind, [([A, B], 1), ([A, B], 300)])
    assert status == 200
    assert duplicate == 409  # now: 200
    assert len(calls) == 1  # now: 2


@KINDS
def test_a_key_a_covered_middle_guard_held_is_held_for_the_innermost_guards_pending_time(kind: str) -> None:
    """Guards [A] 300 s, [A, B] 1 s, [B, A] 300 s. The middle guard is covered by the outermost hold
    (300 >= 1) and holds its earlier key B's for *its* 1 s, handing it to the outermost delivery
    (``also``). The innermost guard's current key is that one: covers() sees the outermost delivery
    own it and the outermost verifier's 300 s >= 300 s, so it neither extends nor checks -- the
    key lapses after 1 s, and the receiver on [B] processes the duplicate 2 s in."""
    status, calls, duplicate = _duplicate_to_other_receiver(kind, [([A], 300), ([A, B], 1), ([B, A], 300)])
    assert status == 200
    assert duplicate == 409  # now: 200
    assert len(calls) == 1  # now: 2


# -- 3. The same, inside the nest: a concurrent duplicate, then a failing first copy ---------------


@KINDS
def test_a_duplicate_during_a_first_copy_that_fails_does_not_lose_the_delivery(kind: str) -> None:
    """Guards [A] 1 s, [C, A] 1 s, [C, A] 300 s on one store (GitHub, signed with A). The innermost
    guard's current key (C's) is the middle guard's own, extended to 300 s; its earlier key (A's),
    the outermost guard's, is not. 2 s in, a duplicate (the sender's retry after a client timeout)
    passes the outermost guard -- its hold lapsed -- and the middle guard refuses it, 409: not
    processed twice (held). But the outermost guard, seeing 409 (< 500), commits A's key for the
    duplicate. The first copy then fails (500): its keys are released, except A's, now committed by
    the duplicate. The sender's retry is refused for the replay TTL, and nothing processed it."""
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    specs = [([A], 1.0), ([C, A], 1.0), ([C, A], 300.0)]
    verifiers = [Verifier("github", secrets=s, replay=store, replay_pending_ttl=p) for s, p in specs]
    body, headers = _github(A)
    calls: list[bytes] = []
    duplicate: list[int] = []
    box: dict[str, Any] = {}

    def during() -> Any:
        clock.now += 2
        return _post_to(kind, box["app"], body, headers, duplicate)()

    box["app"] = stacked(kind, _receiver(kind, calls, _during(kind, during), first=500), verifiers)
    assert post(kind, box["app"], body, headers) == 500
    assert duplicate == [409]  # refused, not processed twice
    assert len(calls) == 1
    assert post(kind, box["app"], body, headers) == 200  # now: 409, the delivery lost
    assert len(calls) == 2


# -- 4, 5. Extend racing a lapse, and a hold re-taken by another request ---------------------------


class _LapsingMemoryStore(MemoryReplayStore):
    """Right before the first ``extend`` (covers' question; it asked ``holds`` first when this
    review was written), time passes past the outer hold's expiry -- and, with ``retake``, another
    request takes the lapsed key (returns its token)."""

    def __init__(self, clock: Clock, retake: bool) -> None:
        super().__init__(clock=clock)
        self.clock = clock
        self.retake = retake
        self.armed = True
        self.other: list[tuple[str, str]] = []

    def extend(self, key: str, token: str, ttl: float) -> bool:
        if self.armed and super().holds(key, token):
            self.armed = False
            self.clock.now += 2  # the outer holds (1 s) lapse just before extend
            if self.retake:  # a duplicate through the same outer guard takes every lapsed key
                lapsed = [k for k, (_, t) in self._entries.items() if t is not None]
                for other in lapsed:
                    taken = self.hold(other, 60)
                    assert taken is not None
                    self.other.append((other, taken))
        return super().extend(key, token, ttl)

    def settle_other(self, processed: bool) -> None:
        assert self.other
        for key, token in self.other:
            (self.commit(key, token, H) if processed else self.release(key, token))


def _lapsing_redis_store(url: str, retake: bool) -> Any:
    class _LapsingRedisStore(RedisReplayStore):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            self.armed = True
            self.other: list[tuple[str, str]] = []

        def extend(self, key: str, token: str, ttl: float) -> bool:
            if self.armed and super().holds(key, token):
                self.armed = False
                # The outer holds (PX 1 s) run out right before the extend ...
                lapsed = [k for k in self.client.keys(self.prefix + "*") if self.client.get(k) != b"1"]
                self.client.delete(*lapsed)
                if retake:  # ... and a duplicate through the same outer guard takes them all
                    self.other = []
                    for other in lapsed:
                        taken = self.hold(other.decode()[len(self.prefix) :], 60)
                        assert taken is not None
                        self.other.append((other.decode()[len(self.prefix) :], taken))
            return bool(super().extend(key, token, ttl))

        def settle_other(self, processed: bool) -> None:
            assert self.other
            for key, token in self.other:
                (self.commit(key, token, H) if processed else self.release(key, token))

    return _LapsingRedisStore(url)


def _lapsestacked(store: Any, calls: list[bytes]) -> Any:
    outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=1)
    inner = Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300)
    return stacked("wsgi", _receiver("wsgi", calls), [outer, inner])


STORES = pytest.mark.parametrize("backend", ["memory", "redis"])


@STORES
def test_an_outer_hold_lapsing_just_before_extend_is_not_lost(backend: str) -> None:
    """Outer [B, A] holding 1 s, inner [B] holding 300 s: the inner guard finds its key taken by the
    outer hold, covers() sees it still held, and the hold lapses before ``extend`` (a slow Redis
    round trip, a GC pause). extend says False: not covered, right -- the key is nobody's now. But
    the inner guard answers 409, the outer guard commits its (lapsed) hold, and the sender's retry
    is refused: lost. The key was free: the inner guard could have held it itself (or answered 503
    so that the outer guard released)."""
    from ._servers import redis_server

    calls: list[bytes] = []
    body, headers = _github(B)
    if backend == "memory":
        store: Any = _LapsingMemoryStore(Clock(), retake=False)
        first = post("wsgi", _lapsestacked(store, calls), body, headers)
        retry = post("wsgi", _lapsestacked(store, calls), body, headers)
    else:
        with redis_server() as server:
            store = _lapsing_redis_store(server.url, retake=False)
            try:
                first = post("wsgi", _lapsestacked(store, calls), body, headers)
                retry = post("wsgi", _lapsestacked(store, calls), body, headers)
            finally:
                store.close()
    assert len(calls) <= 1  # never processed twice (held)
    assert 200 in (first, retry)  # now: (409, 409) -- never processed
    assert len(calls) == 1


@STORES
def test_an_outer_hold_retaken_by_another_request_before_extend(backend: str) -> None:
    """The same lapse, and a duplicate through the same outer guard takes the lapsed keys before
    ``extend``: extend under the outer token says False (the token differs), this copy is 409, and
    the outer guard's commit leaves the other request's holds alone. The other request processing
    it is the delivery processed once; when it fails instead, the keys are free and the retry is
    processed once. HELD."""
    from ._servers import redis_server

    calls: list[bytes] = []
    body, headers = _github(B)

    def run(store: Any) -> tuple[int, int]:
        first = post("wsgi", _lapsestacked(store, calls), body, headers)
        assert len(store.other) == 2  # B's key and A's, the outer guard's
        assert all(store.holds(key, token) for key, token in store.other)  # survived the outer commit
        store.settle_other(False)  # ...and it failed: the sender retries
        return first, post("wsgi", _lapsestacked(store, calls), body, headers)

    if backend == "memory":
        first, retry = run(_LapsingMemoryStore(Clock(), retake=True))
    else:
        with redis_server() as server:
            store = _lapsing_redis_store(server.url, retake=True)
            try:
                first, retry = run(store)
            finally:
                store.close()
    assert (first, retry) == (409, 200)
    assert len(calls) == 1


# -- 6, 7, 8. Redis outages around extend ------------------------------------------------------------


class _Outage:
    """A redis-py client with one blip: once a ``SET NX`` found its key taken, the next call
    (``at="holds"``: covers' still_held GET) or the one after it (``at="extend"``: the GET answers,
    the extend script fails) raises ConnectionError. Once; the breaker it opens then refuses calls
    for its ``breaker_reset``."""

    def __init__(self, client: Any, at: str) -> None:
        self._client = client
        self._at = at
        self._countdown: int | None = None
        self._tripped = False

    def _check(self) -> None:
        import redis

        if self._countdown is not None:
            if self._countdown == 0:
                self._countdown = None
                raise redis.ConnectionError("redis blip (review-extend)")
            self._countdown -= 1

    def set(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        result = self._client.set(*args, **kwargs)
        if kwargs.get("nx") and not result and not self._tripped:
            self._tripped = True
            self._countdown = 0 if self._at == "holds" else 1
        return result

    def get(self, *args: Any) -> Any:
        self._check()
        return self._client.get(*args)

    def evalsha(self, *args: Any) -> Any:
        self._check()
        return self._client.evalsha(*args)

    def script_load(self, *args: Any) -> Any:
        self._check()
        return self._client.script_load(*args)

    def register_script(self, script: str) -> Any:
        from redis.commands.core import Script

        return Script(self, script)

    def get_encoder(self) -> Any:
        return self._client.get_encoder()

    def close(self) -> None:
        self._client.close()


def _outage_run(at: str, fail_open: bool) -> tuple[int, int, int, list[Any], int]:
    """Outer [B, A] holding 0.2 s, inner [B] holding 300 s, one store on an _Outage client."""
    import redis

    from ._servers import redis_server

    calls: list[bytes] = []
    body, headers = _github(B)
    with redis_server() as server:
        raw = redis.Redis.from_url(server.url)
        client = _Outage(redis.Redis.from_url(server.url), at)
        store = RedisReplayStore(client=client, fail_open=fail_open, breaker_reset=0.05)
        try:
            outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=0.2)
            inner = Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300)
            app = stacked("wsgi", _receiver("wsgi", calls), [outer, inner])
            status = post("wsgi", app, body, headers)
            processed = len(calls)
            time.sleep(0.3)  # the outer hold's 0.2 s, and the breaker's 0.05 s
            retry = post("wsgi", app, body, headers)
            pending = [k for k in raw.keys("hmacguard:replay:*") if raw.get(k) != b"1"]
        finally:
            store.close()
            raw.close()
    return status, processed, retry, pending, len(calls)


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_redis_down_right_after_the_inner_hold_found_its_key_taken(fail_open: bool) -> None:
    """Redis fails between the inner guard's SET NX (taken, by the outer hold) and covers()'s
    still_held GET. A store outage must answer 503 (fail-closed; the outer guard then releases) or
    pass (fail-open). still_held swallows the error and says "not held": 409 for a delivery nobody
    processed, which a sender reads as "already received". (The outer guard's commit of it is
    refused here by the breaker the failure opened, so the hold lapses; a Redis that answers again
    by then -- another call site, a breaker window already over -- keeps it refused for the TTL.)"""
    status, processed, _, _, _ = _outage_run("holds", fail_open)
    assert (status, processed) == ((200, 1) if fail_open else (503, 0))  # now: (409, 0)


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_redis_down_between_still_held_and_extend(fail_open: bool) -> None:
    """The GET answers, the extend script fails. Fail-closed: 503, nothing processed; the outer
    guard's release is refused by the breaker the failure opened, so its hold (0.2 s) lapses, and
    the retry is processed once -- nothing left pending. Fail-open: extend says True, the delivery
    is processed once, 200, never a 500. (Its commit, refused by the open breaker, passes: fail-open
    accepts a replay once the unextended hold lapses -- the documented trade-off, not asserted.) HELD."""
    status, processed, retry, pending, total = _outage_run("extend", fail_open)
    if fail_open:
        assert (status, processed) == (200, 1)
    else:
        assert (status, processed, retry, total) == (503, 0, 200, 1)
        assert pending == []


@KINDS
def test_fail_open_redis_down_for_the_whole_request(kind: str) -> None:
    """Nothing listens: every hold passes (fail-open), the inner one too, so extend is never asked.
    Processed once, 200, never a 500 (both guards' stores fail open; pending 0.2 s against 300 s)."""
    url = "redis://127.0.0.1:1/0"
    store = RedisReplayStore(url, timeout=0.2, fail_open=True, breaker_reset=0.01)
    calls: list[bytes] = []
    outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=0.2)
    inner = Verifier(
        "github", secrets=[B], replay=RedisReplayStore(url, fail_open=True), replay_pending_ttl=300
    )
    app = stacked(kind, _receiver(kind, calls), [outer, inner])
    body, headers = _github(B)
    assert post(kind, app, body, headers) == 200
    assert len(calls) == 1


# -- 9. A custom store without extend ----------------------------------------------------------------


class _DictStore:
    """A custom two-phase store on a dict: hold/commit/release/holds, no ``extend``."""

    blocking = False

    def __init__(self) -> None:
        self.entries: dict[str, str | None] = {}
        self._tokens = itertools.count()

    def reserve(self, key: str, ttl: float) -> bool:
        token = self.hold(key, ttl)
        if token is None:
            return False
        self.commit(key, token, ttl)
        return True

    def hold(self, key: str, ttl: float) -> str | None:
        if key in self.entries:
            return None
        token = self.entries[key] = str(next(self._tokens))
        return token

    def commit(self, key: str, token: str, ttl: float) -> None:
        if self.entries.get(key, token) == token:
            self.entries[key] = None

    def release(self, key: str, token: str) -> None:
        if self.entries.get(key) == token:
            del self.entries[key]

    def holds(self, key: str, token: str) -> bool:
        return self.entries.get(key) == token


class _NoHoldsStore(_DictStore):
    holds = None  # type: ignore[assignment]


@KINDS
@pytest.mark.parametrize("store_type", [_DictStore, _NoHoldsStore], ids=["no-extend", "no-holds"])
def test_a_custom_store_without_extend_answers_409_as_documented(kind: str, store_type: type) -> None:
    """The documented fallback (HoldingReplayStore: "without it, that nested guard answers 409"):
    409, the application not run, never a 500 (no AttributeError from the missing method). With
    equal pending times no extend is needed and the delivery is processed once."""
    store = store_type()
    calls: list[bytes] = []
    outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=1)
    inner = Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300)
    assert post(kind, stacked(kind, _receiver(kind, calls), [outer, inner]), *_github(B)) == 409
    assert calls == []
    if store_type is _DictStore:
        same = Verifier("github", secrets=[B], replay=store, replay_pending_ttl=1)
        app = stacked(kind, _receiver(kind, calls), [outer, same])
        body, headers = _github(B)
        assert post(kind, app, body, headers) == 200
        assert post(kind, app, body, headers) == 409
        assert calls == [body]


# -- 10. ASGI: extend on a blocking store runs in a worker thread -----------------------------------


def test_asgi_extend_on_redis_runs_off_the_event_loop() -> None:
    from ._servers import redis_server

    threads: list[bool] = []

    class _Watched(RedisReplayStore):
        def extend(self, key: str, token: str, ttl: float) -> bool:
            try:
                asyncio.get_running_loop()
                threads.append(False)  # on the event loop
            except RuntimeError:
                threads.append(True)
            return super().extend(key, token, ttl)

    calls: list[bytes] = []
    with redis_server() as server:
        store = _Watched(server.url)
        try:
            outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=1)
            inner = Verifier("github", secrets=[B], replay=store, replay_pending_ttl=300)
            app = stacked("asgi", _receiver("asgi", calls), [outer, inner])
            body, headers = _github(B)
            assert post("asgi", app, body, headers) == 200
            assert post("asgi", app, body, headers) == 409
        finally:
            store.close()
    assert threads == [True]
    assert len(calls) == 1


# -- 11. The inner application failing after the outer hold was extended -----------------------------


@KINDS
@STORES
@pytest.mark.parametrize("failure", ["raises", "500"])
def test_a_failing_inner_application_releases_the_extended_holds(
    kind: str, backend: str, failure: str
) -> None:
    """Outer [B, A] holding 1 s, inner [A, B] holding 300 s (its current key A's covered and
    extended; B's too, through the outer hold). The application raises or answers 500: every key
    released at once, the retry processed once, then refused."""
    import redis

    from ._servers import redis_server

    def run(store: Any, keys: Callable[[], list[Any]]) -> None:
        calls: list[bytes] = []
        outer = Verifier("github", secrets=[B, A], replay=store, replay_pending_ttl=1)
        inner = Verifier("github", secrets=[A, B], replay=store, replay_pending_ttl=300)

        def boom() -> None:
            if failure == "raises":
                raise RuntimeError("the handler failed")

        app = stacked(kind, _receiver(kind, calls, _during(kind, boom), first=500), [outer, inner])
        body, headers = _github(A)
        try:
            status = post(kind, app, body, headers)
        except RuntimeError:
            status = 500
        assert status == 500
        assert keys() == []
        assert post(kind, app, body, headers) == 200
        assert post(kind, app, body, headers) == 409
        assert len(calls) == 2

    if backend == "memory":
        memory = MemoryReplayStore()
        run(memory, lambda: list(memory._entries))
    else:
        with redis_server() as server:
            store = RedisReplayStore(server.url)
            raw = redis.Redis.from_url(server.url)
            try:
                run(store, lambda: raw.keys("hmacguard:replay:*"))
            finally:
                store.close()
                raw.close()


# -- 12. TTLs in every nesting order, with rotations and mixed pending times -------------------------


def _keys_of(verifier: Verifier, body: bytes, headers: Mapping[str, str]) -> list[str]:
    verification = verifier.begin(headers)
    verification.feed(body)
    verification.feed(b"")
    verification.finish()
    key = verification.replay_key
    assert key is not None
    return [key, *verification.earlier_replay_keys]


def _check_ttls(kind: str, specs: list[tuple[list[str], float, float]]) -> None:
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    verifiers = [
        Verifier("github", secrets=s, replay=store, replay_pending_ttl=p, replay_ttl=t) for s, p, t in specs
    ]
    calls: list[bytes] = []
    app = stacked(kind, _receiver(kind, calls), verifiers)
    body, headers = _github(A)
    assert post(kind, app, body, headers) == 200, specs
    assert len(calls) == 1
    assert all(token is None for _, token in store._entries.values()), specs  # nothing left pending
    for verifier in verifiers:
        for key in _keys_of(verifier, body, headers):
            expiry = store._entries[key][0]
            assert expiry >= clock.now + verifier.replay_ttl, (specs, verifier.secrets, key)


ORDERS = [[A], [C, A], [A, C], [B, C, A]]


def test_every_guards_keys_are_kept_for_its_ttl_in_every_nesting_order() -> None:
    """Three guards, every combination of four secret orders, every order of replay_ttl (1 h, 1 h,
    48 h) and two patterns of pending times (the innermost or the outermost the longer): each guard's
    every key committed for at least its replay_ttl. HELD."""
    for secrets in itertools.product(ORDERS, repeat=3):
        for ttls in set(itertools.permutations((H, H, 48 * H))):
            for pendings in ((1.0, 1.0, 300.0), (300.0, 1.0, 1.0), (1.0, 300.0, 1.0)):
                _check_ttls("wsgi", [(s, p, t) for s, p, t in zip(secrets, pendings, ttls, strict=True)])


@KINDS
def test_four_guards_drawn_at_random_keep_every_key_for_its_ttl(kind: str) -> None:
    """Four guards, secrets, pending times and TTLs drawn at random (fixed seed): HELD."""
    rng = random.Random(20261202)
    orders = [*ORDERS, [A, B], [B, A], [A, B, C]]
    for _ in range(150 if kind == "wsgi" else 40):
        specs = [(rng.choice(orders), rng.choice((1.0, 300.0)), rng.choice((H, 48 * H))) for _ in range(4)]
        _check_ttls(kind, specs)


# -- 13. Under real servers, on a real redis-server ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_duplicate_during_a_failing_first_copy_under_a_real_server(server: str) -> None:
    """tests/guard/_apps/review_extend.py: guards [A] 0.2 s, [C, A] 0.2 s, [C, A] 60 s, each with
    its own RedisReplayStore on one URL. The first copy takes 1.5 s and fails (500); a duplicate
    sent 0.6 s in is refused (409, never processed twice: held) -- and the first copy's retry must
    then be processed."""
    from ._apps.review_extend import SECRET_A
    from ._servers import gunicorn, redis_server, uvicorn

    with redis_server() as store:
        env = {"HMACGUARD_TEST_REDIS": store.url}
        if server == "gunicorn":
            running = gunicorn(
                "tests.guard._apps.review_extend:application",
                env,
                workers=1,
                worker_class="gthread",
                threads=4,
            )
        else:
            running = uvicorn("tests.guard._apps.review_extend:asgi", env)
        with running as http_server:
            port = http_server.port
            body = _body()
            headers = sign_body("github", SECRET_A, body)
            statuses: list[int] = []
            first = threading.Thread(
                target=lambda: statuses.append(post_status(port, "/x/slowfail", body, headers))
            )
            first.start()
            time.sleep(0.6)  # the first copy is being processed; the outer holds (0.2 s) have lapsed
            duplicate = post_status(port, "/x/slowfail", body, headers)
            first.join(10)
            time.sleep(0.3)  # settled once the answer is out
            retry = post_status(port, "/x/ok", body, headers)
            handled = [b for _, b in handled_on(port)]
    assert (statuses, duplicate) == ([500], 409)
    assert handled.count(body.decode()) == 2, (statuses, duplicate, retry, handled)  # now: 1
    assert retry == 200  # now: 409, the delivery lost
