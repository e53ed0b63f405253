"""Real Redis topologies on loopback for the guard's tests: one server, a 3-primary Cluster, and a
primary with a replica watched by Sentinel. Every process binds 127.0.0.1 on a free port, keeps
nothing on disk beyond its own temporary directory, and is stopped by its process id on exit.

Each takes an :class:`Access`: plain TCP and no password (the default), or what production runs --
TLS only (``--port 0``, certificates from a private CA), a password on the default user, an ACL
user (the default user then switched off), and a password on Sentinel itself. Its ``url`` is the
URL a user would write for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hmacguard.lab.serve import stop_process_group

from ._servers import ephemeral_start, need_redis_server, service_port
from ._tls import CertificateFiles

SLOTS = 16384


def _redis(binary: str, args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, *args], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Access:
    """How clients reach a topology: over TLS or not, with which credentials."""

    #: TLS only (no plain port), the server certificate signed by this private CA.
    tls: CertificateFiles | None = None
    #: An ACL user with every right (the default user is then switched off); None: the default user.
    user: str | None = None
    #: The data nodes' password: the ACL user's, or the default user's ``requirepass``.
    password: str | None = None
    #: Sentinel's own ``requirepass`` (None: Sentinel answers anyone, the common setup).
    sentinel_password: str | None = None

    def server_args(self, port: int, *, cluster: bool = False) -> list[str]:
        """redis-server's arguments to listen on ``port`` (for a node, its cluster bus on port + 10000)."""
        args = ["--port", str(port)]
        if self.tls is not None:
            args = [
                "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca),
                # Managed Redis asks clients for a password, not a certificate.
                "--tls-auth-clients", "no", "--tls-replication", "yes",
            ]  # fmt: skip
            if cluster:
                args += ["--tls-cluster", "yes", "--cluster-port", str(port + 10000)]
        if self.user is not None:
            args += ["--user", "default", "off", "--user", self.user, "on", f">{self.password}"]
            args += ["~*", "&*", "+@all", "--masteruser", self.user]
        elif self.password is not None:
            args += ["--requirepass", self.password]
        if self.password is not None:
            args += ["--masterauth", self.password]
        return args

    def sentinel_config(self, port: int, primary_port: int, down_after_ms: int) -> str:
        if self.tls is None:
            listen = f"port {port}\n"
        else:
            listen = (
                f"port 0\ntls-port {port}\ntls-cert-file {self.tls.cert}\ntls-key-file {self.tls.key}\n"
                f"tls-ca-cert-file {self.tls.ca}\ntls-auth-clients no\ntls-replication yes\n"
            )
        config = (
            f"{listen}bind 127.0.0.1\n"
            f"sentinel monitor hmacguard 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds hmacguard {down_after_ms}\n"
            "sentinel failover-timeout hmacguard 10000\n"
            "sentinel parallel-syncs hmacguard 1\n"
        )
        if self.user is not None:
            config += f"sentinel auth-user hmacguard {self.user}\n"
        if self.password is not None:
            config += f"sentinel auth-pass hmacguard {self.password}\n"
        if self.sentinel_password is not None:
            config += f"requirepass {self.sentinel_password}\n"
        return config

    def client_kwargs(self, *, sentinel: bool = False) -> dict[str, Any]:
        """redis-py's keyword arguments for a client of a data node (or of the Sentinel)."""
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls.ca))
        if sentinel:
            kwargs["password"] = self.sentinel_password
        else:
            kwargs.update(username=self.user, password=self.password)
        return kwargs

    def credentials(self, password: str | None = None) -> str:
        """The URL's ``user:password@`` (percent-encoded), with ``password`` instead if given."""
        secret = self.password if password is None else password
        if secret is None:
            return ""
        return f"{quote(self.user or '', safe='')}:{quote(secret, safe='')}@"

    def query(self, *, sentinel: bool = False, **extra: str) -> str:
        """The URL's query: the CA to trust, Sentinel's password (for a Sentinel URL), ``extra``
        (a value ``""`` drops that option)."""
        options = {"ssl_ca_certs": str(self.tls.ca)} if self.tls is not None else {}
        if sentinel and self.sentinel_password is not None:
            options["sentinel_password"] = self.sentinel_password
        options.update(extra)
        present = [(name, value) for name, value in options.items() if value]
        return "".join(
            f"{'&' if i else '?'}{name}={quote(value, safe='/')}" for i, (name, value) in enumerate(present)
        )

    def scheme(self, kind: str = "") -> str:
        return ("rediss" if self.tls is not None else "redis") + kind


PLAIN = Access()


