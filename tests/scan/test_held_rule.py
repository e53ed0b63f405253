"""memory-held-uploads on hand-built results: where its thresholds put the edge, what it says."""

from __future__ import annotations

import dataclasses

import pytest

from hmacguard.findings import Severity
from hmacguard.scan.analysis import ScanFacts, Thresholds, analyse
from hmacguard.scan.model import HeldResult, Stack, Variant
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.stack import stack_hint

MiB = 1024 * 1024
RULE = "memory-held-uploads"
TH = Thresholds()
BEFORE = 40 * MiB


def held(
    added: int, growth: int, *, connections: int = 400, opened: int = 400, per_connection: int = 40_000
) -> HeldResult:
    """``added`` bytes sent after the first piece (8 KiB on each connection), RSS growing by
    ``growth`` meanwhile; before that, ``per_connection`` bytes of RSS per connection."""
    first = BEFORE + connections * per_connection
    return HeldResult(
        variant=Variant(), size=250_000, opened=opened, held=connections,
        held_bytes=connections * 8192 + added, first_bytes=connections * 8192,
        answered={"429": opened - connections} if opened > connections else {},
        rss_before=BEFORE, rss_first=first, rss_held=first + growth, rss_peak=first + growth + MiB,
        seconds=2.5,
    )  # fmt: skip


def judged(result: HeldResult | None, thresholds: Thresholds = TH) -> list[str]:
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      held=result)  # fmt: skip
    findings, diagnostics = analyse(facts, thresholds)
    assert not diagnostics
    return [f.rule for f in findings if f.rule == "memory-held-uploads"]


def test_thresholds_are_the_documented_ones() -> None:
    assert (TH.held_ratio, TH.held_min_bytes) == (0.5, 8 * MiB)


@pytest.mark.parametrize(
    ("added", "growth", "fires"),
    [
        (89 * MiB, 91 * MiB, True),  # a server keeping every upload (the lab measures 1.02-1.27)
        (88 * MiB, 44 * MiB, True),  # exactly at the ratio
        (88 * MiB, 44 * MiB - 1, False),  # just below it
        (89 * MiB, 8 * MiB, False),  # a bounded server (the lab's guard: 0.09)
        (8 * MiB, 4 * MiB, True),  # exactly the least sent that is judged
        (8 * MiB - 1, 8 * MiB, False),  # less is not judged, whatever the growth
        (89 * MiB, -2 * MiB, False),  # RSS fell (a collector ran): nothing held
    ],
)
def test_fires_at_half_a_byte_of_rss_per_byte_after_the_first_piece(
    added: int, growth: int, fires: bool
) -> None:
    assert judged(held(added, growth)) == (["memory-held-uploads"] if fires else [])


def test_what_each_connection_costs_is_not_counted_as_held_body() -> None:
    # 400 connections at 100 KB each before the first reading (a server's objects and buffers):
    # 38 MiB, 0.43 of everything sent, but only 0.09 per byte after it.
    costly = held(89 * MiB, 8 * MiB, per_connection=100_000)
    assert costly.growth / costly.held_bytes > 0.4
    assert judged(costly) == []


def test_not_run_is_not_judged() -> None:
    assert judged(None) == []


def test_thresholds_move_the_edge() -> None:
    assert judged(held(89 * MiB, 23 * MiB), Thresholds(held_ratio=0.25)) == ["memory-held-uploads"]
    assert judged(held(4 * MiB, 4 * MiB), Thresholds(held_min_bytes=MiB)) == ["memory-held-uploads"]


def test_evidence_says_what_was_held_and_what_it_cost() -> None:
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      held=held(80 * (249_936 - 8192), 22 * MiB, connections=80, opened=100))  # fmt: skip
    finding = next(f for f in analyse(facts)[0] if f.rule == "memory-held-uploads")
    values = finding.evidence.values
    assert values["connections_held"] == 80 and values["connections_opened"] == 100
    assert values["bytes_per_connection"] == 249_936 and values["held_bytes"] == 80 * 249_936
    assert values["rss_growth"] == 22 * MiB + 80 * 40_000
    assert values["rss_growth_after_first_piece"] == 22 * MiB
    assert values["rss_growth_per_byte_after_first_piece"] == round(22 * MiB / (80 * (249_936 - 8192)), 3)
    assert values["answered"] == {"429": 20}
    assert "80 uploads were held open" in finding.message
    assert "memory_budget" in (finding.remediation or "") and "proxy" in (finding.remediation or "")
    assert finding.severity is Severity.HIGH


