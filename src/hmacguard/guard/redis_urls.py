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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from hmacguard.errors import ConfigurationError

__all__ = ["REDIS_SCHEMES", "check_url", "endpoint_key", "keyspace_key", "redis_client"]

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
