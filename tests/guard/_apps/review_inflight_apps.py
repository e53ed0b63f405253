"""Apps for tests/guard/test_review_inflight_rotation.py (real gunicorn and uvicorn).

A bytes budget of 100,000 a minute per client and a failure budget, in the store named by
``HMACGUARD_TEST_RL_STORAGE`` (default in process; its circuit breaker's reset time from
``HMACGUARD_TEST_BREAKER_RESET``), in front of an app that reads the verified body; the verifier's
cap is 90,000 bytes (a chunked upload reserves 90,000) and its body timeout 1.5 s (so a 408 comes
quickly).
"""

from __future__ import annotations

import os
from typing import Any

from hmacguard import ASGIGuard, RateLimiter, Verifier, WSGIGuard

SECRET = "review-inflight-secret"
BYTES_PER_MINUTE = 100_000
MAX_BODY = 90_000


def _limiter() -> RateLimiter:
    return RateLimiter(
        limit=None,
        bytes_limit=f"{BYTES_PER_MINUTE}/minute",
        failure_limit="1000/minute",
        storage=os.environ.get("HMACGUARD_TEST_RL_STORAGE", "memory://"),
        breaker_reset=float(os.environ.get("HMACGUARD_TEST_BREAKER_RESET", "5")),
    )


def _verifier() -> Verifier:
    return Verifier("github", secrets=SECRET, max_body=MAX_BODY, body_timeout=1.5, replay=None)


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok %d" % size})


wsgi = WSGIGuard(_wsgi_app, verifier=_verifier(), rate_limiter=_limiter(), paths=["/webhook"])
asgi = ASGIGuard(_asgi_app, verifier=_verifier(), rate_limiter=_limiter(), paths=["/webhook"])
