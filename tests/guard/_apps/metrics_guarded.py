"""A guarded WSGI app with its Prometheus endpoint, for the metrics test under gunicorn.

``/webhook`` is guarded (GitHub scheme, 64 KiB cap, memory replay store, a request budget from
HMACGUARD_TEST_RATE); ``/metrics`` is prometheus-client's own WSGI exposition app.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from hmacguard import PrometheusMetrics, RateLimiter, Verifier, WSGIGuard

SECRET = "metrics-secret"
registry = CollectorRegistry()
metrics_app = make_wsgi_app(registry)


def _webhook(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


guarded = WSGIGuard(
    _webhook,
    verifier=Verifier("github", secrets=[SECRET, "an-older-secret"], max_body=64 * 1024),
    rate_limiter=RateLimiter(limit=os.environ.get("HMACGUARD_TEST_RATE", "1000/minute")),
    paths=["/webhook"],
    on_decision=PrometheusMetrics(registry=registry),
)


def application(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/metrics":
        return metrics_app(environ, start_response)
    return guarded(environ, start_response)
