"""Apps for tests/guard/test_review_inflight_rotation.py (real gunicorn and uvicorn).

A bytes budget of 100,000 a minute per client and a failure budget, in the store named by
``HMACGUARD_TEST_RL_STORAGE`` (default in process; its circuit breaker's reset time from
``HMACGUARD_TEST_BREAKER_RESET``), in front of an app that reads the verified body; the verifier's
cap is 90,000 bytes (a chunked upload reserves 90,000) and its body timeout 1.5 s (so a 408 comes
quickly).
"""

from __future__ import annotations

import os

from hmacguard import ASGIGuard, RateLimiter, Verifier, WSGIGuard
from tests.guard._apps.plain_guarded import reading_asgi_app, reading_wsgi_app

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


wsgi = WSGIGuard(reading_wsgi_app, verifier=_verifier(), rate_limiter=_limiter(), paths=["/webhook"])
asgi = ASGIGuard(reading_asgi_app, verifier=_verifier(), rate_limiter=_limiter(), paths=["/webhook"])
