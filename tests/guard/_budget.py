"""Watching a served guard's memory budget from outside (the ``/budget`` route of
tests/guard/_apps/budget_guarded.py), and sending bodies in pieces."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.guard._inprocess import receive_body
from tests.guard._servers import gunicorn, raw_response, uvicorn


def pieces(data: bytes, size: int = 16_384) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def budget_state(port: int) -> tuple[int, int]:
    """The served budget's ``(in_use, spilled)``."""
    status, _, body = raw_response(
        port, b"GET /budget HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=10
    )
    assert status == 200, body
    in_use, spilled = body.split()
    return int(in_use), int(spilled)


def wait_for_budget(port: int, check: Callable[[int, int], bool], seconds: float = 15.0) -> tuple[int, int]:
    """Poll :func:`budget_state` until ``check(in_use, spilled)`` holds or ``seconds`` pass; the
    last state."""
    deadline = time.monotonic() + seconds
    state = budget_state(port)
    while not check(*state) and time.monotonic() < deadline:
        time.sleep(0.1)
        state = budget_state(port)
    return state


def post_head(path: bytes, headers: Mapping[str, str], length: int) -> bytes:
    """A ``POST`` head asking for ``Connection: close``, with ``headers`` and ``Content-Length``."""
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        + b"Content-Length: %d\r\n\r\n" % length
    )  # fmt: skip


def exchange_in_pieces(port: int, head: bytes, body: bytes) -> bytes:
    """Send ``head``, then ``body`` in pieces with a pause after each (several reads on the server's
    side), stopping if the server answers early; the whole answer, as sent."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head)
        for piece in pieces(body):
            try:
                sock.sendall(piece)
            except OSError:  # answered early: read why
                break
            time.sleep(0.003)
        while chunk := sock.recv(65536):
            data += chunk
    return data


def budget_servers(module: str, threads: int) -> list[Any]:
    """pytest params starting ``module``'s ``asgi`` under uvicorn and ``wsgi`` under gunicorn gthread
    (one worker, ``threads`` threads)."""
    return [
        pytest.param(lambda: uvicorn(f"{module}:asgi"), id="uvicorn"),
        pytest.param(
            lambda: gunicorn(f"{module}:wsgi", {}, workers=1, worker_class="gthread", threads=threads),
            id="gunicorn-gthread",
        ),
    ]


def reading_wsgi(seen: list[bytes], *, fail: bool = False) -> Callable[..., Any]:
    """A WSGI app that reads the whole body into ``seen``, then answers 200 (or raises, ``fail``)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        if fail:
            raise RuntimeError("the application failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def reading_asgi(seen: list[bytes], *, fail: bool = False) -> Callable[..., Any]:
    """The ASGI twin of :func:`reading_wsgi`."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        data = await receive_body(receive)
        seen.append(data)
        if fail:
            raise RuntimeError("the application failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app
