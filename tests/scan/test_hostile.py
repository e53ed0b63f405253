"""A scan against a server that resets, hangs, answers garbage or dies mid-scan finishes with a
report (and the target-unavailable finding), never a crash; and servers with one chosen behaviour
get the finding that behaviour implies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h11
import pytest

from hmacguard.errors import TargetError
from hmacguard.scan import Budget, PhaseSelection, ScanReport, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB
from tests.scan import _servers

pytestmark = pytest.mark.slow

SMALL = Budget(
    bytes=64 * MiB, seconds=30, request_timeout=1.0, ladder=(KiB, MiB, 4 * MiB), max_size=4 * MiB,
    burst_requests=6, burst_concurrency=2, burst_size=64 * KiB, expect_wait=0.2,
)  # fmt: skip


def rules(report) -> set[str]:
    return {f.rule for f in report.findings}


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        (_servers.resetting, "reset"),
        (_servers.hanging, "timeout"),
        (_servers.garbage, "protocol-error"),
    ],
    ids=["resets", "hangs", "garbage"],
)
def test_misbehaving_server_gives_a_report_with_target_unavailable(handler, says) -> None:
    with _servers.serve(handler) as server:
        report = run_scan(ScanTarget(server.url), SMALL)
    assert report.unavailable
    assert rules(report) == {"target-unavailable"}
    finding = report.findings[0]
    assert says in finding.evidence.summary
    assert report.grade == "F" and report.score <= 50
    # Everything after the failure is listed as untested, not silently dropped.
    assert {u.what for u in report.untested} >= {"ladder", "chunked", "burst"}
    assert report.measurements and report.measurements[0].phase == "baseline"


def _scan_dying(answers: int, selection: PhaseSelection | None = None) -> ScanReport:
    script = Path(__file__).with_name("_dying_server.py")
    process = subprocess.Popen([sys.executable, str(script), str(answers)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return run_scan(ScanTarget(f"http://127.0.0.1:{port}/webhook"), SMALL, selection=selection)
    finally:
        process.kill()
        process.wait()


def test_server_dying_mid_scan_gives_a_report_saying_what_preceded() -> None:
    # 1 preflight GET, the baseline, then two ladder rungs answered (the enforcement phase left out,
    # so that the size probes are what meets the end); the next probe finds it gone.
    report = _scan_dying(4, PhaseSelection.of(skip=["enforcement"]))
    assert report.unavailable
    assert "target-unavailable" in rules(report)
    finding = next(f for f in report.findings if f.rule == "target-unavailable")
    preceding = finding.evidence.values["preceding_probes"]
    assert [(p["size"], p["verdict"]) for p in preceding[:2]] == [(MiB, "accepted"), (4 * MiB, "accepted")]
    # The chunked ladder's first probe found it gone: its connection refused (unreachable), or taken
    # into the listen backlog just before the exit and then reset. A reset with no answer from a target
    # that answers nothing afterwards is an error, never a refusal: a dying server has no size limit.
    assert preceding[2]["variant"] == "chunked json"
    assert preceding[2]["verdict"] in ("unreachable", "error")
    assert not any(lim.variant.label == "chunked json" and lim.refused for lim in report.limits)
    assert "after chunked: chunked json 1 KiB" in finding.evidence.summary
    assert len(report.measurements) == 4  # three answered, and the one that found it dead


def test_server_dying_during_the_enforcement_phase_leaves_its_rules_untested() -> None:
    # The preflight GET, the baseline and the unsigned probe are answered; the forged one finds it gone.
    report = _scan_dying(3)
    assert report.unavailable and "target-unavailable" in rules(report)
    assert report.enforcement is not None
    assert [p.kind.value for p in report.enforcement.probes][:1] == ["unsigned"]
    untested = {u.what: u.reason for u in report.untested}
    for rule in ("signature-bypass-path", "replay-accepted", "stale-timestamp-accepted"):
        assert rule in untested, untested
    assert "stopped during the enforcement phase" in untested["signature-bypass-path"]


def test_refused_connection_is_a_target_error_not_a_report() -> None:
    with _servers.serve(_servers.hanging) as server:
        port = server.port
    with pytest.raises(TargetError, match="cannot connect"):
        run_scan(ScanTarget(f"http://127.0.0.1:{port}/webhook"), SMALL)


def _late_413(request: h11.Request, length: int) -> tuple[int, list[tuple[str, str]]]:
    # Reads the whole body, then decides: the late rejection the rule is about.
    return (413, []) if length > 512 * KiB else (401, [])


def test_server_refusing_after_reading_the_body_gets_late_rejection() -> None:
    with _servers.serve(_servers.h11_handler(_late_413)) as server:
        report = run_scan(ScanTarget(server.url), SMALL)
    found = rules(report)
    assert "late-rejection" in found
    assert not found & {"unbounded-body", "chunked-bypass", "content-type-bypass", "target-unavailable"}
    late = next(f for f in report.findings if f.rule == "late-rejection")
    assert {p["size"] for p in late.evidence.values["probes"]} == {MiB}  # each variant's largest refused
    limit = next(x for x in report.limits if x.variant.label == "content-length json")
    assert limit.accepted is not None and limit.refused is not None
    assert limit.accepted <= 512 * KiB < limit.refused <= limit.accepted * 1.1


def test_rate_limited_server_gets_no_rate_limit_finding() -> None:
    seen = {"n": 0}

    def early_refusal(request: h11.Request):
        seen["n"] += 1
        if seen["n"] > 12:
            return 429, [("Retry-After", "1"), ("RateLimit-Policy", "12;w=60")]
        length = dict(request.headers).get(b"content-length")
        if length is not None and int(length) > 64 * KiB:
            return 413, []  # refused on the header, before the body
        return None

    handler = _servers.h11_handler(lambda r, n: (413, []) if n > 64 * KiB else (401, []),
                                   refuse_head=early_refusal)  # fmt: skip
    with _servers.serve(handler) as server:
        report = run_scan(ScanTarget(server.url), SMALL)
    assert "no-rate-limit" not in rules(report)
    assert report.burst is not None and report.burst.throttled > 0
    assert report.burst.retry_after == "1"
    # (Chunked bodies have no Content-Length to refuse on, so this server reads them before its 413:
    # late-rejection is right for it.)
    assert not rules(report) & {"unbounded-body", "chunked-bypass", "target-unavailable"}


def test_time_budget_ends_the_scan_with_a_report_not_an_unavailable_target() -> None:
    def slow(request: h11.Request, length: int) -> tuple[int, list[tuple[str, str]]]:
        if request.method == b"POST" and length > 100 * KiB:
            time.sleep(4)  # thinks about large bodies for longer than the scan may take
        return 401, []

    budget = Budget(bytes=64 * MiB, seconds=2.0, request_timeout=10, ladder=(KiB, MiB, 4 * MiB),
                    max_size=4 * MiB)  # fmt: skip
    started = time.monotonic()
    with _servers.serve(_servers.h11_handler(slow)) as server:
        report = run_scan(ScanTarget(server.url), budget)
        elapsed = time.monotonic() - started
    assert elapsed < 4.5
    assert not report.unavailable and "target-unavailable" not in rules(report)
    reasons = {u.what: u.reason for u in report.untested}
    assert "time budget (2s) ran out" in reasons["chunked"] and "burst" in reasons
    assert [m.size for m in report.measurements] == [KiB, MiB]  # the 1 MiB probe was cut by the deadline
