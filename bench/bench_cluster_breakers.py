"""Claim: on a Redis Cluster, choosing each store call's breaker by its key's node (b853985:
``StoreCalls._breaker_for`` reading redis-py's slot map) costs little beside the call itself.

Side by side in one run, against a 3-primary Cluster this script starts on free loopback ports (no
persistence), best of five rounds, the variants taking turns:

- lookup: ``_breaker_for(key)`` alone (the slot, the map, the shared breaker), per call, against
  the old path (the store's one breaker: an attribute read); and the rate limiter's
  ``_window_key`` + ``_breaker_for`` for one budget;
- replay hold: ``RedisReplayStore.hold`` + ``release`` on the Cluster, per node (now) and with the
  lookup switched off (``_node_of`` answering ``None``: the single-breaker path as before);
- admission: ``RateLimiter.admit`` + ``settle`` with request, bytes and failure budgets, the same two ways.

Claim: per node / single breaker <= 1.10 for a hold + release and for an admission (each makes
several round trips; the lookup is CPU only). Bounded: loopback only, ``--calls`` per variant and
round, a 60 s cap on the Cluster's start.
Run: ``python bench/bench_cluster_breakers.py [--calls 3000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hmacguard import RateLimiter, RedisReplayStore

TARGET = 1.10
ROUNDS = 5  # best of: the machine is shared, and one round can be slowed by a neighbour
SLOTS = 16384


def _free_pair() -> int:
    """A port whose cluster-bus twin (+10000) is free too, below the ephemeral range."""
    for _ in range(200):
        port = random.randint(12000, 22000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10000):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return port
    raise SystemExit("bench_cluster_breakers: no free port pair")


def _wait(predicate: Callable[[], bool], deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.1)
    raise SystemExit("bench_cluster_breakers: the Cluster did not start in 60 s")


@contextlib.contextmanager
def redis_cluster() -> Iterator[str]:
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_cluster_breakers: redis-server not found")
    ports: list[int] = []
    while len(ports) < 3:
        port = _free_pair()
        if port not in ports:
            ports.append(port)
    deadline = time.monotonic() + 60
    with tempfile.TemporaryDirectory() as tmp:
        processes = []
        try:
            for port in ports:
                Path(tmp, str(port)).mkdir()
                processes.append(
                    subprocess.Popen(
                        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                         "nodes.conf"],
                        cwd=Path(tmp, str(port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                )  # fmt: skip
            clients = [redis.Redis(port=port, socket_timeout=2) for port in ports]
            for client in clients:
                _wait(lambda c=client: bool(c.ping()), deadline)  # type: ignore[misc]
            share = SLOTS // 3
            for index, client in enumerate(clients):
                last = SLOTS - 1 if index == 2 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
            for client in clients:
                _wait(lambda c=client: c.cluster("info").get("cluster_state") == "ok", deadline)  # type: ignore[misc]
            yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)


def _best(run: Callable[[], None], calls: int, rounds: list[list[float]]) -> None:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    rounds.append([(time.perf_counter() - started) / calls])


def single_breaker(store: Any) -> Any:
    """``store`` with the lookup switched off: every call through its one breaker, as before b853985."""
    store._node_of = lambda key: None
    if isinstance(store, RateLimiter):  # nor the keys it routes by (the windows then read in one pipeline)
        store._window_key = lambda budget, key: None  # type: ignore[method-assign]
        store._in_flight_key = lambda key, counter: None  # type: ignore[method-assign]
    return store


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    calls = parser.parse_args().calls
    with redis_cluster() as url:
        per_node, single = RedisReplayStore(url), single_breaker(RedisReplayStore(url))
        budgets = {"limit": "1000000/hour", "bytes_limit": "1000000000/hour", "failure_limit": "1000000/hour"}
        limiter, old_limiter = (
            RateLimiter(storage=url, **budgets),
            single_breaker(RateLimiter(storage=url, **budgets)),
        )
        keys = [f"bench:{i}" for i in range(1000)]
        counter = iter(range(10**9))

        def hold(store: Any) -> Callable[[], None]:
            def run() -> None:
                key = f"hold:{next(counter)}"
                token = store.hold(key, 60)
                store.release(key, token)

            return run

        def admit(rate: Any) -> Callable[[], None]:
            def run() -> None:
                key = keys[next(counter) % len(keys)]
                rate.settle(rate.admit(key, declared_bytes=100), 100, failed=False)

            return run

        requests = next(b for b in limiter._budgets.values() if b.name == "requests")

        def lookup() -> None:
            per_node._breaker_for(keys[next(counter) % len(keys)])

        def old_lookup() -> None:
            assert single.breaker is not None  # the old path: the store's one breaker

        def window_lookup() -> None:
            key = keys[next(counter) % len(keys)]
            limiter._breaker_for(limiter._window_key(requests, key))

        variants: dict[str, Callable[[], None]] = {
            "lookup, per node": lookup,
            "lookup, single breaker": old_lookup,
            "limiter lookup (window key + node)": window_lookup,
            "hold+release, per node": hold(per_node),
            "hold+release, single breaker": hold(single),
            "admit+settle, per node": admit(limiter),
            "admit+settle, single breaker": admit(old_limiter),
        }
        for run in variants.values():  # warm: clients, slot maps, scripts
            for _ in range(50):
                run()
        results: dict[str, list[list[float]]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, run in variants.items():
                _best(run, calls if "lookup" not in name else calls * 20, results[name])
        best = {name: min(r[0] for r in rounds) * 1e6 for name, rounds in results.items()}
        for name, micros in best.items():
            print(f"{name:40s} {micros:9.2f} us per call")
        hold_ratio = best["hold+release, per node"] / best["hold+release, single breaker"]
        admit_ratio = best["admit+settle, per node"] / best["admit+settle, single breaker"]
        print(f"hold+release per node / single breaker: {hold_ratio:.3f} (target <= {TARGET})")
        print(f"admit+settle per node / single breaker: {admit_ratio:.3f} (target <= {TARGET})")
        per_node.close()
        single.close()
        ok = hold_ratio <= TARGET and admit_ratio <= TARGET
        print("PASS" if ok else "MISS")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
