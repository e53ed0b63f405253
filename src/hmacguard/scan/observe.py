"""Watching the server's memory while it is probed: ``--pid``, ``--metrics`` or ``--launch``.

- :class:`PidObserver`: resident memory of a whole process tree (a gunicorn master and its workers)
  through :func:`hmacguard.memory.tree_rss`, sampled every 10 ms during a probe.
- :class:`MetricsObserver`: a Prometheus endpoint's ``process_resident_memory_bytes`` (summed when it
  lists several processes), polled every 50 ms during a probe. Coarser: a peak shorter than the poll
  interval can be missed, which reports state.
- :func:`launch`: starts the service in a session of its own, waits for its port, observes its tree
  and stops the whole process group at the end, also on Ctrl-C or SIGTERM.

An observer that loses its process or endpoint mid-scan returns ``None`` rather than raising: a dead
server is a finding (``target-unavailable``), not a crash of the scanner.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from hmacguard._process import stop_process_group
from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.memory import MemorySampler, tree_rss
from hmacguard.scan.config import ParsedURL, resolve_host

__all__ = [
    "LaunchedService",
    "MemoryObserver",
    "MemoryWatch",
    "MetricsObserver",
    "PidObserver",
    "check_sources",
    "launch",
    "observation",
]

_METRIC = "process_resident_memory_bytes"


@dataclass
class MemoryWatch:
    """RSS around one probe: the sample before it, the highest during it, the last after it."""

    baseline: int | None = None
    peak: int | None = None
    last: int | None = None


class MemoryObserver(ABC):
    """Reads the server's resident memory; ``watch()`` samples it in the background around a probe."""

    #: What is observed, for the report ("pid 1234 (tree)", "metrics http://…").
    description: str = ""

    @abstractmethod
    def rss(self) -> int | None:
        """Current resident bytes, or None if the source is gone."""

    @abstractmethod
    def watch(self) -> contextlib.AbstractContextManager[MemoryWatch]:
        """Sample in the background while the ``with`` body runs."""

    def settled_rss(self, reads: int = 3, gap: float = 0.02) -> int | None:
        """Median of a few reads: one read can land on a transient allocation."""
        values = []
        for i in range(reads):
            value = self.rss()
            if value is not None:
                values.append(value)
            if i < reads - 1:
                time.sleep(gap)
        return int(statistics.median(values)) if values else None


class PidObserver(MemoryObserver):
    def __init__(self, pid: int, *, interval: float = 0.01) -> None:
        if pid <= 0:
            raise ConfigurationError(f"--pid must be a positive process id, not {pid}")
        tree_rss(pid)  # TargetError now if the process does not exist or cannot be read
        self.pid = pid
        self.interval = interval
        self.description = f"pid {pid} (process tree)"

    def rss(self) -> int | None:
        try:
            return tree_rss(self.pid)
        except TargetError:
            return None

    @contextlib.contextmanager
    def watch(self) -> Iterator[MemoryWatch]:
        result = MemoryWatch()
        sampler = MemorySampler(self.pid, interval=self.interval)
        try:
            with sampler:
                yield result
        finally:
            # Zeros are the sampler's way of saying "the process was gone at that tick".
            alive = [rss for _, rss in sampler.samples if rss > 0]
            if alive:
                result.baseline = sampler.baseline or None
                result.peak = max(alive)
                result.last = sampler.last or None


