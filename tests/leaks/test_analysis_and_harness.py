"""Units: the growth verdicts on synthetic series, the request the harness builds, app detection."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.lab import LAB_SECRET
from hmacguard.leaks import AppWorkload, Recipe, Site, detect_interface, load_target, make_workload
from hmacguard.leaks.analysis import analyse, format_bytes
from hmacguard.leaks.frames import FrameKind, FramePolicy
from hmacguard.leaks.heap import Measurement, SiteSeries
from hmacguard.leaks.wire import AsgiExchange, BodyStream
from hmacguard.schemes import get_scheme
from tests.leaks import apps

REQUESTS = [0, 25, 50, 75, 100, 125, 150, 175, 200]


def verdict(series: list[int], blocks: list[int] | None = None) -> tuple[str, float] | None:
    site = Site("/app/views.py", 7)
    measurement = Measurement(
        unit="request",
        warmup=10,
        requests=REQUESTS,
        sites={site: SiteSeries(site, "stored", series, blocks or [n // 100 for n in series], Counter())},
        outside=[0] * len(REQUESTS),
        outside_top=[],
        run_seconds=1.0,
        total_seconds=2.0,
        workload={"200": 213},
    )
    report = analyse(measurement, target="t")
    if not report.sites:
        return None
    return report.sites[0].trend, report.sites[0].bytes_per_request


def test_steady_growth_is_growing_at_its_rate() -> None:
    trend, rate = verdict([n * 1000 for n in REQUESTS]) or ("", 0)
    assert trend == "growing"
    assert rate == pytest.approx(1000)


def test_growth_that_stops_is_a_plateau() -> None:
    series = [min(n, 128) * 1000 for n in REQUESTS]
    assert verdict(series) == ("plateau", pytest.approx(1000, rel=0.05))


def test_one_jump_in_the_tail_is_not_growth() -> None:
    # A dict table reallocated once, late: all the growth in one round.
    assert verdict([0, 0, 0, 0, 0, 0, 0, 21000, 21000]) is None


def test_small_growth_is_noise() -> None:
    assert verdict([n * 10 for n in REQUESTS]) is None


def test_format_bytes() -> None:
    assert format_bytes(10) == "10 B"
    assert format_bytes(65569) == "64.0 KiB"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"


# --- the request --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 16, 39, 40, 41, 1000, 65536])
def test_bodies_have_the_exact_size_and_differ(size: int) -> None:
    recipe = Recipe(body_size=size)
    a, b = recipe.body(1), recipe.body(2)
    assert len(a) == len(b) == size
    if size >= 40:
        assert a != b
        json.loads(a)


def test_headers_are_signed_per_request_and_verify() -> None:
    recipe = Recipe(body_size=100, scheme="github", secret=LAB_SECRET)
    body = recipe.body(1)
    first, second = recipe.request_headers(body), recipe.request_headers(body)
    assert first["X-GitHub-Delivery"] != second["X-GitHub-Delivery"]
    claim = get_scheme("github").parse(first)
    assert claim.signatures  # well-formed; the lab app's 200s below prove it verifies


def test_recipe_refuses_nonsense() -> None:
    with pytest.raises(ConfigurationError):
        Recipe(body_size=-1)
    with pytest.raises(ConfigurationError):
        Recipe(method="PO ST")
    with pytest.raises(ConfigurationError):
        Recipe(scheme="github")


def test_wsgi_input_reads_fresh_bytes_every_time() -> None:
    body = b"0123456789" * 10
    a, b = BodyStream(body), BodyStream(body)
    ra, rb = a.read(), b.read()
    assert ra == rb == body
    assert ra is not body and ra is not rb
    s = BodyStream(b"line1\nline2")
    assert s.readline() == b"line1\n"
    assert s.read(3) == b"lin"
    assert s.read() == b"e2"
    assert s.read() == b""


def test_asgi_receive_chunks_then_waits_for_the_response() -> None:
    async def scenario() -> list[dict[str, object]]:
        exchange = AsgiExchange(bytes(150 * 1024))
        messages = [await exchange.receive() for _ in range(3)]
        waiting = asyncio.ensure_future(exchange.receive())
        await asyncio.sleep(0)
        assert not waiting.done()
        await exchange.send({"type": "http.response.start", "status": 204})
        await exchange.send({"type": "http.response.body", "body": b""})
        messages.append(await waiting)
        assert exchange.status == 204
        return messages

    messages = asyncio.run(scenario())
    assert [len(m["body"]) for m in messages[:3]] == [65536, 65536, 150 * 1024 - 131072]  # type: ignore[arg-type]
    assert [m["more_body"] for m in messages[:3]] == [True, True, False]
    assert messages[3] == {"type": "http.disconnect"}


def test_signed_requests_reach_the_lab_app() -> None:
    workload = AppWorkload(
        load_target("hmacguard.lab.apps.flask_get_data:app"),
        Recipe(body_size=512, scheme="github", secret=LAB_SECRET),
    )
    workload.run(5)
    assert workload.statuses == Counter({200: 5})
    wrong = AppWorkload(
        load_target("hmacguard.lab.apps.flask_get_data:app"),
        Recipe(body_size=512, scheme="github", secret="wrong"),
    )
    wrong.run(2)
    assert wrong.statuses == Counter({401: 2})


# --- detection and loading --------------------------------------------------------------------


def test_detects_wsgi_asgi_and_plain_callables() -> None:
    assert detect_interface(apps.flask_clean) == "wsgi"
    assert detect_interface(apps.fastapi_leak) == "asgi"
    assert detect_interface(apps.LifespanApp()) == "asgi"

    def wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    async def asgi(scope: object, receive: object, send: object) -> None:
        return None

    assert detect_interface(wsgi) == "wsgi"
    assert detect_interface(asgi) == "asgi"
    assert make_workload(apps.clean_call).unit == "call"
    with pytest.raises(ConfigurationError):
        detect_interface(lambda a, b, c, d: None)
    with pytest.raises(ConfigurationError):
        detect_interface(42)


def test_asgi_lifespan_runs_around_the_requests() -> None:
    lifespan_app = apps.LifespanApp()
    workload = AppWorkload(lifespan_app, Recipe(body_size=70000))
    assert lifespan_app.started
    workload.run(3)
    assert workload.statuses == Counter({200: 3})
    workload.close()
    assert lifespan_app.stopped


def test_load_target_errors() -> None:
    with pytest.raises(ConfigurationError):
        load_target("no_colon")
    with pytest.raises(TargetError):
        load_target("definitely_not_a_module_xyz:app")
    with pytest.raises(TargetError):
        load_target("tests.leaks.apps:missing")


def test_frame_policy_kinds() -> None:
    policy = FramePolicy()
    assert policy.kind(apps.__file__) is FrameKind.APPLICATION
    assert policy.kind(json.__file__) is FrameKind.STDLIB
    assert policy.kind(pytest.__file__) is FrameKind.LIBRARY
    import re

    assert policy.kind(re.__file__) is FrameKind.CACHE
    import hmacguard.lab.apps.flask_get_data as lab_app
    import hmacguard.leaks.heap as heap
    import hmacguard.leaks.wire as wire
    import hmacguard.schemes as schemes

    assert policy.kind(lab_app.__file__) is FrameKind.APPLICATION
    assert policy.kind(heap.__file__) is FrameKind.HARNESS
    assert policy.kind(wire.__file__) is FrameKind.WIRE
    assert policy.kind(schemes.__file__) is FrameKind.HMACGUARD
    assert FramePolicy(exclude=[str(apps.HERE.parent)]).kind(apps.__file__) is FrameKind.LIBRARY
    # The search for the application stops at the harness: its caller is not the app.
    frames = ((json.__file__, 1), (heap.__file__, 2), (apps.__file__, 3))
    assert policy.application_site(frames) is None
