"""``hmacguard scan`` on the command line: one-line errors with exit 2, the exit-code contract,
JSON output that follows its schema, and --launch (memory retention measured on a service the
scanner starts, and stopped even when the scanner is killed)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h11
import jsonschema
import psutil
import pytest
from typer.testing import CliRunner

from hmacguard.cli import app
from hmacguard.lab import free_port, get_target
from hmacguard.report.json import SCAN_REPORT_SCHEMA
from tests.scan import _servers, _wsgi

runner = CliRunner()
FAST = ["--ladder", "1KiB,256KiB", "--max-size", "256KiB", "--burst", "6", "--concurrency", "2",
        "--timeout", "2", "--budget-seconds", "30", "--no-progress"]  # fmt: skip


def one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, ["scan", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hmacguard: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_bad_input_is_one_line_and_exit_2() -> None:
    with _servers.serve(_servers.hanging) as server:
        closed = server.port
    assert "must start with http://" in one_line_error(["http//nope"])
    assert "malformed" in one_line_error(["http://127.0.0.1:99999/"])
    assert "cannot connect" in one_line_error([f"http://127.0.0.1:{closed}/webhook", *FAST])
    assert "unknown scheme" in one_line_error(["http://127.0.0.1:1/", "--scheme", "gitlab"])
    assert "alternatives" in one_line_error(["http://127.0.0.1:1/", "--pid", "1", "--launch", "true"])
    assert "--allow-remote" in one_line_error(["http://10.9.8.7/webhook", *FAST])
    assert "not a size" in one_line_error(["http://127.0.0.1:1/", "--budget-bytes", "lots"])
    assert "unknown severity" in one_line_error(["http://127.0.0.1:1/", "--fail-on", "bad"])
    assert "generic scheme" in one_line_error(["http://127.0.0.1:1/", "--header", "X-Sig"])
    assert "Name: value" in one_line_error(["http://127.0.0.1:1/", "-H", "no colon"])
    assert "does not exist" in one_line_error(["http://127.0.0.1:1/", "--pid", "999999999"])
    port = free_port()
    assert "could not start" in one_line_error(
        [f"http://127.0.0.1:{port}/", "--launch", "/nonexistent/server"]
    )
    assert "exited with code 1" in one_line_error([f"http://127.0.0.1:{port}/", "--launch", "false"])


def test_tls_failure_is_a_target_error() -> None:
    def plain_http(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    with _servers.serve(plain_http) as server:
        message = one_line_error([f"https://127.0.0.1:{server.port}/webhook", *FAST])
    assert "TLS handshake failed" in message
    with _servers.serve(_servers.hanging) as server:  # a server that never says anything
        message = one_line_error([f"https://127.0.0.1:{server.port}/webhook", *FAST])
    assert "TLS handshake failed" in message


def test_dry_run_prints_the_plan_and_sends_nothing() -> None:
    with _servers.serve(_servers.hanging) as server:
        result = runner.invoke(app, ["scan", server.url, "--dry-run", "--budget-bytes", "64MiB"])
        assert server.requests == []
    assert result.exit_code == 0, result.output
    assert "Scan plan" in result.output and "Nothing was sent" in result.output
    assert "would not fit" in result.output  # the 100 MiB rungs, at 64 MiB of budget


def test_phase_options_and_probe_body_errors_are_one_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/webhook"
    assert "--phase: unknown phase 'warp'" in one_line_error([url, "--phase", "warp"])
    assert "--skip-phase: unknown phase" in one_line_error([url, "--skip-phase", "nope"])
    assert "leave no phase" in one_line_error([url, "--phase", "enforcement", "--skip-phase", "enforcement"])
    assert "cannot read --probe-body" in one_line_error([url, "--probe-body", str(tmp_path / "none.json")])
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    assert "--probe-body must hold 1 to 65,536 bytes" in one_line_error([url, "--probe-body", str(big)])


def test_dry_run_lists_the_enforcement_phase_and_what_is_skipped() -> None:
    url = "http://127.0.0.1:1/webhook"
    result = runner.invoke(app, ["scan", url, "--dry-run", "--skip-phase", "burst"])
    assert result.exit_code == 0, result.output
    assert "enforcement" in result.output and "skipped with --skip-phase" in result.output
    only = runner.invoke(app, ["scan", url, "--dry-run", "--phase", "enforcement", "--secret", "s"])
    assert only.exit_code == 0, only.output
    assert "not selected (--phase enforcement)" in only.output


def test_held_upload_options_reach_the_plan_and_bad_ones_are_one_line() -> None:
    url = "http://127.0.0.1:1/webhook"
    result = runner.invoke(app, ["scan", url, "--dry-run", "--held-uploads", "50", "--held-size", "128k",
                                 "--pid", str(os.getpid())])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "50 uploads of 131,072" in result.output and "6.5 MiB" in result.output
    assert "between 2 and 1000" in one_line_error([url, "--dry-run", "--held-uploads", "1001"])
    assert "between 4 KiB and 16 MiB" in one_line_error([url, "--dry-run", "--held-size", "1k"])
    spread = runner.invoke(app, ["scan", url, "--dry-run", "--held-sources", "20", "--pid", str(os.getpid())])
    assert spread.exit_code == 0, spread.output
    assert "from 20" in spread.output and "loopback addresses" in spread.output
    assert "between 1 and 250" in one_line_error([url, "--dry-run", "--held-sources", "0"])


def test_phase_selection_and_probe_body_reach_the_scan(tmp_path: Path) -> None:
    out, body = tmp_path / "report.json", tmp_path / "event.json"
    body.write_bytes(b'{"zen": "Keep it logically awesome."}')
    with _wsgi.serve(_wsgi.string_match_guard(_wsgi.flask_app())) as url:
        only = runner.invoke(app, ["scan", url, *FAST, "--phase", "enforcement", "--probe-body", str(body),
                                   "--format", "json", "-o", str(out)])  # fmt: skip
        document = json.loads(out.read_text())
        skipped = runner.invoke(app, ["scan", url, *FAST, "--skip-phase", "enforcement", "--format", "json"])
    assert only.exit_code == 1, only.output
    jsonschema.validate(document, SCAN_REPORT_SCHEMA)
    assert [f["rule"] for f in document["findings"]] == ["signature-bypass-path"]
    assert document["measurements"] == [] and document["enforcement"]["body"] == "file"
    assert document["enforcement"]["body_bytes"] == len(body.read_bytes())
    assert skipped.exit_code == 1, skipped.output  # no rate limit
    rest = json.loads(skipped.stdout)
    assert rest["enforcement"] is None
    assert {"what": "enforcement", "reason": "skipped with --skip-phase"} in rest["untested"]
    assert not {f["rule"] for f in rest["findings"]} & {"signature-bypass-path", "signature-not-enforced"}


def _guarded_like(request: h11.Request, length: int) -> tuple[int, list[tuple[str, str]]]:
    return (413, []) if length > 64 * 1024 else (401, [])


def _early(request: h11.Request) -> tuple[int, list[tuple[str, str]]] | None:
    length = dict(request.headers).get(b"content-length")
    return (413, []) if length is not None and int(length) > 64 * 1024 else None


@pytest.mark.slow
def test_exit_codes_and_json_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    handler = _servers.h11_handler(_guarded_like, refuse_head=_early)
    with _servers.serve(handler) as server:

        def run(*extra: str) -> int:
            return runner.invoke(app, ["scan", server.url, *FAST, *extra]).exit_code

        # A 64 KiB limit for every framing and no rate limit: one medium finding, score 90.
        assert run("--format", "json", "--output", str(out)) == 1  # default: fail on any finding
        assert run("--fail-on", "high") == 0
        assert run("--fail-under", "95") == 1
        assert run("--fail-under", "80") == 0
        assert run("--fail-under", "80", "--fail-on", "medium") == 1
    document = json.loads(out.read_text())
    jsonschema.validate(document, SCAN_REPORT_SCHEMA)
    assert (document["score"], document["grade"]) == (90, "A")
    assert [f["rule"] for f in document["findings"]] == ["no-rate-limit"]
    assert document["findings"][0]["cwe"] == ["CWE-770"]
    limit = next(x for x in document["limits"] if x["variant"] == "content-length json")
    assert limit["largest_accepted"] <= 64 * 1024 < limit["smallest_refused"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "retains"),
    [("django-body-cache", True), ("django-middleware-attach", True), ("django-stateless", False),
     ("flask-streaming-capped", False)],
)  # fmt: skip
def test_launch_measures_retention_per_request(name: str, retains: bool, tmp_path: Path) -> None:
    port = free_port()
    command = shlex.join(get_target(name).command(port))
    out = tmp_path / "report.json"
    result = runner.invoke(app, [
        "scan", f"http://127.0.0.1:{port}/webhook", "--launch", command, "--format", "json", "--output",
        str(out), "--ladder", "1KiB,1MiB", "--max-size", "1MiB", "--burst", "4", "--concurrency", "2",
        "--timeout", "3", "--no-progress",
    ])  # fmt: skip
    assert result.exit_code == 1, result.output
    document = json.loads(out.read_text())
    assert document["memory_source"].startswith("pid ")
    rules = {f["rule"] for f in document["findings"]}
    assert ("memory-retention" in rules) is retains
    retention = document["retention"]
    if retains:
        assert abs(retention["ratio_to_body"] - 1) <= 0.25, retention
    else:
        assert retention["ratio_to_body"] < 0.25, retention
    # The launched service is gone: nothing listens on its port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


@pytest.mark.slow
def test_sigterm_to_the_scanner_stops_the_launched_service() -> None:
    port = free_port()
    command = shlex.join(get_target("flask-get-data").command(port))
    scanner = subprocess.Popen(
        [sys.executable, "-m", "hmacguard", "scan", f"http://127.0.0.1:{port}/webhook", "--launch", command,
         "--no-progress", "--budget-seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and len(children) < 3:  # the server, its master and workers
            children = psutil.Process(scanner.pid).children(recursive=True)
            time.sleep(0.1)
        assert children, "the service was never launched"
        time.sleep(1.0)  # mid-scan
        scanner.send_signal(signal.SIGTERM)
        _, stderr = scanner.communicate(timeout=30)
    finally:
        if scanner.poll() is None:
            scanner.kill()
            scanner.wait()
    assert scanner.returncode == 130
    assert stderr.strip().splitlines()[-1] == "hmacguard: error: interrupted"
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive


@pytest.mark.slow
def test_terminal_report_and_progress(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from hmacguard.report.terminal.scan import render_scan, scan_progress
    from hmacguard.scan import Budget, ScanEvent, ScanTarget, run_scan

    handler = _servers.h11_handler(_guarded_like, refuse_head=_early)
    events: list[ScanEvent] = []
    bar = io.StringIO()
    with _servers.serve(handler) as server:
        budget = Budget(ladder=(1024, 256 * 1024), max_size=256 * 1024, burst_requests=6, burst_concurrency=2)
        with scan_progress(Console(file=bar, force_terminal=True, width=100)) as sink:
            assert sink is not None

            def both(event: ScanEvent) -> None:
                events.append(event)
                sink(event)

            report = run_scan(ScanTarget(server.url), budget, progress=both)
        result = runner.invoke(app, ["scan", server.url, *FAST, "--verbose", "-o", str(tmp_path / "r.txt")])
    assert result.exit_code == 1
    steps = [e.step for e in events]
    assert steps == sorted(steps) and events[-1].phase == "analysis"
    assert [e.bytes_sent for e in events] == sorted(e.bytes_sent for e in events)
    assert {e.phase for e in events} >= {"baseline", "ladder", "chunked", "burst"}
    assert "/ 1 GiB" in bar.getvalue()  # the bar was drawn, with the bytes sent against the budget
    out = io.StringIO()
    render_scan(report, Console(file=out, width=200), verbose=True)
    text = out.getvalue()
    assert "Score 90/100  Grade A" in text and "no-rate-limit" in text
    assert "Body limits by variant" in text and "Probes" in text and "Untested" in text
    written = (tmp_path / "r.txt").read_text()
    assert "Grade A" in written and "\x1b[" not in written  # a file gets plain text
