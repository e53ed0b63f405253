"""The matching model's edges, unit by unit (the attack matrix is tests/guard/spellings/)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from hmacguard import ASGIGuard, PathInvalid, Verifier, WSGIGuard
from hmacguard.guard.paths import MAX_PATH, ProtectedPaths, spellings

from ._inprocess import call_wsgi


def test_control_characters_refuse_only_a_path_that_could_reach_a_protected_one() -> None:
    protected = ProtectedPaths(["/webhook", "/hooks/*"])
    # Starlette routes "/webhook\n" to /webhook ($ matches before a trailing newline): refused.
    for path in ("/webhook\n", "/web\x00hook", "/hooks/\tx", "/%0Awebhook"):
        with pytest.raises(PathInvalid):
            protected.matches(path)
    # Elsewhere a control character is the application's business.
    assert protected.matches("/files/a\tb") is False
    assert protected.matches("/files/%09") is False


def test_uninterpretable_paths_are_refused_wherever_they_point() -> None:
    protected = ProtectedPaths(["/webhook"])
    with pytest.raises(PathInvalid):
        protected.matches("/%2525252Fwebhook")  # nested deeper than the decoder follows
    with pytest.raises(PathInvalid):
        protected.matches("/x" * (MAX_PATH // 2 + 1))


def test_spellings_leave_control_characters_out() -> None:
    assert "/webhook" in spellings("/webhook%0A")


@pytest.mark.parametrize("paths", [None, ["/webhook"]])
@pytest.mark.parametrize("path", [b"/webhook", 5])
def test_an_asgi_scope_path_that_is_not_text_is_400_whatever_is_protected(
    paths: list[str] | None, path: object
) -> None:
    """A server's scope whose path is not a string: 400 problem+json, never a 500 -- also for a guard
    that protects every path, which must still look at the path before deciding anything."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("reached the application")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = ASGIGuard(app, verifier=Verifier("github", secrets="paths-secret"), paths=paths)
    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", b"1")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 400
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]


@pytest.mark.parametrize("paths", [None, ["/webhook"]])
@pytest.mark.parametrize(("path", "script"), [(b"/webhook", ""), (5, ""), ("/webhook", b"/mount")])
def test_a_wsgi_path_that_is_not_text_is_400_whatever_is_protected(
    paths: list[str] | None, path: object, script: object
) -> None:
    """PEP 3333 says str; a server that breaks it gets 400 problem+json, never a 500 from the guard."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("reached the application")

    guard = WSGIGuard(app, verifier=Verifier("github", secrets="paths-secret"), paths=paths)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": script, "CONTENT_LENGTH": "1",
        "wsgi.input": io.BytesIO(b"x"),
    }  # fmt: skip
    response = call_wsgi(guard, environ)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/problem+json"
