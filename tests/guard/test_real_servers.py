"""WSGIGuard under gunicorn and ASGIGuard under uvicorn, driven over real sockets.

What only a real server can show: a declared 100 MiB body is refused without a byte being read; a
chunked body is cut off at the cap; a client that stalls mid-body gets 408 on time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from hmacguard import Signer

from ._apps.plain_guarded import SECRET
from ._servers import Server, gunicorn, raw_exchange, uvicorn

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
signer = Signer("github", secrets=SECRET)


def head(headers: dict[str, str], framing: str) -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1", framing]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    block = b"a" * piece
    for _ in range(size // piece):
        yield b"%x\r\n%s\r\n" % (piece, block)


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if request.param == "gunicorn":
        with gunicorn("tests.guard._apps.plain_guarded:wsgi", {}, workers=1) as s:
            yield s
    else:
        with uvicorn("tests.guard._apps.plain_guarded:asgi") as s:
            yield s


def test_small_signed_request_passes(server: Server) -> None:
    body = b'{"ok": 1}'
    status, _, _, _ = raw_exchange(
        server.port,
        head(signer.sign(body), f"Content-Length: {len(body)}") + body,
    )
    assert status == 200


def test_declared_100_mib_is_refused_before_any_body_byte(server: Server) -> None:
    status, headers, sent, seconds = raw_exchange(
        server.port, head(signer.sign(b""), f"Content-Length: {100 * MIB}")
    )
    assert status == 413
    assert headers.get("connection") == "close"
    assert headers["content-type"] == "application/problem+json"
    assert sent == 0
    assert seconds < 5


def test_chunked_body_is_cut_off_at_the_cap(server: Server) -> None:
    status, headers, sent, _ = raw_exchange(
        server.port,
        head(signer.sign(b""), "Transfer-Encoding: chunked"),
        chunked(100 * MIB),
        pause=0.001,
    )
    # The answer comes once the cap is passed; what was sent beyond it sat in socket buffers.
    assert status == 413, (status, sent)
    assert headers.get("connection") == "close"
    assert sent < 16 * MIB


def test_a_client_stalling_mid_body_gets_408(server: Server) -> None:
    body = b"x" * 1000
    status, headers, _, seconds = raw_exchange(
        server.port,
        head(signer.sign(body), "Content-Length: 1000") + body[:10],
        itertools.repeat(b"", 1),
        pause=5.0,  # never send more: wait for the server's answer
    )
    assert status == 408
    assert headers.get("connection") == "close"
    assert seconds < 4


def test_a_slow_drip_gets_408(server: Server) -> None:
    body = b"x" * 1000
    drip = (body[i : i + 100] for i in range(10, 1000, 100))
    status, _, _, seconds = raw_exchange(
        server.port,
        head(signer.sign(body), "Content-Length: 1000") + body[:10],
        drip,
        pause=0.3,  # 100 bytes every 0.3 s: the whole body needs 3 s, the timeout allows 1
    )
    assert status == 408
    # Under uvicorn each receive() is bounded by the time left; under gunicorn the check runs
    # when a blocking read returns (see integrations/wsgi.py).
    assert seconds < 4
