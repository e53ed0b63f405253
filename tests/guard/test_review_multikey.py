"""Review of ad7dead: with several secrets a delivery is held under its digest under each.

Promises attacked (ad7dead's message, docs/guide.md "Replay protection"): with secrets [s1..sn] a
verified delivery is held under the content's digest under each secret, committed or released
together, and refused when any is taken; nested guards still process a delivery exactly once; and
nothing stays held after a refusal or a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, RedisReplayStore, Verifier, WSGIGuard
from hmacguard.errors import ReplayDetected, StoreUnavailable
from hmacguard.schemes import sign_body

from ._inprocess import asgi_request, body_then_wait, call_wsgi, webhook_scope, wsgi_environ
from ._nesting import Seen, wsgi_app
from ._servers import redis_server

A, B, C = "review2-secret-a", "review2-secret-b", "review2-secret-c"
counter = iter(range(10**6))


def _delivery(secret: str = A) -> tuple[bytes, dict[str, str]]:
    body = b'{"review2": %d}' % next(counter)
    return body, sign_body("github", secret, body)


def _guarded(verifier: Verifier, seen: Seen) -> WSGIGuard:
    return WSGIGuard(wsgi_app(seen), verifier=verifier, paths=["/hooks/b"])


def _send(app: Any, body: bytes, headers: dict[str, str], *, chunked: bool = False) -> int:
    # The lane takes a Content-Length body; without one the general path decides.
    environ = wsgi_environ("POST", "/hooks/b", body, headers, content_length=not chunked)
    return call_wsgi(app, environ).status


# -- duplicate secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["lane", "general"])
@pytest.mark.parametrize(
    "secrets",
    [[A, A], [A, B, A], [A, A.encode()]],
    ids=["same-twice", "current-again-last", "str-and-bytes"],
)
def test_a_secret_listed_twice_still_lets_a_delivery_through_once(secrets: list[Any], chunked: bool) -> None:
    """A rotation configured from two settings that hold the same value for a while ([NEW, OLD]
    with NEW == OLD, or one secret as text and as bytes) is one secret. Before ad7dead such a
    verifier keyed one digest and served the delivery; now the duplicate's key is the current key,
    which the delivery itself had just taken -- so every delivery was refused 409, none processed
    (failed on ad7dead; Verifier.earlier_keys now counts a repeated key once)."""
    seen = Seen()
    app = _guarded(Verifier("github", secrets=secrets), seen)
    body, headers = _delivery(A)
    assert _send(app, body, headers, chunked=chunked) == 200
    assert _send(app, body, headers, chunked=chunked) == 409
    assert len(seen) == 1


def test_a_secret_listed_twice_verify_and_reserve() -> None:
    """The same through Verifier.verify (which reserves): accepted once, then refused."""
    verifier = Verifier("github", secrets=[A, B, A])
    body, headers = _delivery(A)
    verifier.verify(headers, body).close()
    with pytest.raises(ReplayDetected):
        verifier.verify(headers, body)


# -- three nested guards ----------------------------------------------------------------------------


def _three(secrets: list[list[str]], store: Any) -> tuple[Any, Seen]:
    """Three WSGI guards on one store around one application, ``secrets[0]`` outermost."""
    seen = Seen()
    app: Any = wsgi_app(seen)
    for listed in reversed(secrets):
        app = WSGIGuard(app, verifier=Verifier("github", secrets=listed, replay=store), paths=["/hooks/b"])
    return app, seen


@pytest.mark.parametrize(
    "secrets",
    [
        [[A, B], [B, A], [A, B]],
        [[A], [C, A], [A, C]],
        [[A, B], [A, C], [C, B, A]],
    ],
    ids=["ab-ba-ab", "a-ca-ac", "ab-ac-cba"],
)
def test_three_nested_guards_whose_keys_chain_process_once(secrets: list[list[str]]) -> None:
    """Three guards whose every inner key is held by the guard just around it (or recorded by it):
    processed once, the replay refused, nothing left pending."""
    store = MemoryReplayStore()
    app, seen = _three(secrets, store)
    body, headers = _delivery(A)
    assert _send(app, body, headers) == 200
    assert _send(app, body, headers) == 409
    assert len(seen) == 1
    assert all(token is None for _, token in store._entries.values())  # all committed, none pending


def test_three_nested_guards_where_the_middle_one_lacks_a_secret_of_the_outer_one() -> None:
    """Was (strict xfail): the innermost guard [B, A] found its current key B held by the outermost
    guard [A, B], a hold it could not see (the environ records the innermost hold only) -- 409 for a
    fresh delivery, never processed. Fixed: each hold carries the keys held around it."""
    store = MemoryReplayStore()
    app, seen = _three([[A, B], [C, A], [B, A]], store)
    body, headers = _delivery(A)
    assert _send(app, body, headers) == 200
    assert len(seen) == 1
    assert _send(app, body, headers) == 409
    assert len(seen) == 1


def _stripe(timestamp: int, body: bytes, *secrets: str) -> dict[str, str]:
    sigs = ",".join(
        "v1=" + hmac.new(s.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest() for s in secrets
    )
    return {"Stripe-Signature": f"t={timestamp},{sigs}", "Content-Type": "application/json"}


def test_a_covered_current_key_still_checks_the_earlier_keys() -> None:
    """Was (strict xfail): when the outer guard's hold stood for the inner guard's current key, the
    inner guard never looked at its earlier keys. Fixed: it holds those the outer hold lacks and
    gives them to the outer guard to settle."""
    store = MemoryReplayStore()
    seen = Seen()
    inner = WSGIGuard(
        wsgi_app(seen), verifier=Verifier("stripe", secrets=[A, C], replay=store), paths=["/hooks/b"]
    )
    nested_app = WSGIGuard(inner, verifier=Verifier("stripe", secrets=[A], replay=store), paths=["/hooks/b"])
    other_seen = Seen()
    other = _guarded(Verifier("stripe", secrets=[C], replay=store), other_seen)  # the receiver on [C]
    body = b'{"id": "evt_review2_covered"}'
    headers = _stripe(int(time.time()), body, A, C)
    assert _send(other, body, headers) == 200  # processed (and committed) under C
    assert _send(nested_app, body, headers) == 409
    assert len(seen) + len(other_seen) == 1


# -- failures while holding the later keys ----------------------------------------------------------


class _FailingStore(MemoryReplayStore):
    """A memory store whose n-th hold (1-based), or every commit of a given key, raises."""

    def __init__(self, fail_hold: int | None = None, fail_commit: str | None = None) -> None:
        super().__init__()
        self.holds_made = 0
        self.fail_hold = fail_hold
        self.fail_commit = fail_commit

    def hold(self, key: str, ttl: float) -> str | None:
        self.holds_made += 1
        if self.holds_made == self.fail_hold:
            raise StoreUnavailable("replay store down (review2)")
        return super().hold(key, ttl)

    def commit(self, key: str, token: str, ttl: float) -> None:
        if key == self.fail_commit:
            raise StoreUnavailable("replay store down (review2)")
        super().commit(key, token, ttl)


@pytest.mark.parametrize("chunked", [False, True], ids=["lane", "general"])
@pytest.mark.parametrize("failing", [2, 3])
def test_a_store_failing_on_a_later_key_leaves_nothing_held(failing: int, chunked: bool) -> None:
    """503, every key already held released, and the sender's retry processed."""
    store = _FailingStore(fail_hold=failing)
    seen = Seen()
    app = _guarded(Verifier("github", secrets=[A, B, C], replay=store), seen)
    body, headers = _delivery(B)
    assert _send(app, body, headers, chunked=chunked) == 503
    assert len(store) == 0
    assert not seen
    assert _send(app, body, headers, chunked=chunked) == 200
    assert _send(app, body, headers, chunked=chunked) == 409
    assert len(seen) == 1


