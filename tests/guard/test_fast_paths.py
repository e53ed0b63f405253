"""The guard's fast paths for the common small request decide exactly as its general path does.

Each fast path is held to the general one here (hypothesis): the same request, taking the fast path
or not, gets the same outcome, status, headers and body bytes, the application sees the same body,
and the replay store is asked for the same key.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hmacguard import MemoryReplayStore, Signer, Verifier, WSGIGuard

from ._inprocess import Response, call_wsgi, wsgi_environ

SECRET = "fast-path-secret"


class RecordingStore(MemoryReplayStore):
    """The default store, recording the keys it is asked to hold."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def hold(self, key: str, ttl: float) -> str | None:
        self.keys.append(key)
        return super().hold(key, ttl)


class ShortReads(io.RawIOBase):
    """A wsgi.input that returns the body in the pieces given, whatever size is asked for."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [p for p in pieces if p]

    def read(self, size: int = -1) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces[0]
        n = len(piece) if size is None or size < 0 else min(size, len(piece))
        out, rest = piece[:n], piece[n:]
        if rest:
            self.pieces[0] = rest
        else:
            self.pieces.pop(0)
        return out


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    first = stream.read(3)
    rest = stream.read()
    stream.seek(0)
    assert stream.read() == first + rest
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"seen:" + first + rest]


def run(stream: Any, headers: dict[str, str], length: str | None) -> tuple[Response, list[str]]:
    store = RecordingStore()
    guard = WSGIGuard(app, verifier=Verifier("github", secrets=SECRET, replay=store, max_body=400))
    environ = wsgi_environ("POST", "/webhook", stream, headers, content_length=length is not None)
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return call_wsgi(guard, environ), store.keys


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks)]


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=600),
    points=st.lists(st.integers(0, 600), min_size=1, max_size=6),
    declared=st.sampled_from(["exact", "none", "shorter", "longer"]),
    tamper=st.sampled_from(["none", "body", "signature"]),
)
def test_a_body_in_one_read_is_decided_as_in_several(
    body: bytes, points: list[int], declared: str, tamper: str
) -> None:
    headers = Signer("github", secrets=SECRET).sign(body)
    if tamper == "signature":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    wire = body + b"!" if tamper == "body" else body
    length = {
        "exact": str(len(wire)),
        "none": None,
        "shorter": str(max(0, len(wire) - 1)),
        "longer": str(len(wire) + 1),
    }[declared]
    # Whole: the server hands over everything asked for at once (the fast path when it is all of
    # the declared body). Split: the same bytes in the pieces hypothesis chose.
    whole, whole_keys = run(io.BytesIO(wire), headers, length)
    split, split_keys = run(ShortReads(cut(wire, points)), headers, length)
    assert (whole.status, whole.headers, whole.body) == (split.status, split.headers, split.body)
    assert whole_keys == split_keys
    if whole.status == 200:
        expected = wire[: int(length)] if length is not None else wire
        assert whole.body == b"seen:" + expected
