"""Review of ca17754 (the memory budget in the ready-made metrics): four defects, each shown by a
test that failed on that commit and passes since the fix (each docstring says what was wrong): the
OpenTelemetry spill counter going back, a budget shared by two receivers counted twice, a dead
worker left in the multiprocess sums (fixed by the documented gunicorn ``child_exit`` hook, which
the test now uses), and a refresher thread that never stopped.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hmacguard import MemoryBudget, OpenTelemetryMetrics, PrometheusMetrics

from ._apps import budget_metrics_guarded
from ._budget_metrics import (
    BODY,
    IN_USE,
    LIMIT,
    SIGNER,
    SPILLS,
    budget_guard,
    hold_a_body,
    scrape,
    send,
)
from ._metrics import otel_points
from ._servers import REPO, gunicorn

# -- OpenTelemetry: an observable *counter* that goes backwards -----------------------------------


def test_otel_spills_counter_does_not_go_backwards_when_a_guard_is_replaced() -> None:
    """``hmacguard.memory_budget.spills`` is an observable *counter* (monotonic), but its callback
    reports ``sum(budget.spilled)`` over the budgets held *weakly* right now. Rebuilding a guard
    with the same sink -- a secret rotated by building a new ``Verifier`` (its ``memory_budget`` an
    int: a budget of its own), an app factory run again -- drops the old budget from the WeakSet,
    and the cumulative counter falls from 3 to 1 (with delta temporality the SDK exports a negative
    delta for a monotonic sum; backends read the drop as a reset, and ``rate``/``increase`` lose or
    invent spills). ``PrometheusMetrics`` counts the same spills in a real Counter, which does not
    fall: the two sinks disagree."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    sink = OpenTelemetryMetrics(meter_provider=provider)
    registry = CollectorRegistry()
    sinks = [sink, PrometheusMetrics(registry=registry)]

    def spills() -> float:
        (point,) = otel_points(reader)["hmacguard.memory_budget.spills"]
        return float(point.value)

    kept = budget_guard(
        1000, sinks
    )  # budgets of their own (memory_budget=int): 1000 bytes, every body spills
    old = budget_guard(1000, sinks)
    assert [send(kept), send(old), send(old)] == [200, 200, 200]
    assert spills() == 3
    old = budget_guard(1000, sinks)  # rebuilt (new secrets, say): the old verifier and its budget are dropped
    gc.collect()
    assert registry.get_sample_value(SPILLS, {"receiver": ""}) == 3  # Prometheus: still 3
    try:
        assert spills() >= 3, "a monotonic counter went backwards"
    finally:
        provider.shutdown()


# -- one budget shared by guards of two receivers: counted twice ----------------------------------


def test_a_budget_shared_by_two_receivers_is_not_counted_twice() -> None:
    """The guide says to share one ``MemoryBudget`` between verifiers to bound them together, and
    ``receiver`` exists for guards of one scheme (two GitHub organisations). Do both: each receiver
    then reports the whole shared budget -- its limit, its bytes, and (one spill listener per
    receiver) every spill, whichever organisation's delivery had it. One body sent to disk for
    org-b shows as ``spills_total{receiver="org-a"} 1`` too, and the guide's own PromQL
    (``sum(increase(..._spills_total[5m]))``, ``sum(in_use) / sum(limit)``) counts the budget
    twice: 2 spills for 1, 2x the limit of memory the process may actually hold. The commit dedupes
    a budget watched twice under *one* receiver, not across receivers."""
    registry = CollectorRegistry()
    shared = MemoryBudget(100_000)  # room for one 64 KiB read: a 200 KB body spills
    budget_guard(shared, PrometheusMetrics(registry=registry, receiver="org-a"))
    org_b = budget_guard(shared, PrometheusMetrics(registry=registry, receiver="org-b"))
    assert send(org_b) == 200
    assert shared.spilled == 1  # one body went to disk, org-b's

    def total(name: str) -> float:
        return sum(registry.get_sample_value(name, {"receiver": r}) or 0 for r in ("org-a", "org-b"))

    assert (total(SPILLS), total(LIMIT)) == (1, shared.limit)


# -- multiprocess: "summed over the live workers" is not what livesum does ------------------------


