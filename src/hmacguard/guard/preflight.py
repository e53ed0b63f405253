"""A Redis checked before the guard's stores are pointed at it (``hmacguard store check URL``).

The URL is read as the stores read it (:func:`~hmacguard.guard.redis_urls.redis_client`, and the
stores themselves), so a check that passes means the stores will work:

1. connect, and read the topology -- the server's version; a Cluster's primaries, their replicas and
   their slots (``CLUSTER NODES``); the primary a Sentinel names and its replicas -- TLS, and the ACL
   user (``ACL WHOAMI``; never the password: everything is shown as :func:`redacted` shows it);
2. exercise what the guard does, under a prefix of its own with short TTLs, removed afterwards: a
   replay hold + commit and a hold + release through a real :class:`RedisReplayStore`, and an
   admission + settle through a real :class:`RateLimiter` (the in-flight lease script);
3. read the risks the guard cannot see from ``INFO`` (managed services refuse ``CONFIG``): an
   eviction policy that drops keys with a TTL, no persistence, a Cluster primary with no replica, a
   replicated primary with no replica, a lagging one, or writes not tied to a replica.

An unusable Redis (bad URL, unreachable, credentials or TLS refused, a script refused) raises
:class:`~hmacguard.errors.TargetError`, one line with every secret of the URL masked. redis-py is
imported here, lazily, as by the stores. Bounded: a few dozen round trips, each under ``timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hmacguard.errors import ConfigurationError, HmacGuardError, TargetError
from hmacguard.guard.redis_urls import parse_url, redacted, redis_client, url_secrets

__all__ = ["PROBE_PREFIX", "SCHEMA_VERSION", "Node", "StoreCheck", "StoreWarning", "Timing", "check_store"]

#: Every key the check writes contains this (then a random run id): easy to find, never a guard's.
#: The replay keys start with it; the rate limiter's are ``LIMITS:LIMITER/<it><run>/...`` and
#: ``{<it><run>/in-flight...}`` (its storage's and its lease script's naming).
PROBE_PREFIX = "hmacguard:check:"
#: The JSON document's version (docs/guide.md, "Before you point the guard at Redis").
SCHEMA_VERSION = 1
#: Each exercise is timed this many times, after one untimed run; the median is reported.
REPEATS = 3
#: Seconds the replay probe keys live at most if the clean-up cannot run (a crash, a lost
#: connection); the rate limiter's windows and leases live up to 60 s (its one-minute budgets).
PROBE_TTL = 30.0
#: Seconds a replica may lag behind its primary before the check warns.
LAG_WARNING = 5
SLOTS = 16384


@dataclass(frozen=True)
class StoreWarning:
    """A configuration risk: what was seen (``message``), why it matters and what to do (``advice``)."""

    id: str
    message: str
    advice: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "message": self.message, "advice": self.advice}


@dataclass(frozen=True)
class Node:
    """One data node: a primary (with its slots on a Cluster) or a replica (with its primary)."""

    address: str
    role: str  #: ``primary`` or ``replica``
    primary: str | None = None  #: a replica's primary
    slots: int | None = None  #: a Cluster primary's slot count
    state: str = "ok"  #: ``ok``, or what is wrong (``fail``, ``link down``, ``lag 12 s``)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "role": self.role,
            "primary": self.primary,
            "slots": self.slots,
            "state": self.state,
        }


@dataclass(frozen=True)
class Timing:
    """The round trip of one exercise: median of :data:`REPEATS` runs, in milliseconds."""

    operation: str
    median_ms: float
    samples_ms: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "median_ms": self.median_ms, "samples_ms": list(self.samples_ms)}


@dataclass(frozen=True)
class StoreCheck:
    """What the check found about a Redis that the guard's stores can use."""

    url: str  #: redacted
    deployment: str  #: ``server``, ``cluster`` or ``sentinel``
    tls: bool
    user: str
    server_version: str
    nodes: tuple[Node, ...]
    timings: tuple[Timing, ...]
    warnings: tuple[StoreWarning, ...]
    probe_prefix: str
    service: str | None = None  #: Sentinel's
    slots_covered: int | None = None  #: a Cluster's, of 16384
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "warnings" if self.warnings else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "store-check",
            "schema": SCHEMA_VERSION,
            "status": self.status,
            "url": self.url,
            "deployment": self.deployment,
            "tls": self.tls,
            "user": self.user,
            "server_version": self.server_version,
            "service": self.service,
            "slots_covered": self.slots_covered,
            "nodes": [node.to_dict() for node in self.nodes],
            "exercise": [timing.to_dict() for timing in self.timings],
            "probe_prefix": self.probe_prefix,
            "warnings": [warning.to_dict() for warning in self.warnings],
        }


