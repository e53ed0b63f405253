"""Redis deployments by URL -- one server, a Cluster, or Sentinel -- so the replay store and the rate
limiter are configured with the same string, and reach the same servers the same way:

- ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS, ``unix://path``): one server;
  redis-py reads the URL (``Redis.from_url``), query options included;
- ``redis+cluster://[[user]:password@]host:port,host:port,...``: a Redis Cluster, found from any of
  the nodes listed (every key the guard writes lives in one slot, so every command and script works);
- ``redis+sentinel://[[user]:password@]host:port,host:port,.../service[/db]``: the primary that the
  Sentinels name for ``service``; after a failover the client asks them again.

``rediss+cluster://`` and ``rediss+sentinel://`` are the same over TLS, to every node (for Sentinel:
to the Sentinels and to the data nodes alike). The server's certificate is verified against the
system's CAs, or a private CA's: ``?ssl_ca_certs=/path/ca.pem`` (also ``ssl_ca_path``;
``ssl_certfile`` and ``ssl_keyfile`` for a client certificate). ``ssl_cert_reqs=none`` turns
verification off -- encrypted, but to whoever answers: insecure, for a test bed only.

The URL's ``user:password`` (percent-encoded) are the data nodes' (an ACL user, or just a password
for the default user): the same for every form, as redis-py reads them. Sentinels often have no
password while the data nodes do, so the URL's are never sent to them; a Sentinel with its own gives
it as ``?sentinel_password=...`` (and ``sentinel_username=`` for an ACL user), the names of redis-py's
``Sentinel(sentinel_kwargs={"password": ...})`` and go-redis's ``SentinelPassword``. Cluster and
Sentinel URLs accept only the query options above: any other is a ConfigurationError (they used to
be silently dropped, a CA among them). Anything else -- credential providers, other TLS settings --
goes through a client object (``RedisReplayStore(client=...)``, ``RateLimiter(storage=client)``).

The ``limits`` storage behind a rate limiter is built from the same parsed URL
(:mod:`hmacguard.guard.limit_stores`), not by ``limits`` itself, which knows neither the ``rediss+``
Cluster and Sentinel schemes nor these options, and sends the URL's credentials to the Sentinels.

redis-py is imported when a store is built, never by ``import hmacguard``. Every client gets the
same short socket timeouts, so an unreachable server is an error in ``timeout`` seconds, not a hung
worker. Error messages show a URL without its secrets (:func:`redacted`).

On a Cluster, an outage is a node's: :func:`cluster_node` names the primary serving a key (each has
its own circuit breaker), and :class:`KeyedScript` runs the stores' Lua scripts without needing every
primary (redis-py's ``register_script`` loads a script with ``SCRIPT LOAD`` sent to all of them: with
one down, a process that had not run the script yet could run it nowhere).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from hmacguard.errors import ConfigurationError

__all__ = [
    "CLUSTER_OPTIONS",
    "REDIS_SCHEMES",
    "KeyedScript",
    "RedisTarget",
    "check_server_options",
    "check_url",
    "cluster_node",
    "endpoint_key",
    "is_cluster_url",
    "keyed_scripts",
    "keyspace_key",
    "parse_url",
    "redacted",
    "redis_client",
    "refuse_asyncio_client",
    "socket_timeouts",
    "url_secrets",
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

_CERT_REQS = ("none", "optional", "required")


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _cert_reqs(value: str) -> str:
    if value.lower() not in _CERT_REQS:
        raise ValueError(value)
    return value.lower()


#: The query options of a Cluster or Sentinel URL, as redis-py's connection keyword arguments.
_TLS_OPTIONS: dict[str, Any] = {
    "ssl_ca_certs": str,
    "ssl_ca_path": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": _cert_reqs,
    "ssl_check_hostname": _flag,
}
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
#: Query options whose value an error message may show: the TLS options, and redis-py's own
#: non-secret ones for a one-server URL. Any other (``password``, ``sentinel_password``, a mistyped
#: name) is shown as ``***`` (:func:`redacted`).
_SHOWN_OPTIONS = frozenset(
    [*_TLS_OPTIONS, "db", "socket_timeout", "socket_connect_timeout", "health_check_interval",
     "max_connections", "retry_on_timeout", "socket_keepalive", "readonly", "protocol", "client_name"]
)  # fmt: skip
#: Query options that are credentials: not part of what keys a store reaches (:func:`keyspace_key`).
_CREDENTIAL_OPTIONS = ("username", "password", *_SENTINEL_OPTIONS)


def _ambiguous(url: str) -> bool:
    """Whether ``url`` has a ``#``, or an ``@`` past its authority: a user name or password holding
    an unencoded ``/``, ``?`` or ``#`` (the authority ends there, so the ``@`` after the secret lands in
    the path, query or fragment). No parser can tell where its secret ends (nor can redis-py)."""
    rest = url.partition("://")[2]
    if "#" in rest:
        return True
    authority_end = min((i for i in (rest.find(c) for c in "/?") if i >= 0), default=len(rest))
    return "@" in rest[authority_end:]


def redacted(url: str) -> str:
    """``url`` fit for a log line or an error message: its password as ``***``, and the value of
    every query option but the known, non-secret ones (a mistyped ``sentinel_pasword=`` is secret
    too). A URL whose secret cannot be told apart (:func:`_ambiguous`) is shown as ``scheme://***``."""
    scheme = url.partition("://")[0]
    if _ambiguous(url):
        return f"{scheme}://***"
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = credentials.partition(":")
        credentials = f"{user}:***" if colon else "***"
        hosts = f"{credentials}@{hosts}"
    query = "&".join(
        f"{name}={value}" if name in _SHOWN_OPTIONS else f"{name}=***"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{hosts}{parts.path}" + (f"?{query}" if query else "")


def url_secrets(url: str) -> list[str]:
    """What :func:`redacted` hides in ``url``, as written and percent-decoded: its password and the
    values of its secret query options -- to scrub from any text that might quote them (a server's
    or a library's error message). The whole authority and query for a URL :func:`_ambiguous` makes
    unreadable."""
    rest = url.partition("://")[2]
    if _ambiguous(url):
        found = [rest]
    else:
        parts = urlsplit(url)
        credentials, at, _ = parts.netloc.rpartition("@")
        found = [credentials.partition(":")[2]] if at else []
        if at and ":" not in credentials:
            found.append(credentials)  # redis://secret@host: redis-py reads it as the password
        found += [
            value
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if name not in _SHOWN_OPTIONS
        ]
    secrets = {
        form for value in found if value for form in (value, unquote(value), quote(unquote(value), safe=""))
    }
    return sorted(secrets, key=len, reverse=True)  # longest first: a secret inside another


@dataclass(frozen=True)
class RedisTarget:
    """A Redis URL, parsed: what to reach, how, and as whom (see the module docstring)."""

    kind: str  #: ``server``, ``cluster`` or ``sentinel``
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()  #: a Cluster's nodes or the Sentinels (not for ``server``)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str | None = None  #: the Sentinel service
    db: int = 0
    #: TLS options from the query, as redis-py's keyword arguments.
    options: dict[str, Any] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def _tls_kwargs(self) -> dict[str, Any]:
        """redis-py's TLS keyword arguments, the same for the data nodes and the Sentinels."""
        return {"ssl": True, **self.options} if self.tls else {}

    def connection_kwargs(self) -> dict[str, Any]:
        """redis-py's keyword arguments for the data nodes: TLS, and the URL's credentials."""
        return {**self._tls_kwargs(), "username": self.username, "password": self.password}

    def sentinel_kwargs(self) -> dict[str, Any]:
        """redis-py's keyword arguments for the Sentinels: TLS as for the data nodes, and Sentinel's
        own credentials (both keys always present: ``limits`` would otherwise send the data nodes')."""
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return {
            **self._tls_kwargs(),
            "username": self.sentinel_username,
            "password": self.sentinel_password,
            # One try per Sentinel: the next Sentinel is the retry. redis-py 8 gives each client 10
            # retries with back-off, so a Sentinel that accepts and stays silent held a worker's
            # first store call about 10 s at timeout 0.5, before the breaker could open
            # (tests/guard/test_sentinel_silent.py).
            "retry": Retry(NoBackoff(), 0),
        }

    def host_list(self) -> str:
        """``host:port,host:port`` (IPv6 hosts in brackets), without credentials."""
        return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.hosts)


