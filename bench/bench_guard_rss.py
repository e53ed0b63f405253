"""Claim (b): a guarded gunicorn app refusing 20 concurrent 100 MiB bodies grows its peak RSS by at
most 16 MiB, at least 20 times less than the unguarded ``flask-get-data`` lab target under the same load.

Both targets run under gunicorn with the same worker count, one after the other in this run. Each
gets a few small warm-up requests (so lazy imports and first-request caches are paid before the
baseline), then 20 threads each POST 100 MiB with a forged signature (the attacker's view: no secret
needed) and a Content-Length. A sender stops as soon as the server answers or closes, so a target
that refuses early costs the client little. The server tree's RSS is sampled every 10 ms; the
growth is peak minus the baseline taken just before the load.

Bounded: loopback only, at most ``bodies x size`` bytes per target, every sender and the whole load
under a deadline. Run: ``python bench/bench_guard_rss.py`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass

from hmacguard.lab import RunningTarget, get_target, run_target
from hmacguard.memory import MemorySampler
from hmacguard.schemes import forged_headers, sign_body

MiB = 1024 * 1024
CHUNK = 64 * 1024
GUARDED = "flask-guarded"
UNGUARDED = "flask-get-data"
#: A growth below this is indistinguishable from allocator noise; the ratio's denominator never
#: goes under it, so a guarded growth of zero does not print an infinite ratio.
NOISE_FLOOR = 1 * MiB


@dataclass
class Outcome:
    status: int | None = None
    bytes_sent: int = 0
    error: str | None = None


@dataclass
class Run:
    name: str
    workers: int
    baseline: int
    peak_growth: int
    seconds: float
    outcomes: list[Outcome]

    def summary(self) -> str:
        statuses: dict[str, int] = {}
        for o in self.outcomes:
            key = str(o.status) if o.status is not None else (o.error or "no answer")
            statuses[key] = statuses.get(key, 0) + 1
        sent = sum(o.bytes_sent for o in self.outcomes) / MiB
        shown = ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))
        return (
            f"{self.name:<16} workers={self.workers}  peak RSS growth {self.peak_growth / MiB:8.1f} MiB"
            f"  (baseline {self.baseline / MiB:.0f} MiB)  sent {sent:8.1f} MiB in {self.seconds:5.1f} s"
            f"  answers: {shown}"
        )


def send_body(
    host: str, port: int, path: str, headers: dict[str, str], size: int, deadline: float
) -> Outcome:
    """POST ``size`` bytes; stop at the first byte of an answer, a reset, or the deadline."""
    outcome = Outcome()
    block = b"a" * CHUNK
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {size}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    try:
        sock = socket.create_connection((host, port), timeout=max(1.0, deadline - time.monotonic()))
    except OSError as exc:
        outcome.error = type(exc).__name__
        return outcome
    with sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            pending = b""
            while outcome.bytes_sent < size or pending:
                if time.monotonic() > deadline:
                    outcome.error = "deadline"
                    return outcome
                readable, writable, _ = select.select([sock], [sock], [], 0.5)
                if readable:
                    break
                if writable:
                    if not pending:
                        pending = block[: min(CHUNK, size - outcome.bytes_sent)]
                    n = sock.send(pending)
                    pending = pending[n:]
                    outcome.bytes_sent += n
            sock.settimeout(max(0.5, deadline - time.monotonic()))
            first = sock.recv(4096)
        except OSError as exc:
            outcome.error = type(exc).__name__
            return outcome
    parts = first.split(b" ", 2)
    if len(parts) > 1 and parts[1].isdigit():
        outcome.status = int(parts[1])
    else:
        outcome.error = "closed"
    return outcome


def warm_up(target: RunningTarget, requests: int) -> None:
    """Small signed requests, so each worker has imported and initialised everything it will use."""
    for i in range(requests):
        body = b'{"warm": %d}' % i
        headers = sign_body(target.scheme, target.secret, body)
        conn = http.client.HTTPConnection(target.host, target.port, timeout=10)
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            conn.getresponse().read()
        finally:
            conn.close()


def measure(name: str, *, workers: int, bodies: int, size: int, timeout: float) -> Run:
    target = dataclasses.replace(get_target(name), workers=workers)
    with run_target(target) as running:
        warm_up(running, 4 * workers)
        time.sleep(0.5)
        headers = forged_headers(running.scheme)
        headers["Content-Type"] = target.content_type
        outcomes = [Outcome() for _ in range(bodies)]
        deadline = time.monotonic() + timeout

        def one(i: int) -> None:
            outcomes[i] = send_body(running.host, running.port, running.path, headers, size, deadline)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(bodies)]
        t0 = time.monotonic()
        with MemorySampler(running.pid, interval=0.01) as sampler:
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()) + 1.0)
            time.sleep(0.2)  # one last look while buffers would still be alive
        seconds = time.monotonic() - t0
    return Run(name, workers, sampler.baseline, sampler.peak - sampler.baseline, seconds, outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=20, help="concurrent requests (default 20)")
    parser.add_argument("--size-mib", type=int, default=100, help="body size in MiB (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both targets")
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline per target, seconds")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    print(f"{args.bodies} concurrent POSTs of {args.size_mib} MiB, forged signature, Content-Length")
    guarded = measure(GUARDED, workers=args.workers, bodies=args.bodies, size=size, timeout=args.timeout)
    print(guarded.summary())
    unguarded = measure(UNGUARDED, workers=args.workers, bodies=args.bodies, size=size, timeout=args.timeout)
    print(unguarded.summary())
    ratio = unguarded.peak_growth / max(guarded.peak_growth, NOISE_FLOOR)
    print(f"ratio (unguarded / guarded growth, guarded floored at {NOISE_FLOOR // MiB} MiB): {ratio:.1f}x")
    ok = guarded.peak_growth <= 16 * MiB and ratio >= 20
    all_refused = all(o.status == 413 for o in guarded.outcomes)
    print(f"claim: guarded growth <= 16 MiB and ratio >= 20x: {'holds' if ok else 'FAILS'}")
    print(f"guarded answered 413 to every body: {'yes' if all_refused else 'NO'}")
    return 0 if ok and all_refused else 1


if __name__ == "__main__":
    sys.exit(main())