class _Scrubber:
    """Masks a URL's secrets in any text (a server's or a library's error message)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redacted(url)
        self.secrets = url_secrets(url)

    def __call__(self, text: str) -> str:
        if self.url:  # replacing "" would insert the redacted form between every character
            text = text.replace(self.url, self.shown)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())  # one line


def _cause(exc: BaseException) -> str:
    """A one-line reason for a failed connection or command, from the error and what caused it."""
    import ssl

    import redis

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    text = " ".join(str(e) for e in chain)
    upper = text.upper()
    if any(isinstance(e, redis.AuthenticationError) for e in chain) or any(
        word in upper for word in ("WRONGPASS", "NOAUTH", "INVALID PASSWORD", "AUTHENTICATION REQUIRED")
    ):
        kind = "authentication refused"
    elif any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in upper or "CERTIFICATE" in upper:
        kind = "TLS failure"
    elif "NOPERM" in upper:
        kind = "permission refused"
    elif any(isinstance(e, (redis.TimeoutError, TimeoutError)) for e in chain):
        kind = "no answer in time"
    elif any(isinstance(e, (redis.ConnectionError, ConnectionError)) for e in chain):
        kind = "unreachable"
    else:
        kind = type(exc).__name__
    detail = str(chain[-1]) or str(exc) or type(chain[-1]).__name__
    return f"{kind}: {detail}"


def _mb(value: Any) -> str:
    return str(value.decode() if isinstance(value, bytes) else value)


def check_store(url: str, *, timeout: float = 2.0) -> StoreCheck:
    """Check ``url`` as the guard's stores will use it (see the module docstring)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise ConfigurationError(f"timeout must be between 0 and 60 seconds, not {timeout!r}")
    try:
        scrub = _Scrubber(url)
    except ValueError as exc:  # urlsplit's ("Invalid IPv6 URL"): the URL cannot be redacted, so not shown
        raise ConfigurationError(f"bad Redis URL: {exc}") from None
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ConfigurationError("the store check needs redis-py: pip install 'hmacguard[redis]'") from None
    try:
        target = parse_url(url)
        client = redis_client(url, timeout=timeout)
    except HmacGuardError as exc:
        raise ConfigurationError(scrub(str(exc))) from None
    except Exception as exc:  # a Cluster client reads the slot map when it is built
        raise TargetError(f"Redis at {scrub.shown}: {scrub(_cause(exc))}") from None
    tls = target.tls if target.kind != "server" else url.lower().startswith("rediss://")
    try:
        inspector = _Inspector(client, target.kind, target.service, scrub)
        inspector.read()
        user = inspector.whoami(target.username)
    except HmacGuardError:
        raise
    except Exception as exc:
        raise TargetError(f"Redis at {scrub.shown}: {scrub(_cause(exc))}") from None
    finally:
        _close(client)
    run = secrets.token_hex(6)
    prefix = f"{PROBE_PREFIX}{run}:"
    timings = _exercise(url, prefix, timeout, scrub)
    return StoreCheck(
        url=scrub.shown,
        deployment=target.kind,
        tls=tls,
        user=user,
        server_version=inspector.version,
        nodes=tuple(inspector.nodes),
        timings=tuple(timings),
        warnings=tuple(inspector.warnings()),
        probe_prefix=prefix,
        service=target.service,
        slots_covered=inspector.slots_covered,
    )


def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.close()


