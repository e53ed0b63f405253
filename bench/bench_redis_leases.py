"""Claim: counting requests in flight on Redis as leases (741b2af) costs little over the counter it
replaced, and a busy client's own leases do not make its admissions slower.

Side by side in one run, against a redis-server this script starts on a free loopback port (no
persistence), best of three rounds of ``--requests`` each, the variants taking turns:

- counter: the script before 741b2af -- INCRBY the count, PEXPIRE it -- once to take a request's
  amount and once to give it back (two round trips, as the guard makes them);
- lease: the script now (take a lease, give it back), the same two round trips;
- lease, busy client: the same while 50 other leases of the same client are in flight (a client
  sending 50 bodies at once: the script reads the latest lease and trims lapsed ones each call);
- admission: a whole ``RateLimiter.admit`` + ``settle`` with request, bytes and failure budgets on
  that Redis (what a guarded request pays for its budgets): the windows read in one pipeline that
  answers both rooms and fills the ``RateLimit`` field -- 4 round trips to admit, 3 to settle;
- admission, limits' reads: the same asking ``limits`` budget by budget (``test()``, then
  ``get_window_stats()``: a GET, and a GET and a TTL, one round trip each) -- 11 to admit.

Claim: lease / counter <= 1.5, busy / lease <= 1.2 (per request, two round trips each), and the
one read makes an admission with three budgets at least 1.3 x faster. Bounded:
loopback only, ``--requests`` x 5 variants x 3 rounds, a 60 s cap on the server's start.
Run: ``python bench/bench_redis_leases.py [--requests 5000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hmacguard import RateLimiter
from hmacguard.guard.limit_stores import IN_FLIGHT_LUA, in_flight_keys

LEASE_TARGET = 1.5
BUSY_TARGET = 1.2
PIPELINE_TARGET = 1.3

# The in-flight script as it was before 741b2af, for the side-by-side comparison only.
COUNTER_LUA = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count < 0 then
  redis.call('SET', KEYS[1], 0)
  count = 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return count
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_redis_leases: redis-server not found (make venv installs it on Debian)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit("bench_redis_leases: redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def per_request(run: Callable[[int], None], requests: int) -> float:
    """Microseconds per request over ``requests`` calls of ``run``."""
    start = time.perf_counter()
    for n in range(requests):
        run(n)
    return (time.perf_counter() - start) / requests * 1e6


def variants(url: str) -> dict[str, Callable[[int], None]]:
    import redis

    client = redis.Redis.from_url(url)
    counter = client.register_script(COUNTER_LUA)
    lease = client.register_script(IN_FLIGHT_LUA)
    token = os.urandom(8).hex()

    def run_counter(n: int) -> None:
        counter(keys=["bench/counter/client"], args=[4096, 60_000])
        counter(keys=["bench/counter/client"], args=[-4096, 60_000])

    def run_lease(n: int) -> None:
        keys = in_flight_keys("bench/lease/client")
        lease(keys=keys, args=[f"{token}{n}:4096", 4096, 60_000])
        lease(keys=keys, args=[f"{token}{n}:4096", -4096, 60_000])

    busy_keys = in_flight_keys("bench/busy/client")
    for other in range(50):  # the client's other bodies, in flight all along
        lease(keys=busy_keys, args=[f"other{other}:4096", 4096, 3_600_000])

    def run_busy(n: int) -> None:
        lease(keys=busy_keys, args=[f"{token}{n}:4096", 4096, 60_000])
        lease(keys=busy_keys, args=[f"{token}{n}:4096", -4096, 60_000])

    def admission(pipelined: bool) -> Callable[[int], None]:
        limiter = RateLimiter(
            limit="100000000/hour",
            bytes_limit="100000000000/hour",
            failure_limit="100000000/hour",
            storage=url,
        )
        if not pipelined:
            limiter._pipelined = False  # rooms and the RateLimit field asked of limits, as before

        def run(n: int) -> None:
            state = limiter.admit("client", declared_bytes=4096, longest=30.0)
            limiter.settle(state, 4096, failed=False)

        return run

    return {
        "counter": run_counter,
        "lease": run_lease,
        "lease, busy": run_busy,
        "admission": admission(pipelined=True),
        "admission, limits' reads": admission(pipelined=False),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per variant and round")
    args = parser.parse_args(argv)
    with redis_server() as url:
        runs = variants(url)
        for run in runs.values():  # warm: scripts loaded, connections open
            per_request(run, 200)
        best: dict[str, float] = {}
        for _ in range(3):
            for name, run in runs.items():
                best[name] = min(best.get(name, 1e9), per_request(run, args.requests))
    print(f"in-flight counts on Redis (loopback), per request, best of 3 x {args.requests}:")
    for name, value in best.items():
        print(f"  {name:26s} {value:8.1f} us")
    lease_ratio = best["lease"] / best["counter"]
    busy_ratio = best["lease, busy"] / best["lease"]
    print(f"ratio lease / counter: {lease_ratio:.2f}  (target <= {LEASE_TARGET})")
    print(f"ratio busy client / lease: {busy_ratio:.2f}  (target <= {BUSY_TARGET})")
    pipelined = best["admission, limits' reads"] / best["admission"]
    print(f"ratio admission, limits' reads / pipelined: {pipelined:.2f}  (target >= {PIPELINE_TARGET})")
    held = lease_ratio <= LEASE_TARGET and busy_ratio <= BUSY_TARGET and pipelined >= PIPELINE_TARGET
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
