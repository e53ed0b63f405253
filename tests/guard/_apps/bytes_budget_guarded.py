"""App for tests/guard/test_bytes_in_flight.py (real gunicorn): a bytes budget of 100,000 a minute
per client, in the store named by ``HMACGUARD_TEST_RL_STORAGE`` (default: in process), in front of
an app that reads the verified body.
"""

from __future__ import annotations

import os
from typing import Any

from hmacguard import RateLimiter, Verifier, WSGIGuard

SECRET = "bytes-budget-secret"
BYTES_PER_MINUTE = 100_000


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


wsgi = WSGIGuard(
    _app,
    verifier=Verifier("github", secrets=SECRET, body_timeout=10.0),
    rate_limiter=RateLimiter(
        limit=None,
        bytes_limit=f"{BYTES_PER_MINUTE}/minute",
        storage=os.environ.get("HMACGUARD_TEST_RL_STORAGE", "memory://"),
    ),
    paths=["/webhook"],
)
