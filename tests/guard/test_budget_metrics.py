"""The memory budget in the ready-made metrics: bytes held, the limit, and spills, watched by
``PrometheusMetrics`` and ``OpenTelemetryMetrics`` with no recipe of the operator's.

A guard shows its verifier's budget to its sinks when it is built. Checked in-process (a scrape in
the middle of a request sees the body it holds; a body with no room is counted as a spill; after
the answer nothing is held), with the budgets of several guards under one receiver summed and a
budget watched twice counted once; with the OpenTelemetry SDK's in-memory reader; and under gunicorn
with two workers in Prometheus multiprocess mode, where the gauges are summed over the live workers.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hmacguard import MemoryBudget, OpenTelemetryMetrics, PrometheusMetrics, Verifier, WSGIGuard

from ._apps import budget_metrics_guarded
from ._budget_metrics import (
    BODY,
    IN_USE,
    LIMIT,
    SECRET,
    SIGNER,
    SPILLS,
    budget_guard,
    hold_a_body,
    scrape,
    send,
    tracebacks_but_the_scrape_race,
)
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
            samples = scrape(client, server.log)
            expected = {IN_USE: 0, LIMIT: len(pids) * limit, SPILLS: 12}
            while samples != expected and time.monotonic() < deadline:
                # Each worker writes its gauges within a second of its first decision or spill --
                # a spill's write sees the bodies then in flight, the next one what is left.
                time.sleep(0.2)
                samples = scrape(client, server.log)
        assert tracebacks_but_the_scrape_race(server.log()) == 0, server.log()
    assert len(pids) == 2, "both workers answered"
    assert samples == {IN_USE: 0, LIMIT: 2 * limit, SPILLS: 12}


@pytest.mark.slow
def test_gunicorn_multiprocess_a_worker_that_decided_nothing_shows_its_budget_spent(
    multiprocess_dir: str,
) -> None:
    """A worker whose every connection is a trickling upload finishes no request, so it makes no
    decision; its gauges must not wait for one. Two uploads held at once in a worker that has
    decided nothing: the first holds a 64 KiB read, the second finds no room (a spill) -- and from
    that spill on the worker writes its gauges: the bytes held and its limit, while both uploads
    are still open."""
    limit = budget_metrics_guarded.LIMIT
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
    app = "tests.guard._apps.budget_metrics_guarded:application"
    with (
        gunicorn(app, env, workers=1, worker_class="gthread", threads=4) as server,
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):
        held = [hold_a_body(server.port, 70_000)]
        try:
            time.sleep(0.5)  # the first upload's piece is read and counted before the second arrives
            held.append(hold_a_body(server.port, 70_000))
            expected = {IN_USE: 65536, LIMIT: limit, SPILLS: 1}
            deadline = time.monotonic() + 6
            samples = scrape(client, server.log)
            while samples != expected and time.monotonic() < deadline:
                time.sleep(0.2)
                samples = scrape(client, server.log)
        finally:
            for connection in held:
                connection.close()
        assert tracebacks_but_the_scrape_race(server.log()) == 0, server.log()
    assert samples == expected


@pytest.mark.slow
def test_gunicorn_multiprocess_a_worker_holding_a_body_without_a_spill_shows_it(
    multiprocess_dir: str,
) -> None:
    """The same worker with one trickling upload only: it decides nothing and never spills, yet it
    holds a 64 KiB piece of the body -- its gauges are written from that first piece on."""
    limit = budget_metrics_guarded.LIMIT
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir}
    app = "tests.guard._apps.budget_metrics_guarded:application"
    with (
        gunicorn(app, env, workers=1, worker_class="gthread", threads=4) as server,
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):
        held = hold_a_body(server.port, 70_000)
        try:
            expected = {IN_USE: 65536, LIMIT: limit, SPILLS: 0}
            deadline = time.monotonic() + 6
            samples = scrape(client, server.log)
            while samples != expected and time.monotonic() < deadline:
                time.sleep(0.2)
                samples = scrape(client, server.log)
        finally:
            held.close()
        assert tracebacks_but_the_scrape_race(server.log()) == 0, server.log()
    assert samples == expected


def test_count_listeners_run_once_in_each_process_at_its_first_piece_counted() -> None:
    """Once at the first bytes counted, not at the next ones, not at a spill; again in a forked
    child (which inherits the parent's record of having called them); a removed one no more."""
    budget = MemoryBudget(100)
    heard: list[int] = []

    def counting() -> None:
        heard.append(os.getpid())

    budget.add_count_listener(counting)
    assert budget.take(1000) is False and heard == []  # a spill counts nothing
    assert budget.take(10) is True and heard == [os.getpid()]
    assert budget.take(10) is True and heard == [os.getpid()]
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and leaves at once
        try:
            budget.take(10)
            os.write(writer, b"%d %d" % (len(heard), heard[-1] == os.getpid()))
        finally:
            os._exit(0)
    os.close(writer)
    report = os.read(reader, 100)
    os.close(reader)
    os.waitpid(child, 0)
    assert report == b"2 1", "the child called it at its own first piece"
    fresh = MemoryBudget(100)
    fresh.add_count_listener(counting)
    with fresh._lock:  # lock-free, as when a finaliser runs inside take()
        fresh.remove_listener(counting)
    fresh.add_spill_listener(lambda: None)  # applies the queued removal
    assert fresh.take(10) is True and len(heard) == 1


def test_a_count_listener_that_raises_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    budget = MemoryBudget(100)

    def broken() -> None:
        raise RuntimeError("metrics back-end down")

    budget.add_count_listener(broken)
    with caplog.at_level(logging.WARNING, logger="hmacguard"):
        assert budget.take(10) is True
    assert budget.in_use == 10
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)


