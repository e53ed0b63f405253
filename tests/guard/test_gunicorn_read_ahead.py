"""The lane's read of a body gunicorn already holds: no socket timeout, and no socket touched.

gunicorn's own parser reads real requests from a socket pair here, so these tests pin the shape of
the gunicorn objects ``_held_in_memory`` looks at (integrations/wsgi.py): if an upgrade changes
it, the guard quietly goes back to setting the timeout, and the first test below says so.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from hmacguard import Signer, Verifier
from hmacguard.guard.policy import Accepted, Guard
from hmacguard.integrations.wsgi import _held_in_memory, guard_environ

from ._inprocess import CountingSocket

SECRET = "read-ahead-secret"
BODY = b'{"delivery": "read-ahead"}'


@pytest.fixture
def pair() -> Iterator[tuple[CountingSocket, socket.socket]]:
    server, client = socket.socketpair()
    counting = CountingSocket(fileno=server.detach())
    try:
        yield counting, client
    finally:
        counting.close()
        client.close()


def parsed(server: socket.socket, client: socket.socket, head: bytes, sent: bytes) -> Any:
    """gunicorn's request object for ``head`` followed by ``sent`` (the body, or part of it)."""
    client.sendall(head + b"\r\n\r\n" + sent)
    return next(RequestParser(Config(), server, ("127.0.0.1", 1)))


def signed_head(length: int) -> bytes:
    lines = ["POST /hook HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in Signer("github", secrets=SECRET).sign(BODY).items()]
    return "\r\n".join(lines).encode()


def test_a_body_sent_with_its_head_is_held_and_read_without_the_socket(
    pair: tuple[CountingSocket, socket.socket],
) -> None:
    server, client = pair
    request = parsed(server, client, signed_head(len(BODY)), BODY)
    assert _held_in_memory(request.body, len(BODY))
    server.setblocking(False)  # a read that went to the socket now raises BlockingIOError
    assert request.body.read(len(BODY)) == BODY


def test_part_of_the_body_or_another_framing_is_not_held(pair: tuple[CountingSocket, socket.socket]) -> None:
    server, client = pair
    partial = parsed(server, client, signed_head(len(BODY)), BODY[:5])
    assert not _held_in_memory(partial.body, len(BODY))
    client.sendall(BODY[5:])
    assert partial.body.read(2) == BODY[:2]
    assert not _held_in_memory(partial.body, len(BODY))  # read from already: not the lane's first read
    assert not _held_in_memory(partial.body, len(BODY) - 2)
    partial.body.read()
    chunked = parsed(
        server, client, b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", b"5\r\nhello\r\n"
    )
    assert not _held_in_memory(chunked.body, 5)
    assert not _held_in_memory(io.BytesIO(BODY), len(BODY))


def environ_of(request: Any, sock: socket.socket) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/hook", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(BODY)), "wsgi.input": request.body, "gunicorn.socket": sock,
    }  # fmt: skip
    for name, value in request.headers:
        environ.setdefault("HTTP_" + name.replace("-", "_"), value)
    return environ


def fresh_guard() -> Guard:
    """A guard with its own replay store: each test's one delivery is new to it."""
    guard = Guard(Verifier("github", secrets=SECRET, body_timeout=3.0))
    assert guard.lane.open
    return guard


def test_the_lane_sets_no_timeout_for_a_held_body_and_one_for_a_partial_one(
    pair: tuple[CountingSocket, socket.socket],
) -> None:
    server, client = pair
    held = parsed(server, client, signed_head(len(BODY)), BODY)
    outcome = guard_environ(fresh_guard(), environ_of(held, server))
    assert isinstance(outcome, Accepted) and outcome.body.getvalue() == BODY
    assert server.timeouts == []

    partial = parsed(server, client, signed_head(len(BODY)), BODY[:5])
    client.sendall(BODY[5:])
    outcome = guard_environ(fresh_guard(), environ_of(partial, server))
    assert isinstance(outcome, Accepted) and outcome.body.getvalue() == BODY
    assert server.timeouts == [3.0, None]  # set for the read, restored after it
