"""A circuit breaker for the guard's network stores (Redis): an outage costs one timeout per window.

Without it, every store call of every request waits for its socket timeout while Redis is down or
hung -- several per request (rate-limit hit, test, window stats, replay hold). With it:

- **closed** (normal): calls go through; the first one that fails opens the breaker;
- **open**: for ``reset_after`` seconds every call fails at once, without touching the network
  (fail-closed stores answer 503 at once, fail-open ones pass at once);
- **half-open**: after that window one call is let through as a probe while the others still fail
  at once; its success closes the breaker, its failure opens it for another window.

So a request pays at most one timeout (its first store call opens the breaker for the calls after
it), and an outage costs one timeout per window, not one per call. Thread-safe; one breaker per
Redis server (:func:`shared_breaker`), shared by the replay store and the rate limiter that use it
and by every request of the process.

On a Redis Cluster, one breaker per node: a store call goes through the breaker of the primary that
serves its key, as the client's slot map says at that moment (:meth:`StoreCalls._breaker_for`), so
one dead primary refuses the keys of its slots -- one timeout per window for that node -- while the
keys on the live primaries keep their checks. The map follows a failover (the client re-reads it
when a node does not answer, as the half-open probe does, or answers MOVED), and the keys go to the
promoted node's breaker. The Cluster's own breaker (its URL's hosts) guards the calls made
before the client has a slot map (building it: every node down), those without a key, and every
call around its node's: it opens when the client reaches no node at all, so that a Cluster down
or hung costs a request one timeout, as one server does, not one per node its keys are on.

Stores log the failure that opens the breaker as a warning and the calls it refuses at debug level,
so an outage is logged once per window, not once per call. A store that fails open also notes
itself on the decision under way, when someone watches decisions (:func:`noting_failures_open`): a
delivery let through without its replay check or rate limit is then visible in the decision log and
the metrics, not only in a warning per window.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import ClassVar, TypeVar

from hmacguard.errors import ConfigurationError

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "StoreCalls",
    "noting_failures_open",
    "shared_breaker",
]

T = TypeVar("T")


class CircuitOpen(ConnectionError):
    """The breaker is open: the store was not called (a ``ConnectionError``, as an outage is)."""


class CircuitBreaker:
    """Opens on the first failure for ``reset_after`` seconds; see the module docstring."""

    def __init__(self, *, reset_after: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(reset_after, bool) or not isinstance(reset_after, (int, float)) or reset_after <= 0:
            raise ConfigurationError(f"reset_after must be a positive number of seconds, not {reset_after!r}")
        self.reset_after = float(reset_after)
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        """Whether calls are currently refused without trying (a probe may still be under way)."""
        opened = self._opened_at
        return opened is not None and (self._probing or self._clock() - opened < self.reset_after)

    def call(
        self,
        func: Callable[[], T],
        errors: tuple[type[BaseException], ...],
        opens: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``func()``, unless the breaker is open (:class:`CircuitOpen`); ``errors`` open it --
        those of them ``opens`` says are this breaker's failure, when given (the others pass
        through as any other error: a Cluster node's failure is not the Cluster's)."""
        probe = False
        if self._opened_at is not None:  # unlocked read: the common, closed case takes no lock
            with self._lock:
                opened = self._opened_at
                if opened is not None:
                    if self._probing or self._clock() - opened < self.reset_after:
                        raise CircuitOpen("the store is failing; not called while the breaker is open")
                    self._probing = probe = True
        try:
            result = func()
        except errors as exc:
            if opens is None or opens(exc):
                with self._lock:
                    self._opened_at = self._clock()
                    self._probing = False
            elif probe:
                with self._lock:
                    self._probing = False
            raise
        except BaseException:
            if probe:
                with self._lock:
                    self._probing = False
            raise
        if probe:
            # Only the probe's success closes the breaker: a call that began before it opened and
            # answered late says nothing about the failure that opened it meanwhile.
            with self._lock:
                self._opened_at = None
                self._probing = False
        return result


_SHARED: dict[str, CircuitBreaker] = {}
_SHARED_LOCK = threading.Lock()