@pytest.mark.slow
def test_gunicorn_a_killed_workers_budget_leaves_the_sums(multiprocess_dir: str) -> None:
    """The guide and the module docstring say the budget's gauges are "summed over the live
    workers (livesum)". prometheus-client's ``livesum`` only drops a worker's file when the
    application calls ``multiprocess.mark_process_dead(pid)`` (gunicorn's ``child_exit`` hook); the
    guide never says so and nothing in hmacguard does it. So a worker that dies -- here SIGKILLed
    while a slow upload holds 64 KiB of its body, which is what gunicorn's ``--timeout`` does to a
    sync worker stuck on a trickling client, the very attack the budget is for -- stays in the sums:
    ``in_use`` is stuck at the bytes it held and ``limit`` counts every worker ever started
    (``max_requests`` recycling grows it without bound). The ratio the guide says to watch is
    wrong from then on."""
    limit = budget_metrics_guarded.LIMIT
    # The guide's gunicorn settings for multiprocess mode: child_exit marks a worker dead.
    config = REPO / "tests" / "guard" / "_apps" / "gunicorn_multiprocess.py"
    env = {"PROMETHEUS_MULTIPROC_DIR": multiprocess_dir, "GUNICORN_CMD_ARGS": f"-c {config}"}
    app = "tests.guard._apps.budget_metrics_guarded:application"
    with (
        gunicorn(app, env, workers=1, worker_class="gthread", threads=4) as server,
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):

        def deliver() -> None:
            answer = client.post("/webhook", content=BODY, headers=SIGNER.sign(BODY))
            assert answer.status_code == 200

        def wait_for(expected: dict[str, float]) -> dict[str, float | None]:
            deadline = time.monotonic() + 6
            while True:
                samples = scrape(client, server.log)
                got = {name: samples.get(name) for name in expected}
                if got == expected or time.monotonic() > deadline:
                    return got
                time.sleep(0.2)

        deliver()  # the worker's first decision: its refresher writes the gauges from now on
        (first,) = server.worker_pids()
        held = hold_a_body(server.port, 70_000)  # the worker reads (and holds) 64 KiB, then waits
        try:
            assert wait_for({IN_USE: 65536, LIMIT: limit}) == {IN_USE: 65536, LIMIT: limit}
            os.kill(first, signal.SIGKILL)  # gunicorn's --timeout would do the same
            deadline = time.monotonic() + 30
            while server.worker_pids() in (set(), {first}) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(server.worker_pids() - {first}) == 1, "gunicorn started a new worker"
        finally:
            held.close()
        deliver()  # the new worker's first decision: its gauges are written within a second
        time.sleep(2.5)
        # One live worker, holding nothing: its own limit, 0 in use.
        assert wait_for({IN_USE: 0, LIMIT: limit}) == {IN_USE: 0, LIMIT: limit}


# -- multiprocess: the refresher thread never stops ---------------------------------------------

_REFRESHER_SCRIPT = textwrap.dedent(
    """
    import gc, os, sys, threading, time
    sys.path.insert(0, {repo!r})
    import prometheus_client as prom
    from prometheus_client import multiprocess
    from hmacguard import PrometheusMetrics, Signer, Verifier, WSGIGuard
    from tests.guard._inprocess import call_wsgi, wsgi_environ

    signer = Signer("github", secrets="s")

    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"ok"]

    def build(limit):
        registry = prom.CollectorRegistry()
        verifier = Verifier("github", secrets="s", replay=None, memory_budget=limit)
        guard = WSGIGuard(app, verifier=verifier, on_decision=PrometheusMetrics(registry=registry))
        call_wsgi(guard, wsgi_environ("POST", "/webhook", b"{{}}", signer.sign(b"{{}}")))
        return registry, guard

    old = build(100)  # an app built, used, then replaced (reloaded configuration, an app factory)
    del old
    gc.collect()
    time.sleep(0.5)  # out of phase with the old refresher
    new = build(500)
    exposed = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(exposed)
    seen = set()
    for _ in range(30):
        seen.add(exposed.get_sample_value("hmacguard_memory_budget_limit_bytes", {{"receiver": ""}}))
        time.sleep(0.1)
    refreshers = [t for t in threading.enumerate() if t.name == "hmacguard-budget-metrics"]
    print(len(refreshers), sorted(seen))
    """
)


@pytest.mark.slow
def test_a_replaced_registrys_refresher_stops_and_does_not_overwrite(tmp_path: Path) -> None:
    """In multiprocess mode each ``_Metrics`` (registry x prefix) that sees a decision starts a
    daemon thread whose loop ends only when the pid changes -- never, in that process. The thread
    holds the ``_Metrics`` (so neither is ever freed: one more thread per registry built), and it
    goes on writing ``hmacguard_memory_budget_*`` for that prefix every second. The files are keyed
    by metric name and labels, not by registry, so once the old registry's guard is gone its thread
    writes 0 into the very key the new registry's thread writes the real limit to: the worker's
    ``limit_bytes`` alternates between 0 and 500 (seen here), and ``in_use`` likewise."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    script = tmp_path / "refresher.py"
    script.write_text(_REFRESHER_SCRIPT.format(repo=str(REPO)))
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "1 [500.0]"  # one refresher, a steady limit
