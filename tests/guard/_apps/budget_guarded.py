"""A guard with a small memory budget in front of an app that reports what it was handed, for
tests/guard/test_memory_budget.py: ``wsgi`` (gunicorn gthread) and ``asgi`` (uvicorn).

``/webhook`` is protected and answers ``<sha256 of the body> <spooled: 0 or 1>``; ``/budget`` is
not, and answers the budget's ``in_use spilled`` -- what the tests watch from outside.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hmacguard import ASGIGuard, MemoryBudget, Verifier, WSGIGuard

SECRET = "budget-guarded-secret"
#: Small enough that a few dozen held uploads of 150 KB pass it.
BUDGET = 2 * 1024 * 1024

budget = MemoryBudget(BUDGET)


def _verifier() -> Verifier:
    return Verifier("github", secrets=SECRET, body_timeout=20.0, memory_budget=budget)


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") == "/budget":
        answer = b"%d %d" % (budget.in_use, budget.spilled)
    else:
        stream = environ["wsgi.input"]
        digest = hashlib.sha256(stream.read()).hexdigest().encode()
        answer = b"%s %d" % (digest, int(getattr(stream, "spooled", False)))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/budget":
        answer = b"%d %d" % (budget.in_use, budget.spilled)
    else:
        digest, more = hashlib.sha256(), True
        while more:
            message = await receive()
            digest.update(message.get("body", b""))
            more = message.get("more_body", False)
        spooled = getattr(scope["hmacguard.verified"].file, "spooled", False)
        answer = b"%s %d" % (digest.hexdigest().encode(), int(spooled))
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


wsgi = WSGIGuard(_wsgi_app, verifier=_verifier(), paths=["/webhook"])
asgi = ASGIGuard(_asgi_app, verifier=_verifier(), paths=["/webhook"])
