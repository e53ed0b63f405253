"""Decisions you can watch: one record per protected request, for logs, metrics and custom sinks.

The guard describes every decision it takes -- a delivery handed to the application, or a refusal
-- as a :class:`Decision` and gives it to

- the ``hmacguard`` logger, as one DEBUG record whose message reads well and whose fields (the
  :class:`Decision` attributes, under their own names) a JSON formatter picks up;
- every ``on_decision`` sink configured on the guard (a callable taking the decision):
  :class:`~hmacguard.guard.prometheus.PrometheusMetrics`,
  :class:`~hmacguard.guard.otel.OpenTelemetryMetrics`, or your own.

A decision never carries a secret, a signature or a byte of the body: what was decided, for whom,
how much was read and how long it took. When the logger is not enabled for DEBUG and no sink is
configured, nothing is built at all. A sink that raises is logged once per exception type and never
changes the answer.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from hmacguard._mypyc import mypyc_attr

if TYPE_CHECKING:
    from hmacguard.guard.body import MemoryBudget

__all__ = [
    "ACCEPTED", "Decision", "DecisionSink", "DecisionSinks", "WatchedBudgets", "budget_total", "decision_log",
    "receiver_name",
]  # fmt: skip

log = logging.getLogger("hmacguard")
#: ``Decision.outcome`` of a delivery handed to the application (refusals carry their problem slug).
ACCEPTED = "accepted"

DecisionSink = Callable[["Decision"], None]


class Decision(NamedTuple):
    """What the guard decided about one protected request (immutable: every sink gets the same one).

    A named tuple, not a frozen dataclass: one is built per request while anyone watches, and a
    frozen dataclass sets each of its nine fields through ``object.__setattr__`` (about 1.5 us a
    request, as much as the rest of a small delivery's check).
    """

    #: ``"accepted"``, or the refusal's problem slug (``"signature-mismatch"``, ``"replay"``...).
    outcome: str
    #: The status the guard answered with; ``None`` for an accepted delivery (the application's).
    status: int | None
    #: The signature scheme (``"github"``...).
    scheme: str
    #: The request path, as the server gave it.
    path: str
    #: Whom the rate limits count it against (``"ip:203.0.113.7"``), or the socket peer.
    client: str | None
    #: Body bytes read from the client before deciding (compressed, for gzip).
    bytes_read: int
    #: Which secret verified it (0 is the current one); ``None`` when refused.
    key_index: int | None
    #: Seconds from the start of the decision to its end (body read and verification included).
    duration: float
    #: The stores that could not answer during this decision and let it through because they are
    #: configured to fail open (``"rate-limit"``, ``"replay"``): an accepted delivery whose replay
    #: check or rate limit did not happen. Empty when every store answered (or none is used).
    failed_open: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED

    def to_dict(self) -> dict[str, object]:
        return self._asdict()

    def message(self) -> str:
        """One line, whatever the client put in its path or key (control characters escaped)."""
        verdict = "accepted" if self.accepted else f"refused {self.status} {self.outcome}"
        key = f" key={self.key_index}" if self.key_index is not None else ""
        failed_open = f" failed-open={','.join(self.failed_open)}" if self.failed_open else ""
        return (
            f"{verdict} {self.scheme} {_one_line(self.path)} client={_one_line(self.client)} "
            f"bytes={self.bytes_read}{key}{failed_open} in {self.duration * 1000:.1f} ms"
        )


def _one_line(text: str | None) -> str | None:
    # Servers percent-decode paths ("%0A" is a newline): escape what could start a forged line.
    if text is None or text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


#: The longest ``receiver`` name a metrics sink takes (a label value: short, and the operator's).
MAX_RECEIVER = 64


def receiver_name(name: object) -> str:
    """``name`` checked as a metrics sink's ``receiver`` (the label or attribute that tells guards of
    one scheme apart): text of up to :data:`MAX_RECEIVER` printable ASCII characters, empty for none.
    Raises ConfigurationError otherwise, at start-up."""
    if type(name) is not str or len(name) > MAX_RECEIVER or not (name.isascii() and name.isprintable()):
        from hmacguard.errors import ConfigurationError  # as in DecisionSinks: only when refusing

        raise ConfigurationError(
            f"receiver must be text of up to {MAX_RECEIVER} printable ASCII characters, not {name!a}"
        )
    return name


def decision_log(decision: Decision) -> None:
    """The DEBUG record on the ``hmacguard`` logger (the first sink, when that level is enabled)."""
    log.debug(decision.message(), extra=decision.to_dict())


@mypyc_attr(allow_interpreted_subclasses=True)
class DecisionSinks:
    """The sinks a guard reports to; :attr:`active` says whether anything would receive a decision."""

    __slots__ = ("_failed", "_settle_failed", "_sinks", "settle_listeners")

    def __init__(self, sinks: DecisionSink | Iterable[DecisionSink] | None) -> None:
        if sinks is None:
            listed: Sequence[DecisionSink] = ()
        elif callable(sinks):
            listed = (sinks,)
        else:
            listed = tuple(sinks)
        for sink in listed:
            if not callable(sink):
                from hmacguard.errors import ConfigurationError

                raise ConfigurationError(f"on_decision takes callables, not {sink!r}")
        self._sinks = listed
        self._failed: set[type[BaseException]] = set()
        self._settle_failed: set[type[BaseException]] = set()  # apart: another method's failures
        #: The sinks' ``settle_failed(scheme, action)`` methods, for those that have one: told when a
        #: delivery's replay hold could not be committed or released after the answer (see
        #: :meth:`settle_failed`). Empty: the guard does not ask to be told.
        listeners = (getattr(sink, "settle_failed", None) for sink in listed)
        self.settle_listeners: tuple[Callable[[str, str], None], ...] = tuple(
            listener for listener in listeners if callable(listener)
        )

    @property
    def active(self) -> bool:
        """Whether a decision would reach anyone (checked per request: the level may change)."""
        return bool(self._sinks) or log.isEnabledFor(logging.DEBUG)

    def settle_failed(self, scheme: str, action: str) -> None:
        """Tell the sinks that listen that a delivery of ``scheme`` accepted earlier could not have its
        replay hold settled -- ``action`` ``"commit"`` (its id lapses after the pending TTL: a replay
        after that is accepted) or ``"release"`` (its retries get 409 until then).

        A decision was already reported for the delivery; this is not another one. Called after the
        answer, from wherever the delivery is settled (a worker thread under ASGI); never raises.
        """
        for listener in self.settle_listeners:
            try:
                listener(scheme, action)
            except Exception as exc:  # as in emit(): never changes anything, logged once per type
                if type(exc) not in self._settle_failed:
                    self._settle_failed.add(type(exc))
                    log.warning("settle_failed listener %r failed: %s", listener, type(exc).__name__)

    def watch_budget(self, budget: MemoryBudget) -> None:
        """Show the guard's memory budget to the sinks that report one -- those with a
        ``watch_budget(budget)`` method (the metrics sinks: bytes held, limit, spills). Called once,
        when the guard is built; a sink that refuses raises there, at start-up."""
        for sink in self._sinks:
            watch = getattr(sink, "watch_budget", None)
            if callable(watch):
                watch(budget)

    def emit(self, decision: Decision) -> None:
        if log.isEnabledFor(logging.DEBUG):
            decision_log(decision)
        for sink in self._sinks:
            try:
                sink(decision)
            except Exception as exc:  # a metrics back-end must never change the answer
                if type(exc) not in self._failed:
                    self._failed.add(type(exc))
                    log.warning("on_decision sink %r failed: %s", sink, type(exc).__name__)


@mypyc_attr(native_class=False)
class WatchedBudgets:
    """The memory budgets one set of metrics reports, by receiver (what the Prometheus and the
    OpenTelemetry sinks share): each budget once, under the first receiver that watched it, so that
    sums over receivers hold. Weak: a guard dropped takes its budget along. A receiver's set is
    replaced, never changed in place, so readers (a scrape, an SDK callback) need no lock."""

    __slots__ = ("__weakref__", "_listeners", "_lock", "_owners", "_sets")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: weakref.WeakKeyDictionary[MemoryBudget, str] = weakref.WeakKeyDictionary()
        self._sets: dict[str, weakref.WeakSet[MemoryBudget]] = {}
        # Budget -> the listeners these metrics gave it, taken back when they are collected: a
        # budget that outlives them (one shared by every app a process builds and drops) must not
        # keep every dropped registry's listeners for good.
        self._listeners: weakref.WeakKeyDictionary[MemoryBudget, tuple[Callable[[], object], ...]] = (
            weakref.WeakKeyDictionary()
        )
        weakref.finalize(self, _take_back_listeners, self._listeners).atexit = False

    def claim(self, budget: MemoryBudget, receiver: str) -> tuple[str, bool]:
        """Report ``budget`` under ``receiver`` unless it is reported already; the receiver it is
        reported under, and whether this call added it (then the caller listens to its spills)."""
        with self._lock:
            owner = self._owners.get(budget)
            if owner is not None:
                return owner, False
            self._owners[budget] = receiver
            grown = weakref.WeakSet(self._sets.get(receiver, ()))
            grown.add(budget)
            self._sets[receiver] = grown
            return receiver, True

    def listen(
        self,
        budget: MemoryBudget,
        listener: Callable[[], object],
        first_count: Callable[[], object] | None = None,
    ) -> None:
        """Give ``budget`` these metrics' spill ``listener`` and, if given, their ``first_count``
        listener (once, after :meth:`claim` added it); taken back when these metrics are collected.
        Neither may reach these metrics but by weak references: they are kept until then, and a
        strong path back would keep them for good."""
        with self._lock:
            self._listeners[budget] = (listener,) if first_count is None else (listener, first_count)
        budget.add_spill_listener(listener)
        if first_count is not None:
            budget.add_count_listener(first_count)

    def items(self) -> list[tuple[str, weakref.WeakSet[MemoryBudget]]]:
        """Each receiver and its budgets (a set may be empty once its guards are gone)."""
        return list(self._sets.items())

    def total(self, receiver: str, reading: str) -> int:
        """The sum of one reading (``in_use``, ``limit``) over ``receiver``'s budgets."""
        return budget_total(self._sets.get(receiver, ()), reading)


def _take_back_listeners(
    listeners: weakref.WeakKeyDictionary[MemoryBudget, tuple[Callable[[], object], ...]],
) -> None:
    """A collected :class:`WatchedBudgets`' listeners, taken back from the budgets still alive
    (lock-free: a finaliser may run anywhere, see :meth:`MemoryBudget.remove_listener`)."""
    for budget, given in list(listeners.items()):
        for listener in given:
            budget.remove_listener(listener)


def budget_total(budgets: Iterable[MemoryBudget], reading: str) -> int:
    """The sum of one reading (``in_use``, ``limit``, ``spilled``) over ``budgets``."""
    return sum(getattr(budget, reading) for budget in budgets)
