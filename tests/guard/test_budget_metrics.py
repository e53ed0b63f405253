"""The memory budget in the ready-made metrics: bytes held, the limit, and spills, watched by
``PrometheusMetrics`` and ``OpenTelemetryMetrics`` with no recipe of the operator's.

A guard shows its verifier's budget to its sinks when it is built. Checked in-process (a scrape in
the middle of a request sees the body it holds; a body with no room is counted as a spill; after
the answer nothing is held), with the budgets of several guards under one receiver summed and a
budget watched twice counted once; with the OpenTelemetry SDK's in-memory reader; and under gunicorn
with two workers in Prometheus multiprocess mode, where the gauges are summed over the live workers.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hmacguard import MemoryBudget, OpenTelemetryMetrics, PrometheusMetrics, Verifier, WSGIGuard

from ._apps import budget_metrics_guarded
from ._budget_metrics import BODY, IN_USE, LIMIT, SECRET, SIGNER, SPILLS, budget_guard, budget_samples, send
from ._metrics import otel_points
from ._servers import gunicorn


def _watching(registry: CollectorRegistry, name: str, seen: list[float | None], receiver: str = "") -> Any:
    """An application that reads the body, then records the ``name`` sample of ``registry``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        seen.append(registry.get_sample_value(name, {"receiver": receiver}))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def test_a_scrape_sees_the_body_held_the_limit_and_nothing_after_the_answer() -> None:
    registry = CollectorRegistry()
    seen: list[float | None] = []
    app = budget_guard(
        MemoryBudget(300_000), PrometheusMetrics(registry=registry), _watching(registry, IN_USE, seen)
    )
    assert registry.get_sample_value(LIMIT, {"receiver": ""}) == 300_000
    assert send(app) == 200
    assert seen == [len(BODY)]  # held in memory while the application runs
    assert registry.get_sample_value(IN_USE, {"receiver": ""}) == 0
    assert registry.get_sample_value(SPILLS, {"receiver": ""}) == 0


def test_a_body_with_no_room_is_a_spill_and_holds_nothing() -> None:
    registry = CollectorRegistry()
    seen: list[float | None] = []
    app = budget_guard(
        MemoryBudget(100_000), PrometheusMetrics(registry=registry), _watching(registry, IN_USE, seen)
    )
    assert [send(app), send(app)] == [200, 200]
    assert seen == [0, 0]  # on disk: its first piece was given back when it went there
    assert registry.get_sample_value(SPILLS, {"receiver": ""}) == 2


def test_budgets_under_one_receiver_are_summed_and_one_watched_twice_counts_once() -> None:
    registry = CollectorRegistry()
    shared, own = MemoryBudget(0), MemoryBudget(50_000)
    first = budget_guard(shared, PrometheusMetrics(registry=registry), _watching(registry, IN_USE, []))
    # The same budget again, through a second sink of the same receiver and registry.
    second = budget_guard(shared, PrometheusMetrics(registry=registry), _watching(registry, IN_USE, []))
    budget_guard(own, PrometheusMetrics(registry=registry), _watching(registry, IN_USE, []))
    named = budget_guard(
        MemoryBudget(7), PrometheusMetrics(registry=registry, receiver="b"), _watching(registry, IN_USE, [])
    )
    assert registry.get_sample_value(LIMIT, {"receiver": ""}) == 50_000
    assert registry.get_sample_value(LIMIT, {"receiver": "b"}) == 7
    assert [send(first), send(second), send(named)] == [200, 200, 200]
    assert registry.get_sample_value(SPILLS, {"receiver": ""}) == 2  # not 4: one listener per budget
    assert registry.get_sample_value(SPILLS, {"receiver": "b"}) == 1


def test_a_guard_without_a_budget_reports_none() -> None:
    registry = CollectorRegistry()
    verifier = Verifier("github", secrets=SECRET, replay=None, memory_budget=None)
    app = WSGIGuard(
        _watching(registry, IN_USE, []), verifier=verifier, on_decision=PrometheusMetrics(registry=registry)
    )
    assert send(app) == 200
    assert registry.get_sample_value(LIMIT, {"receiver": ""}) is None
    assert registry.get_sample_value(IN_USE, {"receiver": ""}) is None


def test_opentelemetry_sees_the_same() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    seen: list[dict[str, float]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        seen.append(_otel_budget(reader))
        start_response("200 OK", [])
        return [b"ok"]

    sink = OpenTelemetryMetrics(meter_provider=provider, receiver="org-a")
    held = budget_guard(MemoryBudget(300_000), sink, app)
    spilling = budget_guard(MemoryBudget(100_000), sink, app)
    assert [send(held), send(spilling)] == [200, 200]
    # While the first body was held: its bytes; the second one went to disk (one spill).
    assert seen[0]["in_use"] == len(BODY) and seen[1]["in_use"] == 0
    after = _otel_budget(reader)
    assert after == {"in_use": 0, "limit": 400_000, "spills": 1}
    provider.shutdown()


def _otel_budget(reader: Any) -> dict[str, float]:
    points = otel_points(reader)
    out = {}
    for reading in ("in_use", "limit", "spills"):
        found = points.get(f"hmacguard.memory_budget.{reading}", [])
        if reading == "spills" and not found:
            out[reading] = 0  # a counter has no point before its first spill
            continue
        (point,) = found
        assert dict(point.attributes) == {"receiver": "org-a"}
        out[reading] = point.value
    return out


@pytest.mark.slow
def test_gunicorn_multiprocess_sums_the_workers_budgets(multiprocess_dir: str) -> None:
    """Two workers, each with a budget of LIMIT bytes: the limit is summed over the live workers,
    every spill counted whichever worker had it, and once answered nothing is held."""
    limit = budget_metrics_guarded.LIMIT
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
    with gunicorn("tests.guard._apps.budget_metrics_guarded:application", env, workers=2) as server:
        with httpx.Client(base_url=server.base_url, timeout=15) as client:

            def post(_: int) -> str:
                answer = client.post("/webhook", content=BODY, headers=SIGNER.sign(BODY))
                assert answer.status_code == 200 and answer.text.startswith(f"{len(BODY)} ")
                return answer.text.split("pid=")[1]

            with ThreadPoolExecutor(4) as pool:  # at once: both workers answer some
                pids = set(pool.map(post, range(12)))
            deadline = time.monotonic() + 10
            samples = budget_samples(client.get("/metrics").text)
            while samples.get(LIMIT) != len(pids) * limit and time.monotonic() < deadline:
                time.sleep(0.2)  # each worker writes its gauges within a second of its first decision
                samples = budget_samples(client.get("/metrics").text)
        assert "Traceback" not in server.log()
    assert len(pids) == 2, "both workers answered"
    assert samples == {IN_USE: 0, LIMIT: 2 * limit, SPILLS: 12}
