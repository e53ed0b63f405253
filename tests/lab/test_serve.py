"""Starting and stopping lab targets leaves nothing behind; the CLI prints what a user needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.lab import TARGETS, free_port, run_target
from hmacguard.lab.serve import wait_for_port

pytestmark = pytest.mark.slow


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_run_target_stops_master_and_workers() -> None:
    with run_target("flask-get-data") as t:
        assert t.host == "127.0.0.1"
        assert t.url == f"http://127.0.0.1:{t.port}/webhook"
        pids = [t.pid, *(c.pid for c in psutil.Process(t.pid).children(recursive=True))]
        assert len(pids) == 3  # gunicorn master + 2 workers
    assert _alive(pids) == []


def test_unknown_target_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown lab target"), run_target("nope"):
        pass


def test_port_in_use_is_a_target_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TargetError), run_target("flask-get-data", port=port, ready_timeout=5):
            pass


# `lab serve` as a terminal starts it: Ctrl-C raises KeyboardInterrupt. A child inherits an ignored
# SIGINT (a shell ignores it for the background jobs of a script, so that Ctrl-C on the terminal
# spares them), and Python then leaves it ignored, rightly; the test must not depend on how its own
# runner was started, so it restores Python's handler before the program runs.
_AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
    "sys.argv = ['hmacguard', *sys.argv[1:]]; runpy.run_module('hmacguard', run_name='__main__')"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serve_prints_details_and_stops_cleanly(sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _AS_FROM_A_TERMINAL, "lab", "serve", "django-stateless", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        server = psutil.Process(proc.pid).children()[0]
        tree = [server.pid, *(c.pid for c in server.children(recursive=True))]
        time.sleep(0.3)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/webhook" in out
    assert "scheme: github" in out and "secret: hmacguard-lab-secret" in out
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(tree) == []


def test_cli_list_names_every_target() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hmacguard", "lab", "list"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "250"},
    ).stdout
    for name in TARGETS:
        assert name in out


def test_cli_unknown_target_is_one_line_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hmacguard", "lab", "serve", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown lab target" in proc.stderr


def test_cli_measure_shows_growth_per_framing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hmacguard", "lab", "measure", "flask-get-data", "--size", "48MiB"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "48 MiB," in line]
    assert len(rows) == 2  # Content-Length and chunked
    for row in rows:
        growth = float(row.split("MiB │")[-2].split("+")[-1])  # "+47.9 MiB │ 0.15 │"
        assert growth >= 32, row


def test_cli_measure_unknown_target_fails_before_starting_anything() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hmacguard", "lab", "measure", "flask-get-data", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown lab target 'nope'" in proc.stderr
