"""Raw HTTP/1.1 probes: one request per connection, the body streamed while the socket is read.

Full HTTP clients cannot do what a probe needs: send a 100 MiB body without holding it, frame it
chunked or with a Content-Length, wait for ``100 Continue``, and above all *notice an answer that comes
while the body is still being sent*. This module writes the request itself and reads the socket
concurrently (non-blocking, ``selectors``), parsing what comes back with h11.

What one exchange can end in (:class:`Outcome`), kept distinct because each means something else:

- ``response``: a final HTTP response arrived, possibly long before the body was sent (an early 413);
- ``reset``: the connection was reset (ECONNRESET/EPIPE) before any response, after N body bytes;
- ``closed``: the server closed cleanly (EOF) without answering;
- ``timeout``: nothing moved in either direction for ``timeout`` seconds (or the scan's deadline passed);
- ``protocol-error``: the server sent bytes that are not HTTP/1.1;
- ``connect-failed``: TCP connect or TLS handshake failed.

Why a small send buffer: on loopback the kernel's buffers hold megabytes, so "bytes written when the
answer came" would overstate what the server read by that much. With ``SO_SNDBUF`` at 64 KiB the error
is at most our send buffer plus the server's receive buffer (:attr:`Exchange.uncertainty` estimates it;
a server that stopped reading after reading for a while may have grown its receive buffer beyond that,
so the figure is a lower bound on the error, stated as such in reports).

Nothing here raises for anything the server does; only programming errors propagate.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import h11

__all__ = ["Endpoint", "Exchange", "Framing", "Outcome", "WireRequest", "exchange"]

#: Response body bytes kept for fingerprinting and reports; the rest is counted and dropped.
KEEP_BODY = 4096
#: Stop reading a response body after this much (we only want its head).
MAX_RESPONSE_BODY = 1024 * 1024
#: Longest a response body may take once its head arrived (a dribbling server cannot hold us).
RESPONSE_BODY_WAIT = 2.0
_RECV = 65536
_SEND = 65536


class Outcome(str, enum.Enum):
    RESPONSE = "response"
    RESET = "reset"
    CLOSED = "closed"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol-error"
    CONNECT_FAILED = "connect-failed"


class Framing(str, enum.Enum):
    CONTENT_LENGTH = "content-length"
    CHUNKED = "chunked"


@functools.cache
def _receive_window() -> int:
    """The kernel's default TCP receive buffer (the server's, on loopback), or a common default."""
    try:
        with open("/proc/sys/net/ipv4/tcp_rmem") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 128 * 1024


@dataclass(frozen=True)
class Endpoint:
    """Where to connect: resolved addresses (already checked for loopback), TLS, Host header."""

    addresses: tuple[str, ...]
    port: int
    authority: str
    tls: bool = False
    server_hostname: str = ""
    insecure: bool = False

    def open(self, *, timeout: float, send_buffer: int, source: str | None = None) -> socket.socket:
        """A connected, non-blocking socket (TLS handshake done); raises OSError / ssl.SSLError.
        ``source``: the local address to connect from (an IPv4 one: only IPv4 addresses are tried)."""
        error: OSError | None = None
        for address in self.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if source is not None and family != socket.AF_INET:
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                if source is not None:
                    sock.bind((source, 0))
                # Before connect: the buffer size is negotiated into the window at handshake time.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
                sock.settimeout(timeout)
                sock.connect((address, self.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls:
                    try:
                        sock = self._tls_context().wrap_socket(
                            sock, server_hostname=self.server_hostname or None
                        )
                    except OSError as exc:  # ssl.SSLError, or a handshake that timed out
                        reason: object = exc.reason if isinstance(exc, ssl.SSLError) else exc
                        if isinstance(exc, ssl.SSLCertVerificationError):
                            why = exc.verify_message
                            reason = f"certificate verify failed ({why}; --insecure skips the check)"
                        raise ConnectionError(f"TLS handshake failed: {reason or exc}") from None
                sock.setblocking(False)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error if error is not None else OSError(errno.EHOSTUNREACH, "no address to connect to")

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class WireRequest:
    """A request to write. ``body`` returns a fresh iterator of the body's wire bytes each call."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Callable[[], Iterable[bytes | memoryview]] | None = None
    body_length: int = 0
    framing: Framing = Framing.CONTENT_LENGTH
    expect_continue: bool = False

    def head(self, authority: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body is not None:
            if self.framing is Framing.CHUNKED:
                lines.append("Transfer-Encoding: chunked")
            else:
                lines.append(f"Content-Length: {self.body_length}")
            if self.expect_continue:
                lines.append("Expect: 100-continue")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Exchange:
    """What happened on one connection. Times are seconds since the connection attempt began."""

    outcome: Outcome
    body_length: int
    body_sent: int = 0
    #: Body bytes we had written when the final response's head was parsed (None: no response).
    sent_at_response: int | None = None
    body_complete: bool = False
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body_head: bytes = b""
    response_complete: bool = False
    interim: tuple[int, ...] = ()
    #: Expect: 100-continue only: the body waited for (and got, or timed out waiting for) 100.
    continue_received: bool = False
    connect_s: float = 0.0
    first_byte_s: float | None = None
    total_s: float = 0.0
    send_error: str | None = None
    error: str | None = None
    send_buffer: int = 0
    #: Estimated bytes that can sit in buffers between us and the server's read() calls.
    uncertainty: int = 0

    @property
    def responded(self) -> bool:
        return self.outcome is Outcome.RESPONSE and self.status is not None

    @property
    def early(self) -> bool:
        """The answer came before the whole body had been written."""
        return self.sent_at_response is not None and self.sent_at_response < self.body_length

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class _Frame:
    data: memoryview
    head: int  # framing bytes before the payload (chunk-size line)
    payload: int
    offset: int = 0


@dataclass
class _State:
    body_sent: int = 0
    body_complete: bool = False
    sending: bool = True
    waiting_continue: bool = False
    continue_deadline: float = 0.0
    continue_received: bool = False
    first_byte: float | None = None
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    interim: list[int] = field(default_factory=list)
    body_head: bytearray = field(default_factory=bytearray)
    body_seen: int = 0
    sent_at_response: int | None = None
    response_at: float | None = None
    response_complete: bool = False
    eof: bool = False
    reset: bool = False
    send_error: str | None = None
    protocol_error: str | None = None
    raw_prefix: bytes = b""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__


class _Session:
    def __init__(self, sock: socket.socket, request: WireRequest, authority: str, t0: float) -> None:
        self.sock = sock
        self.request = request
        self.t0 = t0
        self.state = _State()
        self.parser = h11.Connection(h11.CLIENT)
        # h11 only parses here: tell it a request went out so that it expects a response.
        self.parser.send(h11.Request(method=request.method, target="/",
                                     headers=[("Host", "probe"), ("Content-Length", "0")]))  # fmt: skip
        self.parser.send(h11.EndOfMessage())
        head = request.head(authority)
        self.frames: Iterator[_Frame] = self._frames(head)
        self.current: _Frame | None = None

    def _frames(self, head: bytes) -> Iterator[_Frame]:
        yield _Frame(memoryview(head), len(head), 0)
        request = self.request
        if request.body is None:
            return
        if request.expect_continue:
            self.state.waiting_continue = True
            self.state.continue_deadline = -1.0  # set when the head is fully written
            yield _Frame(memoryview(b""), 0, 0)  # a marker: the head is out
        chunked = request.framing is Framing.CHUNKED
        for chunk in request.body():
            n = len(chunk)
            if not n:
                continue
            if chunked:
                size_line = b"%x\r\n" % n
                data = memoryview(size_line + bytes(chunk) + b"\r\n")
                yield _Frame(data, len(size_line), n)
            else:
                yield _Frame(memoryview(chunk).cast("B"), 0, n)
        if chunked:
            yield _Frame(memoryview(b"0\r\n\r\n"), 5, 0)

    # -- writing ----------------------------------------------------------------------------------

    def write(self, now: float, expect_wait: float) -> bool:
        """Write what the socket takes; True if anything moved."""
        st = self.state
        moved = False
        while st.sending:
            if st.waiting_continue and st.continue_deadline >= 0:
                return moved  # head written; the body waits for 100 Continue (or the deadline)
            if self.current is None or self.current.offset >= len(self.current.data):
                nxt = next(self.frames, None)
                if nxt is None:
                    st.sending = False
                    st.body_complete = True
                    return moved
                self.current = nxt
                if not len(nxt.data):  # the expect marker
                    st.continue_deadline = now + expect_wait
                    continue
            frame = self.current
            try:
                n = self.sock.send(frame.data[frame.offset : frame.offset + _SEND])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return moved
            except OSError as exc:
                st.sending = False
                st.send_error = _describe(exc)
                return True
            before = min(max(frame.offset - frame.head, 0), frame.payload)
            frame.offset += n
            after = min(max(frame.offset - frame.head, 0), frame.payload)
            st.body_sent += after - before
            moved = moved or n > 0
        return moved

    def release_body(self) -> None:
        """Stop waiting for 100 Continue and send the body."""
        self.state.waiting_continue = False

    # -- reading ----------------------------------------------------------------------------------

    def read(self, now: float) -> bool:
        st = self.state
        moved = False
        while True:
            try:
                data = self.sock.recv(_RECV)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return moved
            except OSError as exc:
                # ECONNRESET: whatever the kernel had queued was read before this error surfaced.
                st.reset = True
                st.eof = True
                st.send_error = st.send_error or _describe(exc)
                self._feed(b"")
                return True
            moved = True
            if st.first_byte is None and data:
                st.first_byte = now
            if len(st.raw_prefix) < 256:
                st.raw_prefix += data[: 256 - len(st.raw_prefix)]
            self._feed(data)
            if not data:
                st.eof = True
                return True
            if not isinstance(self.sock, ssl.SSLSocket) or not self.sock.pending():
                return moved

    def _feed(self, data: bytes) -> None:
        st = self.state
        if st.protocol_error is not None or st.response_complete:
            return
        try:
            self.parser.receive_data(data)
            while True:
                event = self.parser.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.InformationalResponse):
                    st.interim.append(event.status_code)
                    if event.status_code == 100 and st.waiting_continue:
                        st.continue_received = True
                        self.release_body()
                elif isinstance(event, h11.Response):
                    st.status = event.status_code
                    st.reason = event.reason.decode("latin-1", "replace")
                    st.headers = tuple(
                        (k.decode("latin-1").lower(), v.decode("latin-1", "replace"))
                        for k, v in event.headers
                    )
                    st.sent_at_response = st.body_sent
                    st.response_at = time.monotonic()
                    # A final answer ends the request: sending more is pointless (RFC 9112 §9.5).
                    st.sending = False
                    st.waiting_continue = False
                elif isinstance(event, h11.Data):
                    room = KEEP_BODY - len(st.body_head)
                    if room > 0:
                        st.body_head += event.data[:room]
                    st.body_seen += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    st.response_complete = True
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            if st.status is None and st.raw_prefix:
                st.protocol_error = str(exc) or "not an HTTP/1.1 response"
            # No bytes at all is a close or reset, not garbage; and with a status already parsed,
            # a truncated body is still an answer.

    # -- result -----------------------------------------------------------------------------------

    def result(self, outcome: Outcome, *, connect_s: float, send_buffer: int, error: str | None = None,
               now: float) -> Exchange:  # fmt: skip
        st = self.state
        first = None if st.first_byte is None else st.first_byte - self.t0
        return Exchange(
            outcome=outcome,
            body_length=self.request.body_length,
            body_sent=st.body_sent,
            sent_at_response=st.sent_at_response,
            body_complete=st.body_complete,
            status=st.status,
            reason=st.reason,
            headers=st.headers,
            body_head=bytes(st.body_head),
            response_complete=st.response_complete,
            interim=tuple(st.interim),
            continue_received=st.continue_received,
            connect_s=connect_s,
            first_byte_s=first,
            total_s=now - self.t0,
            send_error=st.send_error,
            error=error,
            send_buffer=send_buffer,
            uncertainty=send_buffer + _receive_window(),
        )

    def finished(self) -> Outcome | None:
        st = self.state
        if st.protocol_error is not None:
            return Outcome.PROTOCOL_ERROR
        if st.status is not None and (st.response_complete or st.eof):
            return Outcome.RESPONSE
        if st.eof:
            if st.raw_prefix and st.status is None:
                return Outcome.PROTOCOL_ERROR
            return Outcome.RESET if st.reset or st.send_error else Outcome.CLOSED
        return None


