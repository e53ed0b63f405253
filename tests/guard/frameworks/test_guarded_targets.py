"""The guarded lab targets under their real servers: gunicorn (Flask, Django), uvicorn (FastAPI, and
the same Django project through its ASGI application).

One server per target serves the functional checks; bodies differ in size from test to test, because
an identical signed body sent twice is a replay (409) by design. The 64 MiB bodies are watched on
the server's whole process tree: refused with 413 and ``Connection: close`` long before the client
has sent them, and peak RSS growth under 8 MiB. Rate limits get a server of their own with a tiny
budget (the lab knob ``HMACGUARD_LAB_RATE``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator

import pytest

from hmacguard.lab import RunningTarget, Server, Target, get_target, run_target

from .guardwire import MiB, post, post_measured, signed_headers

pytestmark = pytest.mark.slow

BIG = 64 * MiB
CAP = 1 * MiB


def _django_asgi() -> Target:
    return dataclasses.replace(
        get_target("django-guarded"),
        name="django-guarded-asgi",
        server=Server.UVICORN,
        app="hmacguard.lab.apps.django_guarded:asgi_application",
        asgi=True,
    )


TARGETS: dict[str, Callable[[], Target]] = {
    "flask-guarded": lambda: get_target("flask-guarded"),
    "django-guarded": lambda: get_target("django-guarded"),
    "django-guarded-asgi": _django_asgi,
    "fastapi-guarded": lambda: get_target("fastapi-guarded"),
}


@pytest.fixture(scope="module", params=list(TARGETS))
def guarded(request: pytest.FixtureRequest) -> Iterator[RunningTarget]:
    with run_target(TARGETS[request.param](), env={"HMACGUARD_LAB_REPLAY": "memory"}) as running:
        # Warm up: lazy imports and first-request set-up are not body memory.
        answer = post(running, signed_headers(running, 7), 7)
        assert answer.status == 200, (answer, running.log())
        yield running


def _problem(answer_body: bytes) -> dict[str, object]:
    doc = json.loads(answer_body)
    assert isinstance(doc, dict)
    return doc


def test_signed_request_reaches_the_view_with_its_body(guarded: RunningTarget) -> None:
    answer = post(guarded, signed_headers(guarded, 1000), 1000)
    assert answer.status == 200, (answer, guarded.log())
    doc = json.loads(answer.body)
    assert doc["bytes"] == 1000  # the view saw the verified body
    assert doc["key"] == 0  # and found the VerifiedBody (environ, scope or dependency)
    assert answer.header("ratelimit-policy") and answer.header("ratelimit")


def test_body_at_the_cap_is_accepted_and_spooled(guarded: RunningTarget) -> None:
    answer = post(guarded, signed_headers(guarded, CAP), CAP)
    assert answer.status == 200, (answer, guarded.log())
    assert json.loads(answer.body)["bytes"] == CAP


def test_wrong_signature_is_401_problem_json(guarded: RunningTarget) -> None:
    answer = post(guarded, signed_headers(guarded, 1001, secret="not-the-secret"), 1001)
    assert answer.status == 401
    assert answer.header("content-type") == "application/problem+json"
    assert _problem(answer.body)["status"] == 401


def test_missing_signature_is_400(guarded: RunningTarget) -> None:
    answer = post(guarded, {"Content-Type": "application/json"}, 1002)
    assert answer.status == 400
    assert _problem(answer.body)["type"] == "urn:hmacguard:problem:signature-missing"


def test_replayed_delivery_is_409(guarded: RunningTarget) -> None:
    headers = signed_headers(guarded, 1003)
    first = post(guarded, headers, 1003)
    again = post(guarded, headers, 1003)
    assert (first.status, again.status) == (200, 409)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_64_mib_is_refused_early_with_flat_memory(guarded: RunningTarget, chunked: bool) -> None:
    answer, growth = post_measured(guarded, signed_headers(guarded, 8), BIG, chunked=chunked)
    assert answer.status == 413, (answer, guarded.log())
    assert answer.header("connection") == "close"
    assert _problem(answer.body)["max_body"] == CAP
    # Early: the answer came while most of the body was still unsent (kernel buffers hold a few MiB).
    assert answer.bytes_sent < 16 * MiB, answer.bytes_sent
    assert growth < 8 * MiB, f"peak RSS grew {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("name", list(TARGETS))
def test_rate_limit_answers_429_with_retry_after(name: str) -> None:
    with run_target(TARGETS[name](), env={"HMACGUARD_LAB_RATE": "3/minute"}) as running:
        statuses = []
        for size in (11, 12, 13):
            answer = post(running, signed_headers(running, size), size)
            statuses.append(answer.status)
        assert statuses == [200, 200, 200], running.log()
        assert '"requests";r=0' in (answer.header("ratelimit") or "")
        limited = post(running, signed_headers(running, 14), 14)
    assert limited.status == 429
    assert int(limited.header("retry-after") or 0) >= 1
    assert '"requests";q=3;w=60' in (limited.header("ratelimit-policy") or "")
    assert _problem(limited.body)["type"] == "urn:hmacguard:problem:rate-limited"