def test_metrics_dropped_take_their_spill_listeners_off_a_budget_that_outlives_them() -> None:
    """One budget shared by every app a process builds and drops (a reloaded configuration, an app
    factory called per test): each set of metrics gives it a spill listener, and must take it back
    when it is collected -- else the budget keeps every dropped registry's listener (and what it
    holds) for good, and calls them all at each spill."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    budget = MemoryBudget(100_000)
    for number in range(20):
        registry = CollectorRegistry()
        # Shut down when dropped, and not at exit: the SDK keeps a provider's readers (and so its
        # instruments) in a class-wide set until then, and its atexit hook keeps the provider.
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
        sinks = [PrometheusMetrics(registry=registry), OpenTelemetryMetrics(meter_provider=provider)]
        assert send(budget_guard(budget, sinks)) == 200  # a spill, heard by this round's metrics
        provider.shutdown()
        del registry, provider, sinks
        gc.collect()
        assert len(budget._listeners) <= 2, f"round {number}: the dropped metrics' listeners are kept"
    registry = CollectorRegistry()
    guard = budget_guard(budget, PrometheusMetrics(registry=registry))
    gc.collect()
    assert len(budget._listeners) == 1  # the live metrics' own, taken back from the others at its add
    assert send(guard) == 200
    assert registry.get_sample_value(SPILLS, {"receiver": ""}) == 1
    assert budget.spilled == 21


def test_taking_a_listener_back_takes_no_lock_and_applies_at_the_next_spill() -> None:
    """The metrics take their listener back from a finaliser, which the collector may run in a
    thread that holds the budget's lock (inside ``take``): a remove that waited for the lock would
    hang that thread. Queued instead, and applied at the next spill."""
    budget = MemoryBudget(10)
    heard: list[str] = []

    def kept() -> None:
        heard.append("kept")

    def dropped() -> None:
        heard.append("dropped")

    budget.add_spill_listener(kept)
    budget.add_spill_listener(dropped)
    with budget._lock:  # as inside take(): a lock-taking remove would never return
        budget.remove_listener(dropped)
    assert budget.take(100) is False
    assert heard == ["kept"]
