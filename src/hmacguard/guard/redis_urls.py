"""Redis deployments by URL -- one server, a Cluster, or Sentinel -- in the forms ``limits`` reads too,
so the replay store and the rate limiter are configured with the same string:

- ``redis://[:password@]host:port/db`` (``rediss://`` for TLS, ``unix://path``): one server;
- ``redis+cluster://[[user]:password@]host:port,host:port,...``: a Redis Cluster, found from any of the
  nodes listed (every key the guard writes lives in one slot, so every command and script works);
- ``redis+sentinel://[[user]:password@]host:port,host:port,.../service[/db]``: the primary that the
  Sentinels name for ``service``; after a failover the client asks them again.

redis-py is imported when a store is built, never by ``import hmacguard``. Every client gets the
same short socket timeouts, so an unreachable server is an error in ``timeout`` seconds, not a hung
worker.

On a Cluster, an outage is a node's: :func:`cluster_node` names the primary serving a key (each has
its own circuit breaker), and :class:`KeyedScript` runs the stores' Lua scripts without needing every
primary (redis-py's ``register_script`` loads a script with ``SCRIPT LOAD`` sent to all of them: with
one down, a process that had not run the script yet could run it nowhere).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from hmacguard.errors import ConfigurationError

__all__ = [
    "REDIS_SCHEMES",
    "KeyedScript",
    "check_url",
    "cluster_node",
    "endpoint_key",
    "is_cluster_url",
    "keyed_scripts",
    "keyspace_key",
    "redis_client",
]

REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


def _hosts(netloc: str, url: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """User name, password and ``(host, port)`` pairs of a possibly multi-host netloc."""
    credentials, _, hosts = netloc.rpartition("@")
    user, _, secret = credentials.partition(":")
    username = unquote(user) or None
    password = unquote(secret) or None
    pairs = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigurationError(f"bad Redis URL {url!r}: {item!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))
    return username, password, pairs


def check_url(url: str) -> None:
    """Raise ConfigurationError for a malformed Redis URL, without connecting to anything."""
    scheme = url.partition("://")[0].lower()
    if scheme not in REDIS_SCHEMES:
        choices = ", ".join(REDIS_SCHEMES)
        raise ConfigurationError(f"bad Redis URL {url!r}: the scheme must be one of {choices}")
    if "+" in scheme:
        _hosts(urlsplit(url).netloc, url)


def redis_client(url: str, *, timeout: float) -> Any:
    """A redis-py client for ``url`` (see the module docstring); ConfigurationError if malformed."""
    import redis

    scheme = url.partition("://")[0].lower()
    if scheme not in REDIS_SCHEMES:
        raise ConfigurationError(
            f"bad Redis URL {url!r}: the scheme must be one of {', '.join(REDIS_SCHEMES)}"
        )
    # Any: redis-py's clients take these under one name but declare them differently (or not at all).
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    parts = urlsplit(url)
    if scheme.endswith("+cluster"):
        from redis import cluster

        username, password, pairs = _hosts(parts.netloc, url)
        node: Any = cluster.ClusterNode
        nodes = [node(host, port) for host, port in pairs]
        return cluster.RedisCluster(
            startup_nodes=nodes,
            username=username,
            password=password,
            ssl=scheme.startswith("rediss"),
            **timeouts,
        )
    if scheme.endswith("+sentinel"):
        from redis import sentinel as sentinels

        username, password, pairs = _hosts(parts.netloc, url)
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ConfigurationError(f"bad Redis URL {url!r}: name the Sentinel service after the hosts")
        db = int(segments[1]) if len(segments) > 1 and segments[1].isdigit() else 0
        sentinel: Any = sentinels.Sentinel
        monitor = sentinel(pairs, sentinel_kwargs=dict(timeouts), **timeouts)
        return monitor.master_for(
            segments[0],
            db=db,
            username=username,
            password=password,
            ssl=scheme.startswith("rediss"),
            **timeouts,
        )
    try:
        return redis.Redis.from_url(url, health_check_interval=0, **timeouts)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL: {exc}") from None


def keyspace_key(url: str) -> str:
    """Which keys a store URL reaches: the URL without its credentials -- scheme, hosts, database
    (or Sentinel service) and options. Two stores built from one URL share their keys; spellings
    that differ are taken as different (the safe side: see ``OuterHold.covers``)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{hosts}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def endpoint_key(url: str) -> str:
    """What an outage belongs to: the hosts of a store URL, whatever its scheme, database or
    credentials (``127.0.0.1:6379``; ``a:7000,b:7001`` for a cluster; a unix socket's path)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or url
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        return url
    if "," not in hosts and ":" not in hosts.rpartition("]")[2]:
        hosts += ":6379"
    return hosts


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return url.partition("://")[0].lower().endswith("+cluster")


def cluster_node(client: Any, key: str) -> str | None:
    """The primary (``host:port``) that serves ``key`` as a redis-py ``RedisCluster`` client's slot map
    says now -- no I/O; the map follows failovers as the client re-reads it (after a MOVED answer,
    or a node that does not answer). ``None`` for any other client, or a slot the map does not cover."""
    get_node = getattr(client, "get_node_from_key", None)
    if get_node is None or getattr(client, "nodes_manager", None) is None:
        return None
    try:
        node = get_node(key)
    except Exception:  # SlotNotCoveredError, or a map being re-read: not known now
        return None
    name = getattr(node, "name", None)
    return name if isinstance(name, str) else None


class KeyedScript:
    """A Lua script run with ``EVALSHA`` on the server (or Cluster node) of its keys, and with ``EVAL``
    there when that server does not have it yet, which also loads it. Called as redis-py's
    ``Script`` is: ``script(keys=[...], args=[...])``.

    redis-py's ``Script`` loads a missing script with ``SCRIPT LOAD``, which a Cluster client sends
    to every primary: with one primary down that raises, and the script runs nowhere -- a fresh
    process (a new worker, a deploy during the outage) could then not commit, release or count
    anything even on the live primaries (tests/guard/test_redis_cluster_node_down.py).
    """

    __slots__ = ("client", "script", "sha")

    def __init__(self, client: Any, script: str | bytes | memoryview) -> None:
        self.client = client
        self.script = script
        encoded = script.encode() if isinstance(script, str) else bytes(script)
        self.sha = hashlib.sha1(encoded, usedforsecurity=False).hexdigest()

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None, client: Any = None
    ) -> Any:
        from redis.exceptions import NoScriptError

        target = self.client if client is None else client
        keys = list(keys or ())
        arguments = (*keys, *(args or ()))
        try:
            return target.evalsha(self.sha, len(keys), *arguments)
        except NoScriptError:
            return target.eval(self.script, len(keys), *arguments)


def keyed_scripts(storage: Any) -> Any:
    """``storage`` (a ``limits`` Redis storage) with each of its redis-py ``Script`` attributes
    replaced by the same script as a :class:`KeyedScript` (``limits`` runs one on every hit)."""
    try:
        from redis.commands.core import Script
    except ImportError:  # pragma: no cover - a Redis storage implies redis-py
        return storage
    for name, value in list(vars(storage).items()):
        if isinstance(value, Script):
            setattr(storage, name, KeyedScript(value.registered_client, value.script))
    return storage
