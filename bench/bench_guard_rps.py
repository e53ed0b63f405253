"""Claim (c): a tiny signed request through the guard runs at >= 0.95x the requests per worker
CPU-second of the same app with a hand-written inline check under gunicorn, and in-process costs at
most 2x the inline check (ratio >= 0.5).

Two gunicorn servers (one sync worker each) run side by side on loopback:

- inline: the check written by hand the careful way -- Content-Length over the cap refused, the body
  read in bounded chunks and counted, ``hmac.compare_digest`` on the result, and a de-duplication
  set of the signatures seen (the replay protection the guard has on by default);
- guarded: the bare app wrapped in ``WSGIGuard`` with the defaults (1 MiB cap, read timeout,
  in-memory replay protection -- which the inline check does not even have).

A driver in a second process sends pre-signed, distinct ~100-byte GitHub-style deliveries, one
connection per request (gunicorn's sync worker closes each), in pairs of adjacent batches -- one per
server, the order alternating -- so that load from anything else on the machine falls on both sides
of a pair alike. Two figures: the median of the per-pair wall-clock ratios, and requests per CPU-second
of each server's worker over all its batches. On a machine shared with other work the wall-clock
figure carries the neighbours' load (one pair can read 0.4, the next 2.0); the CPU figure is what one
dedicated core would serve and is the one held to the target. An in-process WSGI figure (no server,
no sockets: the guard's own cost against the inline check's) is printed too, for transparency.

Bounded: loopback, ``rounds x requests`` small requests per server, each under a socket timeout.
Run: ``python bench/bench_guard_rps.py [--requests 250] [--pairs 20]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hmacguard import Signer, Verifier, WSGIGuard

SECRET = "bench-rps-secret"
CAP = 1024 * 1024
TARGET = 0.95
IN_PROCESS_TARGET = 0.5
HERE = Path(__file__).resolve().parent


# -- the two applications gunicorn serves ---------------------------------------------------------
def _answer(start_response: Any, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def bare_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    return _answer(start_response, "200 OK", b"ok")


def inline_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    signature = environ.get("HTTP_X_HUB_SIGNATURE_256", "")
    if not signature.startswith("sha256="):
        return _answer(start_response, "400 Bad Request", b"bad signature header")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _answer(start_response, "400 Bad Request", b"bad length")
    if length > CAP:
        return _answer(start_response, "413 Content Too Large", b"too large")
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha256)
    stream, left = environ["wsgi.input"], length
    while left > 0:
        chunk = stream.read(min(65536, left))
        if not chunk:
            return _answer(start_response, "400 Bad Request", b"short body")
        mac.update(chunk)
        left -= len(chunk)
    if not hmac.compare_digest("sha256=" + mac.hexdigest(), signature):
        return _answer(start_response, "401 Unauthorized", b"signature mismatch")
    if signature in SEEN:
        return _answer(start_response, "409 Conflict", b"already processed")
    SEEN.add(signature)
    return _answer(start_response, "200 OK", b"ok")


#: The inline check's replay protection (unbounded, as hand-written ones are).
SEEN: set[str] = set()


guarded_app = WSGIGuard(bare_app, verifier=Verifier("github", secrets=SECRET))


# -- the driver (a second process) ----------------------------------------------------------------
def requests(count: int, offset: int) -> list[bytes]:
    signer = Signer("github", secrets=SECRET)
    out = []
    for i in range(offset, offset + count):
        body = b'{"action": "push", "delivery": %d, "ref": "refs/heads/main"}' % i
        headers = signer.sign(body)
        lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


def one(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while piece := sock.recv(65536):
            data += piece
    return int(data.split(b" ", 2)[1])


def worker_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def drive(servers: dict[str, list[int]], count: int, pairs: int) -> dict[str, dict[str, Any]]:
    """Per server: requests/s of each batch, and the worker's CPU seconds over all its batches.

    Batches come in pairs (inline then guarded, then the other way round), so load from anything
    else on the machine falls on both sides of each pair alike.
    """
    out: dict[str, dict[str, Any]] = {n: {"rates": [], "cpu": 0.0, "requests": 0} for n in servers}
    offset = 0
    for pair in range(pairs):
        order = list(servers) if pair % 2 == 0 else list(reversed(servers))
        for name in order:
            port, pid = servers[name]
            batch = requests(count, offset)  # distinct deliveries: the guard's replay store sees no repeats
            offset += count
            cpu0 = worker_cpu(pid)
            t0 = time.perf_counter()
            statuses = [one(port, r) for r in batch]
            elapsed = time.perf_counter() - t0
            out[name]["cpu"] += worker_cpu(pid) - cpu0
            out[name]["requests"] += count
            if set(statuses) != {200}:
                raise SystemExit(f"{name}: unexpected statuses {sorted(set(statuses))}")
            out[name]["rates"].append(count / elapsed)
    return out


# -- orchestration ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--worker-class", "sync", "--log-level", "warning", "--chdir", str(HERE),
         f"bench_guard_rps:{app}"],
        start_new_session=True,
    )  # fmt: skip


def wait(port: int, process: subprocess.Popen[bytes]) -> int:
    """Wait until the server listens; return its (single) worker's pid."""
    import psutil

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("a gunicorn server exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            children = psutil.Process(process.pid).children()
            if children:
                return int(children[0].pid)
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("a gunicorn server did not start its worker within 30 s")


def in_process(count: int) -> dict[str, float]:
    """Requests/s calling each WSGI app directly: the guard's own cost, with no server around it."""
    apps = {"inline": inline_app, "guarded": guarded_app}
    signer = Signer("github", secrets=SECRET)
    best = dict.fromkeys(apps, 0.0)
    serial = 10_000_000
    for _ in range(5):
        for name, app in apps.items():
            prepared = []
            for _ in range(count):
                serial += 1
                body = b'{"action": "push", "delivery": %d}' % serial
                environ = {
                    "REQUEST_METHOD": "POST", "PATH_INFO": "/webhook", "REMOTE_ADDR": "127.0.0.1",
                    "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                    "HTTP_X_HUB_SIGNATURE_256": signer.sign(body)["X-Hub-Signature-256"],
                }  # fmt: skip
                prepared.append(environ)
            t0 = time.perf_counter()
            for environ in prepared:
                result = app(environ, lambda status, headers, exc_info=None: None)
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            best[name] = max(best[name], count / (time.perf_counter() - t0))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=250, help="requests per batch")
    parser.add_argument("--pairs", type=int, default=20, help="pairs of batches (one per server)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # internal: run as the driver process
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive), args.requests, args.pairs)))
        return 0

    ports = {"inline": free_port(), "guarded": free_port()}
    servers = [serve("inline_app", ports["inline"]), serve("guarded_app", ports["guarded"])]
    try:
        targets = {name: [port, wait(port, process)] for (name, port), process in zip(ports.items(), servers)}
        driver = subprocess.run(
            [sys.executable, __file__, "--drive", json.dumps(targets),
             "--requests", str(args.requests), "--pairs", str(args.pairs)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if driver.returncode != 0:
            print(driver.stdout, driver.stderr, file=sys.stderr)
            return 2
        result = json.loads(driver.stdout)
    finally:
        for process in servers:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
    local = in_process(2000)

    inline, guarded = result["inline"], result["guarded"]
    ratios = sorted(g / i for g, i in zip(guarded["rates"], inline["rates"]))
    wall = statistics.median(ratios)
    per_cpu = {n: r["requests"] / r["cpu"] for n, r in result.items()}
    cpu_ratio = per_cpu["guarded"] / per_cpu["inline"]
    print(
        f"gunicorn, 1 sync worker each, 1 connection per request, {args.pairs} pairs of "
        f"{args.requests}-request batches:"
    )
    print(
        f"  inline check  {statistics.median(inline['rates']):8.0f} req/s (median batch)  "
        f"{per_cpu['inline']:8.0f} req per worker CPU-second"
    )
    print(
        f"  WSGIGuard     {statistics.median(guarded['rates']):8.0f} req/s (median batch)  "
        f"{per_cpu['guarded']:8.0f} req per worker CPU-second"
    )
    print(
        f"ratio guard/inline, wall clock (median of pairs): {wall:.3f}  "
        f"(pairs range {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )
    print(f"ratio guard/inline, per worker CPU-second:       {cpu_ratio:.3f}  (target >= {TARGET})")
    print("in-process WSGI (no server), best of 5 x 2000:")
    print(f"  inline check  {local['inline']:8.0f} req/s  ({1e6 / local['inline']:.1f} us a request)")
    print(f"  WSGIGuard     {local['guarded']:8.0f} req/s  ({1e6 / local['guarded']:.1f} us a request)")
    local_ratio = local["guarded"] / local["inline"]
    print(f"ratio guard/inline in-process:     {local_ratio:.3f}  (target >= {IN_PROCESS_TARGET})")
    return 0 if cpu_ratio >= TARGET and local_ratio >= IN_PROCESS_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