def test_the_stack_hint_names_the_fix_in_its_terms() -> None:
    assert "memory_budget" in (stack_hint(RULE, Stack("FastAPI/Starlette", "uvicorn")) or "")
    assert "proxy_request_buffering" in (stack_hint(RULE, Stack(None, "nginx")) or "")


def _with_tail(result: HeldResult, tail: int, tail_growth: int) -> HeldResult:
    """``result`` with a late reading: the last ``tail`` bytes sent grew RSS by ``tail_growth``."""
    return dataclasses.replace(
        result, late_bytes=result.held_bytes - tail, rss_late=result.rss_held - tail_growth
    )


@pytest.mark.parametrize(
    ("tail", "tail_growth", "fires"),
    [
        (30 * MiB, 30 * MiB, True),  # a keeper: its last quarter grows like the rest
        (30 * MiB, 15 * MiB, True),  # exactly at the ratio
        (30 * MiB, 15 * MiB - 1, False),  # a bound passed: the last quarter flattened
        (30 * MiB, 2 * MiB, False),  # the guard's default 64 MiB budget against 89 MiB sent
        (2 * MiB - 1, 0, True),  # a last quarter under a quarter of the minimum: too small to tell
    ],
)
def test_a_bound_the_uploads_passed_shows_as_a_flat_last_quarter(
    tail: int, tail_growth: int, fires: bool
) -> None:
    # 0.73 per byte after the first piece in all (64 MiB of 89 MiB kept, then nothing more).
    result = _with_tail(held(89 * MiB, 65 * MiB), tail, tail_growth)
    assert judged(result) == (["memory-held-uploads"] if fires else [])


def test_without_a_late_reading_it_is_judged_on_the_whole_as_before() -> None:
    result = held(89 * MiB, 65 * MiB)
    assert (result.late_bytes, result.tail_bytes) == (None, 0)
    assert judged(result) == ["memory-held-uploads"]


@pytest.mark.parametrize("late", [True, False])
def test_a_finding_says_which_bounds_it_cannot_rule_out(late: bool) -> None:
    """A black box sees a process-wide bound only once the uploads pass it: the finding says up to
    where it looked (the growth it caused), and how to look further."""
    result = held(89 * MiB, 89 * MiB)
    if late:
        result = _with_tail(result, 30 * MiB, 30 * MiB)
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      held=result)  # fmt: skip
    finding = next(f for f in analyse(facts)[0] if f.rule == RULE)
    detail = finding.evidence.summary
    # Body bytes the uploads had sent by the reading the growth is judged from -- not the RSS growth
    # (here 104 MiB, above the 92 MiB they sent in all: no bound up there could have been passed).
    below = result.late_bytes if late else result.first_bytes
    assert below is not None and below < result.held_bytes < result.growth
    assert f"no process-wide bound was passed below {size_text(below)} of bodies sent" in detail
    assert finding.evidence.values["no_bound_passed_below_bytes"] == below
    assert "--held-uploads" in detail
    assert ("through the last quarter" in detail) is late


def test_a_tiny_minimum_and_no_late_reading_is_judged_on_the_whole() -> None:
    """With ``held_min_bytes`` under 4 (the API allows it) a quarter of it is 0, and a result with no
    late reading has 0 bytes in its last quarter: judged on the whole, not divided by zero (which
    the analysis reported as a check that could not be evaluated)."""
    tiny = dataclasses.replace(TH, held_min_bytes=3)
    assert judged(held(89 * MiB, 65 * MiB), tiny) == ["memory-held-uploads"]
