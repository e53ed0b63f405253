"""In-process runs on small apps with known flaws: exact lines, sync and async, leak versus plateau."""

from __future__ import annotations

import pytest

from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import Recipe, find_leaks
from tests.leaks import apps
from tests.leaks.apps import HERE, marked_line

BODY = 16 * 1024


def recipe() -> Recipe:
    return Recipe(body_size=BODY, scheme="github", secret=LAB_SECRET)


def test_flask_unbounded_list_is_a_leak_at_the_append() -> None:
    report = find_leaks(apps.flask_leak, recipe(), requests=120)
    assert [s.trend for s in report.sites] == ["growing"]
    site = report.sites[0]
    assert (site.site.path, site.line) == (str(HERE), marked_line("FLASK-LEAK"))
    assert site.source == "BODIES.append(body)  # FLASK-LEAK"
    assert abs(site.bytes_per_request - BODY) <= 0.25 * BODY
    assert 0.9 <= site.objects_per_request <= 2.5
    assert report.bytes_per_request == site.bytes_per_request
    [finding] = report.findings
    assert finding.rule == "line-retains-memory"
    assert finding.location.line == site.line


@pytest.mark.parametrize(
    ("app", "marker"),
    [(apps.flask_lru, "FLASK-LRU"), (apps.flask_functools, "FUNCTOOLS-LRU")],
    ids=["ordereddict", "functools"],
)
def test_lru_of_128_bodies_is_a_plateau_not_a_leak(app: object, marker: str) -> None:
    # 240 requests: the cache fills at 128 and the second half of the run shows it holding.
    report = find_leaks(app, recipe(), requests=240)
    assert report.growing == ()
    [site] = report.plateaus
    assert site.line == marked_line(marker)
    assert site.plateau_after is not None and site.plateau_after <= 160
    # 128 bodies held (entries from the warm-up count too), give or take the cache's own structures.
    assert 100 * BODY <= site.retained_bytes <= 140 * BODY
    [finding] = report.findings
    assert finding.severity.label == "info"
    assert "plateau" in finding.message and "not a leak" in finding.message
    assert finding.evidence.values["trend"] == "plateau"


def test_clean_flask_app_reports_nothing() -> None:
    report = find_leaks(apps.flask_clean, recipe(), requests=120)
    assert report.sites == ()
    assert report.findings == ()
    assert report.workload == {"200": 120 + report.warmup + 3}


def test_asgi_app_leak_found_at_the_awaiting_view() -> None:
    report = find_leaks(apps.fastapi_leak, recipe(), requests=120)
    [site] = report.sites
    assert site.trend == "growing"
    assert site.line == marked_line("ASGI-LEAK")
    assert abs(site.bytes_per_request - BODY) <= 0.25 * BODY


def test_plain_callable_leak() -> None:
    report = find_leaks(apps.leaky_call, requests=100)
    assert report.unit == "call"
    [site] = report.sites
    assert site.line == marked_line("CALL-LEAK")
    assert abs(site.bytes_per_request - 4096) <= 0.25 * 4096


def test_async_callable_leak() -> None:
    kept: list[bytes] = []

    async def handler() -> None:
        kept.append(bytes(2048))

    report = find_leaks(handler, requests=100)
    [site] = report.sites
    assert site.site.path == __file__
    assert site.source == "kept.append(bytes(2048))"
    assert abs(site.bytes_per_request - 2048) <= 0.25 * 2048


def test_clean_callable_reports_nothing() -> None:
    assert find_leaks(apps.clean_call, requests=100).sites == ()


def test_tracemalloc_state_is_restored() -> None:
    import tracemalloc

    tracemalloc.start(5)
    try:
        find_leaks(apps.clean_call, requests=20)
        assert tracemalloc.is_tracing()
        assert tracemalloc.get_traceback_limit() == 5
    finally:
        tracemalloc.stop()
    find_leaks(apps.clean_call, requests=20)
    assert not tracemalloc.is_tracing()


def test_interpreter_caches_and_freelists_are_not_leaks() -> None:
    import logging
    import re
    import typing
    from decimal import Decimal
    from fractions import Fraction

    counter = iter(range(10**9))
    log = logging.getLogger("hmacguard.tests.leaks")

    def churn() -> None:
        n = next(counter)
        # A new pattern every call: re's own cache (bounded at 512 entries) keeps each one.
        re.compile(f"delivery-{n}-[a-f0-9]+")
        # logging caches level decisions per logger; typing caches subscriptions.
        log.isEnabledFor(logging.DEBUG)
        typing.Optional[typing.Dict[str, int]]  # noqa: UP006,UP045
        # Transient objects recycled through the interpreter's freelists.
        [(i, float(i), {"k": i}, [i]) for i in range(200)]
        Decimal(n) + Fraction(n, 7).numerator

    report = find_leaks(churn, requests=200)
    assert report.sites == (), [(s.where, s.bytes_per_request) for s in report.sites]