def _hosts(netloc: str, url: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """User name, password and ``(host, port)`` pairs of a possibly multi-host netloc."""
    credentials, _, hosts = netloc.rpartition("@")
    user, _, secret = credentials.partition(":")
    username = unquote(user) or None
    password = unquote(secret) or None
    pairs = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        # isascii: str.isdigit takes '²', which int() refuses.
        if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {item!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))
    return username, password, pairs


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    if scheme not in REDIS_SCHEMES:
        choices = ", ".join(REDIS_SCHEMES)
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: the scheme must be one of {choices}")
    return scheme


def parse_url(url: str) -> RedisTarget:
    """``url`` parsed, without connecting to anything; ConfigurationError if malformed. A one-server
    URL (``redis://``, ``rediss://``, ``unix://``) is redis-py's to read: only its kind is given."""
    scheme = _scheme(url)
    tls = scheme.startswith("rediss")
    if scheme != "unix" and _ambiguous(url):
        raise ConfigurationError(
            f"bad Redis URL {redacted(url)!r}: percent-encode '/', '?', '#' and '@' in the user name, "
            "the password and option values (%2F, %3F, %23, %40)"
        )
    parts = urlsplit(url)
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # parse_qsl (below) keeps the last value, redis-py's from_url the first: ssl_cert_reqs=
        # required&ssl_cert_reqs=none verified one server and not a Cluster. Not ours to guess.
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {', '.join(repeated)} given twice")
    if "+" not in scheme:
        return RedisTarget("server", tls)
    kind = scheme.partition("+")[2]
    username, password, pairs = _hosts(parts.netloc, url)
    options: dict[str, Any] = {}
    sentinel: dict[str, str] = {}
    allowed = [*_TLS_OPTIONS, *(_SENTINEL_OPTIONS if kind == "sentinel" else ())]
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in allowed:
            raise ConfigurationError(
                f"bad Redis URL {redacted(url)!r}: unknown option {name!r} "
                f"(a {scheme} URL takes {', '.join(allowed)}; pass a client object for anything else)"
            )
        if name in _SENTINEL_OPTIONS:
            sentinel[name] = value
            continue
        try:
            options[name] = _TLS_OPTIONS[name](value)
        except ValueError:
            raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {name}={value!r}") from None
    if options and not tls:
        raise ConfigurationError(
            f"bad Redis URL {redacted(url)!r}: TLS options need the rediss+{kind}:// scheme"
        )
    service, db = None, 0
    segments = [s for s in parts.path.split("/") if s]
    if kind == "sentinel":
        if not segments:
            raise ConfigurationError(
                f"bad Redis URL {redacted(url)!r}: name the Sentinel service after the hosts"
            )
        service = unquote(segments[0])
        # Only /service or /service/db: anything else used to be dropped, the keys then in db 0.
        db_text = segments[1] if len(segments) > 1 else "0"
        if len(segments) > 2 or not (db_text.isascii() and db_text.isdigit()):
            raise ConfigurationError(
                f"bad Redis URL {redacted(url)!r}: the path is /service or /service/db (a number)"
            )
        db = int(db_text)
    elif segments not in ([], ["0"]):
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: a Redis Cluster has only db 0")
    return RedisTarget(
        kind,
        tls,
        tuple(pairs),
        username,
        password,
        service,
        db,
        options,
        sentinel.get("sentinel_username") or None,
        sentinel.get("sentinel_password") or None,
    )


