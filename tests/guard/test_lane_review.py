"""Review of the single-read lane (guard/lane.py): attacks on "it decides as the general path does".

Each test sends the same request to a guard with the lane open and to one with it closed and
compares what comes back (status, headers, body) and the replay store's keys.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, Signer, Verifier, WSGIGuard
from hmacguard.errors import StoreUnavailable

from ._inprocess import Response, call_wsgi, wsgi_environ
from .test_lane import SECRETS, app, plain_delivery, secret


def both(make_verifier: Any, make_environ: Any) -> list[tuple[Any, ...]]:
    """(status, headers, body, store keys) with the lane open, then closed."""
    out = []
    for lane in (True, False):
        verifier = make_verifier()
        wrapped = WSGIGuard(app, verifier=verifier)
        wrapped.guard.lane.open = lane
        r: Response = call_wsgi(wrapped, make_environ())
        keys = sorted(getattr(verifier.replay, "_entries", {}))
        out.append((r.status, r.headers, r.body, keys))
    return out


def environ_for(body: bytes, headers: dict[str, str], stream: Any = None, length: str | None = None) -> Any:
    env = wsgi_environ("POST", "/hook", stream if stream is not None else body, headers, content_length=False)
    env["wsgi.input_terminated"] = False
    env["CONTENT_LENGTH"] = str(len(body)) if length is None else length
    return env


# -- findings ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ReadThen(io.RawIOBase):
    """Returns the body (or raises ``error``) after moving ``clock`` past the tolerance."""

    def __init__(self, data: bytes, clock: Clock, step: float, error: type[Exception] | None) -> None:
        self.data, self.clock, self.step, self.error = data, clock, step, error

    def read(self, size: int | None = -1) -> bytes:
        self.clock.now += self.step
        if self.error is not None:
            raise self.error("read failed")
        out, self.data = self.data, b""
        return out


@pytest.mark.parametrize("failure", ["tampered", "oserror", "timeouterror"])
def test_timestamp_going_stale_during_the_read_does_not_change_the_refusal(failure: str) -> None:
    """Lane declines after its read; the general path then re-checks the *header* timestamp late."""
    t0 = 1_700_000_000
    body = b'{"lane": "stale"}'
    headers = Signer("stripe", secrets=SECRETS[0]).sign(body, timestamp=t0)
    wire = body.replace(b"stale", b"STALE") if failure == "tampered" else body
    error = {"tampered": None, "oserror": OSError, "timeouterror": TimeoutError}[failure]
    clock = Clock(t0 + 299.0)  # inside the 300 s tolerance at the head, outside after the read

    def verifier() -> Verifier:
        clock.now = t0 + 299.0
        return Verifier("stripe", secrets=SECRETS[0], clock=clock)

    lane, general = both(verifier, lambda: environ_for(wire, headers, ReadThen(wire, clock, 2.0, error)))
    assert lane == general  # lane: 400 timestamp-invalid; general: 401 / 400 client-disconnected / 408


class FlakyStore(MemoryReplayStore):
    """A non-blocking store that fails (503) on its first hold, then works: the lane retries it."""

    def __init__(self) -> None:
        super().__init__()
        self.holds = 0

    def hold(self, key: str, ttl: float) -> str | None:
        self.holds += 1
        if self.holds == 1:
            raise StoreUnavailable("replay store unavailable")
        return super().hold(key, ttl)


def test_a_store_refusal_in_the_lane_is_not_retried_by_the_general_path() -> None:
    body, headers = plain_delivery()
    stores: list[FlakyStore] = []

    def verifier() -> Verifier:
        stores.append(FlakyStore())
        return Verifier("github", secrets=SECRETS[0], replay=stores[-1])

    lane, general = both(verifier, lambda: environ_for(body, headers))
    assert [s.holds for s in stores] == [1, 1]  # lane: hold called twice
    assert lane[0] == general[0] == 503  # lane: 200 -- a fail-closed 503 became an accept


def test_body_timeout_boundary_is_computed_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """lane: now - started >= timeout; general: started + timeout - now <= 0 (rounds differently)."""
    import hmacguard.guard.lane as lane_mod
    import hmacguard.integrations.wsgi as wsgi_mod

    timeout = 30.0
    started = 32763.979792900896  # started + 30.0 rounds down (a plausible monotonic())
    assert (
        started + timeout
    ) - started < timeout  # so the lane thinks time is left; the general path: 0 left
    phase = {"t": started}

    def mono() -> float:
        return phase["t"]

    for mod in (lane_mod, wsgi_mod):
        monkeypatch.setattr(mod, "_monotonic", mono)
    monkeypatch.setattr(time, "monotonic", mono)
    body, headers = plain_delivery()

    class Read(io.RawIOBase):
        def read(self, size: int | None = -1) -> bytes:
            phase["t"] = started + timeout
            return body

    def verifier() -> Verifier:
        phase["t"] = started
        return Verifier("github", secrets=SECRETS[0], body_timeout=timeout)

    lane, general = both(verifier, lambda: environ_for(body, headers, Read()))
    assert lane[0] == general[0] == 408  # lane accepts (200) what the general path times out


# -- attacks that held (kept as regression tests) ----------------------------------------------------


class Returns(io.RawIOBase):
    def __init__(self, value: Any) -> None:
        self.value = value

    def read(self, size: int | None = -1) -> Any:
        value, self.value = self.value, b""
        return value


@pytest.mark.parametrize("length", ["0", "00", "0001", "000000032", "32", "33", "31"])
def test_content_length_spellings(length: str) -> None:
    body, headers = plain_delivery()  # 32 bytes
    assert len(body) == 32
    lane, general = both(
        lambda: Verifier("github", secrets=SECRETS[0]), lambda: environ_for(body, headers, length=length)
    )
    assert lane == general


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "str", "more", "subclass"])
def test_odd_reads(kind: str) -> None:
    body, headers = plain_delivery()

    class B(bytes):
        pass

    value = {"bytearray": bytearray(body), "memoryview": memoryview(body), "str": body.decode(),
             "more": body + b"x", "subclass": B(body)}[kind]  # fmt: skip
    make = lambda: Verifier("github", secrets=SECRETS[0])  # noqa: E731
    if kind == "str":
        for lane in (True, False):
            wrapped = WSGIGuard(app, verifier=make())
            wrapped.guard.lane.open = lane
            with pytest.raises(TypeError):
                call_wsgi(wrapped, environ_for(body, headers, Returns(value)))
        return
    lane, general = both(make, lambda: environ_for(body, headers, Returns(value)))
    assert lane == general


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_from_the_read_propagate_and_hold_nothing(exc: type[BaseException]) -> None:
    body, headers = plain_delivery()

    class Raise(io.RawIOBase):
        def read(self, size: int | None = -1) -> bytes:
            raise exc()

    for lane in (True, False):
        verifier = Verifier("github", secrets=SECRETS[0])
        wrapped = WSGIGuard(app, verifier=verifier)
        wrapped.guard.lane.open = lane
        with pytest.raises(exc):
            call_wsgi(wrapped, environ_for(body, headers, Raise()))
        assert len(verifier.replay) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("coding", ["", "identity", "gzip"])
def test_content_encoding_present(coding: str) -> None:
    body, headers = plain_delivery()

    def env() -> Any:
        e = environ_for(body, headers)
        e["HTTP_CONTENT_ENCODING"] = coding
        return e

    lane, general = both(lambda: Verifier("github", secrets=SECRETS[0]), env)
    assert lane == general


@pytest.mark.parametrize("scheme", ["stripe", "standard-webhooks"])
@pytest.mark.parametrize("order", ["good-first", "good-last", "only-bad"])
def test_multi_signature_headers_and_rotation(scheme: str, order: str) -> None:
    body = b'{"multi": 1}'
    good = Signer(scheme, secrets=SECRETS[1]).sign(body, timestamp=int(time.time()))
    bad = Signer(scheme, secrets=secret("other")).sign(body, timestamp=int(time.time()))
    name = next(n for n in good if "signature" in n.lower())
    if scheme == "stripe":
        t, g = good[name].split(",", 1)
        b = bad[name].split(",", 1)[1]
        parts = {"good-first": [g, b], "good-last": [b, g], "only-bad": [b, b]}[order]
        good[name] = ",".join([t, *parts])
    else:
        g, b = good[name], bad[name]
        good[name] = {"good-first": f"{g} {b}", "good-last": f"{b} {g}", "only-bad": f"{b} {b}"}[order]
    lane, general = both(lambda: Verifier(scheme, secrets=list(SECRETS)), lambda: environ_for(body, good))
    assert lane == general
    assert lane[0] == (401 if order == "only-bad" else 200)
    if order != "only-bad":
        assert b"key=1" in lane[2]


@pytest.mark.parametrize("offset", [-300, -301, 60, 61])
def test_timestamp_at_the_tolerance_boundary(offset: int) -> None:
    t0 = 1_700_000_000
    body = b'{"edge": 1}'
    headers = Signer("stripe", secrets=SECRETS[0]).sign(body, timestamp=t0 + offset)
    lane, general = both(
        lambda: Verifier("stripe", secrets=SECRETS[0], clock=lambda: float(t0)),
        lambda: environ_for(body, headers),
    )
    assert lane == general


@pytest.mark.parametrize("tamper", [False, True])
@pytest.mark.parametrize("saved", [None, 7.5, 0.0])
def test_gunicorn_socket_timeout_is_restored(tamper: bool, saved: float | None) -> None:
    import socket

    body, headers = plain_delivery()
    wire = body[:-1] + b"!" if tamper else body
    a, b = socket.socketpair()
    try:
        a.settimeout(saved)
        for lane in (True, False):
            wrapped = WSGIGuard(app, verifier=Verifier("github", secrets=SECRETS[0], body_timeout=5.0))
            wrapped.guard.lane.open = lane
            env = environ_for(wire, headers)
            env["gunicorn.socket"] = a
            assert call_wsgi(wrapped, env).status == (401 if tamper else 200)
            assert a.gettimeout() == saved
    finally:
        a.close()
        b.close()
