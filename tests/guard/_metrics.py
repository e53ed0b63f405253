"""What the metrics tests share: reading what the sinks recorded, and a replay store whose
settling fails (for the settle-failure counter)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry

from hmacguard import MemoryReplayStore

#: The settle-failure counter's sample (``{action, scheme, receiver}``).
SETTLE_FAILED_TOTAL = "hmacguard_replay_settle_failed_total"


def otel_points(reader: Any) -> dict[str, list[Any]]:
    """Every instrument's data points, by instrument name, from an OpenTelemetry SDK metric reader
    (the SDK's own point objects: ``attributes``, and ``value`` or a histogram's ``count``)."""
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def settle_counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """The settle-failure counter in ``registry``, by ``(action, scheme)``."""
    return {
        (sample.labels["action"], sample.labels["scheme"]): sample.value
        for family in registry.collect()
        if family.name == "hmacguard_replay_settle_failed"
        for sample in family.samples
        if sample.name == SETTLE_FAILED_TOTAL
    }


class FailingStore(MemoryReplayStore):
    """Holds in memory; its commit and release raise, as a store gone away would. ``blocking``: as a
    network store (settled in a worker thread under ASGI); ``settle_threads``: where each was tried."""

    def __init__(self, *, blocking: bool = False) -> None:
        super().__init__()
        self.blocking = blocking  # type: ignore[misc]
        self.settle_threads: list[str] = []

    def commit(self, key: str, token: str, ttl: float) -> None:
        self.settle_threads.append(threading.current_thread().name)
        raise ConnectionError("gone")

    def release(self, key: str, token: str) -> None:
        self.settle_threads.append(threading.current_thread().name)
        raise ConnectionError("gone")


def answering(status: str = "200 OK") -> Any:
    """A WSGI application that reads the body and answers ``status``."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response(status, [("Content-Type", "text/plain")])
        return [b"answered"]

    return app