@functools.cache
def _tls_missing(binary: str) -> bool:
    # Without TLS support, redis-server refuses the directive; with it, it exits because it was
    # told to listen nowhere.
    run = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0", "--save", ""],
        capture_output=True, timeout=20, check=False,
    )  # fmt: skip
    return b"Bad directive" in run.stdout + run.stderr


def need_tls(binary: str) -> None:
    if _tls_missing(binary):
        pytest.skip(f"{binary} was built without TLS (--tls-port is not a directive)")


def _client(port: int, access: Access = PLAIN, *, sentinel: bool = False):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2,
        **access.client_kwargs(sentinel=sentinel),
    )  # fmt: skip


def _wait(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class Single:
    port: int
    process: subprocess.Popen[bytes]
    access: Access = PLAIN

    def url_with(self, password: str | None = None, **query: str) -> str:
        return f"{self.access.scheme()}://{self.access.credentials(password)}127.0.0.1:{self.port}/0" + (
            self.access.query(**query)
        )

    @property
    def url(self) -> str:
        return self.url_with()

    def client(self) -> Any:
        return _client(self.port, self.access)


@contextlib.contextmanager
def redis_single(access: Access = PLAIN, *, args: Sequence[str] = ()) -> Iterator[Single]:
    """One redis-server reached as ``access`` says; ``args`` after the defaults (no persistence),
    which they override (``--appendonly yes``, ``--maxmemory-policy volatile-lru``)."""
    binary = need_redis_server()
    if access.tls is not None:
        need_tls(binary)
    port = service_port()
    with tempfile.TemporaryDirectory(prefix="hmacguard-redis-") as tmp:
        process = _redis(binary, [
            *access.server_args(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--loglevel", "warning", *args,
        ], Path(tmp))  # fmt: skip
        try:
            _wait(_client(port, access).ping, "the server")
            yield Single(port, process, access)
        finally:
            stop_process_group(process, grace=5)


@dataclass
class Cluster:
    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    access: Access = PLAIN
    #: The port of the replica (``redis_cluster(replica_of=...)``), ``None`` without one.
    replica_port: int | None = None

    def kill(self, index: int) -> None:
        """SIGKILL one node (no clean shutdown, as a crashed host would)."""
        os.killpg(self.processes[index].pid, signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    def url_with(self, password: str | None = None, **query: str) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"{self.access.scheme('+cluster')}://{self.access.credentials(password)}{hosts}" + (
            self.access.query(**query)
        )

    @property
    def url(self) -> str:
        return self.url_with()

    def client(self) -> Any:
        from redis.cluster import RedisCluster

        return RedisCluster(
            host="127.0.0.1", port=self.ports[0], socket_timeout=2, socket_connect_timeout=2,
            **self.access.client_kwargs(),
        )  # fmt: skip

    def node_of(self, key: str) -> int:
        """The index of the primary that serves ``key`` (its slot, in the ranges assigned at start)."""
        from redis.crc import key_slot

        return min(key_slot(key.encode()) // (SLOTS // len(self.ports)), len(self.ports) - 1)


def _free_cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too, both below the kernel's
    ephemeral range: kernel-chosen ports are often above 55535, which Redis Cluster refuses, and a
    twin inside the range could be taken by any outgoing connection before the node binds it."""
    top = ephemeral_start() - 10000 - 1
    for _ in range(200):
        port = random.randint(10000, max(10001, top))
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for a cluster node")


@contextlib.contextmanager
def redis_cluster(
    primaries: int = 3,
    access: Access = PLAIN,
    *,
    full_coverage: bool = True,
    replica_of: int | None = None,
) -> Iterator[Cluster]:
    """``primaries`` cluster-enabled redis-servers, the slots split between them, joined by MEET.

    ``full_coverage=False``: ``cluster-require-full-coverage no``, so the live primaries keep serving
    their slots once the Cluster has seen one of them fail (with Redis's default, ``yes``, every
    node answers CLUSTERDOWN from then until the failed slots are served again).
    ``replica_of``: one more node, a replica of that primary, promoted when the primary fails."""
    binary = need_redis_server()
    if access.tls is not None:
        need_tls(binary)
    ports: list[int] = []
    while len(ports) < primaries:
        port = _free_cluster_port()
        if port not in ports:
            ports.append(port)
    with tempfile.TemporaryDirectory(prefix="hmacguard-cluster-") as tmp:
        processes = []
        replica = None
        if replica_of is not None:
            while replica is None or replica in ports:
                replica = _free_cluster_port()
        try:
            for port in [*ports, *([replica] if replica is not None else [])]:
                workdir = Path(tmp, str(port))
                workdir.mkdir()
                processes.append(_redis(binary, [
                    *access.server_args(port, cluster=True), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                    "nodes.conf", "--cluster-node-timeout", "2000", "--loglevel", "warning",
                    "--cluster-require-full-coverage", "yes" if full_coverage else "no",
                ], workdir))  # fmt: skip
            clients = [_client(port, access) for port in ports]
            for client in clients:
                _wait(client.ping, "a cluster node to answer")
            share = SLOTS // primaries
            for index, client in enumerate(clients):
                first = index * share
                last = SLOTS - 1 if index == primaries - 1 else first + share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0], ports[0] + 10000)
            for client in clients:
                # redis-py parses CLUSTER INFO into a dict.
                _wait(lambda c=client: c.cluster("info").get("cluster_state") == "ok", "the cluster")
            if replica is not None and replica_of is not None:
                follower = _client(replica, access)
                _wait(follower.ping, "the replica to answer")
                follower.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
                primary_id = clients[replica_of].execute_command("CLUSTER MYID").decode()
                # It must know the primary before it can follow it.
                _wait(
                    lambda: follower.execute_command("CLUSTER REPLICATE", primary_id), "the replica to follow"
                )
                _wait(lambda: follower.info("replication").get("master_link_status") == "up", "the replica")
                for client in [*clients, follower]:
                    _wait(lambda c=client: c.cluster("info").get("cluster_state") == "ok", "the cluster")
            yield Cluster(ports, processes, access, replica)
        finally:
            for process in processes:
                stop_process_group(process, grace=5)


@dataclass
class SentinelSetup:
    primary_port: int
    replica_port: int
    sentinel_port: int
    primary: subprocess.Popen[bytes]
    service: str = "hmacguard"
    access: Access = PLAIN

    def url_with(self, password: str | None = None, **query: str) -> str:
        credentials = self.access.credentials(password)
        return (
            f"{self.access.scheme('+sentinel')}://{credentials}127.0.0.1:{self.sentinel_port}/"
            f"{self.service}{self.access.query(sentinel=True, **query)}"
        )

    @property
    def url(self) -> str:
        return self.url_with()

    def sentinel_client(self) -> Any:
        """A redis-py ``Sentinel`` for this setup (its ``master_for`` is a client of the primary)."""
        from redis.sentinel import Sentinel

        timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2}
        return Sentinel(
            [("127.0.0.1", self.sentinel_port)],
            sentinel_kwargs={**timeouts, **self.access.client_kwargs(sentinel=True)},
            **timeouts, **self.access.client_kwargs(),
        )  # fmt: skip

    def kill_primary(self) -> None:
        """SIGKILL the primary (no clean shutdown, as a crashed host would)."""
        os.killpg(self.primary.pid, signal.SIGKILL)
        self.primary.wait(timeout=10)

    def current_primary_port(self) -> int:
        address = _client(self.sentinel_port, self.access, sentinel=True).execute_command(
            "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service
        )
        return int(address[1])


@contextlib.contextmanager
def redis_sentinel(*, down_after_ms: int = 1000, access: Access = PLAIN) -> Iterator[SentinelSetup]:
    """A primary, a replica of it, and one Sentinel (quorum 1) that fails over after ``down_after_ms``."""
    binary = need_redis_server()
    if access.tls is not None:
        need_tls(binary)
    primary_port, replica_port, sentinel_port = service_port(), service_port(), service_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    with tempfile.TemporaryDirectory(prefix="hmacguard-sentinel-") as tmp:
        workdir = Path(tmp)
        config = workdir / "sentinel.conf"
        config.write_text(f"dir {tmp}\n" + access.sentinel_config(sentinel_port, primary_port, down_after_ms))
        primary = _redis(binary, [*access.server_args(primary_port), *common], workdir)
        processes = [primary]
        try:
            _wait(_client(primary_port, access).ping, "the primary")
            processes.append(_redis(binary, [
                *access.server_args(replica_port), "--replicaof", "127.0.0.1", str(primary_port),
                *common,
            ], workdir))  # fmt: skip
            replica = _client(replica_port, access)
            _wait(lambda: replica.info("replication").get("master_link_status") == "up", "the replica")
            processes.append(_redis(binary, [str(config), "--sentinel"], workdir))
            setup = SentinelSetup(primary_port, replica_port, sentinel_port, primary, access=access)
            _wait(lambda: setup.current_primary_port() == primary_port, "the Sentinel to see the primary")
            # The Sentinel must have found the replica before a failover can promote it.
            sentinel = _client(sentinel_port, access, sentinel=True)
            _wait(
                lambda: len(sentinel.execute_command("SENTINEL REPLICAS", "hmacguard")) == 1,
                "the Sentinel to see the replica",
            )
            yield setup
        finally:
            for process in processes:
                stop_process_group(process, grace=5)
