"""Guards with a small memory budget in front of an app that reports what it was handed, for the
real-server tests of tests/guard/test_memory_budget.py (and, through :func:`build`, its review):
``wsgi`` (gunicorn gthread) and ``asgi`` (uvicorn).

``/webhook`` is protected and answers ``<sha256 of the body> <spooled: 0 or 1>``; ``/raise`` is
protected and its application raises once it has read the body; ``/budget`` is not protected and
answers the budget's ``in_use spilled`` -- what the tests watch from outside.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from hmacguard import ASGIGuard, MemoryBudget, Verifier, WSGIGuard
from tests.guard._inprocess import receive_body

# A test may point the temporary files somewhere they cannot be written (tempfile checks nothing
# once tempdir is set): the spill's failure under a real server.
if os.environ.get("HMACGUARD_TEST_TEMPDIR"):
    tempfile.tempdir = os.environ["HMACGUARD_TEST_TEMPDIR"]

SECRET = "budget-guarded-secret"
#: Small enough that a few dozen held uploads of 150 KB pass it.
BUDGET = 2 * 1024 * 1024


def _answer(data: bytes, spooled: bool) -> bytes:
    return b"%s %d" % (hashlib.sha256(data).hexdigest().encode(), int(spooled))


def build(secret: str, limit: int, body_timeout: float) -> tuple[MemoryBudget, WSGIGuard, ASGIGuard]:
    """A budget of ``limit`` bytes, and a WSGI and an ASGI guard sharing it."""
    budget = MemoryBudget(limit)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
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

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/budget":
            answer = b"%d %d" % (budget.in_use, budget.spilled)
        else:
            data = await receive_body(receive)
            if scope["path"] == "/raise":
                raise RuntimeError("the application failed (on purpose)")
            answer = _answer(data, getattr(scope["hmacguard.verified"].file, "spooled", False))
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def verifier() -> Verifier:
        return Verifier(
            "github", secrets=secret, body_timeout=body_timeout, memory_budget=budget, replay=None
        )

    paths = ["/webhook", "/raise"]
    return (
        budget,
        WSGIGuard(wsgi_app, verifier=verifier(), paths=paths),
        ASGIGuard(asgi_app, verifier=verifier(), paths=paths),
    )


budget, wsgi, asgi = build(SECRET, BUDGET, body_timeout=20.0)