class _Inspector:
    """Reads the topology and the INFO of every primary (a few round trips per node)."""

    def __init__(self, client: Any, kind: str, service: str | None, scrub: _Scrubber) -> None:
        self.client = client
        self.kind = kind
        self.service = service
        self.scrub = scrub
        self.version = "unknown"
        self.nodes: list[Node] = []
        #: INFO of each primary, by address.
        self.infos: dict[str, dict[str, Any]] = {}
        self.slots_covered: int | None = None
        self.cluster_state: str | None = None
        #: Whether each primary has RDB save points (None: CONFIG refused, as managed services do).
        self.save_points: dict[str, bool | None] = {}

    def read(self) -> None:
        if self.kind == "cluster":
            self._read_cluster()
        elif self.kind == "sentinel":
            self._read_sentinel()
        else:
            info = self.client.info()
            address = _server_address(self.client)
            self.infos[address] = info
            self.nodes = [Node(address, "primary"), *_replicas_of(address, info)]
        first = next(iter(self.infos.values()), {})
        name = "valkey" if "valkey_version" in first else "redis"
        self.version = f"{name} {first.get(f'{name}_version', 'unknown')}"
        for address, info in self.infos.items():
            # CONFIG first where allowed: a snapshot in INFO may be one manual BGSAVE on a server
            # with no save points, which a restart still empties.
            if not info.get("aof_enabled"):
                self.save_points[address] = self._save_points(address)

    def _read_cluster(self) -> None:
        client = self.client
        nodes = client.cluster_nodes()
        ids = {entry.get("node_id"): address for address, entry in nodes.items()}
        primaries, replicas = [], []
        for address, entry in sorted(nodes.items()):
            flags = str(entry.get("flags", ""))
            state = "fail" if "fail" in flags.split(",") and "fail?" not in flags else "ok"
            if "fail?" in flags:
                state = "suspected down"
            if not entry.get("connected", True) and state == "ok":
                state = "disconnected"
            if "master" in flags:
                slots = sum(int(end) - int(start) + 1 for start, end, *_ in _slot_ranges(entry))
                primaries.append(Node(address, "primary", slots=slots, state=state))
            elif "slave" in flags:
                replicas.append(Node(address, "replica", ids.get(entry.get("master_id")), state=state))
        self.nodes = [*primaries, *replicas]
        self.slots_covered = sum(node.slots or 0 for node in primaries)
        info = client.cluster_info()
        self.cluster_state = _mb(info.get("cluster_state", "unknown")) if isinstance(info, dict) else None
        for node in client.get_primaries():
            self.infos[node.name] = client.info(target_nodes=node)

    def _read_sentinel(self) -> None:
        # The Sentinel clients are asked once each (redis_urls.RedisTarget.sentinel_kwargs): the next
        # Sentinel is the retry, so a silent one costs one --timeout.
        manager = self.client.connection_pool.sentinel_manager
        answer: Any = None
        failure: BaseException | None = None
        for sentinel in manager.sentinels:
            try:
                answer = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
                replicas = sentinel.execute_command("SENTINEL REPLICAS", self.service)
                break
            except Exception as exc:  # the next Sentinel; the first error if none answers
                failure = failure or exc
        else:
            if failure is not None:
                raise TargetError(f"no Sentinel answered: {self.scrub(_cause(failure))}") from None
        if not answer:
            raise TargetError(f"the Sentinels know no service {self.service!r}")
        primary = f"{_mb(answer[0])}:{_mb(answer[1])}"
        info = self.client.info()
        self.infos[primary] = info
        self.nodes = [Node(primary, "primary")]
        for entry in replicas or []:
            fields = _pairs(entry)
            flags = fields.get("flags", "")
            state = "ok" if fields.get("master-link-status", "ok") == "ok" else "link down"
            if "down" in flags:
                state = "down"
            self.nodes.append(
                Node(f"{fields.get('ip')}:{fields.get('port')}", "replica", primary, state=state)
            )

    def _save_points(self, address: str) -> bool | None:
        """Whether RDB save points are set, where CONFIG is allowed (one round trip); else None."""
        try:
            if self.kind == "cluster":
                node = self.client.get_node(node_name=address)
                answer = self.client.config_get("save", target_nodes=node)
            else:
                answer = self.client.config_get("save")
        except Exception:  # managed services refuse CONFIG: INFO alone decides
            return None
        return bool(_mb(answer.get("save", "")).strip())

    def whoami(self, url_user: str | None) -> str:
        try:
            return _mb(self.client.execute_command("ACL WHOAMI"))
        except Exception:  # before Redis 6, or not allowed: the URL says
            return url_user or "default"

    def warnings(self) -> Iterator[StoreWarning]:
        policies: dict[str, list[str]] = {}
        for address, info in self.infos.items():
            policies.setdefault(str(info.get("maxmemory_policy", "noeviction")), []).append(address)
        for policy, where in sorted(policies.items()):
            if policy != "noeviction":
                yield StoreWarning(
                    "eviction-policy",
                    f"maxmemory-policy is {policy} on {_where(where, len(self.infos))}: under memory "
                    "pressure Redis evicts keys, replay ids among them (they all have a TTL), and "
                    "a replay of a processed delivery is then accepted (with maxmemory 0 the policy "
                    "waits: it applies the day a maxmemory is set)",
                    "set maxmemory-policy noeviction on the replay store's Redis (managed services "
                    "often default to volatile-lru: change it in the parameter group); a full Redis "
                    "then refuses writes and the guard fails closed (503) instead of forgetting",
                )
        volatile = [
            address
            for address, info in self.infos.items()
            if not info.get("aof_enabled")
            and not (
                self.save_points[address] if self.save_points.get(address) is not None else _snapshotted(info)
            )
        ]
        if volatile:
            known = all(self.save_points.get(address) is False for address in volatile)
            seen = "no RDB save points" if known else "no RDB snapshot since it started"
            yield StoreWarning(
                "no-persistence",
                f"no persistence on {_where(volatile, len(self.infos))}: AOF off and {seen}; a "
                "restart forgets every replay id, and replays of processed deliveries are accepted",
                "turn on appendonly yes (appendfsync everysec), or at least RDB snapshots; on a "
                "managed service enable its persistence (AOF) or backups with a replica to fail over to",
            )
        if self.kind == "cluster":
            yield from self._cluster_warnings()
        else:
            yield from self._replication_warnings()

    def _cluster_warnings(self) -> Iterator[StoreWarning]:
        primaries = [node for node in self.nodes if node.role == "primary" and node.slots]
        followed = {node.primary for node in self.nodes if node.role == "replica" and node.state == "ok"}
        alone = [node.address for node in primaries if node.address not in followed]
        if alone:
            yield StoreWarning(
                "primary-without-replica",
                f"{len(alone)} of {len(primaries)} primaries have no replica ({', '.join(alone)}): "
                "when one dies its slots' keys are refused until it returns -- every key, with "
                "cluster-require-full-coverage yes (the default; not readable without CONFIG)",
                "give every primary a replica; consider cluster-require-full-coverage no so the "
                "other primaries keep serving their keys while one is down (docs/guide.md)",
            )
        if (self.slots_covered or 0) < SLOTS or (self.cluster_state not in (None, "ok")):
            yield StoreWarning(
                "slots-not-covered",
                f"the Cluster serves {self.slots_covered} of {SLOTS} slots (cluster_state "
                f"{self.cluster_state}): the keys of the other slots are refused",
                "assign every slot to a live primary (redis-cli --cluster fix) before relying on it",
            )
        lagging = [node for node in self.nodes if node.role == "replica" and node.state != "ok"]
        for node in lagging:
            yield StoreWarning(
                "replica-down",
                f"replica {node.address} of {node.primary} is {node.state}",
                "repair it: it is what a failover would promote",
            )

    def _replication_warnings(self) -> Iterator[StoreWarning]:
        for node in self.nodes:
            if node.role == "replica" and self.kind == "sentinel" and node.state != "ok":
                yield StoreWarning(
                    "replica-down",
                    f"Sentinel reports replica {node.address} of {node.primary} as {node.state}",
                    "repair it: it is what a failover would promote",
                )
        for address, info in self.infos.items():
            connected = int(info.get("connected_slaves", 0) or 0)
            if self.kind == "sentinel" and connected == 0:
                yield StoreWarning(
                    "no-replica",
                    f"the primary {address} has no replica connected: Sentinel has nothing to "
                    "promote, so its death is an outage (every delivery 503, or unchecked fail-open)",
                    "attach at least one replica, and check it follows (INFO replication on it)",
                )
                continue
            lagged = [
                (f"{_mb(entry.get('ip'))}:{_mb(entry.get('port'))}", int(entry.get("lag", 0) or 0), entry)
                for entry in _replica_entries(info)
            ]
            for replica, lag, entry in lagged:
                if lag >= LAG_WARNING or _mb(entry.get("state", "online")) != "online":
                    yield StoreWarning(
                        "replication-lag",
                        f"replica {replica} of {address} is {_mb(entry.get('state', '?'))} with lag "
                        f"{lag} s: a failover now loses the replay ids written in that time",
                        "find why it lags (network, a slow disk, a busy replica) before relying on it",
                    )
            if connected and "min_slaves_good_slaves" not in info:
                yield StoreWarning(
                    "min-replicas-to-write",
                    f"the primary {address} accepts writes no replica has acknowledged: a failover "
                    "can lose the last replay ids (replication is asynchronous)",
                    "set min-replicas-to-write 1 and min-replicas-max-lag 10: the primary then refuses "
                    "writes no replica keeps up with, and the guard fails closed instead (docs/guide.md)",
                )


