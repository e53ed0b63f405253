"""App for tests/guard/test_bytes_in_flight.py (real gunicorn): a bytes budget of 100,000 a minute
per client, in the store named by ``HMACGUARD_TEST_RL_STORAGE`` (default: in process), in front of
an app that reads the verified body.
"""

from __future__ import annotations

import os

from hmacguard import RateLimiter, Verifier, WSGIGuard
from tests.guard._apps.plain_guarded import reading_wsgi_app

SECRET = "bytes-budget-secret"
BYTES_PER_MINUTE = 100_000


wsgi = WSGIGuard(
    reading_wsgi_app,
    verifier=Verifier("github", secrets=SECRET, body_timeout=10.0),
    rate_limiter=RateLimiter(
        limit=None,
        bytes_limit=f"{BYTES_PER_MINUTE}/minute",
        storage=os.environ.get("HMACGUARD_TEST_RL_STORAGE", "memory://"),
    ),
    paths=["/webhook"],
)
