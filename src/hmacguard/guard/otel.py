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
- observable gauge ``hmacguard.noncurrent_secret.last_seen`` (unit ``s``: Unix time, 0 if never),
  one point per ``receiver``;
- observable gauges ``hmacguard.memory_budget.in_use`` and ``hmacguard.memory_budget.limit`` (unit
  ``By``, read at each collection) and counter ``hmacguard.memory_budget.spills``: the bytes of
  request bodies held in memory against the :class:`~hmacguard.guard.body.MemoryBudget` of the
  guards reporting under one ``receiver``, and the bodies sent to a temporary file early because it
  was spent (as in :mod:`hmacguard.guard.prometheus`: a budget shared by guards of several
  receivers is reported once, under the first one's name).

``receiver`` (see :class:`OpenTelemetryMetrics`) adds a ``receiver`` attribute to every point when
it is not empty; without it the points are as they always were.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.decision import Decision, WatchedBudgets, budget_total, receiver_name

if TYPE_CHECKING:
    from hmacguard.guard.body import MemoryBudget

__all__ = ["OpenTelemetryMetrics"]


class OpenTelemetryMetrics:
    """A decision sink recording the instruments above with ``meter_provider`` (default: global).

    Build as many as you like: those on the same meter provider and ``name`` share one set of
    instruments (the SDK keeps the first of two instruments of one name and drops the second's
    callbacks: before this sharing, a second guard's non-current-secret gauge was never observed).
    The global provider (``meter_provider=None``) is one provider whether its sinks were built before
    or after the SDK's provider was set.
    ``receiver``: a name for what this sink watches, as for
    :class:`~hmacguard.guard.prometheus.PrometheusMetrics` -- it tells guards of one scheme apart.
    """

    def __init__(self, *, meter_provider: Any = None, name: str = "hmacguard", receiver: str = "") -> None:
        receiver = receiver_name(receiver)
        try:
            from opentelemetry import metrics
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetryMetrics needs opentelemetry-api: pip install 'hmacguard[opentelemetry]'"
            ) from None
        provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
        instruments = _shared(metrics, provider, name)
        instruments.last_seen.setdefault(receiver, 0.0)
        self._instruments = instruments
        self.receiver = receiver
        self.decisions = instruments.decisions
        self.body_bytes = instruments.body_bytes
        self.duration = instruments.duration
        self.by_key = instruments.by_key
        self.failed_open = instruments.failed_open
        self.settle_failures = instruments.settle_failures
        # Attributes of every point: the receiver's, when named (an empty name adds nothing).
        self._own: dict[str, str] = {"receiver": receiver} if receiver else {}
        self._attribute_maps: dict[tuple[str, str], tuple[dict[str, str], dict[str, str]]] = {}
        self._key_attributes: dict[int, dict[str, str]] = {}  # key index -> its map (one per secret)

    def _attributes(self, outcome: str, scheme: str) -> tuple[dict[str, str], dict[str, str]]:
        """The attribute maps for one outcome and scheme, built once (bounded: the guard's own slugs
        and the configured schemes). The SDK does not keep or change them."""
        found = self._attribute_maps.get((outcome, scheme))
        if found is None:
            found = self._attribute_maps[outcome, scheme] = (
                {"outcome": outcome, **self._own},
                {"outcome": outcome, "scheme": scheme, **self._own},
            )
        return found

    def watch_budget(self, budget: MemoryBudget) -> None:
        """Report ``budget`` under this sink's receiver (the guard calls this when it is built)."""
        instruments = self._instruments
        if not instruments.budgets.claim(budget, self.receiver)[1]:
            return  # reported already (under the first receiver's name: sums over receivers hold)
        # A counter fed at each spill, not a sum read at collection: a dropped guard's budget takes
        # its readings along, and a counter must never go back.
        # The instruments held weakly: the SDK's counter reaches them (through its provider's
        # measurement consumer and the gauges' callbacks), and a budget that outlives them must not
        # keep them -- nor their own finaliser, which takes this listener back, from running.
        owner, attributes = weakref.ref(instruments), dict(self._own)

        def spilled() -> None:
            current = owner()
            if current is not None:
                current.budget_spills.add(1, attributes)

        instruments.budgets.listen(budget, spilled)

    def __call__(self, decision: Decision) -> None:
        outcome, both = self._attributes(decision.outcome, decision.scheme)
        self.decisions.add(1, both)
        self.body_bytes.record(decision.bytes_read, outcome)
        self.duration.record(decision.duration, outcome)
        if decision.key_index is not None:
            key = self._key_attributes.get(decision.key_index)
            if key is None:
                key = self._key_attributes[decision.key_index] = {
                    "key_index": str(decision.key_index),
                    **self._own,
                }
            self.by_key.add(1, key)
            if decision.key_index > 0:
                self._instruments.last_seen[self.receiver] = time.time()
        for store in decision.failed_open:
            self.failed_open.add(1, {"store": store, **self._own})

    def settle_failed(self, scheme: str, action: str) -> None:
        """A delivery's replay hold not settled (``action``: ``commit`` or ``release``)."""
        self.settle_failures.add(1, {"action": action, "scheme": scheme, **self._own})


