"""Each lab target behaves as `hmacguard lab list` says: measured on its real server, not assumed.

Signatures and retention (200 requests of 64 KiB) share one server per target; each 64 MiB body
(with Content-Length, and chunked) gets a fresh server, its whole process tree's RSS sampled every
5 ms while the request is handled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psutil
import pytest

from hmacguard.lab import TARGETS, Memory, RunningTarget, run_target
from hmacguard.lab.client import send
from hmacguard.memory import MemorySampler

KiB = 1024
MiB = 1024 * KiB
BIG = 64 * MiB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=list(TARGETS))
def lab(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    # The guarded targets' request budget (600/minute) would stop the retention rounds; raised here
    # (a lab knob the other targets ignore).
    with run_target(request.param, env={"HMACGUARD_LAB_RATE": "100000/minute"}) as running:
        yield running


def test_correct_signature_is_accepted(lab: RunningTarget) -> None:
    ex = send(lab, 1024, sample_memory=False, timeout=10)
    assert ex.status is not None and 200 <= ex.status < 300, (ex, lab.log())


def test_wrong_signature_is_refused(lab: RunningTarget) -> None:
    ex = send(lab, 1024, correct_signature=False, sample_memory=False, timeout=10)
    assert ex.status is not None and 400 <= ex.status < 500, (ex, lab.log())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("name", list(TARGETS))
def test_large_body_memory(name: str, chunked: bool) -> None:
    # A fresh server per framing: freed memory of an earlier large request stays in the process
    # (glibc's heap, V8's old space) and would hide the next request's growth. One worker, warmed
    # by a small request, so the framework's lazy first-request set-up (Django loads its URLconf
    # and handlers then: ~17 MiB) is not counted as body memory.
    with run_target(dataclasses.replace(TARGETS[name], workers=1)) as fresh:
        send(fresh, 1024, sample_memory=False)
        ex = send(fresh, BIG, chunked=chunked)
    t = fresh.target
    expected = t.memory_chunked if chunked else t.memory_content_length
    refuses = t.refuses_chunked if chunked else t.refuses_content_length
    assert ex.refused == refuses, ex
    if expected is Memory.BUFFERS:
        assert ex.peak_growth >= 32 * MiB, f"{name} should buffer: {ex}"
    else:
        # runtime_float: V8's first large stream grows its heap by tens of MiB whatever the app does.
        assert ex.peak_growth < 8 * MiB + t.runtime_float, f"{name} should stay bounded: {ex}"


def _round(lab: RunningTarget, n: int) -> MemorySampler:
    with MemorySampler(lab.pid, interval=0.02) as sampler:
        for _ in range(n):
            _ok_64k(lab)
    return sampler


def _ok_64k(lab: RunningTarget) -> None:
    ex = send(lab, 64 * KiB, sample_memory=False, timeout=10)
    assert ex.status is not None and ex.status < 300, ex


def _cpu_seconds_per_worker(pid: int) -> dict[int, float]:
    """CPU time of each worker (a process of the tree with no children)."""
    root = psutil.Process(pid)
    leaves = [p for p in (root, *root.children(recursive=True)) if not p.children()]
    return {p.pid: sum(p.cpu_times()[:2]) for p in leaves}


def _warm_every_worker(lab: RunningTarget, *, at_least: int = 100, at_most: int = 300) -> MemorySampler:
    """Send requests until every worker has done real work (gunicorn's accept is uneven under load,
    and a worker's first requests pay its one-off set-up, which is not retention). An idle worker
    spends well under 50 ms of CPU; a few requests cost more. At most 300, under the guarded
    targets' 600/minute rate limit together with the measured round."""
    start = _cpu_seconds_per_worker(lab.pid)
    with MemorySampler(lab.pid, interval=0.02) as sampler:
        sent = 0
        while sent < at_most:
            for _ in range(20):
                _ok_64k(lab)
            sent += 20
            now = _cpu_seconds_per_worker(lab.pid)
            if sent >= at_least and all(now.get(p, 0.0) - b >= 0.05 for p, b in start.items()):
                break
    return sampler


def test_retention_over_200_requests(lab: RunningTarget) -> None:
    t = lab.target
    _warm_every_worker(lab)  # reaches each worker's first high-water mark
    # A first round lets the allocators settle (on a loaded machine pymalloc and glibc kept growing
    # by 1-1.6 MiB through it, with nothing retained); the second is the one judged. A target that
    # keeps every body grows by the body in both.
    settled = _round(lab, 200)
    measured = _round(lab, 200)
    per_request = (measured.last - settled.last) / 200
    if t.retains:
        assert per_request >= 32 * KiB, f"{t.name} should keep each body: {per_request:.0f} B/request"
    else:
        tolerance = 1 * MiB + t.runtime_float
        # Under load an allocator can still step to a new high-water mark in the judged round (seen
        # once in a clean-clone CI run: django-stateless +5.3 MiB, 27 KB/request, the next rounds
        # flat); a target that keeps what it is sent grows in every round. So up to two more rounds,
        # each judged against the one before: bounded is a round within the previous one's peak.
        # (Only when the first judged round failed: a guarded target's rate limit is not spent.)
        for _ in range(2):
            if measured.peak <= settled.peak + tolerance:
                break
            settled, measured = measured, _round(lab, 200)
            per_request = (measured.last - settled.last) / 200
        assert measured.peak <= settled.peak + tolerance, (
            f"{t.name} grew past its settled high-water mark: {settled.peak} -> {measured.peak} "
            f"({per_request:.0f} B/request)"
        )
