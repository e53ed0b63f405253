"""The generic middleware in front of a trivial app, for the real-server tests: ``wsgi`` and ``asgi``.

A 1 MiB cap, a 1-second body timeout, GitHub's scheme with the secret below.
"""

from __future__ import annotations

from typing import Any

from hmacguard import ASGIGuard, Verifier, WSGIGuard

SECRET = "plain-guarded-secret"


def _verifier() -> Verifier:
    return Verifier("github", secrets=SECRET, body_timeout=1.0)


def reading_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reads the whole body and answers ``ok <bytes read>`` (the other test apps use it too)."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


async def reading_asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """:func:`reading_wsgi_app`, in ASGI."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok %d" % size})


wsgi = WSGIGuard(reading_wsgi_app, verifier=_verifier(), paths=["/webhook"])
asgi = ASGIGuard(reading_asgi_app, verifier=_verifier(), paths=["/webhook"])
