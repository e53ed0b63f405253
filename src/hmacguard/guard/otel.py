"""OpenTelemetry metrics for the guard: ``on_decision=OpenTelemetryMetrics()``.

Needs ``opentelemetry-api`` (``pip install 'hmacguard[opentelemetry]'``), imported when this is
built, never by ``import hmacguard``; your application configures the SDK and its exporter as for
any other instrument. The instruments carry the names and attributes of
:mod:`hmacguard.guard.prometheus`:

- counter ``hmacguard.decisions`` (attributes ``outcome``, ``scheme``);
- histogram ``hmacguard.body.bytes`` (unit ``By``, attribute ``outcome``);
- histogram ``hmacguard.verification.duration`` (unit ``s``, attribute ``outcome``);
- counter ``hmacguard.verified_with_key`` (attribute ``key_index``);
- counter ``hmacguard.store.failed_open`` (attribute ``store``: ``replay``, ``rate-limit``);
- counter ``hmacguard.replay.settle_failed`` (attributes ``action``: ``commit``, ``release``, and
  ``scheme``): accepted deliveries whose replay hold could not be settled after the answer;
- observable gauge ``hmacguard.noncurrent_secret.last_seen`` (unit ``s``: Unix time, 0 if never).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.decision import Decision

__all__ = ["OpenTelemetryMetrics"]


class OpenTelemetryMetrics:
    """A decision sink recording the instruments above with ``meter_provider`` (default: global)."""

    def __init__(self, *, meter_provider: Any = None, name: str = "hmacguard") -> None:
        try:
            from opentelemetry import metrics
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetryMetrics needs opentelemetry-api: pip install 'hmacguard[opentelemetry]'"
            ) from None
        meter = metrics.get_meter(name, meter_provider=meter_provider)
        self._last_seen = 0.0
        self.decisions = meter.create_counter(
            f"{name}.decisions", description="Protected requests, by outcome."
        )
        self.body_bytes = meter.create_histogram(
            f"{name}.body.bytes", unit="By", description="Body bytes read before deciding."
        )
        self.duration = meter.create_histogram(
            f"{name}.verification.duration", unit="s", description="Time to decide, body read included."
        )
        self.by_key = meter.create_counter(
            f"{name}.verified_with_key",
            description="Accepted deliveries by the index of the secret that verified them (0: current).",
        )
        self.failed_open = meter.create_counter(
            f"{name}.store.failed_open",
            description="Protected requests let through while a store could not answer (fail-open).",
        )
        self.settle_failures = meter.create_counter(
            f"{name}.replay.settle_failed",
            description="Accepted deliveries whose replay hold could not be settled after the answer.",
        )
        meter.create_observable_gauge(
            f"{name}.noncurrent_secret.last_seen",
            callbacks=[self._observe_last_seen],
            unit="s",
            description="Unix time of the last delivery verified with a secret other than the current one.",
        )
        self._observation = metrics.Observation
        self._attribute_maps: dict[tuple[str, str], tuple[dict[str, str], dict[str, str]]] = {}

    def _attributes(self, outcome: str, scheme: str) -> tuple[dict[str, str], dict[str, str]]:
        """The attribute maps for one outcome and scheme, built once (bounded: the guard's own slugs
        and the configured schemes). The SDK does not keep or change them."""
        found = self._attribute_maps.get((outcome, scheme))
        if found is None:
            found = self._attribute_maps[outcome, scheme] = (
                {"outcome": outcome},
                {"outcome": outcome, "scheme": scheme},
            )
        return found

    def _observe_last_seen(self, options: Any) -> Iterable[Any]:
        yield self._observation(self._last_seen)

    def __call__(self, decision: Decision) -> None:
        outcome, both = self._attributes(decision.outcome, decision.scheme)
        self.decisions.add(1, both)
        self.body_bytes.record(decision.bytes_read, outcome)
        self.duration.record(decision.duration, outcome)
        if decision.key_index is not None:
            self.by_key.add(1, {"key_index": str(decision.key_index)})
            if decision.key_index > 0:
                self._last_seen = time.time()
        for store in decision.failed_open:
            self.failed_open.add(1, {"store": store})

    def settle_failed(self, scheme: str, action: str) -> None:
        """A delivery's replay hold not settled (``action``: ``commit`` or ``release``)."""
        self.settle_failures.add(1, {"action": action, "scheme": scheme})