@pytest.mark.parametrize("taken", [1, 2])
def test_a_refusal_on_a_later_key_leaves_only_that_key(taken: int) -> None:
    """The content's key under the 2nd (3rd) secret taken (by a receiver on that secret): 409, and
    the keys this request held first are released, not left pending."""
    store = MemoryReplayStore()
    order = [A, B, C]
    first = order[taken]
    seen = Seen()
    body, headers = _delivery(A)
    assert _send(_guarded(Verifier("github", secrets=[first, A], replay=store), seen), body, headers) == 200
    before = dict(store._entries)
    assert _send(_guarded(Verifier("github", secrets=order, replay=store), seen), body, headers) == 409
    assert dict(store._entries) == before
    assert len(seen) == 1


class _Listener:
    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def __call__(self, decision: object) -> None:
        pass

    def settle_failed(self, scheme: str, action: str) -> None:
        self.told.append((scheme, action))


def _commit_failing_on_second_key(chunked: bool) -> tuple[_FailingStore, list[str], _Listener]:
    body, headers = _delivery(A)
    keys = _keys(Verifier("github", secrets=[A, B, C]), body, headers)
    store = _FailingStore(fail_commit=keys[1])
    listener = _Listener()
    seen = Seen()
    app = WSGIGuard(
        wsgi_app(seen),
        verifier=Verifier("github", secrets=[A, B, C], replay=store),
        paths=["/hooks/b"],
        on_decision=listener,
    )
    assert _send(app, body, headers, chunked=chunked) == 200
    assert _send(app, body, headers, chunked=chunked) == 409
    assert len(seen) == 1
    return store, keys, listener


