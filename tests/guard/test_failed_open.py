"""A store that fails open is visible: in the decision, its log record and the metrics.

With ``fail_open=True`` a Redis outage lets deliveries through without their replay check or rate
limit. The decision says so (``Decision.failed_open``), and the metrics count it
(``hmacguard_store_failed_open_total{store}``) -- in-process against a Redis port nothing listens
on, then under real servers with a real redis-server stopped mid-run: gunicorn with two workers in
prometheus-client's multiprocess mode (counts summed over the workers, the old-secret gauge exported
once), and uvicorn, whose Redis calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from hmacguard import (
    ASGIGuard,
    Decision,
    OpenTelemetryMetrics,
    PrometheusMetrics,
    RateLimiter,
    RedisReplayStore,
    Signer,
    Verifier,
    WSGIGuard,
)
from hmacguard.guard import breaker
from hmacguard.lab.serve import free_port

from ._inprocess import asgi_request, asgi_status, wsgi_request
from ._metrics import otel_points
from ._servers import Server, gunicorn, need_redis_server, redis_server, uvicorn

# The secrets of _apps/redis_guarded.py (which needs its Redis URL to be imported at all).
SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="
OLD_SECRET = "whsec_b2xkLXJlZGlzLXRlc3Qtc2VjcmV0"
signer = Signer("standard-webhooks", secrets=SECRET)
old_signer = Signer("standard-webhooks", secrets=OLD_SECRET)
counter = itertools.count()


def delivery(sign: Signer = signer) -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(counter)
    return body, sign.sign(body, message_id=f"msg_{uuid.uuid4().hex}")


def _ok_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [b"ok"]


async def _ok_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _stores(*, fail_open: bool) -> dict[str, Any]:
    """A replay store and a rate limiter on a Redis port nothing listens on (refused at once)."""
    url = f"redis://127.0.0.1:{free_port()}/0"  # a fresh port: a breaker of its own
    return {
        "verifier": Verifier(
            "standard-webhooks",
            secrets=SECRET,
            replay=RedisReplayStore(url, fail_open=fail_open, timeout=0.5),
        ),
        "rate_limiter": RateLimiter(limit="100/hour", storage=url, fail_open=fail_open, timeout=0.5),
    }


def test_an_accepted_delivery_names_the_stores_that_failed_open(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Decision] = []
    app = WSGIGuard(_ok_wsgi, on_decision=seen.append, **_stores(fail_open=True))
    with caplog.at_level(logging.DEBUG, logger="hmacguard"):
        for _ in range(3):
            assert wsgi_request(app, *delivery()).status == 200
    assert [d.outcome for d in seen] == ["accepted"] * 3
    # Admission comes first, then the replay hold; each store is named once however often it failed.
    assert [d.failed_open for d in seen] == [("rate-limit", "replay")] * 3
    records = [r for r in caplog.records if r.name == "hmacguard" and r.levelno == logging.DEBUG]
    assert len(records) == 3
    assert records[0].failed_open == ("rate-limit", "replay")  # type: ignore[attr-defined]
    assert "failed-open=rate-limit,replay" in records[0].getMessage()
    assert breaker._failed_open.get() is None  # nothing noted after the decision


def test_a_refusal_while_failing_open_names_them_too() -> None:
    seen: list[Decision] = []
    app = WSGIGuard(_ok_wsgi, on_decision=seen.append, **_stores(fail_open=True))
    body, headers = delivery()
    headers["webhook-signature"] = "v1," + "A" * 43 + "="  # a forgery: refused before the replay store
    assert wsgi_request(app, body, headers).status == 401
    assert seen[0].outcome == "signature-mismatch" and seen[0].failed_open == ("rate-limit",)


def test_fail_closed_stores_refuse_and_name_nothing() -> None:
    seen: list[Decision] = []
    app = WSGIGuard(_ok_wsgi, on_decision=seen.append, **_stores(fail_open=False))
    assert wsgi_request(app, *delivery()).status == 503
    assert seen[0].outcome == "store-unavailable" and seen[0].failed_open == ()


def test_healthy_stores_name_nothing() -> None:
    seen: list[Decision] = []
    app = WSGIGuard(
        _ok_wsgi,
        verifier=Verifier("standard-webhooks", secrets=SECRET),
        rate_limiter=RateLimiter(limit="100/hour"),
        on_decision=seen.append,
    )
    assert wsgi_request(app, *delivery()).status == 200
    assert seen[0].failed_open == ()


def test_nothing_is_noted_when_nobody_watches() -> None:
    app = WSGIGuard(_ok_wsgi, **_stores(fail_open=True))
    assert wsgi_request(app, *delivery()).status == 200
    assert breaker._failed_open.get() is None


def test_asgi_notes_stores_called_in_worker_threads() -> None:
    """The ASGI driver runs blocking stores in worker threads: their notes still reach the decision."""
    seen: list[Decision] = []
    app = ASGIGuard(_ok_asgi, on_decision=seen.append, **_stores(fail_open=True))
    for _ in range(2):
        assert asgi_request(app, *delivery()).status == 200
    assert [d.failed_open for d in seen] == [("rate-limit", "replay")] * 2


def test_concurrent_asgi_requests_are_noted_each_on_its_own() -> None:
    """Requests in flight together on one event loop, half of them failing open: each decision names
    its own stores (every request is a task with its own context)."""
    seen: list[Decision] = []
    failing = ASGIGuard(_ok_asgi, on_decision=seen.append, **_stores(fail_open=True))
    healthy = ASGIGuard(
        _ok_asgi, verifier=Verifier("standard-webhooks", secrets=SECRET), on_decision=seen.append
    )

    def raw(headers: dict[str, str], length: int) -> list[tuple[bytes, bytes]]:
        listed = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return [*listed, (b"content-length", str(length).encode())]

    async def all_at_once() -> list[int]:
        requests = []
        for app in (failing, healthy) * 4:
            body, headers = delivery()
            requests.append(asgi_status(app, body, raw(headers, len(body))))
        return list(await asyncio.gather(*requests))

    assert asyncio.run(all_at_once()) == [200] * 8
    assert sorted(d.failed_open for d in seen) == [()] * 4 + [("rate-limit", "replay")] * 4


def test_prometheus_and_opentelemetry_count_them() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    reader = InMemoryMetricReader()
    otel = OpenTelemetryMetrics(meter_provider=MeterProvider([reader]))
    sinks = [PrometheusMetrics(registry=registry), otel]
    app = WSGIGuard(_ok_wsgi, on_decision=sinks, **_stores(fail_open=True))
    for _ in range(4):
        assert wsgi_request(app, *delivery()).status == 200
    for store in ("replay", "rate-limit"):
        assert (
            registry.get_sample_value("hmacguard_store_failed_open_total", {"store": store, "receiver": ""})
            == 4
        )
    points = otel_points(reader)["hmacguard.store.failed_open"]
    assert {p.attributes["store"]: p.value for p in points} == {"replay": 4, "rate-limit": 4}


# -- under real servers, a real redis-server stopped mid-run ----------------------------------------
APP = "tests.guard._apps.redis_guarded"


def _post(server: Server, body: bytes, headers: dict[str, str], hold: float = 0.0) -> httpx.Response:
    extra = {"X-Test-Hold": str(hold), "X-Test-Client": "one"}
    return httpx.post(server.base_url + "/webhook", content=body, headers={**headers, **extra}, timeout=20)


def _scrape(server: Server) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.base_url + "/metrics", timeout=10).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _values(samples: list[Any], suffix: str, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples if s.name.endswith(suffix)}


def _failing_open_with_metrics(redis_url: str) -> dict[str, str]:
    """The environment of _apps/redis_guarded.py: on ``redis_url``, fail-open, /metrics served."""
    return {"HMACGUARD_TEST_REDIS": redis_url, "HMACGUARD_TEST_FAIL_OPEN": "1", "HMACGUARD_TEST_METRICS": "1"}


@pytest.mark.slow
@pytest.mark.redis
def test_gunicorn_workers_count_failures_open_summed_in_multiprocess_mode(multiprocess_dir: str) -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {**_failing_open_with_metrics(redis.url), "PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
        with gunicorn(f"{APP}:application", env, workers=2) as server, ThreadPoolExecutor(4) as pool:
            # Concurrent, each held in its worker a moment, so that both workers answer.
            healthy = [delivery() for _ in range(3)] + [delivery(old_signer)]
            answers = list(pool.map(lambda d: _post(server, *d, hold=0.3), healthy))
            assert [a.status_code for a in answers] == [200] * 4
            redis.process.terminate()
            redis.process.wait(timeout=10)
            outage = [delivery() for _ in range(5)]
            answers += list(pool.map(lambda d: _post(server, *d, hold=0.3), outage))
            assert [a.status_code for a in answers[4:]] == [200] * 5  # let through: fail-open
            assert len({a.headers["x-worker-pid"] for a in answers}) == 2
            families = _scrape(server)
            assert "Traceback" not in server.log()
    assert _values(families["hmacguard_decisions"], "_total", "outcome") == {"accepted": 9.0}
    assert _values(families["hmacguard_store_failed_open"], "_total", "store") == {
        "replay": 5.0,
        "rate-limit": 5.0,
    }
    # One series, not one per worker pid: the latest time any worker saw the old secret.
    (last_seen,) = families["hmacguard_noncurrent_secret_last_seen_timestamp_seconds"]
    assert "pid" not in last_seen.labels and last_seen.value > 1_700_000_000


@pytest.mark.slow
@pytest.mark.redis
def test_uvicorn_counts_failures_open_from_its_worker_threads() -> None:
    need_redis_server()
    with redis_server() as redis, uvicorn(f"{APP}:asgi", _failing_open_with_metrics(redis.url)) as server:
        assert [_post(server, *delivery()).status_code for _ in range(2)] == [200, 200]
        redis.process.terminate()
        redis.process.wait(timeout=10)
        assert [_post(server, *delivery()).status_code for _ in range(3)] == [200] * 3
        families = _scrape(server)
    assert _values(families["hmacguard_decisions"], "_total", "outcome") == {"accepted": 5.0}
    assert _values(families["hmacguard_store_failed_open"], "_total", "store") == {
        "replay": 3.0,
        "rate-limit": 3.0,
    }
