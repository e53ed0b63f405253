"""Real servers for the guard's tests: redis-server and gunicorn, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from hmacguard.lab.serve import connected_to_itself, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def need_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    return path


def _redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        if connected_to_itself(s):  # not redis: see service_port()
            return False
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def ephemeral_start() -> int:
    """The first port of the kernel's range for outgoing connections (Linux; its default elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def service_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a server that is pinged while
    it starts, or stopped and started again on the same port.

    A port from the ephemeral range (what binding to port 0 gives) can be taken, while nothing
    listens on it, by an outgoing connection *to* it: Linux may pick that very port as the source
    of a connection to 127.0.0.1:port and connect the socket to itself. The start-up ping, or a
    worker's Redis client reconnecting while the server is down, then holds the port and the
    server cannot bind it ("redis-server did not start").
    """
    top = ephemeral_start() - 1
    for _ in range(200):
        port = random.randint(10000, max(10001, top))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A throw-away redis-server: loopback only, no persistence, stopped (by pid) on exit."""
    binary = need_redis_server()
    port = port or service_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--protected-mode", "yes", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _redis_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield RedisServer(port, process)
    finally:
        stop_process_group(process, grace=5)


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        import psutil

        return {c.pid for c in psutil.Process(self.process.pid).children()}


@contextlib.contextmanager
def gunicorn(
    app: str,
    env: Mapping[str, str],
    *,
    workers: int = 2,
    worker_class: str = "sync",
    threads: int = 1,
) -> Iterator[Server]:
    """gunicorn serving ``app`` from the repository root, stopped on exit.

    ``worker_class``: ``sync`` (the default) or ``gthread`` (each worker runs ``threads`` requests
    at once, and keeps connections alive). A ``SCRIPT_NAME`` in ``env`` is gunicorn's root path:
    it is cut off the front of every request path (a path without it is gunicorn's 500).
    """
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", worker_class,
        "--threads", str(threads), "--timeout", "30", "--graceful-timeout", "5", "--chdir", str(REPO),
        app,
    ]  # fmt: skip
    with _server(command, env, workers=workers, bind=["--bind"]) as server:
        yield server


@contextlib.contextmanager
def uvicorn(app: str, env: Mapping[str, str] | None = None, *, root_path: str = "") -> Iterator[Server]:
    """uvicorn (one process) serving the ASGI ``app`` from the repository root, stopped on exit.

    ``root_path``: uvicorn's ``--root-path``; it puts ``root_path + path`` in ``scope["path"]``
    (the proxy in front is expected to have removed the prefix from the request).
    """
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(REPO), "--log-level", "warning",
        "--no-access-log", *(["--root-path", root_path] if root_path else []), app,
    ]  # fmt: skip
    with _server(command, env or {}, workers=0, bind=["--host", "127.0.0.1", "--port"]) as server:
        yield server


@contextlib.contextmanager
def hypercorn(
    app: str, env: Mapping[str, str] | None = None, *, asgi: bool, root_path: str = ""
) -> Iterator[Server]:
    """hypercorn (one worker) serving the WSGI or ASGI ``app`` from the repository root, stopped on exit.

    ``root_path``: hypercorn's ``--root-path``; ``scope["path"]`` stays the request's path, and a
    WSGI app gets it as ``SCRIPT_NAME`` (a request path that does not start with it is a 404).
    """
    command = [
        sys.executable, "-m", "hypercorn", "--workers", "1", "--log-level", "warning",
        *(["--root-path", root_path] if root_path else []),
        # hypercorn tells WSGI from ASGI by this prefix, not by guessing.
        f"{'asgi' if asgi else 'wsgi'}:{app}",
    ]  # fmt: skip
    with _server(command, env or {}, workers=0, bind=["--bind"]) as server:
        yield server


@contextlib.contextmanager
def _server(command: list[str], env: Mapping[str, str], *, workers: int, bind: list[str]) -> Iterator[Server]:
    port = service_port()
    address = [*bind, f"127.0.0.1:{port}"] if bind == ["--bind"] else [*bind, str(port)]
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [*command, *address], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            cwd=REPO, start_new_session=True,
        )  # fmt: skip
    server = Server(port, process, log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout=30, process=process)
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server
    finally:
        stop_process_group(process, grace=5)
        log_path.unlink(missing_ok=True)


def raw_response(
    port: int, request: bytes, *, timeout: float = 10.0
) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``request`` (raw bytes, which should ask for ``Connection: close``) and read the whole
    answer until the server closes: the status (``None`` if no HTTP answer came), the headers
    (lower-case names) and the body as sent (not de-chunked)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        with contextlib.suppress(OSError):
            while piece := sock.recv(65536):
                data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue): the final one follows
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        return None, {}, b""
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def raw_exchange(
    port: int,
    head: bytes,
    chunks: Iterator[bytes] = iter(()),
    *,
    pause: float = 0.0,
    timeout: float = 15.0,
) -> tuple[int | None, dict[str, str], int, float]:
    """Send ``head`` then ``chunks`` (stopping as soon as the server answers); return the status,
    the response headers, the body bytes sent and the seconds until the answer."""
    import select

    sent = 0
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
    seconds = time.monotonic() - t0
    if not data.startswith(b"HTTP/1."):
        return None, {}, sent, seconds
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, sent, seconds
