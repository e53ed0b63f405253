"""Start a lab target under its real server on loopback, and stop it (and every worker) cleanly.

Each server runs in a session of its own, so its process group holds the master and every worker it
forks; stopping signals that group by id (SIGTERM, then SIGKILL after a grace period), which leaves
no orphan workers even if the master dies first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hmacguard._process import stop_process_group
from hmacguard.errors import TargetError
from hmacguard.lab.apps._common import STATE_ENV
from hmacguard.lab.targets import LAB_SECRET, NODE_APPS, Server, Target, get_target

__all__ = ["RunningTarget", "free_port", "run_target", "stop_process_group", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once ``host:port`` accepts a connection; raise TargetError on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TargetError(f"the server exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5) as probe:
            if not connected_to_itself(probe):
                return
        time.sleep(0.05)
    raise TargetError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def connected_to_itself(sock: socket.socket) -> bool:
    """Whether a TCP connection's two ends are the same socket.

    Connecting to a loopback port nothing listens on can succeed on Linux: when the kernel picks
    that very port as the connection's source (the port is in its ephemeral range), the socket
    connects to itself. To a caller waiting for a server, that is not a server -- and it holds the
    port the server is about to bind.
    """
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


@dataclass(frozen=True)
class RunningTarget:
    """A started lab target: where it listens and how to sign for it."""

    target: Target
    host: str
    port: int
    pid: int
    log_path: Path

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The endpoint's full URL (base URL + path)."""
        return self.base_url + self.target.path

    @property
    def path(self) -> str:
        return self.target.path

    @property
    def scheme(self) -> str:
        return self.target.scheme

    @property
    def secret(self) -> str:
        return LAB_SECRET

    def log(self) -> str:
        """What the server printed so far (for a failing test's message)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _check_runtime(target: Target) -> None:
    if target.server is Server.NODE:
        if shutil.which("node") is None:
            raise TargetError(f"{target.name} needs Node.js (node) on PATH")
        if not (NODE_APPS / "node_modules" / "express").is_dir():
            raise TargetError(
                f"{target.name} needs the lab's npm packages: run "
                f"`npm ci --prefix {NODE_APPS}` (make does this)"
            )


def _wait_for_workers(pid: int, count: int, *, timeout: float) -> None:
    """gunicorn listens before it forks: wait for its workers so memory baselines include them."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(psutil.Process(pid).children()) >= count:
                return
        except psutil.NoSuchProcess:
            raise TargetError("gunicorn exited while starting its workers") from None
        time.sleep(0.05)
    raise TargetError(f"gunicorn did not start {count} workers within {timeout:.0f}s")


@contextlib.contextmanager
def run_target(
    name: str | Target,
    *,
    port: int | None = None,
    ready_timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[RunningTarget]:
    """Start ``name`` on 127.0.0.1 (a free port unless given), yield it, and stop it on exit."""
    target = name if isinstance(name, Target) else get_target(name)
    _check_runtime(target)
    port = free_port() if port is None else port
    log_fd, log_name = tempfile.mkstemp(prefix=f"hmacguard-lab-{target.name}-", suffix=".log")
    # What the server's workers share (the deliveries they processed): gone when the server stops.
    state = tempfile.mkdtemp(prefix=f"hmacguard-lab-{target.name}-state-")
    full_env = {**os.environ, **target.environment(port), STATE_ENV: state, **(env or {})}
    # The app modules live in this package; make sure the server's interpreter imports this copy.
    src = str(Path(__file__).resolve().parents[2])
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, full_env.get("PYTHONPATH")) if p)
    try:
        process = subprocess.Popen(
            target.command(port),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(log_fd)
        shutil.rmtree(state, ignore_errors=True)
        raise TargetError(f"could not start {target.name}: {exc}") from None
    os.close(log_fd)
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=ready_timeout, process=process)
            if target.server is Server.GUNICORN:
                _wait_for_workers(process.pid, target.workers, timeout=ready_timeout)
        except TargetError as exc:
            tail = Path(log_name).read_text(errors="replace")[-2000:]
            raise TargetError(f"{target.name}: {exc}\n{tail}".rstrip()) from None
        yield RunningTarget(target, "127.0.0.1", port, process.pid, Path(log_name))
    finally:
        stop_process_group(process)
        shutil.rmtree(state, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(log_name)
