"""The ``limits`` storage behind a :class:`~hmacguard.guard.ratelimit.RateLimiter`, and the
in-flight counters beside it.

A storage is named by URL (``memory://``, ``redis://``, ``redis+cluster://``,
``redis+sentinel://``...), given as a ``limits`` storage object, or made from a redis-py client's
connection pool. In-flight counts live in the process for in-process storages, exact and without
expiry, and in one Redis script for Redis storages (never below zero, alive while used).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.redis_urls import endpoint_key

__all__ = ["IN_FLIGHT_LUA", "LocalCounts", "local_counts", "redis_errors", "storage_builder"]

# The in-flight counter on Redis: add ARGV[1], never below zero, and live ARGV[2] ms past its last use.
IN_FLIGHT_LUA = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count < 0 then
  redis.call('SET', KEYS[1], 0)
  count = 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return count
"""


def redis_errors() -> tuple[type[BaseException], ...]:
    # A limits storage built by the caller may not wrap its client's errors, and none wraps
    # RedisClusterException (not a RedisError), what a Cluster client raises once every primary is gone.
    try:
        import redis
    except ImportError:
        return ()
    return (redis.RedisError, redis.exceptions.RedisClusterException)


def storage_builder(
    storage: Any, timeout: float, limits_storage: Any
) -> tuple[Callable[[], Any], bool, str | None]:
    """How to build the ``limits`` storage for ``storage``, whether it blocks, and its breaker's key.

    ``storage``: a URL (``memory://``, ``redis://``, ``redis+cluster://``, ``redis+sentinel://``, or
    any other ``limits`` reads), a ``limits`` storage object, or a redis-py client (a ``Redis``, or a
    Sentinel's ``master_for``), whose connection pool is then shared.
    """
    if isinstance(storage, str):
        blocking = not storage.startswith("memory://")
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if blocking:
            options.update(socket_timeout=timeout, socket_connect_timeout=timeout)

        def build() -> Any:
            from limits.errors import StorageError

            outage: tuple[type[BaseException], ...] = (StorageError, OSError, *redis_errors())
            try:
                return limits_storage.storage_from_string(storage, **options)
            except outage:
                raise  # the store is down: an outage, for the breaker to judge
            except Exception as exc:  # limits raises its own ConfigurationError and ValueError alike
                raise ConfigurationError(f"rate-limit storage {storage!r}: {exc}") from None

        return build, blocking, endpoint_key(storage) if blocking else None
    if isinstance(storage, limits_storage.Storage):
        blocking = not isinstance(storage, limits_storage.MemoryStorage)
        return (lambda: storage), blocking, f"object:{id(storage)}" if blocking else None
    pool = getattr(storage, "connection_pool", None)
    if pool is not None and callable(getattr(storage, "execute_command", None)):
        built = limits_storage.RedisStorage("redis://", connection_pool=pool, wrap_exceptions=True)
        return (lambda: built), True, f"client:{id(storage)}"
    raise ConfigurationError(
        "rate-limit storage must be a URL, a limits storage, or a redis-py client with a connection "
        f"pool (for a Redis Cluster, pass its redis+cluster:// URL), not {type(storage).__name__}"
    )


class LocalCounts:
    """Counters that stop at zero and never expire, for one in-process storage (thread-safe)."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, key: str, delta: int) -> int:
        with self._lock:
            value = max(0, self._counts.get(key, 0) + delta)
            if value:
                self._counts[key] = value
            else:
                self._counts.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


#: One set of in-flight counts per in-process storage, shared by the limiters that share it.
_LOCAL_COUNTS: weakref.WeakKeyDictionary[Any, LocalCounts] = weakref.WeakKeyDictionary()
_LOCAL_COUNTS_LOCK = threading.Lock()


def local_counts(storage: Any) -> LocalCounts:
    with _LOCAL_COUNTS_LOCK:
        counts = _LOCAL_COUNTS.get(storage)
        if counts is None:
            counts = _LOCAL_COUNTS[storage] = LocalCounts()
        return counts
