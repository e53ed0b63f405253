"""Three nested guards on one Redis, for tests/guard/test_review_extend.py (gunicorn and uvicorn).

Outermost [A] holding 0.2 s, middle [C, A] holding 0.2 s, innermost [C, A] holding 60 s, all over
``/x/*``, each with its own ``RedisReplayStore`` built from HMACGUARD_TEST_REDIS (the same keys).
``/x/slowfail`` answers 500 after 1.5 s, ``/x/ok`` 200; ``GET /handled`` lists the paths and
bodies the handler ran on (one worker: run gunicorn with ``--workers 1``).
"""

from __future__ import annotations

import os
from typing import Any

from hmacguard import ASGIGuard, RedisReplayStore, Verifier, WSGIGuard
from tests.guard._apps.recording import recording_apps

SECRET_A, SECRET_C = "review-extend-real-a", "review-extend-real-c"
URL = os.environ.get("HMACGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")  # importable by the tests
handled: list[list[str]] = []


def _behaviour(path: str) -> tuple[float, int]:
    return (1.5, 500) if path.endswith("/slowfail") else (0.0, 200)


_wsgi, _asgi = recording_apps(handled, _behaviour)


def _stack(guard: Any, app: Any) -> Any:
    for secrets, pending in reversed(
        [([SECRET_A], 0.2), ([SECRET_C, SECRET_A], 0.2), ([SECRET_C, SECRET_A], 60.0)]
    ):
        verifier = Verifier(
            "github", secrets=secrets, replay=RedisReplayStore(URL), replay_pending_ttl=pending
        )
        app = guard(app, verifier=verifier, paths=["/x/*"])
    return app


application = _stack(WSGIGuard, _wsgi)
asgi = _stack(ASGIGuard, _asgi)
