"""Rate limits applied before the body is read, on the ``limits`` library.

Three budgets per key, each optional, each in ``limits``' notation (``"60/minute"``, ``"5 per second"``):

- ``limit``: requests. Spent on admission, before a byte of the body is read.
- ``bytes_limit``: body bytes received. A request is counted in flight from its admission with the
  bytes it may bring -- its declared ``Content-Length``, or for a chunked body the verifier's
  ``max_body`` (no more than the whole budget) -- and admission needs the bytes already spent
  *plus* every reservation in flight to fit: eight concurrent 60 KiB uploads against
  ``"100000/minute"`` get one body read, the rest a 429. The bytes actually received are spent when
  the request is settled, and its reservation is then released.
- ``failure_limit``: failed verifications (any refusal after admission). A request whose body is still
  being read counts against this budget from its admission until its outcome is known (an in-flight
  counter beside the budget), so admission needs the failures already spent *plus* the requests in
  flight to leave room: 200 concurrent forged uploads against ``"20/minute"`` get at most 20 bodies
  read, the rest a 429 before a byte of theirs is read.

Responses carry the IETF ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers-10: ``"requests";q=60;w=60`` and ``"requests";r=12;t=40``),
and a 429 carries ``Retry-After``.

Trust model for the client address. By default (``trusted_proxies=0``) the key is the socket peer
address the server reports (``REMOTE_ADDR`` / ASGI ``client``) and ``X-Forwarded-For`` is ignored,
because any client can write that header. Behind your own reverse proxies, say which ones to trust:

- ``trusted_proxies=["10.0.0.0/8", ...]`` (networks, the safe form): only when the socket peer is
  inside those networks is ``X-Forwarded-For`` read, from the right, skipping addresses inside
  them; the first address outside is the client. A client that reaches the server directly is keyed
  by its own address, whatever header it writes.
- ``trusted_proxies=N`` (a count): the client is the N-th ``X-Forwarded-For`` entry from the right,
  **whoever the peer is**. A client that can reach the server without passing your proxies writes
  that header itself and picks its key -- including a real sender's address, locking it out. Only
  for servers no client can reach directly; a warning is issued at construction.

Store outages. Every store call goes through a :class:`~hmacguard.guard.breaker.CircuitBreaker`: the
first failure opens it for ``breaker_reset`` seconds, during which calls fail at once (503 when
fail-closed, pass when ``fail_open=True``), so an unreachable or hung Redis costs one ``timeout`` per
request at most and then one per window, not one per call. On a Redis Cluster each node has its own
breaker: a dead primary costs only the clients whose counters it serves.

Keying by ``"header:<Name>"`` (a key id the sender puts in a header) is read before the signature is
verified, so a client can choose it: pair it with a per-client limiter when that matters.

``limits`` is imported when a :class:`RateLimiter` is created, never by ``import hmacguard``.
Storage: ``"memory://"`` (per process), or Redis shared by workers and hosts -- one server
(``"redis://host:port"``), a Cluster (``"redis+cluster://host:port,host:port"``) or Sentinel
(``"redis+sentinel://host:port/service"``) -- or a ``limits`` storage object, or a redis-py client.
A store that cannot be reached answers 503 (fail closed) unless ``fail_open=True``. On Redis a
request is counted in flight as a lease that lapses on its own after the request's longest life
(its body timeout and a margin, at least a minute or the budget's window), so a worker killed
mid-request leaves its count for that long at most, however often the same client sends meanwhile.
A request that ends while the store cannot answer owes its release and makes it at the worker's next
store call once the store answers (or its lease lapses first).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hmacguard.errors import ConfigurationError, RateLimited, RequestRejected
from hmacguard.guard.breaker import CircuitBreaker, StoreCalls, shared_breaker
from hmacguard.guard.clients import Network, client_address, networks
from hmacguard.guard.limit_stores import (
    IN_FLIGHT_LUA,
    in_flight_keys,
    local_counts,
    redis_errors,
    storage_builder,
)
from hmacguard.guard.redis_urls import KeyedScript, check_url, cluster_node, is_cluster_url

if TYPE_CHECKING:
    from hmacguard.http import RequestHead

__all__ = ["RateLimiter", "RateState", "client_address"]

#: Distinct releases owed at most; past it a leaked count lapses with its lease (on Redis).
_MAX_OWED = 10_000

log = logging.getLogger(__name__)

_STRATEGIES = ("fixed-window", "moving-window", "sliding-window")


@dataclass(frozen=True)
class _Budget:
    name: str
    item: Any  # limits.RateLimitItem
    unit: str | None


def _exhausted(message: str, budget: str, retry_after: int) -> RateLimited:
    return RateLimited(message, retry_after=retry_after, budget=budget)


def _seconds_left(milliseconds: int) -> int:
    """A window's PTTL as whole seconds, rounded up (-1, -2: no expiry, no key -> 0)."""
    return max(0, math.ceil(milliseconds / 1000))


