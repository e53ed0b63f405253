"""Claim: a process-wide memory budget bounds what many held uploads make one ASGI worker hold.

The per-request cap bounds one request; an ASGI server takes as many connections as clients open.
The attack: N connections each send a forged signature, declare a body just below the spool
threshold (250,000 bytes against 256 KiB), send 240,000 bytes of it and wait, inside the body
timeout. Each body is kept in memory until it is whole; N of them are N x 240 KB.

Three uvicorn servers, one after the other in this run: the bare app (which reads each body and
keeps nothing: the server's own share), the same app guarded with ``memory_budget=None`` (no budget:
what the guard did before), and guarded with a 16 MiB budget. For each: the worker's RSS before the
attack and its peak (``VmHWM``) while the uploads are held, the growth, and whether a genuine
signed delivery sent in pieces during the attack is served (200, the body exact). The uploads
trickle (a piece on every connection, then a pause), as slow uploads arrive: sent at once instead,
the server itself reads up to 256 KiB a connection before any application runs, and that -- its
share, not the guard's -- dominates. The ratio of the growths is the claim's figure.

Bounded: loopback only, ``uploads x 240 KB`` per side, every socket under a timeout. Run:
``python bench/bench_memory_budget.py [--uploads N]``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hmacguard import ASGIGuard, MemoryBudget, Signer, Verifier

HERE = Path(__file__).resolve().parent
SECRET = "bench-memory-budget"
DECLARED = 250_000  # just below the default spool threshold (256 KiB)
SENT = 240_000
PIECE = 16_384
MiB = 1024 * 1024
BUDGET = 16 * MiB


# -- the served app (uvicorn imports this module; the side comes from the environment) ------------
async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    digest, more = hashlib.sha256(), True
    while more:
        message = await receive()
        digest.update(message.get("body", b""))
        more = message.get("more_body", False)
    answer = digest.hexdigest().encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _served(side: str) -> Any:
    """The app a side serves: the bare app ("unguarded": the server's own share), or guarded with no
    budget ("none") or with a budget of that many bytes."""
    if side == "unguarded":
        return _app
    budget = None if side == "none" else MemoryBudget(int(side))
    verifier = Verifier("github", secrets=SECRET, replay=None, body_timeout=60.0, memory_budget=budget)
    return ASGIGuard(_app, verifier=verifier)


served = _served(os.environ.get("HMACGUARD_BENCH_BUDGET", "none"))


# -- the driver -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


@contextlib.contextmanager
def _uvicorn(budget: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--log-level", "warning",
         "--no-access-log", "--port", str(port), "bench_memory_budget:served"],
        env={**os.environ, "HMACGUARD_BENCH_BUDGET": budget}, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("uvicorn did not start")
            time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _genuine(port: int) -> bool:
    body = os.urandom(200_000)
    headers = Signer("github", secrets=SECRET).sign(body)
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for i in range(0, len(body), PIECE):
            sock.sendall(body[i : i + PIECE])
            time.sleep(0.002)
        while chunk := sock.recv(65536):
            data += chunk
    return data.startswith(b"HTTP/1.1 200") and data.endswith(hashlib.sha256(body).hexdigest().encode())


def one_side(budget: str, uploads: int) -> tuple[float, bool]:
    """The worker's peak RSS growth (MiB) with ``uploads`` held, and whether a delivery was served."""
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
        b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nContent-Length: %d\r\n\r\n" % DECLARED
    )
    piece = b"a" * PIECE
    with _uvicorn(budget) as (port, pid):
        if not _genuine(port):
            raise SystemExit("bench_memory_budget: the warm-up delivery was not served")
        before = _proc_kib(pid, "VmRSS")
        sockets = []
        try:
            for _ in range(uploads):
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sockets.append(sock)
                sock.sendall(head)
            # A trickle, as a slow upload arrives: a piece on every connection, then a pause in
            # which the server reads them, so that it holds pieces, not whole bodies, as it reads.
            for offset in range(0, SENT, PIECE):
                for sock in sockets:
                    sock.sendall(piece[: min(PIECE, SENT - offset)])
                time.sleep(0.1)
            time.sleep(1.0)
            served = _genuine(port)
            peak = _proc_kib(pid, "VmHWM")
        finally:
            for sock in sockets:
                sock.close()
    return (peak - before) / 1024, served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=400, help="held uploads per side (default 400)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("bench_memory_budget: needs Linux /proc; skipped")
        return 0
    print(
        f"uvicorn, 1 worker; {args.uploads} uploads trickling {SENT:,} of {DECLARED:,} declared bytes"
        f" (forged), held:"
    )
    growth = {}
    for label, side in (("server alone", "unguarded"), ("no budget", "none"), ("16 MiB budget", str(BUDGET))):
        growth[side], served = one_side(side, args.uploads)
        print(f"  {label:14} peak RSS growth {growth[side]:7.1f} MiB   genuine delivery served: {served}")
    ratio = growth["none"] / max(growth[str(BUDGET)], 1.0)
    print(f"ratio of growths, no budget / 16 MiB budget:   {ratio:.1f}x")
    floor = growth["unguarded"]
    own = (growth["none"] - floor) / max(growth[str(BUDGET)] - floor, 1.0)
    print(f"the guard's own share (growth beyond the server alone), no budget / budget: {own:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
