"""Guards with a small memory budget and a short body timeout, for the real-server attacks of
tests/guard/test_review_memory_budget.py: ``wsgi`` (gunicorn gthread) and ``asgi`` (uvicorn).

``/webhook`` is protected and answers ``<sha256 of the body> <spooled: 0 or 1>``; ``/raise`` is
protected and its application raises once it has read the body; ``/budget`` is not protected and
answers the budget's ``in_use spilled``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hmacguard import ASGIGuard, MemoryBudget, Verifier, WSGIGuard

SECRET = "review-budget-secret"
BUDGET = 1024 * 1024
TIMEOUT = 1.5

budget = MemoryBudget(BUDGET)


def _verifier() -> Verifier:
    return Verifier("github", secrets=SECRET, body_timeout=TIMEOUT, memory_budget=budget, replay=None)


def _answer(data: bytes, spooled: bool) -> bytes:
    return b"%s %d" % (hashlib.sha256(data).hexdigest().encode(), int(spooled))


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ.get("PATH_INFO")
    if path == "/budget":
        answer = b"%d %d" % (budget.in_use, budget.spilled)
    else:
        stream = environ["wsgi.input"]
        data = stream.read()
        if path == "/raise":
            raise RuntimeError("the application failed (on purpose)")
        answer = _answer(data, getattr(stream, "spooled", False))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/budget":
        answer = b"%d %d" % (budget.in_use, budget.spilled)
    else:
        data, more = b"", True
        while more:
            message = await receive()
            data += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/raise":
            raise RuntimeError("the application failed (on purpose)")
        answer = _answer(data, getattr(scope["hmacguard.verified"].file, "spooled", False))
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


wsgi = WSGIGuard(_wsgi_app, verifier=_verifier(), paths=["/webhook", "/raise"])
asgi = ASGIGuard(_asgi_app, verifier=_verifier(), paths=["/webhook", "/raise"])