def _check_room(windows: dict[str, tuple[int, int]] | None, budget: _Budget, room: int, refusal: str) -> None:
    """What ``limits``' fixed-window ``test(cost=room)`` answers, from a window already read: 429
    when fewer than ``room`` remain. A window that could not be read (fail-open) has room."""
    if windows is None or budget.name not in windows:
        return
    count, milliseconds = windows[budget.name]
    if count >= budget.item.amount - room + 1:
        raise _exhausted(refusal, budget.name, max(1, _seconds_left(milliseconds)))


def _window_fields(
    windows: dict[str, tuple[int, int]] | None, budgets: Iterable[_Budget]
) -> list[tuple[str, int, int]]:
    """The ``RateLimit`` field's ``(name, remaining, seconds to reset)`` from windows read at once
    (none when a fail-open store could not answer)."""
    if windows is None:
        return []
    out = []
    for budget in budgets:
        if budget.name not in windows:  # on a Cluster node that could not answer (fail-open)
            continue
        count, milliseconds = windows[budget.name]
        out.append((budget.name, max(0, int(budget.item.amount) - count), _seconds_left(milliseconds)))
    return out


@dataclass(frozen=True)
class RateState:
    """The budgets as seen at admission: what the ``RateLimit`` fields report."""

    key: str
    #: ``(policy name, remaining, seconds to reset)`` per budget.
    remaining: tuple[tuple[str, int, int], ...]
    #: Whether this request is counted in flight against the failure budget (undone by :meth:`settle`).
    in_flight: bool = False
    #: The bytes this request holds in flight against the bytes budget (released by :meth:`settle`).
    bytes_in_flight: int = 0
    #: The lease naming this request's in-flight counts on Redis, ``"<random name>/<lifetime in
    #: ms>"`` (``""`` in process, where counts need no lease: they die with the process).
    lease: str = ""