def _where(addresses: list[str], total: int) -> str:
    if total == 1:
        return f"the primary {addresses[0]}"
    return f"{len(addresses)} of {total} primaries ({', '.join(addresses)})"


def _snapshotted(info: dict[str, Any]) -> bool:
    """Whether INFO shows an RDB snapshot since the server started (``rdb_saves``, Redis 7; else
    the last background save's duration, -1 before the first)."""
    if "rdb_saves" in info:
        return int(info.get("rdb_saves") or 0) > 0
    # Not ``or -1``: a save that took 0 s (a small data set) is a snapshot.
    value = info.get("rdb_last_bgsave_time_sec")
    return value is not None and int(value) >= 0


def _slot_ranges(entry: dict[str, Any]) -> list[list[Any]]:
    ranges = []
    for item in entry.get("slots") or []:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            ranges.append(list(item))
        elif isinstance(item, (str, bytes)) and "[" not in _mb(item):  # "12-34" or "12"
            start, _, end = _mb(item).partition("-")
            ranges.append([start, end or start])
    return ranges


def _pairs(entry: Any) -> dict[str, str]:
    if isinstance(entry, dict):
        return {_mb(k): _mb(v) for k, v in entry.items()}
    items = [_mb(item) for item in entry]
    return dict(zip(items[::2], items[1::2], strict=False))  # an odd tail is dropped


