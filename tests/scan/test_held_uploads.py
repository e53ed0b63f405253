"""The held-uploads phase against real servers: the lab's uvicorn targets tell a receiver that keeps
every open upload (fastapi-capped-buffer) from the guard with its memory budget (fastapi-guarded),
and the same guard without the budget is found again -- the difference the scan sees is the budget.
The guard's default 64 MiB budget is not found either, with the scan's defaults: the uploads pass
it, and the last quarter of the sending adds nothing. An Express receiver that streams into the HMAC
is not found with the default 400 uploads (what that default is for). A small in-process server
that answers 429 to uploads beyond ten in flight shows what a rate limit counting uploads in flight
leaves to judge. The guard as shipped, its per-client rate limits on, is measured when the uploads
come from many loopback addresses (--held-sources), and skipped from one."""

from __future__ import annotations

import dataclasses
import os
import threading

import h11
import pytest

from hmacguard.guard.body import DEFAULT_MEMORY_BUDGET
from hmacguard.lab import run_target
from hmacguard.scan import Budget, PhaseSelection, PidObserver, ScanReport, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.probes.held import MAX_ROUNDS, ROUND_BYTES, piece_size
from tests.scan._servers import h11_handler, serve

RULE = "memory-held-uploads"
ONLY = PhaseSelection.of(["held-uploads"])
BUDGET = Budget(bytes=128 * MiB, seconds=30, request_timeout=2.0)
#: The guard's pair with 100 uploads: with both cores busy (as under `make test`) a uvicorn worker
#: keeps up with them (0.12-0.13 bytes of RSS per byte after the first piece), where 400 put the
#: budgeted guard anywhere from 0.07 to 0.39 -- under the threshold, but not by a margin to test on.
FEWER = dataclasses.replace(BUDGET, held_uploads=100)
#: The guarded target's failure limit counts uploads in flight (20 a minute): raised, so that what
#: the scan meets is the memory budget, not the rate limit.
NO_LIMITS = {"HMACGUARD_LAB_FAILURES": "100000/minute", "HMACGUARD_LAB_RATE": "100000/minute"}


def _held(
    name: str, env: dict[str, str] | None = None, content_type: str | None = None, budget: Budget = BUDGET
) -> ScanReport:
    with run_target(name, env=env) as t:
        target = ScanTarget(t.url, scheme=t.scheme, content_type=content_type)
        return run_scan(target, budget, observer=PidObserver(t.pid), selection=ONLY)


def _judged(report: ScanReport) -> tuple[bool, str]:
    h = report.held
    assert h is not None, report.untested
    # Every upload stayed open: a budget refuses nothing (bodies past it go to disk).
    assert h.held == h.opened == report.budget["held_uploads"] and not h.answered, h
    assert h.held_bytes == h.held * (BUDGET.held_size - 64)
    ratio = f"{h.added_growth / h.added_bytes:.2f} bytes of RSS per byte after the first piece"
    return RULE in {f.rule for f in report.findings}, f"{ratio} ({h.growth / MiB:.1f} MiB in all)"


@pytest.mark.slow
def test_a_capped_receiver_that_keeps_the_chunks_is_found() -> None:
    found, ratio = _judged(_held("fastapi-capped-buffer"))
    assert found, ratio


@pytest.mark.slow
@pytest.mark.parametrize(("budget", "found"), [("1048576", False), ("off", True)], ids=["1MiB", "no-budget"])
def test_the_guard_is_judged_by_its_memory_budget(budget: str, found: bool) -> None:
    report = _held("fastapi-guarded", {**NO_LIMITS, "HMACGUARD_LAB_MEMORY_BUDGET": budget}, budget=FEWER)
    assert _judged(report)[0] == found, _judged(report)[1]