def shared_breaker(key: str, *, reset_after: float) -> CircuitBreaker:
    """The process's breaker for one store endpoint (e.g. a Redis URL's host, port and database).

    The replay store and the rate limiter on the same Redis share it, so an outage opens one
    breaker and a request pays one timeout, not one per store. The first caller's ``reset_after``
    wins.
    """
    breaker = _SHARED.get(key)  # unlocked: once made, a breaker is never replaced
    if breaker is not None:
        return breaker
    with _SHARED_LOCK:
        breaker = _SHARED.get(key)
        if breaker is None:
            breaker = _SHARED[key] = CircuitBreaker(reset_after=reset_after)
        return breaker


#: The list a store that fails open notes itself in, during a store call the guard makes for a watched
#: decision (:func:`noting_failures_open`); ``None`` otherwise. A context variable, not an argument:
#: the stores are called deep inside the rate limiter and the replay store, whose interfaces are public.
_failed_open: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "hmacguard_failed_open", default=None
)


def noting_failures_open(noted: list[str], func: Callable[[], T]) -> Callable[[], T]:
    """``func``, noting in ``noted`` each store that fails open while it runs (its
    :attr:`StoreCalls.store_slug`, once) -- in whatever thread and context the driver calls it.

    The list is set around the call and reset after it, never left in the context across the
    decision's pauses: a driver may interleave decisions in one context, run store calls in a pool
    that does not copy the context, or have an abandoned decision closed by the garbage collector
    in the middle of another (tests/guard/test_review_failed_open.py).
    """

    def call() -> T:
        token = _failed_open.set(noted)
        try:
            return func()
        finally:
            _failed_open.reset(token)

    return call