def exchange(
    endpoint: Endpoint,
    request: WireRequest,
    *,
    timeout: float,
    deadline: float | None = None,
    send_buffer: int = 64 * 1024,
    expect_wait: float = 1.0,
) -> Exchange:
    """Send ``request`` on a new connection and read the answer concurrently; never raises for I/O.

    ``timeout`` is the longest the exchange may go without progress; ``deadline`` (a
    ``time.monotonic()`` value) ends it regardless, for the scan's own time budget.
    """
    t0 = time.monotonic()
    hard = deadline if deadline is not None else float("inf")
    try:
        sock = endpoint.open(timeout=max(0.05, min(timeout, hard - t0)), send_buffer=send_buffer)
    except OSError as exc:
        return Exchange(Outcome.CONNECT_FAILED, request.body_length, error=_describe(exc),
                        total_s=time.monotonic() - t0)  # fmt: skip
    connect_s = time.monotonic() - t0
    effective_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    session = _Session(sock, request, endpoint.authority, t0)
    selector = selectors.DefaultSelector()
    try:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            outcome = session.finished()
            if outcome is not None:
                return session.result(outcome, connect_s=connect_s, send_buffer=effective_buffer,
                                      now=now)  # fmt: skip
            st = session.state
            if st.waiting_continue and 0 <= st.continue_deadline <= now:
                session.release_body()
            limit = min(last_progress + timeout, hard)
            if st.response_at is not None:
                # The answer is in; its body gets a short grace, not the full timeout.
                limit = min(limit, st.response_at + RESPONSE_BODY_WAIT)
                if st.body_seen > MAX_RESPONSE_BODY:
                    limit = now
            if now >= limit:
                if st.status is not None:
                    return session.result(Outcome.RESPONSE, connect_s=connect_s,
                                          send_buffer=effective_buffer, now=now)  # fmt: skip
                if st.raw_prefix:
                    preview = st.raw_prefix[:60]
                    return session.result(Outcome.PROTOCOL_ERROR, connect_s=connect_s,
                                          send_buffer=effective_buffer, now=now,
                                          error=f"unparseable answer {preview!r}")  # fmt: skip
                why = "scan deadline" if now >= hard else f"no progress for {timeout:g}s"
                return session.result(Outcome.TIMEOUT, connect_s=connect_s,
                                      send_buffer=effective_buffer, now=now, error=why)  # fmt: skip
            want_write = st.sending and not (st.waiting_continue and st.continue_deadline >= 0)
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            selector.modify(sock, mask)
            wait = limit - now
            if st.waiting_continue and st.continue_deadline >= 0:
                wait = min(wait, st.continue_deadline - now)
            events = selector.select(timeout=max(0.0, min(wait, 0.5)))
            moved = False
            for _key, ready in events:
                if ready & selectors.EVENT_READ:
                    moved = session.read(time.monotonic()) or moved
                if ready & selectors.EVENT_WRITE and session.state.sending:
                    moved = session.write(time.monotonic(), expect_wait) or moved
            if moved:
                last_progress = time.monotonic()
    finally:
        selector.close()
        with contextlib.suppress(OSError):
            sock.close()
