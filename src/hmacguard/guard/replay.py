"""Replay protection: remember each delivery id (or nonce) for as long as a replay could be accepted.

A store answers one question, atomically: "reserve this key for ``ttl`` seconds -- was it new?". The
verifier asks only after the signature has been verified, so an attacker cannot fill the store (or
burn a legitimate delivery's id) with forged requests.

- :class:`MemoryReplayStore` (the default): one process, bounded in entries and by TTL. Enough for a
  single worker; with several workers each has its own memory and a replay to another worker passes.
- :class:`RedisReplayStore`: ``SET key 1 NX PX ttl`` on a Redis shared by every worker and host.
  redis-py is imported when the store is created, never by ``import hmacguard``.

When the store cannot answer, :class:`~hmacguard.errors.StoreUnavailable` (503) is raised: fail
closed. A store built with ``fail_open=True`` instead logs a warning and lets the request through --
availability over replay protection, a choice the operator makes knowingly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hmacguard.errors import ConfigurationError, StoreUnavailable

if TYPE_CHECKING:
    import redis

__all__ = ["MemoryReplayStore", "RedisReplayStore", "ReplayStore"]

log = logging.getLogger("hmacguard.guard.replay")

#: Default bound on the in-memory store; a full store evicts its oldest entries first.
DEFAULT_MAX_ENTRIES = 100_000


@runtime_checkable
class ReplayStore(Protocol):
    """What the verifier needs from a replay store."""

    #: Whether :meth:`reserve` may block on the network (the ASGI middleware then runs it in a
    #: worker thread instead of on the event loop).
    blocking: bool

    def reserve(self, key: str, ttl: float) -> bool:
        """Atomically record ``key`` for ``ttl`` seconds; ``True`` if it was not already there.

        Raises :class:`~hmacguard.errors.StoreUnavailable` when the store cannot answer (unless the
        store was configured fail-open, in which case it logs and returns ``True``).
        """
        ...


class MemoryReplayStore:
    """An in-process store bounded in entries (oldest evicted first) and by each entry's TTL.

    Thread-safe (one lock around a dict), so one instance serves every thread of a worker. Eviction
    of an unexpired entry when full is logged once per burst: it means the bound is too small for the
    traffic inside one tolerance window, and a replay of an evicted id would pass.
    """

    blocking = False

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive integer, not {max_entries!r}")
        self.max_entries = max_entries
        self._clock = clock
        # key -> expiry; insertion order is reservation order, so expired entries cluster at the front
        # as long as TTLs are equal (they are, per verifier).
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._warned = False

    def __len__(self) -> int:
        return len(self._entries)

    def reserve(self, key: str, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            self._expire(now)
            expiry = self._entries.get(key)
            if expiry is not None and expiry > now:
                return False
            self._entries[key] = now + ttl
            self._entries.move_to_end(key)
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "replay store full (%d entries): evicting unexpired delivery ids",
                        self.max_entries,
                    )
            return True

    def _expire(self, now: float) -> None:
        # Amortised O(1): each entry is popped once; stop at the first live one.
        entries = self._entries
        while entries:
            key, expiry = next(iter(entries.items()))
            if expiry > now:
                break
            del entries[key]
            self._warned = False


class RedisReplayStore:
    """Delivery ids in Redis, shared by every worker and host: ``SET <prefix><key> 1 NX PX <ttl>``.

    Built from a URL (``redis://host:port/db``) or an existing ``redis.Redis`` client. Short socket
    timeouts by default: a Redis that does not answer within ``timeout`` seconds is unavailable, and the
    request fails closed with 503 rather than hanging a worker (or passes, with ``fail_open=True``).
    """

    blocking = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "hmacguard:replay:",
        timeout: float = 0.5,
        fail_open: bool = False,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("RedisReplayStore needs exactly one of url= or client=")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        try:
            import redis as redis_module
        except ImportError:
            raise ConfigurationError(
                "RedisReplayStore needs redis-py: pip install 'hmacguard[redis]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis_module.RedisError, OSError)
        if client is None:
            try:
                client = redis_module.Redis.from_url(
                    str(url),
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    health_check_interval=0,
                )
            except ValueError as exc:
                raise ConfigurationError(f"bad Redis URL: {exc}") from None
        self.client = client
        self.prefix = prefix
        self.fail_open = fail_open

    def reserve(self, key: str, ttl: float) -> bool:
        try:
            created = self.client.set(self.prefix + key, b"1", nx=True, px=max(1, int(ttl * 1000)))
        except self._errors as exc:
            if self.fail_open:
                log.warning("replay store unavailable, passing request (fail-open): %s", type(exc).__name__)
                return True
            raise StoreUnavailable("the replay store is unavailable") from None
        return bool(created)

    def close(self) -> None:
        self.client.close()
