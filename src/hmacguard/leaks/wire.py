"""What the application touches of the harness: the request as a server hands it over, and the reply.

Kept apart from the driver (harness.py) on purpose: frames in this module are *called by* the app
(``wsgi.input.read``, ``receive``, ``start_response``), so an allocation made here -- a body the app
reads and keeps -- is still charged to the application line above it. Frames in the driver are the
app's *callers*; frames.py stops looking for the application there.

Every read returns new bytes, copied out of the shared body like a socket read: a server never hands
two requests the same object, and an app that keeps bodies must be seen keeping one per request.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ASGI_CHUNK", "AsgiExchange", "BodyStream", "WsgiResponse", "asgi_scope", "wsgi_environ"]

#: The ASGI "socket" hands the body over in pieces of this size, like uvicorn's reads.
ASGI_CHUNK = 64 * 1024


class BodyStream(io.RawIOBase):
    """``wsgi.input`` over one body; reads copy."""

    def __init__(self, body: bytes) -> None:
        self._view = memoryview(body)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int | None = -1) -> bytes:
        rest = self._view[self._pos :]
        limit = len(rest) if size is None or size < 0 else min(size, len(rest))
        newline = bytes(rest[:limit]).find(b"\n")
        return self.read(limit if newline < 0 else newline + 1)


class WsgiResponse:
    """``start_response`` that records the status and discards what the app writes."""

    def __init__(self) -> None:
        self.status = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        self.status = int(status.split(" ", 1)[0])
        return self._write

    def _write(self, data: bytes) -> None:
        return None


def wsgi_environ(
    method: str, target: str, host: str, body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.upper(),
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": host,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": BodyStream(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key != "CONTENT_LENGTH":
            environ["HTTP_" + key] = value
    return environ


def asgi_scope(
    method: str, target: str, host: str, length: int, headers: Mapping[str, str]
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(length).encode("ascii")))
    raw.append((b"host", host.encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": (host, 80),
        "state": {},
    }


class AsgiExchange:
    """``receive`` hands the body over in fresh chunks, then waits for the response to end."""

    def __init__(self, body: bytes) -> None:
        self._view = memoryview(body)
        self._offsets = list(range(0, len(body), ASGI_CHUNK)) or [0]
        self._next = 0
        self._done = asyncio.Event()
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        i = self._next
        if i < len(self._offsets):
            self._next = i + 1
            start = self._offsets[i]
            chunk = bytes(self._view[start : start + ASGI_CHUNK])
            return {"type": "http.request", "body": chunk, "more_body": i + 1 < len(self._offsets)}
        # A client that sent everything waits for the answer; disconnect only once it is complete.
        await self._done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self.status = int(message.get("status", 0))
        elif kind == "http.response.body" and not message.get("more_body"):
            self._done.set()

    def finish(self) -> None:
        self._done.set()