class _Instruments:
    """The instruments of one meter provider and name, and the gauge's readings by receiver."""

    def __init__(self, metrics: Any, meter_provider: Any, name: str) -> None:
        meter = metrics.get_meter(name, meter_provider=meter_provider)
        self.name = name
        self._provider = _weak(meter_provider)
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
        #: Receiver -> Unix time of its last delivery verified with a non-current secret (0: never).
        #: Written by the sinks (a float per key: safe under the GIL), read by the gauge's callback.
        self.last_seen: dict[str, float] = {}
        self._observation = metrics.Observation
        meter.create_observable_gauge(
            f"{name}.noncurrent_secret.last_seen",
            callbacks=[self._observe_last_seen],
            unit="s",
            description="Unix time of the last delivery verified with a secret other than the current one.",
        )

        #: The memory budgets reported, by receiver.
        self.budgets = WatchedBudgets()
        for reading, description in (
            ("in_use", "Bytes of request bodies held in memory, counted against the memory budget."),
            ("limit", "The memory budget: bytes of request bodies that may be held in memory at once."),
        ):
            meter.create_observable_gauge(
                f"{name}.memory_budget.{reading}",
                callbacks=[self._budget_observer(reading)],
                unit="By",
                description=description,
            )
        self.budget_spills = meter.create_counter(
            f"{name}.memory_budget.spills",
            description="Bodies sent to a temporary file early because the memory budget was spent.",
        )

    def _sharing(self) -> list[_Instruments]:
        """These instruments and those made on the global proxy before the SDK's provider was set
        to this one: the SDK kept this set's callbacks, so those readings are observed here."""
        provider = self._provider()
        return [self] + [
            proxied
            for proxied in (tuple(_PROXIED) if provider is not None else ())
            if proxied is not self and proxied.name == self.name and _delegate(proxied) is provider
        ]

    def _observe_last_seen(self, options: Any) -> Iterable[Any]:
        readings: dict[str, float] = {}
        for instruments in self._sharing():  # none but the proxy's write meanwhile: no lock
            for receiver, seen in list(instruments.last_seen.items()):
                readings[receiver] = max(seen, readings.get(receiver, 0.0))
        for receiver, seen in readings.items():
            yield self._observation(seen, {"receiver": receiver} if receiver else None)

    def _budget_observer(self, reading: str) -> Callable[[Any], Iterable[Any]]:
        """A callback observing one reading of the budgets (summed per receiver)."""

        def observe(options: Any) -> Iterable[Any]:
            # No lock: the SDK may hold its own while calling this, and a sink being built holds
            # _SHARED_LOCK while creating instruments (WatchedBudgets replaces its sets whole).
            by_receiver: dict[str, set[MemoryBudget]] = {}
            for instruments in self._sharing():
                for receiver, watched in instruments.budgets.items():
                    by_receiver.setdefault(receiver, set()).update(watched)
            for receiver, budgets in by_receiver.items():
                total = budget_total(budgets, reading)
                yield self._observation(total, {"receiver": receiver} if receiver else None)

        return observe


def _weak(provider: Any) -> Callable[[], Any]:
    try:
        return weakref.ref(provider)
    except TypeError:
        return lambda: None


def _delegate(instruments: _Instruments) -> Any:
    """The provider that the API's proxy ``instruments`` were made on delegates to, once the global
    provider is set (None before, or for any other provider)."""
    return getattr(instruments._provider(), "_real_meter_provider", None)


def _shared(metrics: Any, provider: Any, name: str) -> _Instruments:
    """The instruments of ``provider`` and ``name``, created by the first sink that asks."""
    with _SHARED_LOCK:
        try:
            by_name = _SHARED.setdefault(provider, {})
        except TypeError:  # a provider that cannot be weakly referenced: not shared
            return _Instruments(metrics, provider, name)
        instruments = by_name.get(name)
        if instruments is None:
            # Sinks built with the global provider before the SDK's was set hold the API's proxy:
            # once set to this provider, its instruments (and the gauge the SDK kept) are these.
            found = [p for p in _PROXIED if p.name == name and _delegate(p) is provider]
            instruments = found[0] if found else _Instruments(metrics, provider, name)
            by_name[name] = instruments
            if hasattr(provider, "_real_meter_provider"):  # the proxy itself
                _PROXIED.append(instruments)
        return instruments


#: Meter provider -> name -> its instruments. Weak keys: a provider dropped takes them with it.
_SHARED: weakref.WeakKeyDictionary[Any, dict[str, _Instruments]] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()
#: The instruments made on the API's proxy meter provider -- what ``meter_provider=None`` gives
#: before the SDK's provider is set globally, and delegates to that provider after.
_PROXIED: list[_Instruments] = []
