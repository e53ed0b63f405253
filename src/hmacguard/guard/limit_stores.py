"""The ``limits`` storage behind a :class:`~hmacguard.guard.ratelimit.RateLimiter`, and the
in-flight counters beside it.

A storage is named by URL (``memory://``, ``redis://``, ``redis+cluster://``,
``redis+sentinel://``...), given as a ``limits`` storage object, or made around a redis-py client.
A Redis URL is read by :mod:`hmacguard.guard.redis_urls`, as for the replay store -- TLS options,
the data nodes' credentials, Sentinel's own -- and the storage built from what it says: ``limits``
reading the URL itself would not know ``rediss+cluster://`` nor ``rediss+sentinel://``, would drop
their options (a private CA among them), would not decode a percent-encoded password, and would
send the data nodes' credentials to the Sentinels.

In-flight counts live in the process for in-process storages, exact and without expiry, and for
Redis storages as leases that lapse one by one (one script: never below zero, a dead worker's
lease gone after its lifetime however busy the client is).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.redis_urls import (
    CLUSTER_OPTIONS,
    REDIS_SCHEMES,
    check_server_options,
    endpoint_key,
    keyed_scripts,
    parse_url,
    redacted,
    refuse_asyncio_client,
    socket_timeouts,
)

__all__ = [
    "IN_FLIGHT_LUA",
    "LocalCounts",
    "in_flight_keys",
    "local_counts",
    "redis_errors",
    "storage_builder",
]

# The in-flight count on Redis, as leases: KEYS[1] the total, KEYS[2] a sorted set of the leases
# in flight ("<token>:<amount>", scored by the server-time millisecond it lapses at). ARGV[1] the
# lease, ARGV[2] the amount (> 0 take it, < 0 give it back, 0 read), ARGV[3] its lifetime in ms.
# Every call first drops (a bounded number of) lapsed leases -- a worker that died mid-request --
# so one client's steady traffic cannot keep a dead reservation alive; giving back a lease already
# lapsed or given back changes nothing, and taking one already taken neither (a client that retries
# a call that timed out, though the server ran it), so the total never counts a lease twice nor
# goes below zero.
# The two keys share a hash tag: one Cluster slot. (replicate_commands: before Redis 5, a script
# that reads TIME may write only when it replicates its effects; from 7 on it is the only way.)
IN_FLIGHT_LUA = """
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
if #lapsed > 0 then
  local amount = 0
  for _, lease in ipairs(lapsed) do
    amount = amount + (tonumber(string.match(lease, ':(%d+)$')) or 0)
  end
  redis.call('ZREM', KEYS[2], unpack(lapsed))
  redis.call('DECRBY', KEYS[1], amount)
end
local delta = tonumber(ARGV[2])
if delta > 0 then
  if redis.call('ZADD', KEYS[2], 'NX', now + tonumber(ARGV[3]), ARGV[1]) == 1 then
    redis.call('INCRBY', KEYS[1], delta)
  end
elseif delta < 0 and redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('DECRBY', KEYS[1], -delta)
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count < 0 then
  count = 0
  redis.call('SET', KEYS[1], 0)
