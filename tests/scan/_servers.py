"""Tiny real servers for the scanner's tests: misbehaving ones (reset, hang, garbage, die) and small
HTTP servers with one chosen behaviour (late 413, rate limit). All bind 127.0.0.1 on a free port and
stop (threads joined, sockets closed) when their ``with`` block ends."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import h11

Handler = Callable[[socket.socket, threading.Event], None]


@dataclass
class Server:
    port: int
    requests: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/webhook"


@contextlib.contextmanager
def serve(handler: Handler, host: str = "127.0.0.1") -> Iterator[Server]:
    """Accept connections on a thread; each connection is handled on a thread of its own.
    ``host``: a loopback address to listen on (``::1`` for IPv6)."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []
    server = Server(listener.getsockname()[1], host=host)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.2)
            t = threading.Thread(target=_guard, args=(handler, conn, stop), daemon=True)
            workers.append(t)
            t.start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for t in workers:
            t.join(timeout=5)


def _guard(handler: Handler, conn: socket.socket, stop: threading.Event) -> None:
    with contextlib.suppress(OSError), conn:
        handler(conn, stop)


def _read_head(conn: socket.socket, stop: threading.Event) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and not stop.is_set():
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def resetting(conn: socket.socket, stop: threading.Event) -> None:
    """Reads the request head, then resets the connection (SO_LINGER 0)."""
    _read_head(conn, stop)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def hanging(conn: socket.socket, stop: threading.Event) -> None:
    """Reads whatever comes and never answers."""
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    """Answers with bytes that are not HTTP, then closes."""
    _read_head(conn, stop)
    conn.sendall(b"\x00\x13SSH-2.0-not-http\r\n\r\ngarbage garbage\r\n")


def h11_handler(
    respond: Callable[[h11.Request, int], tuple[int, list[tuple[str, str]]]],
    *,
    refuse_head: Callable[[h11.Request], tuple[int, list[tuple[str, str]]] | None] | None = None,
) -> Handler:
    """A correct HTTP/1.1 server: reads the whole body (h11 decodes chunked), then ``respond(request,
    body_length)``; ``refuse_head`` may answer before the body is read (and close)."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        c = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        length = 0
        while not stop.is_set():
            event = c.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                c.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                request = event
                early = refuse_head(event) if refuse_head else None
                if early is not None:
                    status, headers = early
                    _answer(conn, c, status, headers)
                    return
                if c.they_are_waiting_for_100_continue:
                    conn.sendall(c.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            elif isinstance(event, h11.Data):
                length += len(event.data)
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                status, headers = respond(request, length)
                _answer(conn, c, status, headers)
                return
            elif isinstance(event, h11.ConnectionClosed):
                return

    return handle


def _answer(conn: socket.socket, c: h11.Connection, status: int, headers: list[tuple[str, str]]) -> None:
    body = f"status {status}\n".encode()
    head = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")]
    conn.sendall(c.send(h11.Response(status_code=status, headers=head + headers)) or b"")
    conn.sendall(c.send(h11.Data(data=body)) or b"")
    conn.sendall(c.send(h11.EndOfMessage()) or b"")


def content_length(head: bytes) -> int:
    """The ``Content-Length`` of a request head (0 when it has none)."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
