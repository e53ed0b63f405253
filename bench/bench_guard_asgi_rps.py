"""Claim (c, ASGI): the per-request overhead claim of bench_guard_rps.py, under uvicorn.

The same measurement as bench_guard_rps.py (read its docstring for the method and why), for ASGI:
one uvicorn process serves three sides by path -- ``/inline``, an ASGI application with the
careful hand-written check (Content-Length over the cap refused, the body received and counted,
``hmac.compare_digest``, a de-duplication set); ``/guarded``, a bare ASGI application behind
``ASGIGuard`` with its defaults (in-memory replay protection on); ``/control``, the inline check
again -- pinned to one core, the driver on the other, CPU from the scheduler's account summed over
the server's threads, ``--rounds`` fresh servers. An in-process figure (the apps awaited directly,
no server) is printed beside it.

Targets: the WSGI ones, applied to ASGI (>= 0.95 per server CPU-second, >= 0.5 in-process).
Bounded as bench_guard_rps.py. Run: ``python bench/bench_guard_asgi_rps.py [--rounds 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_guard_rps import CAP, SECRET, measure, report_cpu, report_in_process, round_arguments

from hmacguard import ASGIGuard, Signer, Verifier

TARGET = 0.95
IN_PROCESS_TARGET = 0.5
HERE = Path(__file__).resolve().parent
Message = dict[str, Any]


# -- the applications uvicorn serves --------------------------------------------------------------
async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await _answer(send, 200, b"ok")


#: The inline check's replay protection (unbounded, as hand-written ones are).
SEEN: set[bytes] = set()


async def inline_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = dict(scope["headers"])
    signature = headers.get(b"x-hub-signature-256", b"")
    if not signature.startswith(b"sha256="):
        return await _answer(send, 400, b"bad signature header")
    try:
        length = int(headers.get(b"content-length") or 0)
    except ValueError:
        return await _answer(send, 400, b"bad length")
    if length > CAP:
        return await _answer(send, 413, b"too large")
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha256)
    received, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client left
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > CAP:
            return await _answer(send, 413, b"too large")
        mac.update(chunk)
        more = message.get("more_body", False)
    if not hmac.compare_digest(b"sha256=" + mac.hexdigest().encode(), signature):
        return await _answer(send, 401, b"signature mismatch")
    if signature in SEEN:
        return await _answer(send, 409, b"already processed")
    SEEN.add(signature)
    return await _answer(send, 200, b"ok")


guarded_app = ASGIGuard(bare_app, verifier=Verifier("github", secrets=SECRET))
ROUTES = {"/inline": inline_app, "/guarded": guarded_app, "/control": inline_app}


async def routed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What uvicorn serves: the same lookup in front of each side (lifespan answered as unsupported)."""
    if scope["type"] == "http":
        await ROUTES[scope["path"]](scope, receive, send)
    elif scope["type"] == "lifespan":
        raise RuntimeError("no lifespan")  # uvicorn then carries on without it


# -- orchestration ----------------------------------------------------------------------------------
def serve(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "critical", "--no-access-log", "--lifespan", "off",
         "bench_guard_asgi_rps:routed_app"],
        start_new_session=True,
    )  # fmt: skip


def start_uvicorn(port: int) -> tuple[subprocess.Popen[bytes], int]:
    """uvicorn on ``port``, once it listens (one process serves)."""
    process = serve(port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("uvicorn exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, process.pid
        except OSError:
            time.sleep(0.05)
    os.killpg(process.pid, 15)
    process.wait(timeout=15)
    raise SystemExit("uvicorn did not listen within 30 s")


def in_process(count: int) -> dict[str, float]:
    """Microseconds per request awaiting each ASGI app directly: the guard's own cost."""
    signer = Signer("github", secrets=SECRET)
    apps = {"inline": inline_app, "guarded": guarded_app}
    best = dict.fromkeys(apps, 1e9)
    serial = 10_000_000

    async def ignore(message: Message) -> None:
        return None

    async def run(app: Any, prepared: list[tuple[dict[str, Any], bytes]]) -> float:
        t0 = time.perf_counter()
        for scope, body in prepared:
            messages = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive(messages: list[Message] = messages) -> Message:
                return messages.pop() if messages else {"type": "http.disconnect"}

            await app(scope, receive, ignore)
        return (time.perf_counter() - t0) / len(prepared) * 1e6

    for _ in range(5):
        for name, app in apps.items():
            prepared = []
            for _ in range(count):
                serial += 1
                body = b'{"action": "push", "delivery": %d}' % serial
                signature = signer.sign(body)["X-Hub-Signature-256"].encode()
                scope = {
                    "type": "http", "method": "POST", "path": "/webhook", "root_path": "",
                    "headers": [(b"content-length", str(len(body)).encode()),
                                (b"x-hub-signature-256", signature)],
                    "client": ("127.0.0.1", 1),
                }  # fmt: skip
                prepared.append((scope, body))
            best[name] = min(best[name], asyncio.run(run(app, prepared)))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    round_arguments(parser)
    args = parser.parse_args(argv)

    rounds, placement = measure(start_uvicorn, args.rounds, args.requests, args.pairs)
    print(
        f"uvicorn, one process serving every side ({placement}), 1 connection per request, "
        f"{args.rounds} rounds of a fresh server x {args.pairs} batches of {args.requests} requests per side:"
    )
    cpu_ratio = report_cpu(rounds, "ASGIGuard", TARGET)
    local = in_process(2000)
    local_ratio = report_in_process("ASGI", local["inline"], local["guarded"], "ASGIGuard")
    return 0 if cpu_ratio >= TARGET and local_ratio >= IN_PROCESS_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