end
redis.call('PEXPIREAT', KEYS[1], last[2])
redis.call('PEXPIREAT', KEYS[2], last[2])
return count
"""


def in_flight_keys(name: str) -> list[str]:
    """The two Redis keys of the in-flight count ``name``, in one Cluster slot: the whole name is
    their hash tag. Braces in it, from a client's key, are percent-encoded (with ``%`` itself): the
    tag would otherwise end at the first ``}``. The encoding is one-to-one, so no two client keys
    share a count (replacing ``{`` by ``(`` would have merged ``a{b`` with ``a(b``)."""
    escaped = name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    tag = "{" + escaped + "}"
    return [f"{tag}/total", f"{tag}/leases"]


def redis_errors() -> tuple[type[BaseException], ...]:
    # A limits storage built by the caller may not wrap its client's errors, and none wraps
    # RedisClusterException (not a RedisError), what a Cluster client raises once every primary is gone.
    try:
        import redis
    except ImportError:
        return ()
    return (redis.RedisError, redis.exceptions.RedisClusterException)


def _redis_storage(url: str, timeout: float, limits_storage: Any) -> Any:
    """The ``limits`` storage for a Redis URL, built as :func:`~hmacguard.guard.redis_urls.redis_client`
    builds the replay store's client. Unwrapped errors (``wrap_exceptions=False``): the breaker's log
    line then names redis-py's error (``AuthenticationError``), not ``StorageError``."""
    target = parse_url(url)
    timeouts = socket_timeouts(timeout)
    if target.kind == "cluster":
        return limits_storage.RedisClusterStorage(
            f"redis+cluster://{target.host_list()}",
            wrap_exceptions=False,
            **CLUSTER_OPTIONS,
            **target.connection_kwargs(),
            **timeouts,
        )
    if target.kind == "sentinel":
        # The URL carries no credentials: limits would send them to the Sentinels too.
        return limits_storage.RedisSentinelStorage(
            f"redis+sentinel://{target.host_list()}",
            service_name=target.service,
            sentinel_kwargs={**target.sentinel_kwargs(), **timeouts},
            wrap_exceptions=False,
            db=target.db,
            # Every read on the primary: limits reads a window on a replica by default, and
            # replication is asynchronous -- a spent budget read there as unspent for the lag (for
            # good while a replica stopped following), and settle's order, which keeps spent +
            # in flight from ever undercounting, holds only when both are read in one place
            # (tests/guard/test_sentinel_reads.py).
            use_replicas=False,
            **target.connection_kwargs(),
            **timeouts,
        )
    # One server: redis-py reads the URL (limits hands it to Redis.from_url), as for the replay store.
    check_server_options(url)
    return limits_storage.RedisStorage(url, wrap_exceptions=False, **timeouts)


def _cluster_client_storage(client: Any, limits_storage: Any) -> Any:
    """``limits``' Cluster storage around the caller's ``RedisCluster``: limits builds its own client
    from a URL only, which would lose whatever the caller's carries (TLS context, credential
    provider). Its constructor is skipped for that reason; what it sets, set here."""

    class ClientClusterStorage(limits_storage.RedisClusterStorage):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            limits_storage.Storage.__init__(self, "redis+cluster://", wrap_exceptions=False)
            self.key_prefix = limits_storage.RedisStorage.PREFIX
            self.target_server = "redis"
            self.dependency = self.dependencies["redis"].module
            self.storage = client
            self.initialize_storage("redis+cluster://")

    return ClientClusterStorage()


def storage_builder(
    storage: Any, timeout: float, limits_storage: Any
) -> tuple[Callable[[], Any], bool, str | None]:
    """How to build the ``limits`` storage for ``storage``, whether it blocks, and its breaker's key.

    ``storage``: a URL (``memory://``, a Redis URL as :mod:`~hmacguard.guard.redis_urls` reads it, or
    any other ``limits`` reads), a ``limits`` storage object, or a redis-py client (a ``Redis``, a
    Sentinel's ``master_for``, a ``RedisCluster``), which is then shared.
    """
    if isinstance(storage, str):
        blocking = not storage.startswith("memory://")
        redis_url = storage.partition("://")[0].lower() in REDIS_SCHEMES
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if blocking:
            options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
        if redis_url:
            parse_url(storage)  # a malformed URL shows at construction, even for a lazy Cluster

        def build() -> Any:
            from limits.errors import StorageError

            outage: tuple[type[BaseException], ...] = (StorageError, OSError, *redis_errors())
            try:
                if redis_url:
                    built = _redis_storage(storage, timeout, limits_storage)
                else:
                    built = limits_storage.storage_from_string(storage, **options)
                # On a Cluster, limits' own scripts (one per hit) loaded per node, as the guard's
                # are: redis-py's SCRIPT LOAD goes to every primary, and one dead stops them all.
                cluster = isinstance(built, limits_storage.RedisClusterStorage)
                return keyed_scripts(built) if cluster else built
            except outage:
                raise  # the store is down: an outage, for the breaker to judge
            except ConfigurationError:
                raise
            except Exception as exc:  # limits raises its own ConfigurationError and ValueError alike
                # Never the password: limits' messages quote the URL whole.
                shown = redacted(storage)
                raise ConfigurationError(
                    f"rate-limit storage {shown!r}: {str(exc).replace(storage, shown)}"
                ) from None

        return build, blocking, endpoint_key(storage) if blocking else None
    if isinstance(storage, limits_storage.Storage):
        blocking = not isinstance(storage, limits_storage.MemoryStorage)
        if isinstance(storage, limits_storage.RedisClusterStorage):
            # The caller's, loaded per node too: left to redis-py's SCRIPT LOAD (to every primary),
            # a dead primary failed each hit on a node without the script, and opened that live
            # node's breaker -- the replay store's too (test_review_cluster_nodes.py).
            keyed_scripts(storage)
        return (lambda: storage), blocking, f"object:{id(storage)}" if blocking else None
    # Before the duck-typed checks: an asyncio RedisCluster has get_primaries and keyslot too.
    refuse_asyncio_client(storage, "RateLimiter(storage=...)")
    if callable(getattr(storage, "get_primaries", None)) and callable(getattr(storage, "keyslot", None)):
        # Its scripts loaded per node, as for a Cluster URL (the storage is ours, the client the caller's).
        cluster = keyed_scripts(_cluster_client_storage(storage, limits_storage))
        return (lambda: cluster), True, f"client:{id(storage)}"
    pool = getattr(storage, "connection_pool", None)
    if pool is not None and callable(getattr(storage, "execute_command", None)):
        built = limits_storage.RedisStorage("redis://", connection_pool=pool, wrap_exceptions=False)
        return (lambda: built), True, f"client:{id(storage)}"
    raise ConfigurationError(
        "rate-limit storage must be a URL, a limits storage, or a redis-py client "
        f"(Redis, RedisCluster, a Sentinel's master_for), not {type(storage).__name__}"
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