@pytest.mark.parametrize("chunked", [False, True], ids=["lane", "general"])
def test_a_commit_failing_on_an_earlier_key_keeps_the_answer_commits_the_current_key_and_is_reported(
    chunked: bool,
) -> None:
    """The current key's commit went through; the one under the 2nd secret raised: the answer
    stands (200), the current key is committed (the replay is refused), and a sink listening for
    settle failures is told of one failed commit."""
    store, keys, listener = _commit_failing_on_second_key(chunked)
    assert store._entries[keys[0]][1] is None  # committed
    assert store._entries[keys[1]][1] is not None  # pending: lapses after the pending time
    assert listener.told == [("github", "commit")]


def test_a_commit_failing_on_one_earlier_key_still_commits_the_others() -> None:
    """Delivery._apply stopped at the first key whose commit raised, so the keys after it (here the
    3rd secret's) were left pending though the store took the others -- lapsing after the pending
    time instead of being kept for the replay TTL (failed on a7e92d1; each key is now settled on
    its own, the first error reported)."""
    store, keys, _ = _commit_failing_on_second_key(False)
    assert store._entries[keys[2]][1] is None


def _keys(verifier: Verifier, body: bytes, headers: dict[str, str]) -> list[str]:
    verification = verifier.begin(headers)
    verification.feed(body)
    verification.finish()
    key = verification.replay_key
    assert key is not None
    return [key, *verification.earlier_replay_keys]


# -- two differently ordered receivers racing on one Redis ------------------------------------------


