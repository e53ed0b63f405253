"""Review of 43a167d, 82a32a6 and 6ba8a5e (``--held-sources``): each test failed on 6ba8a5e and
passes since its fix.

- A target whose name resolves to ::1 and 127.0.0.1 but answers on ::1 alone (where /etc/hosts
  lists both, glibc puts ::1 first, and Node 17+ listens on "localhost" at ::1 only) passed the
  127.0.0.0/8 check: every held upload was sent to 127.0.0.1, refused, and the phase reported a
  result of 0 uploads "from 5 addresses" instead of being listed as untested for that reason. The
  hint for a rate limit suggested --held-sources there too.
- The hint for a rate limit named a value that would not help: --held-sources 1 (what was given)
  when the limit covered the uploads but not the size probes after them, and more than 250 (which
  the option refuses) when it allowed fewer than uploads / 250.
- More sources than uploads: the report said the uploads came from every one of them.

Every server is in-process on loopback (127.0.0.1 or ::1) and a free port, stopped when its block
ends; the scan watches this process's own memory (the connections are what is judged here)."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from typing import Any

import pytest

from hmacguard.scan import Budget, PidObserver, ScanReport, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.plan import plan_scan
from tests.scan._servers import h11_handler, serve
from tests.scan.test_review_held import ONLY, _answering

SPREAD = Budget(bytes=256 * MiB, seconds=30, request_timeout=2.0, held_uploads=10, held_size=64 * KiB,
                held_sources=5)  # fmt: skip
#: A host name that resolves as "localhost" does on many systems: ::1 first, then 127.0.0.1.
DUAL = "dual-stack.hmacguard.test"


@pytest.fixture
def dual_name(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == DUAL:
            return real("::1", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _held_reason(report: ScanReport) -> str:
    return next(u.reason for u in report.untested if u.what == "held-uploads")


def _limited(quota: int) -> Any:
    """Answers every request 200, advertising a rate limit of ``quota`` requests a minute."""
    return h11_handler(lambda request, length: (200, [("RateLimit-Policy", f"{quota};w=60")]))


@pytest.mark.usefixtures("dual_name")
def test_held_sources_need_the_target_to_answer_on_127_0_0_0_8_not_only_resolve_there() -> None:
    peers: list[str] = []
    with serve(_answering(peers), host="::1") as server:
        url = f"http://{DUAL}:{server.port}/webhook"
        report = run_scan(ScanTarget(url), SPREAD, observer=PidObserver(os.getpid()), selection=ONLY)
    # Before the fix: HeldResult(opened=0, answered={'connect-failed': 1}, sources=5).
    assert report.held is None, report.held
    assert "127.0.0.0/8" in _held_reason(report), report.untested
    assert set(peers) == {"::1"}


@pytest.mark.usefixtures("dual_name")
def test_the_rate_limit_hint_offers_no_sources_to_a_target_answering_on_ipv6() -> None:
    budget = dataclasses.replace(SPREAD, held_sources=1, held_uploads=20)
    with serve(_limited(50), host="::1") as server:
        url = f"http://{DUAL}:{server.port}/webhook"
        report = run_scan(ScanTarget(url), budget, observer=PidObserver(os.getpid()), selection=ONLY)
    reason = _held_reason(report)
    assert "rate limit of 50" in reason and "--held-sources" not in reason, reason


def _hinted(reason: str, budget: Budget) -> Budget:
    """The budget with the options the skip's hint names (a ConfigurationError if it names a value
    the command line would refuse)."""
    options = {
        name.replace("-", "_"): int(value) for name, value in re.findall(r"--(held-\w+) (\d+)", reason)
    }
    assert "held_sources" in options, reason
    return dataclasses.replace(budget, **options)


@pytest.mark.parametrize(
    ("quota", "uploads"),
    [
        (50, 20),  # room for the uploads, not for the size probes after them: it said --held-sources 1
        (1, 400),  # one request a minute: it said --held-sources 400 (at most 250 is accepted)
    ],
)
def test_the_rate_limit_hint_names_options_that_give_each_address_room(quota: int, uploads: int) -> None:
    budget = dataclasses.replace(SPREAD, held_sources=1, held_uploads=uploads, held_size=16 * KiB)
    with serve(_limited(quota)) as server:
        target = ScanTarget(server.url)
        skipped = run_scan(target, budget, observer=PidObserver(os.getpid()), selection=ONLY)
        assert skipped.held is None
        hinted = _hinted(_held_reason(skipped), budget)
        assert hinted.held_sources > 1
        again = run_scan(target, hinted, observer=PidObserver(os.getpid()), selection=ONLY)
    assert again.held is not None, again.untested
    assert again.held.opened == hinted.held_uploads and again.held.sources == hinted.held_sources


def test_sources_beyond_the_uploads_are_not_reported_as_used() -> None:
    peers: list[str] = []
    budget = dataclasses.replace(SPREAD, held_uploads=4, held_sources=10)
    with serve(_answering(peers)) as server:
        report = run_scan(ScanTarget(server.url), budget, observer=PidObserver(os.getpid()), selection=ONLY)
    assert report.held is not None and report.held.opened == 4, report.untested
    used = {p for p in peers if p != "127.0.0.1"}  # 127.0.0.1: the size probe
    assert used == {f"127.0.0.{n}" for n in range(2, 6)}
    assert report.held.sources == len(used) == 4
    planned = next(
        p for p in plan_scan(ScanTarget(server.url), budget, memory=True).phases if p.name == "held-uploads"
    )
    assert "from 4 loopback addresses" in planned.title, planned.title
