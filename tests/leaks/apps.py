"""Small apps with known retention, for the leak finder's tests. Each flaw sits on one marked line.

``# LEAK`` marks the line that stores per-request data forever; ``# BOUNDED`` the line that stores it
in a cache with a fixed bound. Tests find those lines by their markers, so edits here cannot drift
away from the expectations.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, Request
from flask import Flask, request

HERE = Path(__file__)


def marked_line(marker: str, path: Path = HERE) -> int:
    """The 1-based number of the only line of ``path`` ending with ``# <marker>``."""
    lines = [
        n for n, text in enumerate(path.read_text().splitlines(), 1) if text.rstrip().endswith(f"# {marker}")
    ]
    if len(lines) != 1:
        raise LookupError(f"{marker!r} marks {len(lines)} lines of {path}")
    return lines[0]


# --- Flask: an unbounded list, an OrderedDict LRU of 128 bodies, functools.lru_cache(128) ---------

flask_leak = Flask("flask_leak")
BODIES: list[bytes] = []


@flask_leak.post("/webhook")
def keep_every_body() -> dict[str, object]:
    body = request.get_data()
    BODIES.append(body)  # FLASK-LEAK
    return {"ok": True}


flask_lru = Flask("flask_lru")
RECENT: OrderedDict[str, bytes] = OrderedDict()


@flask_lru.post("/webhook")
def keep_recent_bodies() -> dict[str, object]:
    body = request.get_data()
    RECENT[request.headers.get("X-GitHub-Delivery", "")] = body  # FLASK-LRU
    if len(RECENT) > 128:
        RECENT.popitem(last=False)
    return {"ok": True}


flask_functools = Flask("flask_functools")


@functools.lru_cache(maxsize=128)
def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@flask_functools.post("/webhook")
def cached_digest() -> dict[str, object]:
    return {"digest": digest(request.get_data())}  # FUNCTOOLS-LRU


flask_clean = Flask("flask_clean")


@flask_clean.post("/webhook")
def digest_only() -> dict[str, object]:
    return {"digest": hashlib.sha256(request.get_data()).hexdigest()}


# --- ASGI: FastAPI keeping bodies in a list, and a bare ASGI app with lifespan ---------------------

fastapi_leak = FastAPI()
ASYNC_BODIES: list[bytes] = []


@fastapi_leak.post("/webhook")
async def keep_async(request: Request) -> dict[str, object]:
    body = await request.body()
    ASYNC_BODIES.append(body)  # ASGI-LEAK
    return {"ok": True}


class LifespanApp:
    """A bare ASGI app that refuses requests until its lifespan startup ran, as uvicorn would run it."""

    def __init__(self) -> None:
        self.started = False
        self.stopped = False

    async def __call__(self, scope: dict[str, object], receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.started = True
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stopped = True
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
        status = 200 if self.started else 503
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


# --- plain callables for the pytest plugin -----------------------------------------------------

CALL_LOG: list[bytes] = []


def leaky_call() -> None:
    CALL_LOG.append(bytes(4096))  # CALL-LEAK


def clean_call() -> None:
    hashlib.sha256(bytes(4096)).hexdigest()
