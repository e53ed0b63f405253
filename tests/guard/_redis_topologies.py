"""Real Redis topologies on loopback for the guard's tests: a 3-primary Cluster, and a primary with a
replica watched by Sentinel. Every process binds 127.0.0.1 on a free port, keeps nothing on disk
beyond its own temporary directory, and is stopped by its process id on exit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hmacguard.lab.serve import stop_process_group

from ._servers import ephemeral_start, need_redis_server, service_port

SLOTS = 16384


def _redis(binary: str, args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, *args], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _client(port: int):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)


def _wait(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class Cluster:
    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The port of the replica (``redis_cluster(replica_of=...)``), ``None`` without one.
    replica_port: int | None = None

    def kill(self, index: int) -> None:
        """SIGKILL one node (no clean shutdown, as a crashed host would)."""
        os.killpg(self.processes[index].pid, signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

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
    primaries: int = 3, *, full_coverage: bool = True, replica_of: int | None = None
) -> Iterator[Cluster]:
    """``primaries`` cluster-enabled redis-servers, the slots split between them, joined by MEET.

    ``full_coverage=False``: ``cluster-require-full-coverage no``, so the live primaries keep serving
    their slots once the Cluster has seen one of them fail (with Redis's default, ``yes``, every
    node answers CLUSTERDOWN from then until the failed slots are served again).
    ``replica_of``: one more node, a replica of that primary, promoted when the primary fails."""
    binary = need_redis_server()
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
                    "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000", "--loglevel", "warning",
                    "--cluster-require-full-coverage", "yes" if full_coverage else "no",
                ], workdir))  # fmt: skip
            clients = [_client(port) for port in ports]
            for client in clients:
                _wait(client.ping, "a cluster node to answer")
            share = SLOTS // primaries
            for index, client in enumerate(clients):
                first = index * share
                last = SLOTS - 1 if index == primaries - 1 else first + share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
            for client in clients:
                # redis-py parses CLUSTER INFO into a dict.
                _wait(lambda c=client: c.cluster("info").get("cluster_state") == "ok", "the cluster")
            if replica is not None and replica_of is not None:
                follower = _client(replica)
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
            yield Cluster(ports, processes, replica)
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

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.service}"

    def kill_primary(self) -> None:
        """SIGKILL the primary (no clean shutdown, as a crashed host would)."""
        os.killpg(self.primary.pid, signal.SIGKILL)
        self.primary.wait(timeout=10)

    def current_primary_port(self) -> int:
        address = _client(self.sentinel_port).execute_command(
            "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service
        )
        return int(address[1])


@contextlib.contextmanager
def redis_sentinel(*, down_after_ms: int = 1000) -> Iterator[SentinelSetup]:
    """A primary, a replica of it, and one Sentinel (quorum 1) that fails over after ``down_after_ms``."""
    binary = need_redis_server()
    primary_port, replica_port, sentinel_port = service_port(), service_port(), service_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    with tempfile.TemporaryDirectory(prefix="hmacguard-sentinel-") as tmp:
        workdir = Path(tmp)
        config = workdir / "sentinel.conf"
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp}\n"
            f"sentinel monitor hmacguard 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds hmacguard {down_after_ms}\n"
            "sentinel failover-timeout hmacguard 10000\n"
            "sentinel parallel-syncs hmacguard 1\n"
        )
        primary = _redis(binary, ["--port", str(primary_port), *common], workdir)
        processes = [primary]
        try:
            _wait(_client(primary_port).ping, "the primary")
            processes.append(_redis(binary, [
                "--port", str(replica_port), "--replicaof", "127.0.0.1", str(primary_port), *common,
            ], workdir))  # fmt: skip
            replica = _client(replica_port)
            _wait(lambda: replica.info("replication").get("master_link_status") == "up", "the replica")
            processes.append(_redis(binary, [str(config), "--sentinel"], workdir))
            setup = SentinelSetup(primary_port, replica_port, sentinel_port, primary)
            _wait(lambda: setup.current_primary_port() == primary_port, "the Sentinel to see the primary")
            # The Sentinel must have found the replica before a failover can promote it.
            _wait(
                lambda: len(_client(sentinel_port).execute_command("SENTINEL REPLICAS", "hmacguard")) == 1,
                "the Sentinel to see the replica",
            )
            yield setup
        finally:
            for process in processes:
                stop_process_group(process, grace=5)
