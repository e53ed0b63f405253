"""A handler pair (WSGI and ASGI) that records what it ran on, for the real-server nested-guard
tests: each request's path and body are appended to ``handled``; ``GET /handled`` answers that list
as JSON; ``behaviour(path)`` says how long to take and what status to answer. And the two calls the
tests make to such a server (:func:`post_status`, :func:`handled_on`)."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tests.guard._inprocess import receive_body

#: path -> (seconds to take, status to answer)
Behaviour = Callable[[str], tuple[float, int]]


def recording_apps(handled: list[list[str]], behaviour: Behaviour) -> tuple[Any, Any]:
    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/handled":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(handled).encode()]
        handled.append([path, environ["wsgi.input"].read().decode()])
        seconds, status = behaviour(path)
        if seconds:
            time.sleep(seconds)
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"ok"]

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        status = 200
        if path == "/handled":
            payload = json.dumps(handled).encode()
        else:
            body = await receive_body(receive)
            handled.append([path, body.decode()])
            seconds, status = behaviour(path)
            if seconds:
                await asyncio.sleep(seconds)
            payload = b"ok"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": payload})

    return wsgi, asgi


def post_status(port: int, path: str, body: bytes, headers: Mapping[str, str]) -> int:
    """POST to a server on loopback, one connection, and the answer's status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={**headers, "Connection": "close"})
        return connection.getresponse().status
    finally:
        connection.close()


def handled_on(port: int) -> list[list[str]]:
    """What the recording handler of the server on ``port`` ran on, as ``[path, body]`` pairs."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/handled", timeout=10) as answer:
        return list(json.loads(answer.read()))
