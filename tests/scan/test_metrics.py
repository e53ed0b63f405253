"""--metrics: server memory read from a real Prometheus endpoint (prometheus_client's own process
collector), enough to measure retention."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.scan import Budget, MetricsObserver, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB
from tests.scan import _servers

pytestmark = pytest.mark.slow
BUDGET = Budget(bytes=256 * MiB, ladder=(KiB, MiB), max_size=MiB, burst_requests=4, burst_concurrency=2,
                request_timeout=3)  # fmt: skip


@contextmanager
def app(mode: str) -> Iterator[tuple[str, str]]:
    script = Path(__file__).with_name("_metrics_app.py")
    process = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        app_port, metrics_port = process.stdout.readline().split()
        yield f"http://127.0.0.1:{app_port}/webhook", f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(("mode", "leaks"), [("leak", True), ("keep-nothing", False)])
def test_retention_through_prometheus_metrics(mode: str, leaks: bool) -> None:
    with app(mode) as (url, metrics):
        observer = MetricsObserver(metrics)
        assert observer.rss() and observer.rss() > 1 * MiB  # type: ignore[operator]
        report = run_scan(ScanTarget(url), BUDGET, observer=observer)
    assert report.memory_source == f"metrics {metrics}"
    rules = {f.rule for f in report.findings}
    assert ("memory-retention" in rules) is leaks
    assert report.retention is not None
    ratio = report.retention.bytes_per_request / report.retention.size
    assert (abs(ratio - 1) <= 0.25) if leaks else ratio < 0.25, ratio


def test_metrics_url_without_the_metric_or_off_loopback_is_refused() -> None:
    def plain(conn, stop) -> None:  # type: ignore[no-untyped-def]
        _servers._read_head(conn, stop)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\nConnection: close\r\n\r\nsome_other_metric 1.0\n"
        )

    with _servers.serve(plain) as server, pytest.raises(TargetError, match="no process_resident_memory"):
        MetricsObserver(f"http://127.0.0.1:{server.port}/metrics")
    with pytest.raises(TargetError, match="--allow-remote"):
        MetricsObserver("http://10.9.8.7:9100/metrics")
    with pytest.raises(ConfigurationError):
        MetricsObserver("ftp://127.0.0.1/metrics")
