"""The wire layer against real sockets: early answers, resets, hangs, garbage, chunked framing and
Expect: 100-continue, each a distinct outcome; nothing raises."""

from __future__ import annotations

import socket
import threading
import time

import h11
import pytest

from hmacguard.scan.bodies import BodySpec, Shape
from hmacguard.scan.wire import Endpoint, Framing, Outcome, WireRequest, exchange
from tests.scan import _servers

MiB = 1024 * 1024


def endpoint(port: int) -> Endpoint:
    return Endpoint(("127.0.0.1",), port, f"127.0.0.1:{port}")


def body_request(
    size: int, framing: Framing = Framing.CONTENT_LENGTH, *, expect: bool = False
) -> WireRequest:
    spec = BodySpec(Shape.JSON, size, tag="w1")
    return WireRequest("POST", "/webhook", (("Content-Type", "application/json"),), spec.chunks,
                       spec.wire_length, framing, expect)  # fmt: skip


def test_early_413_is_a_response_before_the_body_was_sent() -> None:
    def refuse_on_head(conn: socket.socket, stop: threading.Event) -> None:
        _servers._read_head(conn, stop)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")

    with _servers.serve(refuse_on_head) as server:
        ex = exchange(endpoint(server.port), body_request(64 * MiB), timeout=5)
    assert ex.outcome is Outcome.RESPONSE and ex.status == 413 and ex.body_head == b"big!"
    assert ex.early and not ex.body_complete
    assert ex.sent_at_response is not None and ex.sent_at_response < 2 * ex.uncertainty
    assert ex.body_sent < 8 * MiB  # we stopped sending once the answer came


def test_reset_before_an_answer_is_its_own_outcome() -> None:
    with _servers.serve(_servers.resetting) as server:
        ex = exchange(endpoint(server.port), body_request(16 * MiB), timeout=5)
    assert ex.outcome is Outcome.RESET and ex.status is None
    assert ex.send_error and ex.send_error.split(":")[0] in ("ECONNRESET", "EPIPE")
    assert not ex.body_complete


@pytest.mark.parametrize("framing", list(Framing))
def test_body_is_delivered_exactly_in_either_framing(framing: Framing) -> None:
    got: dict[str, object] = {}

    def respond(request: h11.Request, length: int) -> tuple[int, list[tuple[str, str]]]:
        got["length"] = length
        got["headers"] = {k.decode().lower(): v.decode() for k, v in request.headers}
        return 200, []

    with _servers.serve(_servers.h11_handler(respond)) as server:
        ex = exchange(endpoint(server.port), body_request(3 * MiB + 7, framing), timeout=5)
    assert ex.outcome is Outcome.RESPONSE and ex.status == 200
    assert ex.body_complete and ex.body_sent == 3 * MiB + 7 == got["length"]
    headers = got["headers"]
    assert isinstance(headers, dict)
    if framing is Framing.CHUNKED:
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    else:
        assert headers["content-length"] == str(3 * MiB + 7)
    assert headers["connection"] == "close"


def test_expect_continue_final_answer_before_the_body() -> None:
    def refuse(request: h11.Request) -> tuple[int, list[tuple[str, str]]]:
        return 413, []

    handler = _servers.h11_handler(lambda r, n: (200, []), refuse_head=refuse)
    with _servers.serve(handler) as server:
        ex = exchange(endpoint(server.port), body_request(8 * MiB, expect=True), timeout=5, expect_wait=3)
    assert ex.status == 413 and ex.body_sent == 0 and ex.sent_at_response == 0
    assert ex.total_s < 2  # answered long before the expect wait ran out


def test_expect_continue_100_releases_the_body() -> None:
    with _servers.serve(_servers.h11_handler(lambda r, n: (200, []))) as server:
        ex = exchange(endpoint(server.port), body_request(2 * MiB, expect=True), timeout=5, expect_wait=3)
    assert ex.interim == (100,) and ex.continue_received
    assert ex.status == 200 and ex.body_complete and ex.total_s < 2


def test_expect_continue_without_100_sends_after_the_wait() -> None:
    def slow_reader(conn: socket.socket, stop: threading.Event) -> None:
        # Ignores Expect: reads the head and the body, then answers.
        data = _servers._read_head(conn, stop)
        remaining = 1000 - len(data.split(b"\r\n\r\n", 1)[1])
        while remaining > 0 and not stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue  # the expect wait: nothing comes until the client gives up waiting
            if not chunk:
                return
            remaining -= len(chunk)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    with _servers.serve(slow_reader) as server:
        t0 = time.monotonic()
        ex = exchange(endpoint(server.port), body_request(1000, expect=True), timeout=5, expect_wait=0.3)
    assert ex.status == 204 and not ex.continue_received and ex.body_complete
    assert 0.25 < time.monotonic() - t0 < 3


def test_silent_server_times_out_after_the_idle_timeout() -> None:
    with _servers.serve(_servers.hanging) as server:
        ex = exchange(endpoint(server.port), body_request(1024), timeout=0.5)
    assert ex.outcome is Outcome.TIMEOUT and ex.body_complete
    assert 0.4 < ex.total_s < 3


def test_server_that_stops_reading_stalls_into_a_timeout_not_a_hang() -> None:
    def never_reads(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(10)

    with _servers.serve(never_reads) as server:
        ex = exchange(endpoint(server.port), body_request(64 * MiB), timeout=0.5)
    assert ex.outcome is Outcome.TIMEOUT and not ex.body_complete
    assert ex.body_sent < 16 * MiB  # the small send buffer keeps "sent" near "read"


def test_scan_deadline_ends_an_exchange() -> None:
    with _servers.serve(_servers.hanging) as server:
        ex = exchange(endpoint(server.port), body_request(1024), timeout=30, deadline=time.monotonic() + 0.3)
    assert ex.outcome is Outcome.TIMEOUT and ex.error == "scan deadline"


def test_garbage_is_a_protocol_error() -> None:
    with _servers.serve(_servers.garbage) as server:
        ex = exchange(endpoint(server.port), body_request(1024), timeout=2)
    assert ex.outcome is Outcome.PROTOCOL_ERROR and ex.status is None


def test_refused_connection() -> None:
    with _servers.serve(_servers.hanging) as server:
        port = server.port
    ex = exchange(endpoint(port), body_request(1024), timeout=1)
    assert ex.outcome is Outcome.CONNECT_FAILED and ex.error and "ECONNREFUSED" in ex.error


def test_head_carries_framing_and_no_user_override() -> None:
    head = body_request(10, Framing.CHUNKED, expect=True).head("h:1").decode()
    assert head.startswith("POST /webhook HTTP/1.1\r\nHost: h:1\r\n")
    assert "Transfer-Encoding: chunked" in head and "Content-Length" not in head
    assert "Expect: 100-continue" in head and head.endswith("Connection: close\r\n\r\n")
