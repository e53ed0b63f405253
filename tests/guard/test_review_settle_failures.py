"""Adversarial review of "a replay hold the store could not settle after the answer is counted".

Attacks the promises of ``hmacguard_replay_settle_failed_total{action, scheme}``: every accepted
delivery whose settle fails counted exactly once, whichever integration settles it (WSGI lists,
generators, close(); ASGI, with blocking stores settled in worker threads; Flask; FastAPI; nested
guards; lane and general path); healthy settles and refusals never counted; nothing set up when no
sink listens; a raising listener changes nothing; fail-open stores (hold failure not double-counted);
threads and the failed-open context variable; real gunicorn (sync, gthread) and uvicorn with
redis-server SIGSTOPped or stopped while the application holds a delivery.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hmacguard import (
    ASGIGuard,
    Decision,
    MemoryReplayStore,
    PrometheusMetrics,
    RedisReplayStore,
    Signer,
    Verifier,
    WSGIGuard,
)
from hmacguard.guard import breaker
from hmacguard.guard.replay import Delivery
from hmacguard.lab.serve import free_port
from tests._build import COMPILED

from . import _redis_app as redis_app
from ._inprocess import asgi_request, wsgi_environ, wsgi_request
from ._metrics import FailingStore, answering, settle_counts
from ._nesting import Seen, nested
from ._nesting import post as nested_post
from ._servers import gunicorn, need_redis_server, redis_server, uvicorn

SECRET = "review-settle-secret"
github = Signer("github", secrets=SECRET)
serial = itertools.count()
COMMIT = {("commit", "github"): 1.0}
RELEASE = {("release", "github"): 1.0}


def delivery() -> tuple[bytes, dict[str, str]]:
    body = b'{"review": %d}' % next(serial)
    return body, github.sign(body)


class HoldFailsOpen(MemoryReplayStore):
    """A store configured to fail open whose *hold* could not reach its server (noted, as
    StoreCalls._call notes itself), and whose commit fails open too only if ``commit_fails``."""

    fail_open = True
    blocking = True  # as Redis: never the lane, settled in a worker thread under ASGI

    def __init__(self, *, commit_fails: bool) -> None:
        super().__init__()
        self.commit_fails = commit_fails
        self.committed = 0

    @staticmethod
    def _fail_open() -> None:
        noted = breaker._failed_open.get()
        if noted is not None and "replay" not in noted:
            noted.append("replay")

    def hold(self, key: str, ttl: float) -> str | None:
        self._fail_open()
        return "passed-by"  # the fallback: a token that holds nothing

    def commit(self, key: str, token: str, ttl: float) -> None:
        if self.commit_fails:
            self._fail_open()
        else:
            self.committed += 1


async def asgi_answering(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def metrics() -> tuple[CollectorRegistry, PrometheusMetrics]:
    registry = CollectorRegistry()
    return registry, PrometheusMetrics(registry=registry)


def ignore(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


# -- 1. exactly once, whichever integration settles ----------------------------------------------
@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general-path"])
@pytest.mark.parametrize("shape", ["generator", "closed-unread", "raises", "raises-midway"])
def test_wsgi_every_response_shape_counts_once(lane: bool, shape: str) -> None:
    registry, sink = metrics()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"].read()
        if shape == "raises":
            raise RuntimeError("handler failed")
        start_response("200 OK", [])

        def parts() -> Iterator[bytes]:
            yield b"one"
            if shape == "raises-midway":
                raise RuntimeError("stream failed")
            yield b"two"

        return parts()

    guard = WSGIGuard(
        app, verifier=Verifier("github", secrets=SECRET, replay=FailingStore()), on_decision=sink
    )
    guard.guard.lane.open = lane
    environ = wsgi_environ("POST", "/webhook", *delivery())
    if shape == "raises":
        with pytest.raises(RuntimeError):
            guard(environ, ignore)
        expected = RELEASE
    else:
        result = guard(environ, ignore)
        if shape == "generator":
            assert list(result) == [b"one", b"two"]
            expected = COMMIT
        elif shape == "raises-midway":
            with pytest.raises(RuntimeError):
                list(result)
            expected = RELEASE
        else:
            expected = COMMIT  # answered 200, body never sent: close() settles it as processed
        result.close()
        result.close()  # a second close() settles nothing more
    assert settle_counts(registry) == expected


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general-path"])
@pytest.mark.parametrize("blocking", [True, False], ids=["blocking-store", "in-loop-store"])
def test_asgi_counts_once_in_a_worker_thread_or_in_the_loop(lane: bool, blocking: bool) -> None:
    registry, sink = metrics()
    store = FailingStore(blocking=blocking)
    guard = ASGIGuard(
        asgi_answering, verifier=Verifier("github", secrets=SECRET, replay=store), on_decision=sink
    )
    guard.guard.lane.open = lane
    assert asgi_request(guard, *delivery()).status == 200
    assert settle_counts(registry) == COMMIT
    assert len(store.settle_threads) == 1
    in_loop = store.settle_threads[0] == threading.main_thread().name
    assert in_loop is not blocking  # a blocking store is settled in a worker thread


def test_asgi_application_failing_counts_one_release() -> None:
    registry, sink = metrics()

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("handler failed")

    guard = ASGIGuard(
        failing,
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore(blocking=True)),
        on_decision=sink,
    )
    with pytest.raises(RuntimeError):
        asgi_request(guard, *delivery())
    assert settle_counts(registry) == RELEASE


def test_asgi_fail_open_redis_counted_from_the_worker_thread() -> None:
    registry, sink = metrics()
    seen: list[Decision] = []
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisReplayStore(dead, fail_open=True, timeout=0.5)
    guard = ASGIGuard(
        asgi_answering,
        verifier=Verifier("github", secrets=SECRET, replay=store),
        on_decision=[sink, seen.append],
    )
    for _ in range(3):
        assert asgi_request(guard, *delivery()).status == 200
    assert settle_counts(registry) == {("commit", "github"): 3.0}
    assert [d.failed_open for d in seen] == [("replay",)] * 3


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("inner_verifier", ["same", "separate"], ids=["vouched", "held-outside"])
def test_nested_guards_count_the_outer_hold_once(kind: str, inner_verifier: str) -> None:
    registry, sink = metrics()
    store = FailingStore()
    outer = Verifier("github", secrets=SECRET, replay=store)
    inner = outer if inner_verifier == "same" else Verifier("github", secrets=SECRET, replay=store)
    seen = Seen()
    app = nested(kind, outer, inner, seen, outer_kw={"on_decision": sink}, inner_kw={"on_decision": sink})
    assert nested_post(kind, app, *delivery()) == 200
    assert len(seen) == 1
    assert settle_counts(registry) == COMMIT  # one hold (the outer guard's), one failure, one count
    assert len(store.settle_threads) == 1


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("inner_verifier", ["same", "separate"], ids=["vouched", "held-outside"])
def test_nested_guards_only_the_inner_listening_still_counts(kind: str, inner_verifier: str) -> None:
    # The review found this counted nowhere (the outer guard settles, and had no listener); now the
    # inner guard listens on the outer hold (Guard.watch_outer_settling).
    registry, sink = metrics()
    store = FailingStore()
    outer = Verifier("github", secrets=SECRET, replay=store)
    inner = outer if inner_verifier == "same" else Verifier("github", secrets=SECRET, replay=store)
    decisions: list[Decision] = []
    seen = Seen()
    app = nested(
        kind, outer, inner, seen, outer_kw={"on_decision": decisions.append}, inner_kw={"on_decision": sink}
    )
    assert nested_post(kind, app, *delivery()) == 200
    assert len(store.settle_threads) == 1  # the commit was tried, once, and failed
    assert settle_counts(registry) == COMMIT


def test_flask_extension_counts_a_failed_commit_once() -> None:
    from flask import Flask, request

    from hmacguard.integrations.flask import HmacGuard

    registry, sink = metrics()
    extension = HmacGuard(
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()), paths=["/hook"], on_decision=sink
    )
    app = Flask(__name__)

    @app.post("/hook")
    def hook() -> str:
        return request.get_data(as_text=True)

    @app.post("/decorated")
    @extension.protected
    def decorated() -> str:
        return "ok"

    extension.init_app(app)
    client = app.test_client()
    for path, count in (("/hook", 1.0), ("/decorated", 2.0)):
        body, headers = delivery()
        response = client.post(path, data=body, headers=headers)
        assert response.status_code == 200
        assert response.data  # the body sent whole: settled at the end of the iteration
        response.close()
        assert settle_counts(registry) == {("commit", "github"): count}


@pytest.mark.parametrize("installed", [False, True], ids=["dependency-alone", "with-install"])
def test_fastapi_dependency_counts_a_failed_commit_once(installed: bool) -> None:
    from fastapi import Depends, FastAPI

    from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

    registry, sink = metrics()
    verified = VerifiedBodyDependency(
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore(blocking=True)), on_decision=sink
    )
    app = FastAPI()
    if installed:
        install(app)

    @app.post("/webhook")
    async def hook(body: Any = Depends(verified)) -> dict[str, int]:
        return {"size": body.size}

    assert asgi_request(app, *delivery()).status == 200
    assert settle_counts(registry) == COMMIT


# -- 2. healthy settles, refusals, settling twice ------------------------------------------------
def test_refusals_are_never_counted() -> None:
    registry, sink = metrics()
    guard = WSGIGuard(
        answering(), verifier=Verifier("github", secrets=SECRET, replay=FailingStore()), on_decision=sink
    )
    body, headers = delivery()
    assert wsgi_request(guard, body, headers).status == 200
    assert settle_counts(registry) == COMMIT
    # The commit failed: the id is still pending -- its replay is refused (409), not counted again.
    assert wsgi_request(guard, body, headers).status == 409
    assert wsgi_request(guard, b"{}", {"X-Hub-Signature-256": "sha256=" + "0" * 64}).status == 401
    assert wsgi_request(guard, b"{}", {}).status == 400
    assert settle_counts(registry) == COMMIT


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_hold_undone_by_a_refusal_is_not_counted(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    # Held, then refused (the rate limiter's store fails while settling the admission: 503): the
    # guard releases the hold, the release fails -- a refusal, not an accepted delivery: not counted.
    from hmacguard import RateLimiter
    from hmacguard.errors import StoreUnavailable

    registry, sink = metrics()
    store = FailingStore()
    limiter = RateLimiter(limit="100/minute")

    def settle(*args: Any, **kwargs: Any) -> None:
        if not kwargs.get("failed"):
            raise StoreUnavailable("the rate-limit store is unavailable")

    monkeypatch.setattr(limiter, "settle", settle)
    verifier = Verifier("github", secrets=SECRET, replay=store)
    if kind == "wsgi":
        status = wsgi_request(
            WSGIGuard(answering(), verifier=verifier, rate_limiter=limiter, on_decision=sink), *delivery()
        ).status
    else:
        guard = ASGIGuard(asgi_answering, verifier=verifier, rate_limiter=limiter, on_decision=sink)
        status = asgi_request(guard, *delivery()).status
    assert status == 503
    assert len(store.settle_threads) == 1  # the hold was released (and that failed)
    assert settle_counts(registry) == {}


def test_settling_twice_reports_once() -> None:
    told: list[str] = []
    store = FailingStore()
    token = store.hold("k", 60)
    assert token is not None
    held = Delivery(store, "k", token, 60)
    held.on_failure = told.append
    held.settle(True)
    held.settle(False)
    held.settle(True)
    assert told == ["commit"]


def test_healthy_blocking_and_fail_open_stores_count_nothing() -> None:
    need_redis_server()
    registry, sink = metrics()
    with redis_server() as redis:
        for fail_open in (False, True):
            store = RedisReplayStore(redis.url, fail_open=fail_open, prefix=f"review:{uuid.uuid4().hex}:")
            verifier = Verifier("github", secrets=SECRET, replay=store)
            wsgi = WSGIGuard(answering(), verifier=verifier, on_decision=sink)
            asgi = ASGIGuard(asgi_answering, verifier=verifier, on_decision=sink)
            body, headers = delivery()
            assert wsgi_request(wsgi, body, headers).status == 200
            assert asgi_request(asgi, body, headers).status == 409  # committed by the store
            assert asgi_request(asgi, *delivery()).status == 200
            assert (
                wsgi_request(
                    WSGIGuard(answering("500 Oops"), verifier=verifier, on_decision=sink), *delivery()
                ).status
                == 500
            )
            store.close()
    assert settle_counts(registry) == {}


# -- 3. nobody listening; listeners failing --------------------------------------------------------
class _NotAListener:
    settle_failed = "not callable"

    def __call__(self, decision: Decision) -> None:
        pass


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "wsgi",
            marks=pytest.mark.skipif(
                COMPILED, reason="patches Delivery.settle, which the compiled WSGI driver calls directly"
            ),
        ),
        "asgi",
    ],
)
@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general-path"])
def test_no_listener_leaves_on_failure_unset(monkeypatch: pytest.MonkeyPatch, kind: str, lane: bool) -> None:
    watched: list[Any] = []
    original = Delivery.settle

    def recording(self: Delivery, processed: bool) -> None:
        watched.append(self.on_failure)
        original(self, processed)

    monkeypatch.setattr(Delivery, "settle", recording)
    seen: list[Decision] = []
    verifier = Verifier("github", secrets=SECRET, replay=FailingStore())
    sinks = [seen.append, _NotAListener()]
    if kind == "wsgi":
        guard: Any = WSGIGuard(answering(), verifier=verifier, on_decision=sinks)
        send: Any = wsgi_request
    else:
        guard = ASGIGuard(asgi_answering, verifier=verifier, on_decision=sinks)
        send = asgi_request
    guard.guard.lane.open = lane
    assert guard.guard.sinks.settle_listeners == ()
    assert send(guard, *delivery()).status == 200
    assert watched and set(watched) == {None}  # ASGI calls settle() again at the end: a no-op
    assert [d.outcome for d in seen] == ["accepted"]


def test_listener_failing_stops_no_other_sink_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    told: list[tuple[str, str]] = []

    class Raising:
        def __call__(self, decision: Decision) -> None:
            pass

        def settle_failed(self, scheme: str, action: str) -> None:
            raise ValueError("back-end down")

    class Working:
        def __call__(self, decision: Decision) -> None:
            pass

        def settle_failed(self, scheme: str, action: str) -> None:
            told.append((scheme, action))

    registry, sink = metrics()
    guard = WSGIGuard(
        answering("502 Bad Gateway"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=[Raising(), sink, Working()],
    )
    with caplog.at_level(logging.WARNING, logger="hmacguard"):
        assert [wsgi_request(guard, *delivery()).status for _ in range(2)] == [502, 502]
    assert told == [("github", "release")] * 2
    assert settle_counts(registry) == {("release", "github"): 2.0}
    assert len([r for r in caplog.records if "settle_failed listener" in r.getMessage()]) == 1


def test_a_settle_listener_failure_is_logged_even_after_a_decision_sink_failed_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Raising:
        def __call__(self, decision: Decision) -> None:
            raise ValueError("decision back-end down")

        def settle_failed(self, scheme: str, action: str) -> None:
            raise ValueError("settle back-end down")

    guard = WSGIGuard(
        answering(), verifier=Verifier("github", secrets=SECRET, replay=FailingStore()), on_decision=Raising()
    )
    with caplog.at_level(logging.WARNING, logger="hmacguard"):
        assert wsgi_request(guard, *delivery()).status == 200
    messages = [r.getMessage() for r in caplog.records]
    assert any("on_decision sink" in m for m in messages)  # the decision sink's: logged
    # The listener's too (the review found it unlogged: one once-per-type memory for both; now apart).
    assert any("settle_failed listener" in m for m in messages)


# -- 4. fail-open: the hold's failure is the decision's, the commit's the counter's -----------------
@pytest.mark.parametrize("commit_fails", [False, True], ids=["commit-answered", "commit-failed-open"])
@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_fail_open_hold_is_not_counted_again_unless_its_commit_fails(kind: str, commit_fails: bool) -> None:
    registry, sink = metrics()
    seen: list[Decision] = []
    store = HoldFailsOpen(commit_fails=commit_fails)
    verifier = Verifier("github", secrets=SECRET, replay=store)
    if kind == "wsgi":
        guard: Any = WSGIGuard(answering(), verifier=verifier, on_decision=[sink, seen.append])
        status = wsgi_request(guard, *delivery()).status
    else:
        guard = ASGIGuard(asgi_answering, verifier=verifier, on_decision=[sink, seen.append])
        status = asgi_request(guard, *delivery()).status
    assert status == 200
    assert [d.failed_open for d in seen] == [("replay",)]
    assert settle_counts(registry) == (COMMIT if commit_fails else {})
    assert store.committed == (0 if commit_fails else 1)


# -- 5. threads and the context variable -------------------------------------------------------------
def test_concurrent_settle_failures_are_counted_exactly() -> None:
    registry, sink = metrics()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    failing = WSGIGuard(
        answering(), verifier=Verifier("github", secrets=SECRET, replay=FailingStore()), on_decision=sink
    )
    releasing = WSGIGuard(
        answering("500 Oops"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=sink,
    )
    open_store = RedisReplayStore(dead, fail_open=True, timeout=0.2)
    fail_open = WSGIGuard(
        answering(), verifier=Verifier("github", secrets=SECRET, replay=open_store), on_decision=sink
    )
    healthy = WSGIGuard(answering(), verifier=Verifier("github", secrets=SECRET), on_decision=sink)
    guards = [failing, releasing, fail_open, healthy] * 16
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda g: wsgi_request(g, *delivery()).status, guards))
    assert sorted(set(statuses)) == [200, 500]
    assert settle_counts(registry) == {("commit", "github"): 32.0, ("release", "github"): 16.0}


def test_a_settle_inside_another_decisions_store_call_leaks_nothing_either_way() -> None:
    told: list[str] = []
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisReplayStore(dead, fail_open=True, timeout=0.2)
    token = store.hold("k", 60)  # fails open: the fallback token
    assert token is not None
    held = Delivery(store, "k", token, 60)
    held.on_failure = told.append
    other: list[str] = []  # another decision's, whose store call is under way
    noting = breaker.noting_failures_open(other, lambda: (held.settle(True), breaker._failed_open.get())[1])
    assert noting() is other  # the other decision's list is back in place after the settle
    assert told == ["commit"]
    assert other == []  # this delivery's commit was not taken for the other decision's failure
    assert breaker._failed_open.get() is None


def test_settles_in_worker_threads_do_not_see_each_others_failures() -> None:
    # Healthy fail-open deliveries settling in threads while failing ones do: none counted wrongly.
    registry, sink = metrics()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    answered = HoldFailsOpen(commit_fails=False)
    failing = HoldFailsOpen(commit_fails=True)
    guards = [
        ASGIGuard(asgi_answering, verifier=Verifier("github", secrets=SECRET, replay=s), on_decision=sink)
        for s in (answered, failing, RedisReplayStore(dead, fail_open=True, timeout=0.2))
    ]
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda g: asgi_request(g, *delivery()).status, guards * 8))
    assert statuses == [200] * 24
    assert settle_counts(registry) == {("commit", "github"): 16.0}
    assert answered.committed == 8


# -- 6. real servers: redis-server stopped or SIGSTOPped while the application holds -----------------
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
@pytest.mark.parametrize("how", ["sigstop", "terminate"])
def test_gunicorn_counts_each_lost_commit_once(worker_class: str, how: str, multiprocess_dir: str) -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {
            "HMACGUARD_TEST_REDIS": redis.url,
            "HMACGUARD_TEST_FAIL_OPEN": "0",
            "HMACGUARD_TEST_METRICS": "1",
            "PROMETHEUS_MULTIPROC_DIR": multiprocess_dir,
        }
        threads = 4 if worker_class == "gthread" else 1
        with gunicorn(
            f"{redis_app.APP}:application", env, workers=2, worker_class=worker_class, threads=threads
        ) as server:
            assert redis_app.post(server, *redis_app.delivery()).status_code == 200
            assert redis_app.scraped_settle_failures(server) == {}
            count = 4 if worker_class == "gthread" else 2
            assert redis_app.during_the_hold(server, redis, how, count) == [200] * count
            assert redis_app.scraped_settle_failures(server) == {"commit": float(count)}
            log = server.log()
    assert "Traceback" not in log


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_uvicorn_counts_each_commit_lost_to_a_frozen_redis(fail_open: bool) -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {
            "HMACGUARD_TEST_REDIS": redis.url,
            "HMACGUARD_TEST_METRICS": "1",
            "HMACGUARD_TEST_FAIL_OPEN": "1" if fail_open else "0",
        }
        with uvicorn(f"{redis_app.APP}:asgi", env) as server:
            assert redis_app.post(server, *redis_app.delivery()).status_code == 200
            assert redis_app.during_the_hold(server, redis, "sigstop", 3) == [200] * 3
            assert redis_app.scraped_settle_failures(server) == {"commit": 3.0}
            time.sleep(0.6)  # Redis continued: nothing settles (or counts) a second time
            assert redis_app.scraped_settle_failures(server) == {"commit": 3.0}
            assert "Traceback" not in server.log()


def test_fastapi_dependency_behind_a_silent_middleware_still_counts() -> None:
    # The middleware (no listener) holds and settles; the dependency it vouches for listens: the
    # lost commit is reported through the dependency's sink (Guard.watch_outer_settling), once.
    from fastapi import Depends, FastAPI

    from hmacguard.integrations.fastapi import VerifiedBodyDependency

    registry, sink = metrics()
    store = FailingStore()
    verifier = Verifier("github", secrets=SECRET, replay=store)
    verified = VerifiedBodyDependency(verifier=verifier, on_decision=sink)
    app = FastAPI()

    @app.post("/webhook")
    async def hook(body: Any = Depends(verified)) -> dict[str, int]:
        return {"size": body.size}

    guarded = ASGIGuard(app, verifier=verifier, on_decision=lambda decision: None)
    assert asgi_request(guarded, *delivery()).status == 200
    assert len(store.settle_threads) == 1  # one commit, tried once (the middleware's)
    assert settle_counts(registry) == COMMIT
