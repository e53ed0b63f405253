"""``VerifiedBodyDependency`` without the middleware, under uvicorn: it reads the body itself."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmacguard.lab import RunningTarget, get_target, run_target
from hmacguard.schemes import sign_body

from .guardwire import MiB, post, post_measured

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def _serve(attribute: str) -> Iterator[RunningTarget]:
    target = dataclasses.replace(
        get_target("fastapi-guarded"),
        name=f"fastapi-dependency-{attribute}",
        app=f"fastapi_dependency_app:{attribute}",
    )
    with run_target(target, env={"PYTHONPATH": str(HERE)}) as running:
        yield running


@pytest.fixture(scope="module")
def served() -> Iterator[RunningTarget]:
    yield from _serve("app")


def _signed(running: RunningTarget, body: bytes) -> dict[str, str]:
    return sign_body("github", running.secret, body)


def _send(
    running: RunningTarget, body: bytes, headers: dict[str, str]
) -> tuple[int | None, dict[str, object], dict[str, str]]:
    # guardwire sends filler bytes; for JSON we need real content, so use http.client here.
    import http.client

    conn = http.client.HTTPConnection(running.host, running.port, timeout=10)
    try:
        conn.request("POST", running.path, body=body, headers=headers)
        response = conn.getresponse()
        doc = json.loads(response.read())
        return response.status, doc, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_dependency_verifies_and_request_json_sees_the_body(served: RunningTarget) -> None:
    body = b'{"action": "opened", "number": 7}'
    status, doc, headers = _send(served, body, _signed(served, body))
    assert status == 200, served.log()
    # The second (rotation) secret matched; request.json() parsed the verified bytes.
    assert doc == {"bytes": len(body), "key": 1, "parsed": {"action": "opened", "number": 7}}
    assert "ratelimit" in headers


def test_dependency_refusals_are_problem_json(served: RunningTarget) -> None:
    body = b'{"x": 1}'
    status, doc, headers = _send(served, body, sign_body("github", "wrong", body))
    assert status == 401 and headers["content-type"] == "application/problem+json"
    assert doc["type"] == "urn:hmacguard:problem:signature-mismatch"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_dependency_refuses_64_mib_early(served: RunningTarget, chunked: bool) -> None:
    headers = sign_body("github", served.secret, b"whatever")
    headers["Content-Type"] = "application/json"
    answer, growth = post_measured(served, headers, 64 * MiB, chunked=chunked)
    assert answer.status == 413 and answer.header("connection") == "close"
    assert answer.bytes_sent < 16 * MiB
    assert growth < 8 * MiB, f"{growth / MiB:.1f} MiB"


def test_unprotected_route_is_untouched(served: RunningTarget) -> None:
    answer = post(served, {"Content-Type": "application/octet-stream"}, 5000, path="/open")
    assert answer.status == 200 and json.loads(answer.body) == {"bytes": 5000}


def test_without_the_problem_handler_status_and_headers_still_hold() -> None:
    for running in _serve("plain"):
        headers = sign_body("github", running.secret, b"x")
        answer = post(running, headers, 2 * MiB)
        assert answer.status == 413 and answer.header("connection") == "close"
        detail = json.loads(answer.body)["detail"]  # FastAPI's default shape, problem inside
        assert detail["type"] == "urn:hmacguard:problem:body-too-large"
