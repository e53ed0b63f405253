"""Claim (c): a tiny signed request through the guard runs at >= 0.85x the requests/s of the same app
with a hand-written inline check.

Two gunicorn servers (one sync worker each) run side by side on loopback:

- inline: the check written by hand the careful way -- Content-Length over the cap refused, the body
  read in bounded chunks and counted, ``hmac.compare_digest`` on the result;
- guarded: the bare app wrapped in ``WSGIGuard`` with the defaults (1 MiB cap, read timeout,
  in-memory replay protection -- which the inline check does not even have).

A driver in a second process sends pre-signed, distinct ~100-byte GitHub-style deliveries, one
connection per request (gunicorn's sync worker closes each), alternating rounds between the servers so
both see the same machine load; the best round of each is kept. An in-process WSGI figure (no server,
no sockets: the guard's own cost against the inline check's) is printed too, for transparency.

Bounded: loopback, ``rounds x requests`` small requests per server, each under a socket timeout.
Run: ``python bench/bench_guard_rps.py [--requests 400] [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hmacguard import Signer, Verifier, WSGIGuard

SECRET = "bench-rps-secret"
CAP = 1024 * 1024
TARGET = 0.85
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
    return _answer(start_response, "200 OK", b"ok")


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


def drive(ports: dict[str, int], count: int, rounds: int) -> dict[str, float]:
    best = dict.fromkeys(ports, 0.0)
    offset = 0
    for _ in range(rounds):
        for name, port in ports.items():
            batch = requests(count, offset)  # distinct deliveries: the guard's replay store sees no repeats
            offset += count
            t0 = time.perf_counter()
            statuses = [one(port, r) for r in batch]
            elapsed = time.perf_counter() - t0
            if set(statuses) != {200}:
                raise SystemExit(f"{name}: unexpected statuses {sorted(set(statuses))}")
            best[name] = max(best[name], count / elapsed)
    return best


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


def wait(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("a gunicorn server exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("a gunicorn server did not listen within 30 s")


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
    parser.add_argument("--requests", type=int, default=400, help="requests per round per server")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # internal: run as the driver process
    args = parser.parse_args(argv)
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive), args.requests, args.rounds)))
        return 0

    ports = {"inline": free_port(), "guarded": free_port()}
    servers = [serve("inline_app", ports["inline"]), serve("guarded_app", ports["guarded"])]
    try:
        for process, port in zip(servers, ports.values()):
            wait(port, process)
        driver = subprocess.run(
            [sys.executable, __file__, "--drive", json.dumps(ports),
             "--requests", str(args.requests), "--rounds", str(args.rounds)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if driver.returncode != 0:
            print(driver.stdout, driver.stderr, file=sys.stderr)
            return 2
        rps = json.loads(driver.stdout)
    finally:
        for process in servers:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
    local = in_process(2000)

    print(f"gunicorn, 1 sync worker each, 1 connection per request, best of {args.rounds} rounds:")
    print(f"  inline check  {rps['inline']:8.0f} req/s")
    print(f"  WSGIGuard     {rps['guarded']:8.0f} req/s")
    ratio = rps["guarded"] / rps["inline"]
    print(f"ratio guard/inline under gunicorn: {ratio:.3f}  (target >= {TARGET})")
    print("in-process WSGI (no server), best of 5 x 2000:")
    print(f"  inline check  {local['inline']:8.0f} req/s")
    print(f"  WSGIGuard     {local['guarded']:8.0f} req/s")
    print(f"ratio guard/inline in-process:     {local['guarded'] / local['inline']:.3f}  (informational)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
