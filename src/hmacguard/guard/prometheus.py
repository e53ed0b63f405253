"""Prometheus metrics for the guard: ``on_decision=PrometheusMetrics()``.

Needs ``prometheus-client`` (``pip install 'hmacguard[prometheus]'``), imported when this is built,
never by ``import hmacguard``. Metrics (``prefix`` defaults to ``hmacguard``), each also labelled
``receiver`` -- the name given to this sink, empty by default (see :class:`PrometheusMetrics`):

- ``hmacguard_decisions_total{outcome, scheme}``: every protected request, by outcome --
  ``accepted`` or the refusal's slug (``signature-mismatch``, ``replay``, ``body-too-large``,
  ``rate-limited``, ``store-unavailable``...);
- ``hmacguard_body_bytes{outcome}``: histogram of the body bytes read before deciding (a refusal
  before the body reads 0);
- ``hmacguard_verification_seconds{outcome}``: histogram of the time the decision took, body read
  included;
- ``hmacguard_verified_with_key_total{key_index}``: accepted deliveries by which secret verified
  them (0 is the current one);
- ``hmacguard_noncurrent_secret_last_seen_timestamp_seconds``: gauge, the Unix time of the last
  delivery verified with a secret other than the current one (0: never) -- a sender that has not
  rotated yet (one per ``receiver``: a rotation is per secret, so per receiver);
- ``hmacguard_store_failed_open_total{store}``: protected requests decided while a store could not
  answer and, being configured ``fail_open=True``, let them through (``store``: ``replay`` -- no
  replay check; ``rate-limit`` -- no rate limit). Any increase means protection was off.
- ``hmacguard_replay_settle_failed_total{action, scheme}``: accepted deliveries whose replay hold
  the store could not settle after the application answered -- ``commit`` (the delivery's id is
  kept only for the pending TTL, not the replay TTL: a replay after that is accepted) or
  ``release`` (the sender's retries get 409 until the pending TTL lapses). Not a decision: the
  delivery's decision was counted when it was accepted.
- ``hmacguard_memory_budget_in_use_bytes``, ``hmacguard_memory_budget_limit_bytes``: gauges, the
  bytes of request bodies held in memory right now against the
  :class:`~hmacguard.guard.body.MemoryBudget` that bounds them (summed over the budgets of the
  guards reporting under one ``receiver``: each verifier has its own unless you share one);
- ``hmacguard_memory_budget_spills_total``: bodies sent to a temporary file early because the
  budget was spent -- many uploads held at once (or a budget too small for the traffic). Nothing
  is refused for it, but a sustained rate is worth an alert (docs/guide.md). Each budget is counted
  once per registry and prefix (a budget shared by guards of several receivers: under the first
  one's name), so sums over receivers hold.

An alert on signature failures (docs/guide.md has the scrape and more)::

    sum(rate(hmacguard_decisions_total{outcome="signature-mismatch"}[5m])) * 60 > 10

Under a pre-forking server (gunicorn with several workers) use prometheus-client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``), as for any other metric of the application: the counters and
histograms are summed over the workers, and the gauge is exported once, as the latest time any
worker saw an old secret (``multiprocess_mode="max"``; the default would give one series per worker
pid, dead ones included), and the budget's two gauges are summed over the live workers
(``"livesum"``: the bytes held by the host's workers against their budgets together; "live" needs
gunicorn's ``child_exit`` hook to call ``multiprocess.mark_process_dead(worker.pid)``, as
prometheus-client documents, or an exited worker's file stays in the sum). A scrape reads
the budget's gauges live in a single process; in multiprocess mode (no callbacks at scrape: each
worker writes its own file) a worker writes them once a second, from its first decision, the
first body piece its budget counts, or its first spill on (whichever comes first: a worker whose
every connection trickles has no decision to wait for, and may hold bodies without spilling one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.decision import Decision, WatchedBudgets, budget_total, receiver_name

if TYPE_CHECKING:
    from hmacguard.guard.body import MemoryBudget

__all__ = ["BYTES_BUCKETS", "SECONDS_BUCKETS", "PrometheusMetrics"]

#: Body sizes that tell refusals before the body (0), webhooks (KiB) and oversized bodies apart.
BYTES_BUCKETS = (0, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024**2, 4 * 1024**2, 16 * 1024**2)
#: From an in-memory tiny request (tens of microseconds) to a slow body (the 30 s timeout).
SECONDS_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
#: The label every metric carries: the sink's ``receiver`` name.
_RECEIVER = "receiver"


class PrometheusMetrics:
    """A decision sink that records the metrics above in ``registry`` (default: the global one).

    Build as many as you like: every guard of a receiver (one per provider, say) may have its own,
    and those on the same registry and ``prefix`` share one set of metrics -- the ``scheme`` label
    tells the providers apart. (prometheus-client refuses a second metric of the same name in one
    registry; before this sharing, the second guard's ``PrometheusMetrics()`` raised at start-up.)

    ``receiver``: a name for what this sink watches, put in every metric's ``receiver`` label --
    for guards of the same scheme that the ``scheme`` label cannot tell apart (two GitHub
    organisations with their own secrets, each rotating on its own schedule). Your words, not a
    client's: up to 64 printable ASCII characters; empty (the default) in PromQL is the same as no
    label at all.
    """

    def __init__(self, *, registry: Any = None, prefix: str = "hmacguard", receiver: str = "") -> None:
        receiver = receiver_name(receiver)
        try:
            import prometheus_client as prom
        except ImportError:
            raise ConfigurationError(
                "PrometheusMetrics needs prometheus-client: pip install 'hmacguard[prometheus]'"
            ) from None
        target = prom.REGISTRY if registry is None else registry
        with _SHARED_LOCK:
            by_prefix = _SHARED.setdefault(target, {})
            metrics = by_prefix.get(prefix)
            if metrics is None:
                metrics = by_prefix[prefix] = _Metrics(prom, target, prefix)
        self._metrics = metrics
        self.receiver = receiver
        self._noncurrent_last_seen = metrics.noncurrent_last_seen.labels(receiver)
        self.decisions = metrics.decisions
        self.body_bytes = metrics.body_bytes
        self.seconds = metrics.seconds
        self.by_key = metrics.by_key
        self.noncurrent_last_seen = metrics.noncurrent_last_seen
        self.failed_open = metrics.failed_open
        self.settle_failures = metrics.settle_failures
        # Multiprocess mode: starts this process's writer of the budget's gauges (see above).
        self._refresh_budget: Callable[[], None] | None = None

    def watch_budget(self, budget: MemoryBudget) -> None:
        """Report ``budget`` under this sink's receiver (the guard calls this when it is built)."""
        refresh = self._metrics.watch_budget(budget, self.receiver)
        if refresh is not None:
            self._refresh_budget = refresh

    def __call__(self, decision: Decision) -> None:
        children = self._metrics.by_outcome(decision.outcome, decision.scheme, self.receiver)
        children.decisions.inc()
        children.body_bytes.observe(decision.bytes_read)
        children.seconds.observe(decision.duration)
        if decision.key_index is not None:
            self._metrics.by_key_index(decision.key_index, self.receiver).inc()
            if decision.key_index > 0:
                self._noncurrent_last_seen.set(time.time())
        for store in decision.failed_open:
            self.failed_open.labels(store, self.receiver).inc()
        if self._refresh_budget is not None:
            self._refresh_budget()

    def settle_failed(self, scheme: str, action: str) -> None:
        """A delivery's replay hold not settled (``action``: ``commit`` or ``release``); see above."""
        self.settle_failures.labels(action, scheme, self.receiver).inc()


class _OutcomeChildren:
    """One outcome's (and scheme's, and receiver's) labelled children of the metrics: ``labels()``
    takes a lock and validates its values on every call, which cost more than recording the decision
    itself."""

    __slots__ = ("body_bytes", "decisions", "seconds")

    def __init__(self, metrics: _Metrics, outcome: str, scheme: str, receiver: str) -> None:
        self.decisions = metrics.decisions.labels(outcome, scheme, receiver)
        self.body_bytes = metrics.body_bytes.labels(outcome, receiver)
        self.seconds = metrics.seconds.labels(outcome, receiver)


class _Metrics:
    """The metrics themselves, registered once per registry and prefix."""

    def __init__(self, prom: Any, registry: Any, prefix: str) -> None:
        self.decisions = prom.Counter(
            f"{prefix}_decisions",
            "Protected requests, by outcome.",
            ["outcome", "scheme", _RECEIVER],
            registry=registry,
        )
        self.body_bytes = prom.Histogram(
            f"{prefix}_body_bytes",
            "Body bytes read before deciding.",
            ["outcome", _RECEIVER],
            buckets=BYTES_BUCKETS,
            registry=registry,
        )
        self.seconds = prom.Histogram(
            f"{prefix}_verification_seconds",
            "Time to decide, body read included.",
            ["outcome", _RECEIVER],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.by_key = prom.Counter(
            f"{prefix}_verified_with_key",
            "Accepted deliveries by the index of the secret that verified them (0: current).",
            ["key_index", _RECEIVER],
            registry=registry,
        )
        self.noncurrent_last_seen = prom.Gauge(
            f"{prefix}_noncurrent_secret_last_seen_timestamp_seconds",
            "Unix time of the last delivery verified with a secret other than the current one.",
            [_RECEIVER],
            multiprocess_mode="max",
            registry=registry,
        )
        self.failed_open = prom.Counter(
            f"{prefix}_store_failed_open",
            "Protected requests let through while a store could not answer (fail-open).",
            ["store", _RECEIVER],
            registry=registry,
        )
        self.settle_failures = prom.Counter(
            f"{prefix}_replay_settle_failed",
            "Accepted deliveries whose replay hold could not be committed or released after the answer.",
            ["action", "scheme", _RECEIVER],
            registry=registry,
        )
        self.budget_in_use = prom.Gauge(
            f"{prefix}_memory_budget_in_use_bytes",
            "Bytes of request bodies held in memory, counted against the memory budget.",
            [_RECEIVER],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.budget_limit = prom.Gauge(
            f"{prefix}_memory_budget_limit_bytes",
            "The memory budget: bytes of request bodies that may be held in memory at once.",
            [_RECEIVER],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.budget_spills = prom.Counter(
            f"{prefix}_memory_budget_spills",
            "Bodies sent to a temporary file early because the memory budget was spent.",
            [_RECEIVER],
            registry=registry,
        )
        # Multiprocess mode: a scrape reads every worker's files, so no callback runs at scrape.
        self._sampled = prom.values.ValueClass is not prom.values.MutexValue
        #: The process whose refresher thread runs (multiprocess mode; 0: none yet).
        self._refresher_pid = 0
        self._budgets = WatchedBudgets()
        self._lock = threading.Lock()  # starts the refresher once per process
        # (outcome, scheme, receiver) -> its children. Bounded: outcomes are the guard's own slugs,
        # schemes and receivers the configured ones, never a client's words.
        self._children: dict[tuple[str, str, str], _OutcomeChildren] = {}
        # (key index, receiver) -> its child (as many as there are secrets).
        self._by_key: dict[tuple[int, str], Any] = {}

    def watch_budget(self, budget: MemoryBudget, receiver: str) -> Callable[[], None] | None:
        """Report ``budget`` under ``receiver`` -- or, if a sink of these metrics reports it already,
        leave it where it is: a budget is counted once, so that sums over receivers hold (a budget
        shared by guards of several receivers is reported under the first one's name). Returns what
        to call at each decision in multiprocess mode (``None``: read live at each scrape)."""
        watched = self._budgets
        owner, new = watched.claim(budget, receiver)
        if new:
            watched.listen(budget, *self._budget_listeners(owner))
        if not self._sampled:
            self.budget_in_use.labels(owner).set_function(lambda: watched.total(owner, "in_use"))
            self.budget_limit.labels(owner).set_function(lambda: watched.total(owner, "limit"))
            return None
        return self._ensure_refresher

    def _budget_listeners(self, receiver: str) -> tuple[Callable[[], None], Callable[[], None] | None]:
        """What a budget calls at each spill (count it) and, in multiprocess mode, at its first bytes
        counted in a process: make sure this process writes the gauges. A worker under a trickle
        attack may hold bodies for as long as the attack lasts without finishing a single request,
        so waiting for its first decision would leave its gauges unwritten exactly while its budget
        fills -- and it may never spill. Both hold these metrics weakly: a budget outliving them
        must not keep them (or their refresher) going."""
        count: Callable[[], None] = self.budget_spills.labels(receiver).inc
        if not self._sampled:
            return count, None
        metrics = weakref.ref(self)

        def counting() -> None:
            current = metrics()
            if current is not None:
                current._ensure_refresher()

        def spilled() -> None:
            count()
            counting()

        return spilled, counting

    def _ensure_refresher(self) -> None:
        """Multiprocess mode: make sure this process has its refresher (see :func:`_refreshing`)."""
        if self._refresher_pid != os.getpid():
            with self._lock:
                if self._refresher_pid != os.getpid():
                    self._refresher_pid = os.getpid()
                    self.refresh()
                    threading.Thread(
                        target=_refreshing,
                        args=(weakref.ref(self), os.getpid()),
                        name="hmacguard-budget-metrics",
                        daemon=True,
                    ).start()

    def refresh(self) -> bool:
        """Write the budget's gauges; ``False`` when no budget is left to report (none written)."""
        live = False
        for receiver, budgets in self._budgets.items():
            if len(budgets):  # a receiver whose guards are gone: another registry may write its key
                live = True
                self.budget_in_use.labels(receiver).set(budget_total(budgets, "in_use"))
                self.budget_limit.labels(receiver).set(budget_total(budgets, "limit"))
        return live

    def by_outcome(self, outcome: str, scheme: str, receiver: str) -> _OutcomeChildren:
        children = self._children.get((outcome, scheme, receiver))
        if children is None:
            children = _OutcomeChildren(self, outcome, scheme, receiver)
            self._children[outcome, scheme, receiver] = children
        return children

    def by_key_index(self, index: int, receiver: str) -> Any:
        child = self._by_key.get((index, receiver))
        if child is None:
            child = self._by_key[index, receiver] = self.by_key.labels(str(index), receiver)
        return child


def _refreshing(metrics: weakref.ref[_Metrics], pid: int) -> None:
    """Multiprocess mode: write ``metrics``' budget gauges once a second while it reports a budget.

    A worker writes its own file and a scrape runs no callback, so the gauges are written here, from
    the worker's first decision, first body piece counted or first spill on: started then, not at
    import, so that a master that loaded the app before forking (gunicorn --preload) -- which reads
    no body -- writes no file of its own to be summed with its workers' (a forked child starts its
    own). It holds the metrics weakly and stops when they are gone or report no budget any more
    (their guards dropped): it never writes over the gauges of a registry that replaced them; a
    later decision or spill starts it again.
    """
    while True:
        time.sleep(_REFRESH_EVERY)
        current = metrics()
        if current is None or current._refresher_pid != pid:
            return
        try:
            if not current.refresh():
                current._refresher_pid = 0
                return
        except Exception as exc:  # never let a metrics write kill the refresher quietly
            log.warning("memory budget metrics: refresh failed: %s", type(exc).__name__)
        del current


#: Seconds between two writes of the budget's gauges in multiprocess mode.
_REFRESH_EVERY = 1.0
log = logging.getLogger(__name__)

#: Registry -> prefix -> its metrics. Weak keys: a registry a test (or an app) drops takes its
#: metrics with it.
_SHARED: weakref.WeakKeyDictionary[Any, dict[str, _Metrics]] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()