class StoreCalls:
    """A store that can fail: its calls go through :attr:`breaker`; when the store is unavailable
    (one of :attr:`store_errors`, or the breaker open) a call returns its fallback if
    :attr:`fail_open`, else raises :class:`~hmacguard.errors.StoreUnavailable` (503).

    The call that opened the breaker is logged as a warning on :attr:`store_log`; the calls it
    refused, at debug level. :attr:`store_name` names the store in both and in the refusal;
    :attr:`store_slug` in the decisions that a store failing open let through (``Decision.failed_open``).
    """

    store_name: ClassVar[str]
    store_slug: ClassVar[str]
    store_log: ClassVar[logging.Logger]
    breaker: CircuitBreaker
    store_errors: tuple[type[BaseException], ...]
    fail_open: bool
    #: Whether the store is on a Redis Cluster (set by the stores): each node then has its breaker.
    _cluster: bool = False

    def _unavailable(self) -> tuple[type[BaseException], ...]:
        """What a store call raises when the store cannot answer: its errors, or the breaker open."""
        return (*self.store_errors, CircuitOpen)

    def _node_of(self, key: str) -> str | None:
        """The Cluster node (``host:port``) that serves ``key`` now, when the store is on a Redis
        Cluster whose slot map its client has; ``None`` otherwise (then :attr:`breaker` alone)."""
        return None

    def _connect(self, build: Callable[[], object]) -> bool:
        """``build()`` a Cluster store's client (it reads the slot map) through :attr:`breaker`, the
        Cluster's own: whether it is built. Only that: a keyed call that fails afterwards is its
        node's outage, not the Cluster's -- had the first call built the client inside the call,
        a first call on a dead node's key would open the Cluster's breaker, and a store still
        without a client would be refused on every key for a window."""
        try:
            self.breaker.call(build, self.store_errors)
            return True
        except self._unavailable() as exc:
            if not isinstance(exc, CircuitOpen):
                self.store_log.warning("%s unavailable: %s", self.store_name, _named(exc))
            return False

    def _breaker_for(self, key: str | None) -> CircuitBreaker:
        """The breaker of a call on ``key`` (a Redis key): its Cluster node's, else :attr:`breaker`."""
        if key is not None and self._cluster:
            node = self._node_of(key)
            if node is not None:
                return shared_breaker(f"cluster node {node}", reset_after=self.breaker.reset_after)
        return self.breaker

    def _refused(self, key: str | None) -> bool:
        """Whether a call on ``key`` would be refused now without reaching the store (its
        breaker open, or on a Cluster the Cluster's)."""
        breaker = self._breaker_for(key)
        return breaker.is_open or (breaker is not self.breaker and self.breaker.is_open)

    def _through_breakers(self, func: Callable[[], T], key: str | None) -> T:
        """``func()`` through the breaker of ``key`` (:meth:`_breaker_for`). On a Cluster, the
        node's breaker runs inside the Cluster's, which opens only when the client could reach no
        node at all (:func:`_cluster_unreachable`): a Cluster down or hung is then found once per
        window, as one server is, not once per node -- each a timeout plus redis-py's re-reading
        of the slot map from every node, which a request touching three nodes paid three times
        (test_review_cluster_nodes.py)."""
        errors = self.store_errors
        if key is None or not self._cluster:  # one server, Sentinel, or a call without a key
            return self.breaker.call(func, errors)
        breaker = self._breaker_for(key)
        if breaker is self.breaker:
            # On a Cluster, a key whose slot no node serves (or not known now): a breaker of its
            # own, so that its failure -- an answer from a reachable Cluster -- does not open the
            # Cluster's, which every node's call now runs inside.
            breaker = shared_breaker(
                f"cluster unserved slots {id(self.breaker)}", reset_after=breaker.reset_after
            )
        return self.breaker.call(lambda: breaker.call(func, errors), errors, _cluster_unreachable)

    def _ask(self, func: Callable[[], T], default: T, key: str | None = None) -> T:
        """``func()`` through the breaker, ``default`` when the store cannot answer: for a question
        whose answer lets nothing through (neither fail-open nor fail-closed, nothing noted).
        ``key``: the Redis key ``func`` touches (on a Cluster, its node's breaker is used)."""
        try:
            return self._through_breakers(func, key)
        except self._unavailable():
            return default

    def _call(self, func: Callable[[], T], fallback: T, key: str | None = None) -> T:
        from hmacguard.errors import StoreUnavailable

        try:
            return self._through_breakers(func, key)
        except self._unavailable() as exc:
            level = logging.DEBUG if isinstance(exc, CircuitOpen) else logging.WARNING
            name = self.store_name
            if self.fail_open:
                self.store_log.log(level, "%s unavailable, passing (fail-open): %s", name, _named(exc))
                noted = _failed_open.get()
                if noted is not None and self.store_slug not in noted:  # once: bounded however it is used
                    noted.append(self.store_slug)
                return fallback
            self.store_log.log(level, "%s unavailable, answering 503: %s", name, _named(exc))
            raise StoreUnavailable(f"the {name} is unavailable") from None


def _cluster_unreachable(exc: BaseException) -> bool:
    """Whether a Cluster client's error says it reached no node: redis-py, failing to re-read the
    slot map from any node, raises its ``RedisClusterException`` from the last node's connection
    error or timeout. (A node's own failure, one dead primary, is raised as that node's error.)"""
    try:  # only a Cluster store asks, and a Cluster store has redis-py
        from redis.exceptions import ConnectionError as NodeUnreachable
        from redis.exceptions import RedisClusterException
        from redis.exceptions import TimeoutError as NodeTimeout
    except ImportError:  # pragma: no cover
        return False
    # Exactly that type: its subclasses (SlotNotCoveredError...) are answers from a reachable Cluster.
    return type(exc) is RedisClusterException and isinstance(
        exc.__cause__, (NodeUnreachable, NodeTimeout, OSError)
    )


def _named(exc: BaseException) -> str:
    """The error's type, and its cause's: a Cluster that refuses our password is redis-py's
    ``RedisClusterException`` from an ``AuthenticationError``. Types only, never messages: those
    may quote a server's reply or address, and the log line must stay free of anything secret."""
    cause = exc.__cause__
    return f"{type(exc).__name__} ({type(cause).__name__})" if cause is not None else type(exc).__name__
