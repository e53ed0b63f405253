"""Drive WSGI and ASGI applications in-process, exactly as a server would call them (no mocks of ours)."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    # What the application saw, when it recorded it.
    seen: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def wsgi_environ(
    method: str,
    path: str,
    body: bytes | io.RawIOBase | Any,
    headers: Mapping[str, str],
    *,
    content_length: bool = True,
    peer: str = "127.0.0.1",
) -> dict[str, Any]:
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": peer,
        "wsgi.input": stream,
        "wsgi.url_scheme": "http",
        "wsgi.input_terminated": not content_length,
    }
    if content_length and isinstance(body, bytes):
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    return environ


def call_wsgi(app: Any, environ: dict[str, Any]) -> Response:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split()[0])
        captured["headers"] = headers
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return Response(captured["status"], dict(captured["headers"]), body)


def wsgi_request(
    app: Any,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/webhook",
    peer: str = "127.0.0.1",
) -> Response:
    return call_wsgi(app, wsgi_environ(method, path, body, headers or {}, peer=peer))


def asgi_request(
    app: Any,
    chunks: Iterable[bytes] | bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/webhook",
    delay: float = 0.0,
    content_length: bool = True,
    disconnect_after: int | None = None,
    peer: str = "127.0.0.1",
    stall: bool = False,
) -> Response:
    """One request through an ASGI app under asyncio; ``chunks`` are the http.request messages.

    After the last message a real server blocks in ``receive()`` until the client disconnects; so
    does this one (``stall`` makes the last message say more is coming).
    """
    parts = [chunks] if isinstance(chunks, bytes) else list(chunks)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if content_length:
        raw_headers.append((b"content-length", str(sum(map(len, parts))).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw_headers,
        "client": (peer, 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []
    index = 0

    async def receive() -> dict[str, Any]:
        nonlocal index
        if disconnect_after is not None and index >= disconnect_after:
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        if index >= len(parts):
            await asyncio.sleep(3600)  # a real server blocks until the client disconnects
        if delay:
            await asyncio.sleep(delay)
        part = parts[index]
        index += 1
        # stall: the last message promises more, then the client goes quiet.
        return {"type": "http.request", "body": part, "more_body": stall or index < len(parts)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers_out = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
    return Response(start["status"], headers_out, body)


def webhook_scope(
    headers: list[tuple[bytes, bytes]], *, client: tuple[str, int] = ("127.0.0.1", 1)
) -> dict[str, Any]:
    """An ASGI HTTP scope for ``POST /webhook`` with ``headers`` as a server passes them."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/webhook",
        "query_string": b"",
        "headers": headers,
        "client": client,
    }


def body_then_wait(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` giving ``body`` in one message, then blocking as a real server's does until the
    client goes (here: until cancelled)."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


async def asgi_status(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One POST /webhook through ``app`` on the running loop, the body in one message; after it the
    client stays (as a real server's receive() would block); returns the response status. For tests
    that run several requests at once on one event loop."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(webhook_scope(headers), body_then_wait(body), send)
    return int(sent[0]["status"])


class CountingSocket(socket.socket):
    """A real socket that records the timeouts set on it (what the guard's read deadline does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts: list[float | None] = []

    def settimeout(self, value: float | None) -> None:
        self.timeouts.append(value)
        super().settimeout(value)


async def receive_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    """The whole request body, read as an ASGI application reads it: the ``http.request`` messages'
    bodies until one says no more is coming."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body