class MetricsObserver(MemoryObserver):
    def __init__(
        self, url: str, *, interval: float = 0.05, timeout: float = 2.0, allow_remote: bool = False
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--metrics must be an http(s) URL, not {url!r}")
        parsed = ParsedURL.parse(url)
        resolve_host(parsed.host, parsed.port, allow_remote=allow_remote)
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.description = f"metrics {url}"
        # Proxies from the environment must not see (or break) a loopback metrics request.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if self.rss() is None:
            raise TargetError(f"no {_METRIC} at {url}")

    def rss(self) -> int | None:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            with self._opener.open(self.url, timeout=self.timeout) as response:
                text = response.read(4 * 1024 * 1024).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        total = 0.0
        found = False
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == _METRIC:
                        total += float(sample.value)
                        found = True
        except ValueError:
            return None
        return int(total) if found else None

    @contextlib.contextmanager
    def watch(self) -> Iterator[MemoryWatch]:
        result = MemoryWatch(baseline=self.rss())
        stop = threading.Event()
        seen: list[int] = [] if result.baseline is None else [result.baseline]

        def poll() -> None:
            while not stop.wait(self.interval):
                value = self.rss()
                if value is not None:
                    seen.append(value)

        thread = threading.Thread(target=poll, name="hmacguard-metrics", daemon=True)
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            last = self.rss()
            if last is not None:
                seen.append(last)
            result.last = last
            result.peak = max(seen) if seen else None


@dataclass
class LaunchedService:
    """A service started by the scanner: its process (group leader) and an observer of its tree."""

    command: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path
    observer: PidObserver = field(init=False)

    def __post_init__(self) -> None:
        self.observer = PidObserver(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _port_open(hosts: Sequence[str], port: int) -> bool:
    for host in hosts:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
    return False


@contextlib.contextmanager
def launch(
    command: str,
    *,
    host: str | Sequence[str],
    port: int,
    ready_timeout: float = 30.0,
    grace: float = 5.0,
) -> Iterator[LaunchedService]:
    """Start ``command`` (a shell-like string, not run by a shell), wait until ``port`` accepts
    connections on ``host`` (or on any of several addresses, e.g. both of localhost's), yield it.

    The service is stopped when the block exits, however it exits: a KeyboardInterrupt, or SIGTERM
    to the scanner (turned into one for the duration), still stops the whole process group.
    """
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ConfigurationError(f"--launch: cannot parse the command: {exc}") from None
    if not argv:
        raise ConfigurationError("--launch needs a command")
    hosts = (host,) if isinstance(host, str) else tuple(host)
    where = f"{hosts[0]}:{port}"
    if _port_open(hosts, port):
        raise TargetError(f"something already listens on {where}; --launch would observe the wrong process")
    log_fd, log_name = tempfile.mkstemp(prefix="hmacguard-launch-", suffix=".log")
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        os.close(log_fd)
        os.unlink(log_name)
        raise TargetError(f"--launch: could not start {argv[0]!r}: {exc.strerror or exc}") from None
    os.close(log_fd)
    previous = _install_sigterm()
    try:
        service = None
        deadline = time.monotonic() + ready_timeout
        while not _port_open(hosts, port):
            if process.poll() is not None:
                tail = Path(log_name).read_text(errors="replace")[-500:].strip()
                raise TargetError(
                    f"--launch: the service exited with code {process.returncode} before listening"
                    + (f": {tail.splitlines()[-1]}" if tail else "")
                )
            if time.monotonic() > deadline:
                raise TargetError(f"--launch: nothing listened on {where} within {ready_timeout:g}s")
            time.sleep(0.05)
        service = LaunchedService(argv, process, Path(log_name))
        yield service
    finally:
        stop_process_group(process, grace=grace)
        _restore_sigterm(previous)
        with contextlib.suppress(OSError):
            os.unlink(log_name)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _install_sigterm() -> object:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _restore_sigterm(previous: object) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def check_sources(*, pid: int | None, metrics: str | None, command: str | None) -> None:
    """ConfigurationError unless at most one memory source is given."""
    given = [name for name, value in (("--pid", pid), ("--metrics", metrics), ("--launch", command))
             if value is not None]  # fmt: skip
    if len(given) > 1:
        raise ConfigurationError(f"{' and '.join(given)} are alternatives: give one")


@contextlib.contextmanager
def observation(
    *,
    pid: int | None = None,
    metrics: str | None = None,
    command: str | None = None,
    host: str | Sequence[str] = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
) -> Iterator[MemoryObserver | None]:
    """The observer the command line asked for (at most one source), started and stopped around the
    ``with`` block; None when no source was given."""
    check_sources(pid=pid, metrics=metrics, command=command)
    if pid is not None:
        yield PidObserver(pid)
    elif metrics is not None:
        yield MetricsObserver(metrics, allow_remote=allow_remote)
    elif command is not None:
        with launch(command, host=host, port=port) as service:
            yield service.observer
    else:
        yield None