def _replica_entries(info: dict[str, Any]) -> list[dict[str, Any]]:
    """INFO replication's ``slaveN`` entries (redis-py parses each into a dict)."""
    entries = []
    for name, value in info.items():
        if name.startswith("slave") and name[5:].isdigit() and isinstance(value, dict):
            entries.append(value)
    return entries


def _replicas_of(primary: str, info: dict[str, Any]) -> list[Node]:
    nodes = []
    for entry in _replica_entries(info):
        lag = int(entry.get("lag", 0) or 0)
        state = _mb(entry.get("state", "online"))
        shown = "ok" if state == "online" and lag < LAG_WARNING else f"{state}, lag {lag} s"
        nodes.append(
            Node(f"{_mb(entry.get('ip'))}:{_mb(entry.get('port'))}", "replica", primary, state=shown)
        )
    return nodes


def _server_address(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


class _StoreFailure(logging.Handler):
    """Keeps the warning a store logs when a call fails: it names the error's type (the store
    raises StoreUnavailable, its cause dropped so no message reaches a problem+json body)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _watching_stores() -> Iterator[_StoreFailure]:
    handler = _StoreFailure()
    loggers = [logging.getLogger(name) for name in ("hmacguard.guard.replay", "hmacguard.guard.ratelimit")]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False  # the one-line error says it; no second line from logging
    try:
        yield handler
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _timed(operation: str, run: Callable[[int], None]) -> Timing:
    """``run`` once untimed (new connections, TLS handshakes, script loading: not what a request
    pays), then :data:`REPEATS` times timed."""
    run(REPEATS)
    samples = []
    for attempt in range(REPEATS):
        start = time.perf_counter()
        run(attempt)
        samples.append(round((time.perf_counter() - start) * 1000, 2))
    return Timing(operation, round(statistics.median(samples), 2), tuple(samples))


def _exercise(url: str, prefix: str, timeout: float, scrub: _Scrubber) -> list[Timing]:
    """The replay store's hold + commit and hold + release, and the rate limiter's admission +
    settle, each :data:`REPEATS` times through the real classes; every probe key removed after."""
    from hmacguard.guard.ratelimit import RateLimiter
    from hmacguard.guard.replay import RedisReplayStore

    # A breaker window shorter than the check: a failure is reported, not remembered.
    store = RedisReplayStore(url, prefix=prefix, timeout=timeout, breaker_reset=0.01)
    limiter = RateLimiter(
        limit="1000/minute",
        bytes_limit="100000000/minute",
        failure_limit="1000/minute",  # with a bytes budget: counted in flight, by the lease script
        storage=url,
        prefix=prefix.rstrip(":"),
        timeout=timeout,
        breaker_reset=0.01,
    )
    step = "connecting"
    committed: list[str] = []
    cleaned = False

    # The replay keys share one hash tag: on a Cluster every run is on the warmed-up primary's
    # connection, so a sample is a round trip, not a first TLS handshake with another node.
    def hold_then(settle: str, attempt: int) -> None:
        nonlocal step
        key = f"{{probe}}{settle}-{attempt}"
        step = "replay hold"
        token = store.hold(key, PROBE_TTL)
        if token is None:
            raise TargetError(f"the replay store's hold of a new key was refused (key {prefix}{key})")
        step = f"replay {settle}"
        if settle == "commit":
            committed.append(key)
            store.commit(key, token, PROBE_TTL)
        else:
            store.release(key, token)

    def admit_settle(attempt: int) -> None:
        nonlocal step
        step = "rate-limit admission"
        state = limiter.admit("store-check", declared_bytes=100, longest=timeout)
        step = "rate-limit settle"
        limiter.settle(state, 100, failed=False)

    with _watching_stores() as failures:
        try:
            timings = [
                _timed("replay hold + commit", lambda attempt: hold_then("commit", attempt)),
                _timed("replay hold + release", lambda attempt: hold_then("release", attempt)),
                _timed("rate-limit admission + settle", admit_settle),
            ]
            step = "checking the replay semantics"
            # What the guard relies on: a committed id refuses its replay, a released one is free.
            if store.hold(committed[0], PROBE_TTL) is not None:
                raise TargetError("a committed replay id was held again: replays would be accepted")
            token = store.hold("{probe}release-0", PROBE_TTL)
            if token is None:
                raise TargetError("a released replay id stayed held: retries would be refused")
            store.release("{probe}release-0", token)
            step = "cleaning up"
            for key in committed:
                store.client.delete(prefix + key)
            limiter.forget("store-check")
            cleaned = True
        except HmacGuardError as exc:
            logged = "; ".join(dict.fromkeys(failures.messages))
            reason = _script_refusal(store, prefix) or logged or str(exc)
            raise TargetError(f"Redis at {scrub.shown}: {step} failed: {scrub(reason)}") from None
        except Exception as exc:  # the clean-up's own DEL, outside the stores
            raise TargetError(f"Redis at {scrub.shown}: {step} failed: {scrub(_cause(exc))}") from None
        finally:
            if not cleaned:  # a step failed: whatever it left, best effort (each lapses in PROBE_TTL)
                with contextlib.suppress(Exception):
                    for attempt in range(REPEATS + 1):
                        store.client.delete(
                            f"{prefix}{{probe}}commit-{attempt}", f"{prefix}{{probe}}release-{attempt}"
                        )
                with contextlib.suppress(Exception):
                    limiter.forget("store-check")
            store.close()
    return timings


def _script_refusal(store: Any, prefix: str) -> str | None:
    """Why the server refuses a Lua script (an ACL without @scripting, a service without EVAL), if
    it does: the stores hide the reply, so ask once directly (on the probe key's node)."""
    from redis.exceptions import ClusterDownError, ResponseError

    try:
        store.client.eval("return 1", 1, prefix + "script")
    except ClusterDownError:  # a ResponseError too, but an outage: the store's own reason says it
        return None
    except ResponseError as exc:  # an answer: the server refuses it (not an outage)
        # Not _cause(exc): raised inside the handler of the store's error, its __context__ is that
        # error, whose "the replay store is unavailable" would replace the server's reason.
        return f"a Lua script was refused -- {type(exc).__name__}: {exc}"
    except Exception:
        return None
    return None
