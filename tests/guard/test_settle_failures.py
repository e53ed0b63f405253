"""A replay hold the store could not settle after the answer is counted, not only logged.

A delivery is held while the application runs and committed (or released) once it has answered. When
the store fails at that moment the answer stands, and the hold lapses after the pending TTL: a failed
commit lets a replay through after that, a failed release makes the sender's retries 409 until then.
Before, only a warning said so. Now the sinks that listen (``settle_failed``: PrometheusMetrics,
OpenTelemetryMetrics, your own) are told -- ``hmacguard_replay_settle_failed_total{action, scheme}``
-- for a store that raises and for one that fails open, on the lane and on the general path, under
WSGI and ASGI, in-process and under gunicorn (two workers, multiprocess mode) and uvicorn with a real
redis-server stopped while the application holds the delivery.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hmacguard import (
    ASGIGuard,
    Decision,
    OpenTelemetryMetrics,
    PrometheusMetrics,
    RedisReplayStore,
    Signer,
    Verifier,
    WSGIGuard,
)
from hmacguard.lab.serve import free_port

from . import _redis_app as redis_app
from ._inprocess import asgi_request, wsgi_request
from ._metrics import FailingStore, answering, otel_points, settle_counts
from ._servers import gunicorn, need_redis_server, redis_server, uvicorn

SECRET = "settle-failure-secret"
github = Signer("github", secrets=SECRET)
serial = itertools.count()


def delivery() -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(serial)
    return body, github.sign(body)


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general-path"])
def test_a_commit_that_fails_is_counted_and_the_answer_stands(lane: bool) -> None:
    registry = CollectorRegistry()
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=PrometheusMetrics(registry=registry),
    )
    guard.guard.lane.open = lane
    assert wsgi_request(guard, *delivery()).status == 200
    assert settle_counts(registry) == {("commit", "github"): 1.0}
    # One decision for the delivery: the settle failure is not another one.
    assert (
        registry.get_sample_value(
            "hmacguard_decisions_total", {"outcome": "accepted", "scheme": "github", "receiver": ""}
        )
        == 1
    )


def test_a_release_that_fails_is_counted_as_release() -> None:
    registry = CollectorRegistry()
    guard = WSGIGuard(
        answering("503 Service Unavailable"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=PrometheusMetrics(registry=registry),
    )
    assert wsgi_request(guard, *delivery()).status == 503  # the application's answer, unchanged
    assert settle_counts(registry) == {("release", "github"): 1.0}


def test_a_store_failing_open_is_counted_though_it_raises_nothing() -> None:
    registry = CollectorRegistry()
    seen: list[Decision] = []
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: refused at once
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier(
            "github", secrets=SECRET, replay=RedisReplayStore(dead, fail_open=True, timeout=0.5)
        ),
        on_decision=[PrometheusMetrics(registry=registry), seen.append],
    )
    for _ in range(2):
        assert wsgi_request(guard, *delivery()).status == 200
    assert [d.failed_open for d in seen] == [("replay",)] * 2  # the hold, in the decision
    assert settle_counts(registry) == {("commit", "github"): 2.0}  # the commit, after the answer


def test_healthy_settles_count_nothing() -> None:
    registry = CollectorRegistry()
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier("github", secrets=SECRET),
        on_decision=PrometheusMetrics(registry=registry),
    )
    body, headers = delivery()
    assert wsgi_request(guard, body, headers).status == 200
    assert wsgi_request(guard, body, headers).status == 409  # committed: the store answered
    assert wsgi_request(guard, *delivery()).status == 200
    assert settle_counts(registry) == {}


def test_opentelemetry_counts_the_same() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=OpenTelemetryMetrics(meter_provider=MeterProvider([reader])),
    )
    for _ in range(3):
        assert wsgi_request(guard, *delivery()).status == 200
    points = otel_points(reader)["hmacguard.replay.settle_failed"]
    assert [(dict(p.attributes), p.value) for p in points] == [({"action": "commit", "scheme": "github"}, 3)]


def test_asgi_counts_a_failed_commit() -> None:
    registry = CollectorRegistry()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ASGIGuard(
        app,
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=PrometheusMetrics(registry=registry),
    )
    for _ in range(2):
        assert asgi_request(guard, *delivery()).status == 200
    assert settle_counts(registry) == {("commit", "github"): 2.0}


def test_nothing_is_set_up_when_no_sink_listens_for_settling() -> None:
    # A plain callable sink (no settle_failed): the guard asks nothing of the deliveries.
    seen: list[Decision] = []
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=seen.append,
    )
    assert guard.guard.sinks.settle_listeners == ()
    assert guard.guard._settle_report is None
    assert wsgi_request(guard, *delivery()).status == 200
    assert [d.outcome for d in seen] == ["accepted"]


class Listener:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.told: list[tuple[str, str]] = []

    def __call__(self, decision: Decision) -> None:
        pass

    def settle_failed(self, scheme: str, action: str) -> None:
        self.told.append((scheme, action))
        if self.fails:
            raise RuntimeError("metrics back-end down")


def test_a_listener_that_raises_is_logged_once_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    failing, working = Listener(fails=True), Listener(fails=False)
    guard = WSGIGuard(
        answering("200 OK"),
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=[failing, working],
    )
    with caplog.at_level(logging.WARNING, logger="hmacguard"):
        statuses = [wsgi_request(guard, *delivery()).status for _ in range(3)]
    assert statuses == [200] * 3
    assert failing.told == working.told == [("github", "commit")] * 3
    listener_warnings = [r for r in caplog.records if "settle_failed listener" in r.getMessage()]
    assert len(listener_warnings) == 1


def test_settled_from_another_thread_it_is_still_counted() -> None:
    # A response the server iterates (not a list): settled when the iteration ends, here in a thread.
    registry = CollectorRegistry()

    def streaming(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        yield b"part"

    guard = WSGIGuard(
        streaming,
        verifier=Verifier("github", secrets=SECRET, replay=FailingStore()),
        on_decision=PrometheusMetrics(registry=registry),
    )
    from ._inprocess import wsgi_environ

    environ = wsgi_environ("POST", "/webhook", *delivery())
    result = guard(environ, lambda status, headers, exc_info=None: None)
    assert settle_counts(registry) == {}  # not settled yet: the body is still to be sent
    sent: list[bytes] = []
    worker = threading.Thread(target=lambda: (sent.extend(result), result.close()))
    worker.start()
    worker.join(10)
    assert sent == [b"part"]
    assert settle_counts(registry) == {("commit", "github"): 1.0}


# -- under real servers: a real redis-server stopped while the application holds the delivery ------
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_gunicorn_counts_a_commit_lost_to_a_redis_outage(fail_open: bool, multiprocess_dir: str) -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {
            "HMACGUARD_TEST_REDIS": redis.url,
            "HMACGUARD_TEST_FAIL_OPEN": "1" if fail_open else "0",
            "HMACGUARD_TEST_METRICS": "1",
            "PROMETHEUS_MULTIPROC_DIR": multiprocess_dir,
        }
        with gunicorn(f"{redis_app.APP}:application", env, workers=2) as server:
            assert redis_app.post(server, *redis_app.delivery()).status_code == 200  # healthy
            assert redis_app.during_the_hold(server, redis) == [200]  # processed; only its commit was lost
            assert redis_app.scraped_settle_failures(server) == {"commit": 1.0}
            log = server.log()
    assert "Traceback" not in log
    if not fail_open:
        assert "could not commit a delivery" in log


@pytest.mark.slow
@pytest.mark.redis
def test_uvicorn_counts_a_commit_lost_to_a_redis_outage() -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {"HMACGUARD_TEST_REDIS": redis.url, "HMACGUARD_TEST_METRICS": "1"}
        with uvicorn(f"{redis_app.APP}:asgi", env) as server:
            assert redis_app.post(server, *redis_app.delivery()).status_code == 200
            assert redis_app.during_the_hold(server, redis) == [200]
            assert redis_app.scraped_settle_failures(server) == {"commit": 1.0}
            assert "Traceback" not in server.log()
