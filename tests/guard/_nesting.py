"""Nested guards for the tests: an application that records what it was handed, behind a guard on
``/hooks/b`` inside one on ``/hooks/*`` (test_nested_guards.py, test_review_vouching.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hmacguard import ASGIGuard, Verifier, WSGIGuard
from tests.guard._inprocess import receive_body

from ._inprocess import asgi_request, wsgi_request


class Seen(list):  # type: ignore[type-arg]
    """What the innermost application was handed: (body, key_index) per call."""


def wsgi_app(seen: Seen, status: str = "200 OK", *, fail: bool = False) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["wsgi.input"].read(), environ["hmacguard.verified"].key_index))
        if fail:
            raise RuntimeError("the handler failed")
        start_response(status, [])
        return [b"ok"]

    return app


def asgi_app(seen: Seen, status: int = 200, *, fail: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await receive_body(receive)
        seen.append((body, scope["hmacguard.verified"].key_index))
        if fail:
            raise RuntimeError("the handler failed")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def nested(
    kind: str,
    outer: Verifier,
    inner: Verifier,
    seen: Seen,
    *,
    between: Any = None,
    outer_kw: Mapping[str, Any] | None = None,
    inner_kw: Mapping[str, Any] | None = None,
    app: Any = None,
) -> Any:
    """``/hooks/*`` guarded by ``outer``; inside it (through ``between``, a middleware factory, if
    given) ``/hooks/b`` guarded by ``inner``."""
    guard: Any = WSGIGuard if kind == "wsgi" else ASGIGuard
    receiver = app if app is not None else (wsgi_app(seen) if kind == "wsgi" else asgi_app(seen))
    inner_app = guard(receiver, verifier=inner, paths=["/hooks/b"], **(inner_kw or {}))
    if between is not None:
        inner_app = between(inner_app)
    return guard(inner_app, verifier=outer, paths=["/hooks/*"], **(outer_kw or {}))


def stacked(kind: str, app: Any, verifiers: Sequence[Verifier]) -> Any:
    """Any number of nested guards around ``app``: ``verifiers`` from the outermost in, the
    innermost guarding ``/hooks/b``, the others ``/hooks/*``."""
    guard: Any = WSGIGuard if kind == "wsgi" else ASGIGuard
    for n, verifier in enumerate(reversed(verifiers)):
        app = guard(app, verifier=verifier, paths=["/hooks/b" if n == 0 else "/hooks/*"])
    return app


def post(
    kind: str, app: Any, body: bytes, headers: Mapping[str, str], path: str = "/hooks/b", **kw: Any
) -> int:
    send = wsgi_request if kind == "wsgi" else asgi_request
    return send(app, body, headers, path=path, **kw).status
