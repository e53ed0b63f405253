"""A guard whose memory budget is small, reporting to Prometheus, for tests/guard/test_budget_metrics.py
under gunicorn in multiprocess mode (PROMETHEUS_MULTIPROC_DIR): ``/webhook`` protected (the
application reads the body and answers how many bytes it got), ``/metrics`` the scrape, summed over
the workers."""

from __future__ import annotations

import os
import time
from typing import Any

import prometheus_client as prom
from prometheus_client import multiprocess

from hmacguard import MemoryBudget, PrometheusMetrics, Verifier, WSGIGuard

SECRET = "budget-metrics-secret"
#: Room for one 64 KiB read of a body, not two: a body of 150 KB is sent to disk at its second read.
LIMIT = 100_000

exposed = prom.CollectorRegistry()
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    multiprocess.MultiProcessCollector(exposed)
    recorded = prom.CollectorRegistry()
else:
    recorded = exposed


def _reading(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    answer = b"%d pid=%d" % (len(environ["wsgi.input"].read()), os.getpid())
    time.sleep(0.1)  # held a moment: requests sent at once spread over the workers
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


_guarded = WSGIGuard(
    _reading,
    verifier=Verifier("github", secrets=SECRET, replay=None, memory_budget=MemoryBudget(LIMIT)),
    on_decision=PrometheusMetrics(registry=recorded),
)
_metrics = prom.make_wsgi_app(exposed)


def application(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/metrics":
        return _metrics(environ, start_response)
    return _guarded(environ, start_response)