@pytest.mark.slow
def test_the_guards_default_budget_is_not_found_with_the_scans_defaults() -> None:
    """The guard as shipped (64 MiB) against the scan as shipped (400 uploads, ~92 MiB after the
    first piece): about 0.73 bytes of RSS per byte in all -- the budget fills -- but the last quarter
    flat (0.09 measured), so not found. Before the late reading this guard was reported."""
    env = {**NO_LIMITS, "HMACGUARD_LAB_MEMORY_BUDGET": str(DEFAULT_MEMORY_BUDGET)}
    report = _held("fastapi-guarded", env)
    found, ratio = _judged(report)
    h = report.held
    assert h is not None and h.tail_bytes > 16 * MiB, h
    assert h.added_growth / h.added_bytes > 0.5, ratio  # the budget filled: judged by the tail
    assert not found, f"{ratio}; last quarter {h.tail_growth / h.tail_bytes:.2f}"


@pytest.mark.slow
def test_a_node_receiver_that_streams_into_the_hmac_is_not_found() -> None:
    # express-json-limit's octet-stream path: each chunk into the HMAC, then dropped. V8 collects the
    # dead Buffers only after tens of MiB; with 100 uploads this read as keeping them (1.08).
    found, ratio = _judged(_held("express-json-limit", content_type="application/octet-stream"))
    assert not found, ratio


def test_uploads_answered_429_in_flight_leave_too_few_to_judge() -> None:
    in_flight = threading.Semaphore(10)

    def admit(request: h11.Request) -> tuple[int, list[tuple[str, str]]] | None:
        # Like a limiter counting uploads in flight: room for ten, the rest 429 before their body.
        return None if in_flight.acquire(blocking=False) else (429, [("Retry-After", "60")])

    def respond(request: h11.Request, length: int) -> tuple[int, list[tuple[str, str]]]:
        in_flight.release()
        return 401, []

    with serve(h11_handler(respond, refuse_head=admit)) as server:
        # The server runs in this process (a thread per connection: 100 of them, not 400): its
        # memory says nothing, the counts do.
        report = run_scan(ScanTarget(server.url), FEWER, observer=PidObserver(os.getpid()), selection=ONLY)
    h = report.held
    assert h is not None and (h.opened, h.held, dict(h.answered)) == (100, 10, {"429": 90}), h
    assert RULE not in {f.rule for f in report.findings}
    untested = {u.what: u.reason for u in report.untested}
    assert "10 of 100 uploads stayed open" in untested[RULE] and "429 x90" in untested[RULE]


def test_rounds_carry_at_most_3_mib_and_a_body_goes_out_in_160_of_them() -> None:
    each = 250_000 - 64
    assert [piece_size(n, each) for n in (2, 100, 200, 1000)] == [16 * KiB] * 3 + [4 * KiB]
    assert 8 * KiB < piece_size(400, each) == ROUND_BYTES // 400 < 8.5 * KiB
    assert piece_size(400, 16 * MiB) * MAX_ROUNDS >= 16 * MiB


@pytest.mark.slow
@pytest.mark.parametrize(("budget", "found"), [("1048576", False), ("off", True)], ids=["1MiB", "no-budget"])
def test_the_guard_with_its_rate_limits_is_judged_from_many_addresses(budget: str, found: bool) -> None:
    """The lab's guard as shipped -- 20 failed verifications a minute per client -- with and
    without its memory budget: from one address the phase is skipped (the limit would be spent),
    from 50 (8 uploads each) every upload stays open and the budget is what the scan sees."""
    env = {"HMACGUARD_LAB_MEMORY_BUDGET": budget}
    alone = _held("fastapi-guarded", env, budget=FEWER)
    assert alone.held is None
    reason = next(u.reason for u in alone.untested if u.what == "held-uploads")
    assert "rate limit" in reason and "--held-sources" in reason, reason  # and says how to measure it
    spread = dataclasses.replace(FEWER, held_sources=50)
    report = _held("fastapi-guarded", env, budget=spread)
    assert report.held is not None and report.held.sources == 50, report.untested
    assert _judged(report)[0] == found, _judged(report)[1]
