"""Reading what the metrics sinks recorded, for the tests that check it."""

from __future__ import annotations

from typing import Any


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
