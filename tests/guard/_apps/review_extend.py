"""Three nested guards on one Redis, for tests/guard/test_review_extend.py (gunicorn and uvicorn).

Outermost [A] holding 0.2 s, middle [C, A] holding 0.2 s, innermost [C, A] holding 60 s, all over
``/x/*``, each with its own ``RedisReplayStore`` built from HMACGUARD_TEST_REDIS (the same keys).
``/x/slowfail`` answers 500 after 1.5 s, ``/x/ok`` 200; ``GET /handled`` lists the paths and
bodies the handler ran on (one worker: run gunicorn with ``--workers 1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from hmacguard import ASGIGuard, RedisReplayStore, Verifier, WSGIGuard
from tests.guard._inprocess import receive_body

SECRET_A, SECRET_C = "review-extend-real-a", "review-extend-real-c"
URL = os.environ.get("HMACGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0")  # importable by the tests
handled: list[list[str]] = []


def _status(path: str) -> int:
    return 500 if path.endswith("/slowfail") else 200


def _wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/handled":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(handled).encode()]
    handled.append([path, environ["wsgi.input"].read().decode()])
    if path.endswith("/slowfail"):
        time.sleep(1.5)
    start_response(f"{_status(path)} X", [("Content-Type", "text/plain")])
    return [b"ok"]


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/handled":
        payload = json.dumps(handled).encode()
    else:
        body = await receive_body(receive)
        handled.append([path, body.decode()])
        if path.endswith("/slowfail"):
            await asyncio.sleep(1.5)
        payload = b"ok"
    await send({"type": "http.response.start", "status": _status(path), "headers": []})
    await send({"type": "http.response.body", "body": payload})


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
