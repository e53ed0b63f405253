"""A guarded WSGI app sharing replay ids and rate limits through Redis, for the multi-process tests.

Configured by environment: HMACGUARD_TEST_REDIS (URL), HMACGUARD_TEST_FAIL_OPEN ("1" or not),
HMACGUARD_TEST_RATE (a limits string). Every response names the worker that answered it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from hmacguard import RateLimiter, RedisReplayStore, Verifier, WSGIGuard

SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="
URL = os.environ["HMACGUARD_TEST_REDIS"]
FAIL_OPEN = os.environ.get("HMACGUARD_TEST_FAIL_OPEN") == "1"
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")


def webhook(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    # Hold the worker briefly so concurrent requests spread over both workers.
    time.sleep(float(environ.get("HTTP_X_TEST_HOLD", "0") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok %d" % len(body)]


guarded = WSGIGuard(
    webhook,
    verifier=Verifier("standard-webhooks", secrets=SECRET, replay=RedisReplayStore(URL, fail_open=FAIL_OPEN)),
    rate_limiter=RateLimiter(
        limit=os.environ.get("HMACGUARD_TEST_RATE", "1000/hour"),
        storage=URL,
        key="header:X-Test-Client",
        fail_open=FAIL_OPEN,
    ),
    paths=["/webhook"],
)


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return guarded(environ, start)
