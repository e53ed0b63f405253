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
from collections.abc import Iterator
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


def _frames(size: int, chunked: bool) -> Iterator[tuple[bytes, int]]:
    """The body on the wire, piece by piece, with how many body bytes each piece carries."""
    block = b"a" * CHUNK
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield (b"%x\r\n%s\r\n" % (n, block[:n]) if chunked else block[:n]), n
        sent += n
    if chunked:
        yield b"0\r\n\r\n", 0


def send_body(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    size: int,
    deadline: float,
    *,
    chunked: bool = False,
) -> Outcome:
    """POST ``size`` bytes; stop at the first byte of an answer, a reset, or the deadline."""
    outcome = Outcome()
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", framing]
    head += [f"{k}: {v}" for k, v in headers.items()]
    try:
        sock = socket.create_connection((host, port), timeout=max(1.0, deadline - time.monotonic()))
    except OSError as exc:
        outcome.error = type(exc).__name__
        return outcome
    with sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            frames = _frames(size, chunked)
            pending, carried = b"", 0
            while True:
                if not pending:
                    outcome.bytes_sent += carried
                    pending, carried = next(frames, (b"", 0))
                    if not pending:
                        break
                if time.monotonic() > deadline:
                    outcome.error = "deadline"
                    return outcome
                readable, writable, _ = select.select([sock], [sock], [], 0.5)
                if readable:
                    break
                if writable:
                    try:
                        pending = pending[sock.send(pending) :]
                    except OSError as exc:
                        # The server closed while we were still sending: its answer may be
                        # waiting in our receive buffer, so read before calling it an error.
                        outcome.error = type(exc).__name__
                        break
            sock.settimeout(max(0.5, deadline - time.monotonic()))
            first = sock.recv(4096)
        except OSError as exc:
            outcome.error = outcome.error or type(exc).__name__
            return outcome
    parts = first.split(b" ", 2)
    if len(parts) > 1 and parts[1].isdigit():
        outcome.status, outcome.error = int(parts[1]), None
    else:
        outcome.error = outcome.error or "closed"
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


def measure(name: str, *, workers: int, bodies: int, size: int, timeout: float, chunked: bool) -> Run:
    target = dataclasses.replace(get_target(name), workers=workers)
    with run_target(target) as running:
        warm_up(running, 4 * workers)
        time.sleep(0.5)
        headers = forged_headers(running.scheme)
        headers["Content-Type"] = target.content_type
        outcomes = [Outcome() for _ in range(bodies)]
        deadline = time.monotonic() + timeout

        def one(i: int) -> None:
            outcomes[i] = send_body(
                running.host, running.port, running.path, headers, size, deadline, chunked=chunked
            )

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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bodies", type=int, default=20, help="concurrent requests (default 20)")
    parser.add_argument("--size-mib", type=int, default=100, help="body size in MiB (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both targets")
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline per run, seconds")
    parser.add_argument(
        "--framing",
        choices=("content-length", "chunked", "both"),
        default="both",
        help="how the bodies are framed (default both; the claim is made for each)",
    )
    args = parser.parse_args(argv)
    if not (1 <= args.bodies <= 64 and 1 <= args.size_mib <= 1024 and 1 <= args.workers <= 8):
        parser.error("bounds: 1..64 bodies, 1..1024 MiB, 1..8 workers")
    size = args.size_mib * MiB
    framings = ("content-length", "chunked") if args.framing == "both" else (args.framing,)
    holds = True
    for framing in framings:
        chunked = framing == "chunked"
        print(f"\n{args.bodies} concurrent POSTs of {args.size_mib} MiB, forged signature, {framing}")
        runs = [
            measure(
                name,
                workers=args.workers,
                bodies=args.bodies,
                size=size,
                timeout=args.timeout,
                chunked=chunked,
            )
            for name in (GUARDED, UNGUARDED)
        ]
        guarded, unguarded = runs
        for run in runs:
            print(run.summary())
        ratio = unguarded.peak_growth / max(guarded.peak_growth, NOISE_FLOOR)
        ok = guarded.peak_growth <= 16 * MiB and ratio >= 20
        refused = all(o.status == 413 for o in guarded.outcomes)
        print(
            f"ratio (unguarded / guarded growth, guarded floored at {NOISE_FLOOR // MiB} MiB): {ratio:.1f}x"
        )
        print(
            f"claim (guarded <= 16 MiB, ratio >= 20x): {'holds' if ok else 'FAILS'}; "
            f"guarded answered 413 to every body: {'yes' if refused else 'NO'}"
        )
        holds = holds and ok and refused
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
