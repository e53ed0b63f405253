"""Real servers for the guard's tests: redis-server and gunicorn, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
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

from hmacguard.lab.serve import free_port, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def need_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server)")
    return path


def _redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
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


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A throw-away redis-server: loopback only, no persistence, stopped (by pid) on exit."""
    binary = need_redis_server()
    port = port or free_port()
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
class Gunicorn:
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
def gunicorn(app: str, env: Mapping[str, str], *, workers: int = 2) -> Iterator[Gunicorn]:
    """gunicorn (sync workers) serving ``app`` from the repository root, stopped on exit."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
             "--worker-class", "sync", "--timeout", "30", "--graceful-timeout", "5",
             "--chdir", str(REPO), app],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Gunicorn(port, process, log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout=30, process=process)
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server
    finally:
        stop_process_group(process, grace=5)
        log_path.unlink(missing_ok=True)
