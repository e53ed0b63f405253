"""One receiver for two GitHub organisations: a guard per organisation, stacked, same scheme.

``application`` (WSGI, gunicorn): organisation A on ``/hooks/org-a`` with a rotation under way (a
new secret and the old one still accepted), organisation B on ``/hooks/org-b`` with its own secret.
Each guard's ``PrometheusMetrics`` names its receiver (``org-a``, ``org-b``): the ``scheme`` label
is ``github`` for both, so only ``receiver`` tells them apart. Served on ``/metrics``, summed over
the workers when PROMETHEUS_MULTIPROC_DIR is set. Every answer names the worker that gave it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import prometheus_client as prom
from prometheus_client import multiprocess

from hmacguard import PrometheusMetrics, Verifier, WSGIGuard

A_SECRET, A_OLD_SECRET, B_SECRET = "org-a-new-secret", "org-a-old-secret", "org-b-secret"

exposed = prom.CollectorRegistry()
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    multiprocess.MultiProcessCollector(exposed)  # the scrape reads every worker's files
    recorded = prom.CollectorRegistry()
else:
    recorded = exposed


def receiver(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    time.sleep(float(environ.get("HTTP_X_TEST_HOLD", "0") or 0))  # spread requests over the workers
    answer = f"{environ.get('PATH_INFO')} pid={os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


def stack(app: Any, sinks: Callable[[str], Any]) -> WSGIGuard:
    """``app`` behind organisation B's guard, behind A's; ``sinks(receiver)`` is each guard's
    ``on_decision`` (the in-process tests add OpenTelemetry's)."""
    org_b = WSGIGuard(
        app,
        verifier=Verifier("github", secrets=B_SECRET),
        paths=["/hooks/org-b"],
        on_decision=sinks("org-b"),
    )
    return WSGIGuard(
        org_b,
        verifier=Verifier("github", secrets=[A_SECRET, A_OLD_SECRET]),
        paths=["/hooks/org-a"],
        on_decision=sinks("org-a"),
    )


_guarded = stack(receiver, lambda receiver: PrometheusMetrics(registry=recorded, receiver=receiver))
_metrics = prom.make_wsgi_app(exposed)


def application(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/metrics":
        return _metrics(environ, start_response)
    return _guarded(environ, start_response)