def check_url(url: str) -> None:
    """Raise ConfigurationError for a malformed Redis URL, without connecting to anything."""
    parse_url(url)


def check_server_options(url: str) -> None:
    """ConfigurationError if redis-py cannot take a one-server URL's query options. It passes any
    option it does not know to the connection class, built at the first command: a mistyped
    ``ssl_ca_cert``, a TLS option on ``redis://`` or an ``ssl_cert_reqs`` spelling it does not read was
    a TypeError (a 500) or a RedisError (a 503) at every request. Built here, unconnected, it shows
    at construction, for both stores."""
    import redis

    try:
        pool = redis.ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError) as exc:
        # The messages name an option, not its value (but ssl_cert_reqs's); never the password.
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {exc}") from None


def refuse_asyncio_client(client: Any, who: str) -> None:
    """ConfigurationError for a ``redis.asyncio`` client: the stores call their client from sync
    code, where each command is an un-awaited coroutine -- always true (every delivery id new:
    replays pass) or a TypeError at every request."""
    if inspect.iscoroutinefunction(getattr(client, "execute_command", None)):
        kind = f"{type(client).__module__}.{type(client).__qualname__}"
        raise ConfigurationError(
            f"{who} needs a synchronous redis-py client (redis.Redis, redis.cluster.RedisCluster), "
            f"not an asyncio one ({kind}): its commands are coroutines"
        )


