"""Nested guards on one Redis, for tests/guard/test_review_vouching.py (gunicorn and uvicorn).

An outer guard over ``/hooks/*`` holding tenants B's and A's secrets (B's first, so both guards'
replay keys -- the digest under the current secret -- agree); inside it a guard over
``/hooks/b/*`` holding B's. Each has its own ``RedisReplayStore`` built from the same URL
(HMACGUARD_TEST_REDIS), so the inner guard vouches. ``/hooks/b/ok`` answers 200, ``/hooks/b/fail``
500, ``/hooks/b/slow`` 200 after a second; on ``/hooks/b/slow`` the outer guard's pending hold lasts
0.2 s and the inner one's 60 s. ``GET /handled`` lists the paths and bodies the handler ran on
(one worker: run gunicorn with ``--workers 1``).
"""

from __future__ import annotations

import os
from typing import Any

from hmacguard import ASGIGuard, RedisReplayStore, Verifier, WSGIGuard
from tests.guard._apps.recording import recording_apps

SECRET_A, SECRET_B = "vouch-real-a", "vouch-real-b"
URL = os.environ.get("HMACGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")  # importable by the tests
handled: list[list[str]] = []


def _verifiers(pending: float = 60.0) -> tuple[Verifier, Verifier]:
    outer = Verifier(
        "github", secrets=[SECRET_B, SECRET_A], replay=RedisReplayStore(URL), replay_pending_ttl=pending
    )
    inner = Verifier("github", secrets=SECRET_B, replay=RedisReplayStore(URL))
    return outer, inner


def _behaviour(path: str) -> tuple[float, int]:
    if path.endswith("/slow"):
        return 1.0, 200
    return 0.0, (500 if path.endswith("/fail") else 200)


_wsgi, _asgi = recording_apps(handled, _behaviour)


def _stack(guard: Any, app: Any) -> Any:
    outer, inner = _verifiers()
    slow_outer, slow_inner = _verifiers(pending=0.2)
    app = guard(app, verifier=inner, paths=["/hooks/b/*"])
    app = guard(app, verifier=slow_inner, paths=["/slow/b/*"])
    app = guard(app, verifier=outer, paths=["/hooks/*"])
    return guard(app, verifier=slow_outer, paths=["/slow/*"])


application = _stack(WSGIGuard, _wsgi)
asgi = _stack(ASGIGuard, _asgi)
