"""A raw HTTP/1.1 client for the guarded lab targets: it sees an early answer while still sending.

Full clients (httpx, http.client) send the whole body before they look for a response, so they
cannot tell a 413 sent after 64 KiB from one sent after 64 MiB, and they often lose the answer to
the reset that follows. This one writes the body chunk by chunk and stops the moment the server
has something to say; ``bytes_sent`` then shows how much the server let in.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from hmacguard.lab import RunningTarget
from hmacguard.memory import MemorySampler
from hmacguard.schemes import StreamingSigner

CHUNK = 64 * 1024
MiB = 1024 * 1024
_BLOCK = b"a" * CHUNK


def filler(size: int) -> Iterator[bytes]:
    """``size`` bytes generated chunk by chunk (never held whole)."""
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield _BLOCK[:n]
        sent += n


def signed_headers(
    target: RunningTarget, size: int, *, secret: str | None = None, message_id: str | None = None
) -> dict[str, str]:
    """The provider's headers for ``size`` filler bytes, signed in a streaming first pass."""
    signer = StreamingSigner(target.scheme, secret or target.secret, message_id=message_id)
    for piece in filler(size):
        signer.update(piece)
    headers = signer.headers()
    headers["Content-Type"] = target.target.content_type
    return headers


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    bytes_sent: int = 0
    error: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _parse(raw: bytes) -> tuple[int | None, dict[str, str], bytes]:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def post(
    target: RunningTarget,
    headers: Mapping[str, str],
    size: int,
    *,
    chunked: bool = False,
    path: str | None = None,
    timeout: float = 30.0,
) -> Answer:
    """POST ``size`` filler bytes; stop sending as soon as a response starts arriving."""
    lines = [f"POST {path or target.path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    answer = Answer(None)
    deadline = time.monotonic() + timeout
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
        sock.sendall(head)
        pending = b""
        pieces = filler(size)
        finished = False
        while True:
            if not pending and not finished:
                piece = next(pieces, None)
                if piece is None:
                    pending, finished = (b"0\r\n\r\n" if chunked else b""), True
                else:
                    pending = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            if not pending:
                break
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break  # the server answered (or closed) before taking the whole body
            if time.monotonic() > deadline:
                answer.error = "timeout while sending"
                return answer
            if writable:
                try:
                    n = sock.send(pending)
                except OSError as exc:
                    answer.error = type(exc).__name__
                    break
                pending = pending[n:]
                answer.bytes_sent += n
        raw = b""
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                status, got, rest = _parse(raw)
                if status is not None:
                    length = int(got.get("content-length", "-1"))
                    if 0 <= length <= len(rest):
                        break
                    if got.get("transfer-encoding") == "chunked" and rest.endswith(b"0\r\n\r\n"):
                        break
                data = sock.recv(CHUNK)
                if not data:
                    break
                raw += data
        answer.status, answer.headers, answer.body = _parse(raw)
        if answer.headers.get("transfer-encoding") == "chunked":
            answer.body = _dechunk(answer.body)
    return answer


def post_measured(
    target: RunningTarget, headers: Mapping[str, str], size: int, *, chunked: bool = False
) -> tuple[Answer, int]:
    """:func:`post`, returning the server tree's peak RSS growth over the exchange too."""
    with MemorySampler(target.pid, interval=0.005) as sampler:
        answer = post(target, headers, size, chunked=chunked)
        time.sleep(0.05)  # one more sample after the answer, while buffers would still be alive
    return answer, sampler.peak - sampler.baseline
