"""memory-held-uploads on hand-built results: where its thresholds put the edge, what it says."""

from __future__ import annotations

import pytest

from hmacguard.findings import Severity
from hmacguard.scan.analysis import ScanFacts, Thresholds, analyse
from hmacguard.scan.model import HeldResult, Stack, Variant

MiB = 1024 * 1024
TH = Thresholds()
BEFORE = 40 * MiB


def held(held_bytes: int, growth: int, *, connections: int = 100, opened: int = 100) -> HeldResult:
    return HeldResult(
        variant=Variant(), size=250_000, opened=opened, held=connections, held_bytes=held_bytes,
        answered={"429": opened - connections} if opened > connections else {},
        rss_before=BEFORE, rss_held=BEFORE + growth, rss_peak=BEFORE + growth + MiB, seconds=1.2,
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
    ("held_bytes", "growth", "fires"),
    [
        (24 * MiB, 27 * MiB, True),  # a server keeping every upload (the lab measures 1.1-1.2)
        (24 * MiB, 12 * MiB, True),  # exactly at the ratio
        (24 * MiB, 12 * MiB - 1, False),  # just below it
        (24 * MiB, 6 * MiB, False),  # a bounded server: its own buffers and a small budget
        (8 * MiB, 4 * MiB, True),  # exactly the least held that is judged
        (8 * MiB - 1, 8 * MiB, False),  # less held is not judged, whatever the growth
        (24 * MiB, -2 * MiB, False),  # RSS fell (a collector ran): nothing held
    ],
)
def test_fires_at_half_a_byte_of_rss_per_held_byte(held_bytes: int, growth: int, fires: bool) -> None:
    assert judged(held(held_bytes, growth)) == (["memory-held-uploads"] if fires else [])


def test_not_run_is_not_judged() -> None:
    assert judged(None) == []


def test_thresholds_move_the_edge() -> None:
    assert judged(held(24 * MiB, 6 * MiB), Thresholds(held_ratio=0.25)) == ["memory-held-uploads"]
    assert judged(held(4 * MiB, 4 * MiB), Thresholds(held_min_bytes=MiB)) == ["memory-held-uploads"]


def test_evidence_says_what_was_held_and_what_it_cost() -> None:
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      held=held(80 * 249_936, 22 * MiB, connections=80, opened=100))  # fmt: skip
    finding = next(f for f in analyse(facts)[0] if f.rule == "memory-held-uploads")
    values = finding.evidence.values
    assert values["connections_held"] == 80 and values["connections_opened"] == 100
    assert values["bytes_per_connection"] == 249_936 and values["held_bytes"] == 80 * 249_936
    assert values["rss_growth"] == 22 * MiB
    assert values["rss_growth_per_held_byte"] == round(22 * MiB / (80 * 249_936), 3)
    assert values["answered"] == {"429": 20}
    assert "80 uploads were held open" in finding.message
    assert "memory_budget" in (finding.remediation or "") and "proxy" in (finding.remediation or "")
    assert finding.severity is Severity.HIGH