#: What every Cluster client of the stores is built with. A slot map with a hole (a slot no node
#: serves, with ``cluster-require-full-coverage no``) is the Cluster's own judgement: the client
#: starts on it, and only that slot's keys fail (redis-py's default refused to build the client,
#: so a new worker refused every delivery; test_review_cluster_nodes.py).
CLUSTER_OPTIONS: dict[str, Any] = {"require_full_coverage": False}


def socket_timeouts(timeout: float) -> dict[str, Any]:
    """The short socket timeouts every client of the stores gets (see the module docstring)."""
    # Any: redis-py's clients take these under one name but declare them differently (or not at all).
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def redis_client(url: str, *, timeout: float) -> Any:
    """A redis-py client for ``url`` (see the module docstring); ConfigurationError if malformed."""
    import redis

    target = parse_url(url)
    timeouts = socket_timeouts(timeout)
    if target.kind == "cluster":
        from redis import cluster

        node: Any = cluster.ClusterNode
        nodes = [node(host, port) for host, port in target.hosts]
        return cluster.RedisCluster(
            startup_nodes=nodes, **CLUSTER_OPTIONS, **target.connection_kwargs(), **timeouts
        )
    if target.kind == "sentinel":
        from redis import sentinel as sentinels

        sentinel: Any = sentinels.Sentinel
        monitor = sentinel(
            list(target.hosts),
            sentinel_kwargs={**target.sentinel_kwargs(), **timeouts},
            **target.connection_kwargs(),
            **timeouts,
        )
        return monitor.master_for(target.service, db=target.db)
    check_server_options(url)
    try:
        return redis.Redis.from_url(url, health_check_interval=0, **timeouts)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {exc}") from None


def keyspace_key(url: str) -> str:
    """Which keys a store URL reaches: the URL without its credentials -- scheme, hosts, database
    (or Sentinel service) and options, but credentials (``password``, ``sentinel_*``). Two stores
    built from one URL share their keys; spellings that differ are taken as different (the safe
    side: see ``OuterHold.covers``)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={value}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in _CREDENTIAL_OPTIONS
    )
    return f"{parts.scheme}://{hosts}{parts.path}" + (f"?{query}" if query else "")


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
