"""Two nested guards on one small MemoryReplayStore (2 entries), for
tests/guard/test_review_memory_store.py (gunicorn gthread and uvicorn, one worker each).

The outer guard covers ``/hooks/*``; on ``/hooks/b`` a middleware between the guards takes 0.8 s
(an authentication lookup, a database read) before the inner guard, also on ``/hooks/b``, verifies
again. ``/hooks/slow`` is guarded by the outer guard only and its handler takes 2 s: deliveries
kept pending there fill the store with pending holds. ``GET /handled`` lists what the handler ran on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hmacguard import ASGIGuard, MemoryReplayStore, Verifier, WSGIGuard
from tests.guard._apps.recording import recording_apps

SECRET = "review-memory-store-real"
handled: list[list[str]] = []


def _behaviour(path: str) -> tuple[float, int]:
    return (2.0, 200) if path.endswith("/slow") else (0.0, 200)


_wsgi, _asgi = recording_apps(handled, _behaviour)


def _slow_wsgi(app: Any) -> Any:
    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/hooks/b":
            time.sleep(0.8)
        return app(environ, start_response)

    return middleware


def _slow_asgi(app: Any) -> Any:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/hooks/b":
            await asyncio.sleep(0.8)
        await app(scope, receive, send)

    return middleware


def _stack(guard: Any, between: Any, app: Any) -> Any:
    store = MemoryReplayStore(max_entries=2)
    inner = guard(app, verifier=Verifier("github", secrets=SECRET, replay=store), paths=["/hooks/b"])
    outer_verifier = Verifier("github", secrets=SECRET, replay=store)
    return guard(between(inner), verifier=outer_verifier, paths=["/hooks/*"])


application = _stack(WSGIGuard, _slow_wsgi, _wsgi)
asgi = _stack(ASGIGuard, _slow_asgi, _asgi)
