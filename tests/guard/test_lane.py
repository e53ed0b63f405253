"""The single-read lane (guard/lane.py) decides exactly as the general path does.

The lane only accepts; whatever it does not accept goes to the general path with the bytes it read.
Held here (hypothesis): the same requests, sent to a guard with the lane open and to one with it
closed, get the same statuses, headers and bodies, the application sees the same body and key index,
and the replay store ends up holding the same keys -- over every scheme, secret rotation, timestamp,
tampering, framing, short or failing reads and replays. Then: the lane is really taken for a plain
small delivery, and never when something it skips is needed.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hmacguard import MemoryReplayStore, RateLimiter, Signer, Verifier, WSGIGuard
from hmacguard.schemes import SCHEME_NAMES

from ._inprocess import Response, call_wsgi, wsgi_environ


def secret(text: str) -> str:
    """Base64 behind ``whsec_``: a secret every scheme takes (standard-webhooks needs that form)."""
    return "whsec_" + base64.b64encode(text.encode()).decode()


SECRETS = (secret("lane-current-secret"), secret("lane-previous-secret"))


def delivery(
    scheme: str, rotation: str, age: int, body: bytes, tamper: str, declared: str
) -> tuple[tuple[str, ...], bytes, dict[str, str], str | None]:
    """One case of the differential tests (this file's and test_asgi_lane.py's): the verifier's
    secrets, the body sent, its headers and its declared Content-Length (None: no header).

    ``rotation``: which secret signs ("one" of one, the "current" or "previous" of two, or an
    "unknown" one); ``age``: the signed timestamp's offset from now; ``tamper``: what is broken
    ("none", "body", "signature", "missing", "garbled"); ``declared``: how the length is declared.
    """
    secrets = SECRETS[:1] if rotation == "one" else SECRETS
    signing = {
        "one": SECRETS[0],
        "current": SECRETS[0],
        "previous": SECRETS[1],
        "unknown": secret("not-ours"),
    }
    headers = Signer(scheme, secrets=signing[rotation]).sign(body, timestamp=int(time.time()) + age)
    wire = body + b"!" if tamper == "body" else body
    signature = next(name for name in headers if "signature" in name.lower())
    if tamper == "signature":
        headers[signature] = headers[signature][:-4] + (
            "AAAA" if headers[signature][-4:] != "AAAA" else "BBBB"
        )
    elif tamper == "missing":
        del headers[signature]
    elif tamper == "garbled":
        headers[signature] = "%%" + headers[signature]
    n = len(wire)
    length = {
        "exact": str(n), "none": None, "shorter": str(max(0, n - 1)), "longer": str(n + 1),
        "plus": f"+{n}", "list": f"{n}, {n}",
    }[declared]  # fmt: skip
    return secrets, wire, headers, length


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    verified = environ["hmacguard.verified"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [
        b"key=%d ts=%r id=%r seen:" % (verified.key_index, verified.timestamp, verified.message_id) + body
    ]


class Reads(io.RawIOBase):
    """A wsgi.input that hands the body over in the given pieces, or raises ``error`` at once."""

    def __init__(self, data: bytes, piece: int | None, error: type[Exception] | None) -> None:
        self.data, self.piece, self.error = data, piece, error

    def read(self, size: int | None = -1) -> bytes:
        if self.error is not None:
            raise self.error("the server's read failed")
        n = len(self.data) if size is None or size < 0 else size
        if self.piece is not None:
            n = min(n, self.piece)
        out, self.data = self.data[:n], self.data[n:]
        return out


def guard(
    scheme: str, secrets: tuple[str, ...], *, lane: bool, chunk_size: int, seen: list[Any] | None = None
) -> tuple[WSGIGuard, MemoryReplayStore]:
    """A guard with the lane open or closed; ``seen``: a list to receive its decisions (watched)."""
    store = MemoryReplayStore()
    verifier = Verifier(scheme, secrets=list(secrets), replay=store, max_body=2048, chunk_size=chunk_size)
    wrapped = WSGIGuard(app, verifier=verifier, on_decision=None if seen is None else seen.append)
    wrapped.guard.lane.open = lane
    return wrapped, store


def reported(decisions: list[Any]) -> list[tuple[Any, ...]]:
    """What the differential tests compare of the decisions reported: every field but the duration."""
    return [d._replace(duration=None) for d in decisions]


def send(wrapped: WSGIGuard, body: bytes, headers: dict[str, str], case: dict[str, Any]) -> Response:
    environ = wsgi_environ(
        "POST", "/hook", Reads(body, case["piece"], case["error"]), headers, content_length=False
    )
    environ["wsgi.input_terminated"] = False
    if case["length"] is not None:
        environ["CONTENT_LENGTH"] = case["length"]
    if case["coding"] is not None:
        environ["HTTP_CONTENT_ENCODING"] = case["coding"]
    return call_wsgi(wrapped, environ)


@settings(max_examples=400, deadline=None)
# The plain delivery the lane exists for, watched and sent twice (accepted in the lane, then the
# store's refusal there): rare among the random cases, so named here.
@example("github", "one", 0, b'{"n": 1}', "none", "exact", None, None, None, 65536, True, True)
@example("standard-webhooks", "previous", 0, b"{}", "none", "exact", None, None, None, 65536, True, True)
@given(
    scheme=st.sampled_from(sorted(SCHEME_NAMES)),
    rotation=st.sampled_from(["one", "current", "previous", "unknown"]),
    age=st.sampled_from([0, -3600, 3600]),
    body=st.binary(max_size=400),
    tamper=st.sampled_from(["none", "body", "signature", "missing", "garbled"]),
    declared=st.sampled_from(["exact", "none", "shorter", "longer", "plus", "list"]),
    coding=st.sampled_from([None, None, None, "identity", "gzip", "br"]),
    piece=st.sampled_from([None, None, 1, 7]),
    error=st.sampled_from([None, None, None, None, OSError, TimeoutError, ValueError]),
    chunk_size=st.sampled_from([65536, 64]),
    repeat=st.booleans(),
    watched=st.booleans(),
)
def test_the_lane_decides_as_the_general_path(
    scheme: str,
    rotation: str,
    age: int,
    body: bytes,
    tamper: str,
    declared: str,
    coding: str | None,
    piece: int | None,
    error: type[Exception] | None,
    chunk_size: int,
    repeat: bool,
    watched: bool,
) -> None:
    secrets, wire, headers, length = delivery(scheme, rotation, age, body, tamper, declared)
    case = {"length": length, "coding": coding, "piece": piece, "error": error}

    answers = []
    for lane in (True, False):
        seen: list[Any] | None = [] if watched else None
        wrapped, store = guard(scheme, secrets, lane=lane, chunk_size=chunk_size, seen=seen)
        responses = [send(wrapped, wire, headers, case) for _ in range(2 if repeat else 1)]
        answers.append(
            ([(r.status, r.headers, r.body) for r in responses], sorted(store._entries), reported(seen or []))
        )
    assert answers[0] == answers[1]


def plain_delivery(scheme: str = "github") -> tuple[bytes, dict[str, str]]:
    body = b'{"action": "push", "lane": true}'
    return body, Signer(scheme, secrets=SECRETS[0]).sign(body)


def count_general_path(wrapped: WSGIGuard) -> list[int]:
    calls: list[int] = []
    process = wrapped.guard.process

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return process(*args, **kwargs)

    wrapped.guard.process = counting  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("scheme", sorted(SCHEME_NAMES))
def test_a_plain_small_delivery_takes_the_lane_and_its_replay_is_refused_there(scheme: str) -> None:
    wrapped, store = guard(scheme, SECRETS, lane=True, chunk_size=65536)
    calls = count_general_path(wrapped)
    body, headers = plain_delivery(scheme)
    first = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers))
    assert (first.status, len(calls)) == (200, 0)
    # The store's refusal is final: answered at once (guard.reject), the store not asked again.
    replay = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers))
    # One key per secret (the content's digest under each, so a rotation finds it); one message id.
    keys = 1 if scheme == "standard-webhooks" else len(SECRETS)
    assert (replay.status, len(calls), len(store)) == (409, 0, keys)
    assert replay.headers["Content-Type"] == "application/problem+json"
    # A forged delivery is declined by the lane and refused by the general path.
    forged = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body + b" ", headers))
    assert (forged.status, len(calls)) == (401, 1)


def test_the_lane_is_closed_when_a_rate_limiter_or_a_blocking_store_is_configured() -> None:
    limited = WSGIGuard(app, verifier=Verifier("github", secrets=SECRETS[0]), rate_limiter=RateLimiter())
    assert not limited.guard.lane.open

    class BlockingStore(MemoryReplayStore):
        blocking = True

    remote = WSGIGuard(app, verifier=Verifier("github", secrets=SECRETS[0], replay=BlockingStore()))
    assert not remote.guard.lane.open
    calls = count_general_path(remote)
    body, headers = plain_delivery()
    assert call_wsgi(remote, wsgi_environ("POST", "/hook", body, headers)).status == 200
    assert len(calls) == 1


def test_a_watched_guard_keeps_the_lane_and_reports_what_it_decided() -> None:
    """Watching decisions does not close the lane: its acceptance and the replay store's refusal in
    it are reported once each, with the general path's fields (the differential test compares them
    over every case)."""
    seen: list[Any] = []
    wrapped = WSGIGuard(app, verifier=Verifier("github", secrets=SECRETS[0]), on_decision=seen.append)
    calls = count_general_path(wrapped)
    body, headers = plain_delivery()
    assert call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers)).status == 200
    assert call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers)).status == 409
    assert len(calls) == 0
    accepted, replay = seen
    assert accepted[:7] == ("accepted", None, "github", "/hook", "127.0.0.1", len(body), 0)
    assert replay[:7] == ("replay", 409, "github", "/hook", "127.0.0.1", len(body), None)
    assert 0 < accepted.duration < 1 and 0 < replay.duration < 1 and accepted.failed_open == ()


class SlowRead(io.RawIOBase):
    def __init__(self, data: bytes, delay: float) -> None:
        self.data, self.delay = data, delay

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(self.delay)
        out, self.data = self.data, b""
        return out


def test_a_body_slower_than_the_timeout_in_the_lane_read_is_refused_not_retimed() -> None:
    """The general path counts the timeout from when the lane started reading, not afresh."""
    wrapped = WSGIGuard(app, verifier=Verifier("github", secrets=SECRETS[0], body_timeout=0.05))
    body, headers = plain_delivery()
    environ = wsgi_environ("POST", "/hook", SlowRead(body, 0.1), headers, content_length=False)
    environ["CONTENT_LENGTH"] = str(len(body))
    response = call_wsgi(wrapped, environ)
    assert response.status == 408
    assert response.headers["Content-Type"] == "application/problem+json"
