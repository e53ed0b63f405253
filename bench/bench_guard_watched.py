"""Claim: watching the guard's decisions costs little -- an ``on_decision`` sink keeps a small
delivery in the single-read lane, one ``Decision`` is a named tuple built once, and
``PrometheusMetrics`` keeps its labelled children instead of asking ``labels()`` each time.

In-process, side by side in one run (the same WSGI apps as bench_guard_rps.py, best of five rounds of
``--requests`` pre-signed ~40-byte GitHub deliveries each, the apps taking turns): the guarded app
with no sink, with a sink that does nothing, with ``PrometheusMetrics`` and with
``OpenTelemetryMetrics`` (the SDK with an in-memory reader), each as a ratio of requests per second
to the unwatched guard. The OpenTelemetry figure is mostly the SDK's own cost per measurement (three
or four a decision); it is printed, not held to a target.

Bounded: in-process only, no sockets. Run: ``python bench/bench_guard_watched.py [--requests 2000]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench_guard_rps import SECRET, bare_app, in_process

from hmacguard import OpenTelemetryMetrics, PrometheusMetrics, Verifier, WSGIGuard

#: A no-op sink may cost at most this much (ratio of requests/s to the unwatched guard).
NOOP_TARGET = 0.9
PROMETHEUS_TARGET = 0.75


def _guarded(sink: Any = None) -> WSGIGuard:
    return WSGIGuard(bare_app, verifier=Verifier("github", secrets=SECRET), on_decision=sink)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per app per round")
    args = parser.parse_args(argv)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry

    apps = {
        "unwatched": _guarded(),
        "no-op sink": _guarded(lambda decision: None),
        "PrometheusMetrics": _guarded(PrometheusMetrics(registry=CollectorRegistry())),
        "OpenTelemetryMetrics": _guarded(
            OpenTelemetryMetrics(meter_provider=MeterProvider([InMemoryMetricReader()]))
        ),
    }
    rates = in_process(args.requests, apps)
    base = rates["unwatched"]
    print(f"{'guard':<22} {'us/request':>10} {'ratio':>7}  target")
    targets = {"no-op sink": NOOP_TARGET, "PrometheusMetrics": PROMETHEUS_TARGET}
    missed = False
    for name, rate in rates.items():
        ratio = rate / base
        target = targets.get(name)
        verdict = "" if target is None else f">= {target}  {'met' if ratio >= target else 'MISSED'}"
        missed |= target is not None and ratio < target
        print(f"{name:<22} {1e6 / rate:>10.2f} {ratio:>7.3f}  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