def test_two_copies_racing_on_two_rotated_receivers_sharing_redis_process_once() -> None:
    """[A, B] and [B, A] on one redis-server, one copy of each delivery sent to each at the same
    moment from two threads, many times: never processed twice, never left pending."""
    with redis_server() as server:
        seen_1, seen_2 = Seen(), Seen()
        one = _guarded(Verifier("github", secrets=[A, B], replay=RedisReplayStore(server.url)), seen_1)
        two = _guarded(Verifier("github", secrets=[B, A], replay=RedisReplayStore(server.url)), seen_2)
        rounds = 150
        twice = 0
        for _ in range(rounds):
            body, headers = _delivery(A)
            barrier = threading.Barrier(2)
            statuses: list[int] = []

            def run(app: Any, body: bytes = body, headers: dict[str, str] = headers) -> None:
                barrier.wait()
                statuses.append(_send(app, body, headers))

            threads = [threading.Thread(target=run, args=(app,)) for app in (one, two)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if statuses.count(200) > 1:
                twice += 1
        assert twice == 0
        assert len(seen_1) + len(seen_2) <= rounds
        client = RedisReplayStore(server.url).client
        pending = [k for k in client.keys("hmacguard:replay:*") if client.get(k) != b"1"]
        assert pending == []


# -- f35fb61's longer TTL and an earlier key covered by the outer hold ------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _ttl_setup(inner_secrets: list[str]) -> tuple[Any, Any, _Clock, Seen]:
    clock = _Clock()
    store = MemoryReplayStore(clock=clock)
    seen = Seen()
    inner = WSGIGuard(
        wsgi_app(seen),
        verifier=Verifier("stripe", secrets=inner_secrets, tolerance=86400, replay=store, clock=clock),
        paths=["/hooks/b"],
    )
    app = WSGIGuard(
        inner, verifier=Verifier("stripe", secrets=[B], replay=store, clock=clock), paths=["/hooks/b"]
    )
    # A receiver on [B] alone, as long-tolerant as the inner guard, on the same store.
    other = _guarded(Verifier("stripe", secrets=[B], tolerance=86400, replay=store, clock=clock), seen)
    return app, other, clock, seen


def test_a_covered_current_key_is_kept_for_the_inner_guards_ttl() -> None:
    """f35fb61: the inner guard [B, A] (a day's tolerance) finds its current key B held by the outer
    guard [B] (the default 361 s): that hold is committed for the inner guard's TTL, so a receiver on
    [B] with the inner guard's tolerance refuses the delivery 400 s later."""
    app, other, clock, seen = _ttl_setup([B, A])
    body = b'{"id": "evt_review2_ttl_current"}'
    headers = _stripe(int(clock.now), body, A, B)
    assert _send(app, body, headers) == 200
    clock.now += 400
    assert _send(other, body, headers) == 409
    assert len(seen) == 1


def test_a_covered_earlier_key_is_kept_for_the_inner_guards_ttl() -> None:
    """The same with the inner guard on [A, B]: its *earlier* key B is the one the outer hold covers.
    f35fb61 raised the outer hold's TTL only for a covered current key (Verifier.hold), so the outer
    guard committed B for its own 361 s and the receiver on [B] processed the delivery again 400 s
    later (failed on ad7dead; Verifier._hold_earlier now raises it too)."""
    app, other, clock, seen = _ttl_setup([A, B])
    body = b'{"id": "evt_review2_ttl_earlier"}'
    headers = _stripe(int(clock.now), body, A, B)
    assert _send(app, body, headers) == 200
    clock.now += 400
    assert _send(other, body, headers) == 409
    assert len(seen) == 1


# -- 6145fde: install(app) settles from around Starlette's whole stack -------------------------------
#
# Promise: with install(app), a delivery whose endpoint raised is committed iff the client got a
# complete answer below 500; nothing stays held after a refusal, a failure or a client that left.


def _fastapi(
    store: MemoryReplayStore, *, swallow: bool, install_here: bool = True
) -> tuple[Any, dict[str, Any]]:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from hmacguard import ASGIGuard
    from hmacguard.integrations.fastapi import install

    state: dict[str, Any] = {"calls": 0, "fail": True, "started": None}
    app = FastAPI()
    if install_here:
        install(app)
    app.add_middleware(ASGIGuard, verifier=Verifier("github", secrets=A, replay=store), paths=["/webhook"])

    if swallow:

        @app.exception_handler(Exception)
        async def swallowing(request: Any, exc: Exception) -> PlainTextResponse:
            return PlainTextResponse("ignored", status_code=200)

    @app.post("/webhook")
    async def webhook() -> PlainTextResponse:
        state["calls"] += 1
        if state["started"] is not None:
            state["started"].set()
            await asyncio.sleep(3600)  # until the request is cancelled
        if state["fail"]:
            raise RuntimeError("the endpoint failed")
        return PlainTextResponse("ok")

    return app, state


def _asgi_status(app: Any, body: bytes, headers: dict[str, str], path: str = "/webhook") -> int | str:
    try:
        return asgi_request(app, body, headers, path=path).status
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.parametrize("swallow", [True, False], ids=["catch-all-200", "no-handler-500"])
def test_a_mounted_installed_sub_app_settles_by_what_the_client_gets(swallow: bool) -> None:
    """The guard and a catch-all handler in a sub-app that calls install() too, mounted in an
    installed FastAPI app: the sub-app's settler (the one around the guard) settles -- committed on
    the handler's 200, released on the sub-app's own 500 (the sender's retry processed)."""
    from fastapi import FastAPI

    from hmacguard.integrations.fastapi import install

    store = MemoryReplayStore()
    sub, state = _fastapi(store, swallow=swallow)
    outer = FastAPI()
    install(outer)
    outer.mount("/sub", sub)
    body, headers = _delivery(A)
    first = _asgi_status(outer, body, headers, "/sub/webhook")
    assert first == "RuntimeError"
    state["fail"] = False
    again = _asgi_status(outer, body, headers, "/sub/webhook")
    assert again == (409 if swallow else 200)
    assert state["calls"] == (1 if swallow else 2)
    assert all(token is None for _, token in store._entries.values())


def test_install_on_the_outer_app_only_still_sees_the_sub_apps_500() -> None:
    """Installed on the outer app only, the guard in a mounted sub-app with no handler: the sub-app's
    ServerErrorMiddleware answers 500 before any outer handler can -- released, the retry processed."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from hmacguard.integrations.fastapi import install

    store = MemoryReplayStore()
    sub, state = _fastapi(store, swallow=False, install_here=False)
    outer = FastAPI()
    install(outer)

    @outer.exception_handler(Exception)
    async def swallowing(request: Any, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("ignored", status_code=200)

    outer.mount("/sub", sub)
    body, headers = _delivery(A)
    assert _asgi_status(outer, body, headers, "/sub/webhook") == "RuntimeError"
    state["fail"] = False
    assert _asgi_status(outer, body, headers, "/sub/webhook") == 200
    assert state["calls"] == 2


@pytest.mark.parametrize("swallow", [True, False], ids=["catch-all-200", "no-handler-500"])
def test_a_request_cancelled_before_the_endpoint_answers_is_released(swallow: bool) -> None:
    """The client left (the server cancels the request task) while the endpoint ran: the guard hands
    its delivery to install()'s settler, which releases it -- nothing left pending, the retry
    processed."""
    store = MemoryReplayStore()
    app, state = _fastapi(store, swallow=swallow)
    body, headers = _delivery(A)

    async def run() -> None:
        state["started"] = asyncio.Event()
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        task = asyncio.ensure_future(app(webhook_scope(raw), body_then_wait(body), _ignore))
        await state["started"].wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert len(store) == 0
    state["started"] = None
    state["fail"] = False
    assert _asgi_status(app, body, headers) == 200
    assert _asgi_status(app, body, headers) == 409


async def _ignore(message: Any) -> None:
    pass


class _SlowBlockingStore(MemoryReplayStore):
    """A memory store that says it may block (so settles run in a worker thread), slow to release."""

    blocking = True

    def release(self, key: str, token: str) -> None:
        time.sleep(0.3)
        super().release(key, token)


def test_a_request_cancelled_twice_releases_every_delivery_in_the_settlers_list() -> None:
    """The guard's delivery, handed to install()'s settler when the request is cancelled, is settled
    after the dependency's. A second cancellation while the first settle waited on its worker thread
    ended AnswerWatch.finish's loop, and the guard's hold stayed pending (the sender's retries 409)
    until replay_pending_ttl -- before 6145fde the guard settled its own, shielded (failed on
    f348141; finish now settles every one through a cancellation)."""
    from fastapi import Depends, FastAPI

    from hmacguard import ASGIGuard, VerifiedBody
    from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

    guard_store, dependency_store = _SlowBlockingStore(), _SlowBlockingStore()
    app = FastAPI()
    install(app)
    app.add_middleware(
        ASGIGuard, verifier=Verifier("github", secrets=A, replay=guard_store), paths=["/webhook"]
    )
    # Another verifier (its own store): it verifies again and holds a delivery of its own.
    dependency = VerifiedBodyDependency(verifier=Verifier("github", secrets=[A], replay=dependency_store))
    started = asyncio.Event()

    async def webhook(body: VerifiedBody = Depends(dependency)) -> None:
        started.set()
        await asyncio.sleep(3600)

    app.post("/webhook")(webhook)
    body, headers = _delivery(A)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))

    async def run() -> None:
        task = asyncio.ensure_future(app(webhook_scope(raw), body_then_wait(body), _ignore))
        await started.wait()
        task.cancel()
        await asyncio.sleep(0.1)  # the first settle waits on its worker thread
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.8)  # every worker thread done

    asyncio.run(run())
    assert len(dependency_store) == 0
    assert len(guard_store) == 0


class _SlowCommitStore(MemoryReplayStore):
    blocking = True

    def commit(self, key: str, token: str, ttl: float) -> None:
        time.sleep(0.3)
        super().commit(key, token, ttl)


def test_a_request_cancelled_after_its_complete_answer_commits_every_delivery() -> None:
    """Two dependencies (each its own verifier and store) in one installed route; the endpoint
    answers 200, the settler commits the first delivery on its worker thread, and the request is
    cancelled meanwhile: the client got the complete 200 and will not retry, so the second delivery
    must be committed too. It was released by the settler's finish(failed=True) (failed on 7ed63fb;
    AnswerWatch now lets the complete answer decide)."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse

    from hmacguard import VerifiedBody
    from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

    first_store, second_store = _SlowCommitStore(), _SlowCommitStore()
    app = FastAPI()
    install(app)
    first = VerifiedBodyDependency(verifier=Verifier("github", secrets=A, replay=first_store))
    second = VerifiedBodyDependency(verifier=Verifier("github", secrets=[A], replay=second_store))

    async def webhook(
        one: VerifiedBody = Depends(first),
        two: VerifiedBody = Depends(second),
    ) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.post("/webhook")(webhook)
    body, headers = _delivery(A)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        task = asyncio.ensure_future(app(webhook_scope(raw), body_then_wait(body), send))
        while not any(m.get("type") == "http.response.body" for m in sent):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the first commit waits on its worker thread
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.8)

    asyncio.run(run())
    assert sent[0]["status"] == 200
    assert [token for _, token in first_store._entries.values()] == [None]
    assert [token for _, token in second_store._entries.values()] == [None]


