"""The single-read lane (guard/lane.py) under real servers, attacked over raw sockets: gunicorn's
sync and gthread workers (the WSGI lane), uvicorn and hypercorn (the ASGI lane).

A plain small delivery takes the lane under each, so these are the lane's promises where only a
server can break them: a kept-alive connection serves the next request after the lane's read, and
bytes pipelined after the declared length are that request, not body; concurrent copies of one
delivery are processed once; a client that leaves mid-body leaves no error and no hold. Stalls and
drips inside the lane's read (408 on time) are in test_real_servers.py. That the lane restores the
socket timeout it sets is checked directly in test_lane_review.py: gunicorn's gthread worker resets
a kept-alive socket itself, so a missing restore does not show here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from hmacguard import Signer

from ._apps.plain_guarded import SECRET
from ._servers import Server, gunicorn, hypercorn, uvicorn

pytestmark = pytest.mark.slow
signer = Signer("github", secrets=SECRET)


def delivery(n: int) -> bytes:
    body = b'{"lane": "server", "n": %d}' % n
    lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in signer.sign(body).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(buffer: bytearray, sock: socket.socket) -> int:
    """One response's status from ``sock``, reading its head and its body (by length, or chunked)."""
    while b"\r\n\r\n" not in buffer:
        piece = sock.recv(65536)
        assert piece, "the server closed the connection before answering"
        buffer += piece
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        # The app's small answers come in one chunk; the body ends at the empty last chunk.
        while b"0\r\n\r\n" not in rest:
            piece = sock.recv(65536)
            assert piece
            rest += piece
        length = rest.index(b"0\r\n\r\n") + 5
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            piece = sock.recv(65536)
            assert piece
            rest += piece
    buffer[:] = rest[length:]
    return int(lines[0].split()[1])


@contextlib.contextmanager
def serving(kind: str) -> Iterator[Server]:
    """The plain guarded app under ``kind``: a gunicorn worker class, or an ASGI server."""
    app = "tests.guard._apps.plain_guarded:"
    if kind == "uvicorn":
        with uvicorn(app + "asgi") as s:
            yield s
    elif kind == "hypercorn":
        with hypercorn(app + "asgi", asgi=True) as s:
            yield s
    else:
        threads = 8 if kind == "gthread" else 1
        with gunicorn(app + "wsgi", {}, workers=1, worker_class=kind, threads=threads) as s:
            yield s


@pytest.fixture(scope="module", params=["gthread", "uvicorn", "hypercorn"])
def keep_alive(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server that keeps connections alive: gunicorn gthread (WSGI lane), uvicorn and hypercorn
    (ASGI lane)."""
    with serving(request.param) as s:
        yield s


@pytest.fixture(scope="module", params=["sync", "gthread", "uvicorn", "hypercorn"])
def any_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serving(request.param) as s:
        yield s


def test_a_kept_alive_connection_serves_the_next_deliveries_after_the_lane(keep_alive: Server) -> None:
    first, second = delivery(1), delivery(2)
    with socket.create_connection(("127.0.0.1", keep_alive.port), timeout=10) as sock:
        buffer = bytearray()
        statuses = []
        for request in (first, second, first):
            sock.sendall(request)
            statuses.append(read_response(buffer, sock))
    assert statuses == [200, 200, 409]


def test_bytes_pipelined_after_the_declared_length_are_the_next_request(keep_alive: Server) -> None:
    with socket.create_connection(("127.0.0.1", keep_alive.port), timeout=10) as sock:
        sock.sendall(delivery(10) + delivery(11) + delivery(10))
        buffer = bytearray()
        assert [read_response(buffer, sock) for _ in range(3)] == [200, 200, 409]


def test_concurrent_copies_of_one_delivery_are_processed_once(keep_alive: Server) -> None:
    request = delivery(20)
    statuses: list[int] = []
    start = threading.Barrier(16)

    def send() -> None:
        with socket.create_connection(("127.0.0.1", keep_alive.port), timeout=10) as sock:
            start.wait()
            sock.sendall(request)
            statuses.append(read_response(bytearray(), sock))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(statuses) == [200] + [409] * 15


def test_a_client_leaving_mid_body_leaves_no_error_and_no_hold(any_server: Server) -> None:
    request = delivery(30)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", any_server.port), timeout=10) as sock:
            sock.sendall(request[:-5])  # all but the last bytes of the body, then gone
    # The delivery was never accepted: sent whole, it is processed (no hold was left behind).
    with socket.create_connection(("127.0.0.1", any_server.port), timeout=10) as sock:
        sock.sendall(request)
        assert read_response(bytearray(), sock) == 200
    assert "Traceback" not in any_server.log()
