"""A guarded app sharing replay ids and rate limits through Redis, for the multi-process tests.

``application`` is the WSGI app (gunicorn), ``asgi`` the same guard as an ASGI app (uvicorn).
Configured by environment: HMACGUARD_TEST_REDIS (URL: redis://, redis+cluster://, redis+sentinel://),
HMACGUARD_TEST_FAIL_OPEN ("1" or not), HMACGUARD_TEST_RATE (a limits string),
HMACGUARD_TEST_BREAKER (seconds the circuit breaker stays open, default 5), HMACGUARD_TEST_METRICS
("1": Prometheus metrics of the decisions, served on ``/metrics``; summed over the workers when
PROMETHEUS_MULTIPROC_DIR is set), HMACGUARD_TEST_STRATEGY (the rate limiter's strategy, default
fixed-window). Every response names the worker that answered it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from hmacguard import ASGIGuard, RateLimiter, RedisReplayStore, Verifier, WSGIGuard

SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="
#: A previous secret, still accepted (a sender that has not rotated yet).
OLD_SECRET = "whsec_b2xkLXJlZGlzLXRlc3Qtc2VjcmV0"
URL = os.environ["HMACGUARD_TEST_REDIS"]
FAIL_OPEN = os.environ.get("HMACGUARD_TEST_FAIL_OPEN") == "1"
BREAKER = float(os.environ.get("HMACGUARD_TEST_BREAKER", "5"))
METRICS = os.environ.get("HMACGUARD_TEST_METRICS") == "1"
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")


def _metrics() -> tuple[Any, Any, Any]:
    """(the decision sink, the WSGI /metrics app, the ASGI one) -- or Nones without HMACGUARD_TEST_METRICS."""
    if not METRICS:
        return None, None, None
    import prometheus_client as prom
    from prometheus_client import multiprocess

    from hmacguard import PrometheusMetrics

    exposed = prom.CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The workers write their values to files; the scrape reads every worker's.
        multiprocess.MultiProcessCollector(exposed)
        sink = PrometheusMetrics(registry=prom.CollectorRegistry())
    else:
        sink = PrometheusMetrics(registry=exposed)
    return sink, prom.make_wsgi_app(exposed), prom.make_asgi_app(exposed)


SINK, METRICS_WSGI, METRICS_ASGI = _metrics()


def _options() -> dict[str, Any]:
    return {
        "verifier": Verifier(
            "standard-webhooks",
            secrets=[SECRET, OLD_SECRET],
            replay=RedisReplayStore(URL, fail_open=FAIL_OPEN, breaker_reset=BREAKER),
        ),
        "rate_limiter": RateLimiter(
            limit=os.environ.get("HMACGUARD_TEST_RATE", "1000/hour"),
            storage=URL,
            key="header:X-Test-Client",
            strategy=os.environ.get("HMACGUARD_TEST_STRATEGY", "fixed-window"),
            fail_open=FAIL_OPEN,
            breaker_reset=BREAKER,
        ),
        "paths": ["/webhook"],
        "on_decision": SINK,
    }


def webhook(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    # Hold the worker briefly so concurrent requests spread over both workers.
    time.sleep(float(environ.get("HTTP_X_TEST_HOLD", "0") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


guarded = WSGIGuard(webhook, **_options())


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if METRICS_WSGI is not None and environ.get("PATH_INFO") == "/metrics":
        return METRICS_WSGI(environ, start_response)  # type: ignore[no-any-return]

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return guarded(environ, start)


async def _asgi_webhook(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    hold = dict(scope["headers"]).get(b"x-test-hold", b"0")
    await asyncio.sleep(float(hold or 0))  # as webhook() does
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


_asgi_guarded = ASGIGuard(_asgi_webhook, **_options())


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same guard as an ASGI app: its Redis calls run in worker threads."""
    if METRICS_ASGI is not None and scope.get("path") == "/metrics":
        await METRICS_ASGI(scope, receive, send)
        return

    async def send_with_pid(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            pid = (b"x-worker-pid", str(os.getpid()).encode())
            message = {**message, "headers": [*message.get("headers", []), pid]}
        await send(message)

    await _asgi_guarded(scope, receive, send_with_pid)