# -- Redis Cluster: one delivery's keys in several hash slots ----------------------------------------


def test_on_a_cluster_both_orders_find_each_others_deliveries() -> None:
    """The keys of one delivery fall in different slots, on different primaries: nothing multi-key
    is asked of the Cluster (each hold is its own SET NX), and both orders of [A, B] find each
    other's deliveries."""
    from ._redis_topologies import redis_cluster

    with redis_cluster(3) as cluster:
        seen = Seen()
        one = _guarded(Verifier("github", secrets=[A, B], replay=RedisReplayStore(cluster.url)), seen)
        two = _guarded(Verifier("github", secrets=[B, A], replay=RedisReplayStore(cluster.url)), seen)
        for first, second in ((one, two), (two, one)):
            body, headers = _delivery(A)
            assert [_send(first, body, headers), _send(second, body, headers)] == [200, 409]
        assert len(seen) == 2


# The first store failure opens the Redis store's circuit breaker, so when holding a later key
# failed, the release of the keys already held (hold_key -> delivery.settle(False)) was refused by
# that breaker at once: the current key stayed pending for replay_pending_ttl, and the sender's retry
# after the blip (or once the node was back) was refused 409 instead of processed. With one key
# (before ad7dead) a failed hold held nothing. Failed on cb8641d; Delivery.undo now releases past
# the breaker (RedisReplayStore.release_now).