class RateLimiter(StoreCalls):
    """Per-client (or per-key-id) budgets, checked before the body is read. See the module docstring."""

    store_name = "rate-limit store"
    store_slug = "rate-limit"
    store_log = log

    def __init__(
        self,
        *,
        limit: str | None = "60/minute",
        bytes_limit: str | None = None,
        failure_limit: str | None = None,
        storage: str | Any = "memory://",
        strategy: Literal["fixed-window", "moving-window", "sliding-window"] = "fixed-window",
        key: Literal["client"] | str | Callable[[RequestHead], str] = "client",
        trusted_proxies: int | Sequence[str] = 0,
        fail_open: bool = False,
        timeout: float = 0.5,
        prefix: str = "hmacguard",
        breaker_reset: float = 5.0,
    ) -> None:
        try:
            import limits
            from limits import storage as limits_storage
            from limits import strategies
            from limits.errors import StorageError
        except ImportError:
            raise ConfigurationError(
                "RateLimiter needs the limits package: pip install 'hmacguard[ratelimit]'"
            ) from None
        if strategy not in _STRATEGIES:
            raise ConfigurationError(f"strategy must be one of {', '.join(_STRATEGIES)}")
        budgets = []
        for name, text, unit in (
            ("requests", limit, None),
            ("bytes", bytes_limit, "content-bytes"),
            ("failures", failure_limit, None),
        ):
            if text is None:
                continue
            try:
                item = limits.parse(text)
            except ValueError:
                raise ConfigurationError(f"{name} limit {text!r} is not like '60/minute'") from None
            budgets.append(_Budget(name, item, unit))
        if not budgets:
            raise ConfigurationError("a RateLimiter needs at least one of limit, bytes_limit, failure_limit")
        self._budgets = {b.name: b for b in budgets}
        if isinstance(trusted_proxies, bool) or (isinstance(trusted_proxies, int) and trusted_proxies < 0):
            raise ConfigurationError("trusted_proxies must be a count >= 0 or a list of networks")
        self._trusted: int | tuple[Network, ...] = (
            trusted_proxies if isinstance(trusted_proxies, int) else networks(trusted_proxies)
        )
        if isinstance(trusted_proxies, int) and trusted_proxies > 0:
            warnings.warn(
                f"RateLimiter(trusted_proxies={trusted_proxies}) trusts X-Forwarded-For from any peer: a "
                "client that reaches the server directly can choose its rate-limit key. Prefer the "
                "proxies' networks, e.g. trusted_proxies=['10.0.0.0/8'].",
                UserWarning,
                stacklevel=2,
            )
        if callable(key):
            self._key_func: Callable[[RequestHead], str] | None = key
            self._key_header = None
        elif key == "client":
            self._key_func, self._key_header = None, None
        elif isinstance(key, str) and key.startswith("header:") and len(key) > 7:
            self._key_func, self._key_header = None, key[7:].strip().lower()
        else:
            raise ConfigurationError("key must be 'client', 'header:<Name>' or a callable")
        build, self.blocking, breaker_key = storage_builder(storage, timeout, limits_storage)
        self._strategy: Any = {
            "fixed-window": strategies.FixedWindowRateLimiter,
            "moving-window": strategies.MovingWindowRateLimiter,
            "sliding-window": strategies.SlidingWindowCounterRateLimiter,
        }[strategy]
        self._build_storage = build
        self._sliding = strategy == "sliding-window"  # its windows' keys are hash-tagged (_window_key)
        self._storage_obj: Any = None
        self._limiter_obj: Any = None
        # A Cluster client reads the slot map when it is built: built at the first store call,
        # inside the breaker, so a worker starts (fail-open passes, fail-closed 503s) while the
        # Cluster is down. Every other storage is built now, so a mistake shows at start-up.
        lazy = isinstance(storage, str) and is_cluster_url(storage)
        if lazy:
            check_url(storage)
        else:
            self._build()
        self.store_errors: tuple[type[BaseException], ...] = (
            StorageError,
            OSError,
            ConnectionError,
            *redis_errors(),
        )
        # One breaker per store server, shared with a replay store on the same Redis.
        self.breaker = (
            shared_breaker(breaker_key, reset_after=breaker_reset)
            if breaker_key
            else CircuitBreaker(reset_after=breaker_reset)
        )
        self.fail_open = fail_open
        self.prefix = prefix
        self.policy_header = ", ".join(self._policy_item(b) for b in budgets)
        failures = self._budgets.get("failures")
        # How long, at least, a request's in-flight lease lives on Redis: longer than any request
        # (bodies time out well within a minute; admit() stretches it to a longer body timeout),
        # short enough that a worker killed mid-request frees what it held within a window.
        self._in_flight_expiry = max(
            [
                60,
                *(
                    int(budget.item.get_expiry())
                    for budget in (failures, self._budgets.get("bytes"))
                    if budget
                ),
            ]
        )
        # In-process storage: the count lives beside it, exact and without expiry (a storage key's
        # expiry is set when it is created and never moved, so it would lapse under steady load
        # with requests in flight, which then stop counting). The process is its only writer.
        self._local_in_flight = None if self.blocking else local_counts(self._storage)
        self._redis_storage = lazy or isinstance(self._storage, limits_storage.RedisStorage)
        #: On a Cluster each node has its own breaker (``_node_of``).
        self._cluster = lazy or isinstance(self._storage, limits_storage.RedisClusterStorage)
        self._in_flight_lua: Any = None
        self._pipelined: bool | None = None  # see _windows_pipelined
        # In-flight releases the store could not take when a request ended (a blip, the breaker
        # open), by (key, counter, lease): paid at the next admission or settle once it answers
        # again, so a leaked reservation does not refuse the client until its lease lapses.
        self._owed: dict[tuple[str, str, str], int] = {}
        self._owed_lock = threading.Lock()

    def _build(self) -> None:
        storage = self._build_storage()
        self._limiter_obj = self._strategy(storage)
        self._storage_obj = storage

    @property
    def _storage(self) -> Any:
        """The ``limits`` storage (built on first use for a Cluster; call it inside the breaker)."""
        if self._storage_obj is None:
            self._build()
        return self._storage_obj

    @property
    def _limiter(self) -> Any:
        """The ``limits`` strategy over :attr:`_storage`."""
        if self._limiter_obj is None:
            self._build()
        return self._limiter_obj

    @staticmethod
    def _policy_item(budget: _Budget) -> str:
        item = budget.item
        window = int(item.get_expiry())
        unit = f';qu="{budget.unit}"' if budget.unit else ""
        return f'"{budget.name}";q={int(item.amount)}{unit};w={window}'

    # -- keys ------------------------------------------------------------------------------------
    def _cluster_storage(self) -> Any:
        """On a Cluster, the storage, built through the Cluster's breaker if it is not yet
        (``StoreCalls._connect``); ``None`` elsewhere, or when it cannot be built now."""
        if not self._cluster or (self._storage_obj is None and not self._connect(lambda: self._storage)):
            return None
        return self._storage_obj

    def _node_of(self, key: str) -> str | None:
        storage = self._cluster_storage()
        return None if storage is None else cluster_node(storage.get_connection(), key)

    def _window_key(self, budget: _Budget, key: str) -> str | None:
        """The Redis key of ``budget``'s window for ``key``, to route a call on a Cluster by
        (``None`` elsewhere, or while the Cluster's storage cannot be built: the Cluster's breaker)."""
        storage = self._cluster_storage()
        if storage is None:
            return None
        name = budget.item.key_for(self.prefix, budget.name, key)
        if self._sliding:
            # limits keeps a sliding window in two keys hash-tagged by its name ("{name}" and
            # "{name}/-1"): in the name's slot, not the prefixed name's. Routed by the latter, a
            # window on a dead node failed through a live node's breaker and opened it, refusing
            # (or, failing open, skipping) that node's replay checks (test_review_cluster_nodes.py).
            name = getattr(storage, "_current_window_key", lambda whole: f"{{{whole}}}")(name)
        # limits >= 4 prefixes its keys ("LIMITS:" by default); earlier versions used them as is.
        prefixed = getattr(storage, "prefixed_key", str)
        return str(prefixed(name))

    def _in_flight_key(self, key: str, counter: str) -> str | None:
        """The Redis key of an in-flight count, to route a call on a Cluster by (see _window_key)."""
        if not self._cluster:
            return None
        return in_flight_keys(f"{self.prefix}/{counter}/{key}")[0]

    def key_for(self, head: RequestHead) -> str:
        """The budget key for a request: client address, key-id header, or the custom function."""
        if self._key_func is not None:
            raw = str(self._key_func(head))
        elif self._key_header is not None:
            raw = "id:" + head.headers.get(self._key_header, "").strip()[:128]
        else:
            raw = "ip:" + client_address(head.peer, head.headers, trusted_proxies=self._trusted)
        return raw

    # -- store calls (may block on Redis) ---------------------------------------------------------

    def _retry_after(self, budget: _Budget, key: str) -> int:
        stats = self._call(
            lambda: self._limiter.get_window_stats(budget.item, self.prefix, budget.name, key),
            None,
            self._window_key(budget, key),
        )
        if stats is None:
            return 1
        return max(1, math.ceil(float(stats.reset_time) - time.time()))

    def admit(
        self,
        key: str,
        *,
        declared_bytes: int | None,
        most_bytes: int | None = None,
        longest: float | None = None,
    ) -> RateState:
        """Spend one request and check the other budgets; 429 when any is exhausted.

        ``declared_bytes``: the body's declared length; ``None`` when unknown, and then
        ``most_bytes`` is what it may bring (the verifier's cap for a chunked body; ``None`` for a
        malformed length, refused once the headers are checked). With a bytes or a failure budget the
        request is counted in flight until :meth:`settle` (see the module docstring); call that
        exactly once for every state this returns. ``longest``: the seconds the request may take
        to be settled (its body timeout), which its lease on Redis outlives.
        """
        if self._owed:
            self._pay_owed()
        ids = (self.prefix,)
        requests = self._budgets.get("requests")
        if requests is not None and not self._call(
            lambda: self._limiter.hit(requests.item, *ids, "requests", key),
            True,
            self._window_key(requests, key),
        ):
            raise _exhausted("too many requests", requests.name, self._retry_after(requests, key))
        volume = self._budgets.get("bytes")
        failures = self._budgets.get("failures")
        reserved = 0  # bytes counted in flight, to release if this admission fails
        in_flight = False
        lease = "" if self._local_in_flight is not None else self._new_lease(longest)
        # Fixed windows on Redis: the rooms are asked after both counts, in the one pipelined read
        # that also fills the RateLimit field (four round trips for an admission, not eleven).
        deferred: list[tuple[_Budget, int, str]] | None = [] if self._windows_pipelined() else None
        try:
            if volume is not None:
                if declared_bytes is not None:  # past the whole budget it is refused anyway:
                    # capped, so that no length overflows Redis's 64-bit INCRBY (a store error,
                    # which would open the breaker shared with the replay store)
                    size = max(1, min(declared_bytes, int(volume.item.amount) + 1))
                else:  # as much as the cap allows, but never more than the whole budget
                    size = max(1, min(most_bytes or 0, int(volume.item.amount)))
                reserved = self._take_room(
                    key, volume, size, "in-flight-bytes", "too many bytes", lease, deferred
                )
            if failures is not None:
                in_flight = bool(
                    self._take_room(
                        key, failures, 1, "in-flight", "too many failed verifications", lease, deferred
                    )
                )
            if deferred is not None:
                windows = self._read_windows(key)
                for budget, room, refusal in deferred:
                    _check_room(windows, budget, room, refusal)
                remaining = _window_fields(windows, self._budgets.values())
            else:
                remaining = self._remaining(key)
            return RateState(key, tuple(remaining), in_flight, reserved, lease)
        except BaseException:
            # Refused, or the store failed after counting us: nobody will settle this admission.
            # Each count undone on its own: a store failing on one must not skip the other.
            if in_flight:
                self._leave_in_flight(key, 1, "in-flight", lease)
            if reserved:
                self._leave_in_flight(key, reserved, "in-flight-bytes", lease)
            raise

    def _new_lease(self, longest: float | None) -> str:
        """A lease for one request's in-flight counts on Redis: a random name, and the milliseconds
        it lives -- a margin past the request's longest life (the store calls around its body), at
        least the in-flight expiry. (The name is random so that no other request can give it back.)"""
        life = float(self._in_flight_expiry)
        if longest is not None and math.isfinite(longest):  # no body timeout: the expiry alone
            life = max(life, longest + 10.0)
        return f"{secrets.token_hex(8)}/{int(life * 1000)}"

    def _take_room(
        self,
        key: str,
        budget: _Budget,
        size: int,
        counter: str,
        refusal: str,
        lease: str,
        deferred: list[tuple[_Budget, int, str]] | None = None,
    ) -> int:
        """Count ``size`` in flight on ``counter`` first, then ask ``budget`` for room for every
        request in flight, so that concurrent admissions cannot all take the same room; 429 (the
        count undone) when there is none. What was counted: ``size``, or 0 when a fail-open store
        could not count. With ``deferred``, the question is appended there instead, for the
        caller to ask (and to undo the count if refused)."""
        # Whether the take will reach the store: with the breaker open it fails without a call,
        # and there is nothing to give back.
        reaches_store = bool(lease) and not self._refused(self._in_flight_key(key, counter))
        # A take on Redis that raised or failed open may still have run (the client gave up on a
        # stalled server, which ran it later): its give-back is owed, paid at a later call once the
        # store answers -- harmless if it never ran (a lease never taken gives back nothing). Not
        # sent now: the stalled take could land after it.
        try:
            counted = self._count_in_flight(key, size, counter, lease)
        except BaseException:
            if reaches_store:
                self._owe(key, size, counter, lease)
            raise
        if counted is None and reaches_store:
            self._owe(key, size, counter, lease)
        room = max(size, counted or 0)
        if deferred is not None:
            deferred.append((budget, room, refusal))
            return size if counted is not None else 0
        try:
            if not self._call(
                lambda: self._limiter.test(budget.item, self.prefix, budget.name, key, cost=room),
                True,
                self._window_key(budget, key),
            ):
                raise _exhausted(refusal, budget.name, self._retry_after(budget, key))
        except BaseException:
            if counted is not None:
                self._leave_in_flight(key, size, counter, lease)
            raise
        return size if counted is not None else 0

    def _count_in_flight(
        self, key: str, delta: int, counter: str = "in-flight", lease: str = ""
    ) -> int | None:
        """Move one of the key's in-flight counts (``None`` when a fail-open store could not)."""
        if self._local_in_flight is not None:  # in-process: no store to fail, no breaker to ask
            return self._local_in_flight.add(f"{self.prefix}/{counter}/{key}", delta)
        count: int | None = self._call(
            lambda: self._in_flight(key, delta, counter, lease), None, self._in_flight_key(key, counter)
        )
        return count

    def _in_flight(self, key: str, delta: int, counter: str = "in-flight", lease: str = "") -> int:
        """Add ``delta`` to one of the key's in-flight counts under ``lease`` (on Redis: take or
        give back that lease; 0 reads the count)."""
        in_flight_key = f"{self.prefix}/{counter}/{key}"
        local = self._local_in_flight
        if local is not None:
            return local.add(in_flight_key, delta)
        script = self._in_flight_script()
        if script is not None:
            name, _, life = lease.partition("/")
            held = f"{name}:{abs(delta)}"
            return int(script(keys=in_flight_keys(in_flight_key), args=[held, delta, life or 0]))
        if delta < 0 and hasattr(self._storage, "decr"):
            return int(self._storage.decr(in_flight_key, -delta))
        storage: Any = self._storage  # sync storages only (the async ones are never built here)
        return int(storage.incr(in_flight_key, self._in_flight_expiry, amount=delta))

    def _in_flight_script(self) -> Any:
        """On Redis, one script that counts leases, each lapsing on its own. (limits' own ``incr``
        sets the expiry only when a counter starts, so with steady traffic the key lapsed with
        requests in flight, and their decrements went below zero; a key kept alive by every touch
        instead kept a dead worker's count for as long as its client sent.)"""
        if self._in_flight_lua is None and self._redis_storage:
            connection = self._storage.get_connection()
            # On a Cluster, loaded per node (KeyedScript); elsewhere redis-py's own loading is fine.
            self._in_flight_lua = (
                KeyedScript(connection, IN_FLIGHT_LUA)
                if self._cluster
                else connection.register_script(IN_FLIGHT_LUA)
            )
        return self._in_flight_lua

    def settle(self, state: RateState, received: int, *, failed: bool) -> None:
        """The outcome of an admitted request: bytes received, and whether verification failed.

        The failure and the bytes are recorded *before* the request leaves the in-flight counts, so
        at no moment do the two together undercount (a concurrent admission in between would
        overrun the budget).
        """
        key = state.key
        if self._owed:
            self._pay_owed()
        try:
            self.spend_bytes(key, received)
            if failed:
                self.record_failure(key)
        finally:
            if state.in_flight:
                self._leave_in_flight(key, 1, "in-flight", state.lease)
            if state.bytes_in_flight:
                self._leave_in_flight(key, state.bytes_in_flight, "in-flight-bytes", state.lease)

    def _leave_in_flight(self, key: str, amount: int, counter: str, lease: str) -> None:
        """Give ``amount`` back to one of the key's in-flight counts; when the store cannot answer
        now, owe it (see ``_owed``). Never raises: the request's answer is decided."""
        if not self._try_decrement(key, amount, counter, lease):
            self._owe(key, amount, counter, lease)

    def _owe(self, key: str, amount: int, counter: str, lease: str) -> None:
        owed_as = (key, counter, lease)
        with self._owed_lock:
            owed = self._owed
            if len(owed) < _MAX_OWED or owed_as in owed:
                owed[owed_as] = owed.get(owed_as, 0) + amount

    def _try_decrement(self, key: str, amount: int, counter: str, lease: str) -> bool:
        try:
            return self._count_in_flight(key, -amount, counter, lease) is not None
        except RequestRejected:  # the store failed (fail-closed), or its breaker is open
            return False

    def _pay_owed(self) -> None:
        """Make the decrements owed, as far as the store answers (cheap while its breaker is open:
        each call fails at once, or is not made).

        Each is tried unless its breaker is open, not only until the first that fails: on a
        Cluster each node has its own breaker, and one owed on a dead node must not keep those
        owed on the live nodes unpaid (a live client's in-flight count then held what nothing
        used, refusing it until the leases lapsed). The first failure on a node opens its
        breaker, so the others owed there are kept without a call."""
        with self._owed_lock:
            owed, self._owed = self._owed, {}
        kept: list[tuple[tuple[str, str, str], int]] = []
        for (key, counter, lease), amount in owed.items():
            if self._refused(self._in_flight_key(key, counter)) or not self._try_decrement(
                key, amount, counter, lease
            ):
                kept.append(((key, counter, lease), amount))
        if kept:
            with self._owed_lock:  # still down: keep them, with what was owed meanwhile
                for pair, rest in kept:
                    self._owed[pair] = self._owed.get(pair, 0) + rest

    def _remaining(self, key: str) -> list[tuple[str, int, int]]:
        """Each budget's ``(name, remaining, seconds to reset)``, for the ``RateLimit`` field, asked
        of ``limits`` (fixed windows on Redis are read at once instead: :meth:`_read_windows`)."""
        out = []
        now = time.time()
        for budget in self._budgets.values():
            stats = self._call(
                lambda b=budget: self._limiter.get_window_stats(b.item, self.prefix, b.name, key),  # type: ignore[misc]
                None,
                self._window_key(budget, key),
            )
            if stats is not None:
                out.append(
                    (budget.name, max(0, int(stats.remaining)), max(0, math.ceil(stats.reset_time - now)))
                )
        return out

    def _windows_pipelined(self) -> bool:
        """Whether the fixed windows live in Redis keys this limiter can read itself (any
        ``limits`` Redis storage: one server, Cluster or Sentinel). Decided without building the
        storage: a Cluster's is built on first use, inside the breaker."""
        if self._pipelined is None:
            from limits import strategies

            self._pipelined = self._strategy is strategies.FixedWindowRateLimiter and self._redis_storage
        return self._pipelined

    def _read_windows(self, key: str) -> dict[str, tuple[int, int]] | None:
        """Every budget's fixed window for ``key`` -- its count and its milliseconds left -- in
        one pipelined round trip; ``None`` when a fail-open store could not answer. ``limits``
        reads a window with a GET and a TTL, one round trip each: three budgets cost six on every
        admission, a third of its time (bench/bench_redis_leases.py). The same keys and the same
        reads, on the primary (never a replica under Sentinel: see ``limit_stores``). On a
        Cluster, one read per node the windows live on, each through that node's breaker; failing
        open, the windows of the nodes that answered (a budget missing has room)."""
        windows: dict[str, tuple[int, int]] = {}
        for budgets in self._by_node(key):

            def read(budgets: tuple[_Budget, ...] = budgets) -> list[Any]:
                storage = self._storage  # built here for a Cluster: its failure is the store's
                # limits >= 4 prefixes its keys ("LIMITS:" by default); earlier versions used them as is.
                prefixed = getattr(storage, "prefixed_key", str)
                pipe = storage.get_connection().pipeline(transaction=False)
                for budget in budgets:
                    name = prefixed(budget.item.key_for(self.prefix, budget.name, key))
                    pipe.get(name)
                    pipe.pttl(name)
                return list(pipe.execute())

            values = self._call(read, None, self._window_key(budgets[0], key))
            if values is None:
                # Failing open on this node only: the windows the live nodes answered still count
                # (a dead node's bytes window must not lift a live node's failure budget).
                continue
            for at, budget in enumerate(budgets):
                windows[budget.name] = (int(values[2 * at] or 0), int(values[2 * at + 1]))
        return windows or None

    def _by_node(self, key: str) -> list[tuple[_Budget, ...]]:
        """The budgets, grouped by the Cluster node their windows for ``key`` live on (one group
        elsewhere, or before the Cluster's storage is built)."""
        budgets = tuple(self._budgets.values())
        if not self._cluster or len(budgets) == 1:
            return [budgets]
        groups: dict[str | None, list[_Budget]] = {}
        for budget in budgets:
            name = self._window_key(budget, key)
            groups.setdefault(None if name is None else self._node_of(name), []).append(budget)
        return [tuple(group) for group in groups.values()]

    def spend_bytes(self, key: str, amount: int) -> None:
        """Charge the body bytes actually received (no-op without a ``bytes_limit``)."""
        volume = self._budgets.get("bytes")
        if volume is not None and amount > 0:
            self._call(
                lambda: self._limiter.hit(volume.item, self.prefix, "bytes", key, cost=amount),
                True,
                self._window_key(volume, key),
            )

    def record_failure(self, key: str) -> None:
        """Charge one failed verification (no-op without a ``failure_limit``)."""
        failures = self._budgets.get("failures")
        if failures is not None:
            self._call(
                lambda: self._limiter.hit(failures.item, self.prefix, "failures", key),
                True,
                self._window_key(failures, key),
            )

    def headers(self, state: RateState | None, error: RequestRejected | None = None) -> list[tuple[str, str]]:
        """``RateLimit-Policy`` and ``RateLimit`` fields for a response (a 429 names the exhausted
        budget with ``r=0`` and its reset time)."""
        out = [("RateLimit-Policy", self.policy_header)]
        if isinstance(error, RateLimited) and error.budget in self._budgets:
            out.append(("RateLimit", f'"{error.budget}";r=0;t={error.retry_after}'))
        elif state is not None and state.remaining:
            out.append(("RateLimit", ", ".join(f'"{n}";r={r};t={t}' for n, r, t in state.remaining)))
        return out

    def forget(self, key: str) -> None:
        """Clear ``key``'s windows, every budget's (an operator unlocking one client; the store
        check's clean-up). Its in-flight counts are not touched: they leave with their requests."""
        for budget in self._budgets.values():
            self._call(
                lambda b=budget: self._limiter.clear(b.item, self.prefix, b.name, key),  # type: ignore[misc]
                None,
                self._window_key(budget, key),
            )

    def reset(self) -> None:
        """Forget every budget (tests and operators; not used per request)."""
        self._call(lambda: self._storage.reset(), None)
        if self._local_in_flight is not None:
            self._local_in_flight.clear()