class _BlippingClient:
    """A redis-py client whose n-th SET raises ConnectionError (a blip: the server stays up)."""

    def __init__(self, client: Any, fail_on: int) -> None:
        self._client = client
        self._sets = 0
        self._fail_on = fail_on

    def set(self, *args: Any, **kwargs: Any) -> Any:
        import redis

        self._sets += 1
        if self._sets == self._fail_on:
            raise redis.ConnectionError("blip (review2)")
        return self._client.set(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("chunked", [False, True], ids=["lane", "general"])
def test_a_blip_on_a_later_key_leaves_nothing_held_on_redis(chunked: bool) -> None:
    import redis

    with redis_server() as server:
        raw = redis.Redis(port=server.port)
        store = RedisReplayStore(client=_BlippingClient(raw, fail_on=2), breaker_reset=0.2)
        seen = Seen()
        app = _guarded(Verifier("github", secrets=[A, B], replay=store), seen)
        body, headers = _delivery(A)
        assert _send(app, body, headers, chunked=chunked) == 503
        held = {k: raw.get(k) for k in raw.keys("hmacguard:replay:*")}
        deadline = time.monotonic() + 10  # the breaker closes again (its reset_after); the sender retries
        while store.breaker.is_open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held == {}
        assert _send(app, body, headers, chunked=chunked) == 200


def test_on_a_cluster_a_node_down_under_an_earlier_key_leaves_the_current_key_free() -> None:
    """With the primary that holds the content's key under B down, a delivery whose current key
    lives on a live primary is refused 503 -- and its current key must be released, not left
    pending."""
    import redis
    from redis.crc import key_slot

    from ._redis_topologies import SLOTS, redis_cluster

    prefix = "hmacguard:replay:"
    with redis_cluster(3) as cluster:
        share = SLOTS // 3

        def node_of(key: str) -> int:
            return min(key_slot((prefix + key).encode()) // share, 2)

        one = _guarded(Verifier("github", secrets=[A, B], replay=RedisReplayStore(cluster.url)), Seen())
        # Warm: redis-py loads a script on every primary the first time (SCRIPT LOAD), which a
        # primary down would fail whatever the key; a served process has run both scripts.
        on_b = _guarded(Verifier("github", secrets=[B], replay=RedisReplayStore(cluster.url)), Seen())
        warm, warm_headers = _delivery(B)
        assert _send(on_b, warm, warm_headers) == 200
        assert _send(one, warm, warm_headers) == 409  # holds its key under A, then releases it
        while True:  # a delivery whose keys under A and under B sit on different primaries
            body, headers = _delivery(A)
            current, earlier = _keys(Verifier("github", secrets=[A, B]), body, headers)
            if node_of(current) != node_of(earlier):
                break
        cluster.kill(node_of(earlier))
        assert _send(one, body, headers) == 503
        live = redis.Redis(port=cluster.ports[node_of(current)])
        assert live.get(prefix + current) is None


# -- Verifier.verify (reserve) under two orders at once ------------------------------------------------


class _InterleavingStore(MemoryReplayStore):
    """A memory store on which two callers each make their first reservation before either makes
    its second (the interleaving two threads on a shared Redis may take)."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=5)
        self.first_done: set[int] = set()
        self.interleave = True

    def _first(self) -> None:
        me = threading.get_ident()
        if self.interleave and me not in self.first_done:
            self.first_done.add(me)
            self.barrier.wait()

    def reserve(self, key: str, ttl: float) -> bool:
        answer = super().reserve(key, ttl)
        self._first()
        return answer

    def hold(self, key: str, ttl: float) -> str | None:
        answer = super().hold(key, ttl)
        self._first()
        return answer


def test_two_copies_verified_at_once_under_two_orders_process_one() -> None:
    """Verifier.verify reserved the current key for good, then each earlier key: two copies of one
    delivery verified at once under [A, B] and [B, A] each reserved their own current key and found
    the other's taken -- both refused 409, both keys kept for the replay TTL, the sender's retry
    refused too: the delivery was never processed (failed on the commit before this one's fix; a
    holding store now holds the keys together, undone on a refusal, then keeps them)."""
    from hmacguard.errors import RequestRejected

    store = _InterleavingStore()
    verifiers = [Verifier("github", secrets=order, replay=store) for order in ([A, B], [B, A])]
    body, headers = _delivery(A)
    outcomes: list[str] = []

    def run(verifier: Verifier) -> None:
        try:
            verifier.verify(headers, body).close()
            outcomes.append("accepted")
        except RequestRejected as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=run, args=(v,)) for v in verifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.interleave = False
    retry = "accepted"
    try:
        verifiers[0].verify(headers, body).close()
    except RequestRejected:
        retry = "refused"
    assert "accepted" in outcomes or retry == "accepted"
