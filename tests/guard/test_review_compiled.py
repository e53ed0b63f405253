"""Adversarial review of the compiled build (5eaa72c, hatch_build.py): inputs and extensions on which
the guard compiled by mypyc answered otherwise than the pure-Python guard.

mypyc checks the declared type of every argument of a compiled function, of every value read from
a union or a named tuple, and of every result of a call through a Protocol-typed or generic object.
Pure Python duck-typed all of these. Each test holds both builds to the pure build's answer (or to a
4xx where pure Python answered 500 too); the ones that only failed compiled were strict xfails on
the compiled build until fixed:

- a reserve-only custom store answering ``1``/``0``/``None`` (truthy, not ``bool``): 500 compiled;
- a custom store whose ``blocking`` is ``0``/``1``: ``TypeError`` building the guard;
- a custom holding store whose tokens are not text (an int counter, bytes): 500 on the first
  delivery, and its key left held, so that the sender's retries got 409 (a delivery lost);
- an application calling ``start_response`` with its headers as a tuple (gunicorn takes it): 500;
- a ``route_check`` answering a falsy non-bool (``0``, ``None``): the request was guarded (401)
  where pure Python passed it through;
- a WSGI environ whose ``CONTENT_LENGTH`` or an ``HTTP_*`` header is bytes (a middleware that
  breaks PEP 3333): 500 where pure Python answered 200. Both builds now answer 400 (not text), as
  for the int ``CONTENT_LENGTH`` to which pure Python answered 500 as well;
- a custom :class:`~hmacguard.schemes.Scheme` whose claim has a list of signatures, a float
  timestamp, an int message id, or ``None`` for an empty prefix: 500 on every request. Both builds
  now read a custom scheme's claim through ``normalized_claim`` (schemes/base.py): normalized to
  the declared types where that is exact, else 400 (``SignatureMalformed``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, Verifier, WSGIGuard
from hmacguard.schemes import (
    GenericScheme,
    GitHubScheme,
    SignatureClaim,
    SlackScheme,
    StandardWebhooksScheme,
    StripeScheme,
    sign_body,
)
from hmacguard.schemes.base import Scheme, lowered

from ._inprocess import Response, call_wsgi, wsgi_environ

SECRET = "review-compiled"
_count = itertools.count()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def delivery(body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(_count) if body is None else body
    return body, sign_body("github", SECRET, body)


def post(guard: Any, body: bytes, headers: Mapping[str, str]) -> Response:
    return call_wsgi(guard, wsgi_environ("POST", "/webhook", body, headers))


def twice(verifier: Verifier, application: Any = app, *, lane: bool = True) -> list[int]:
    """One delivery, then its replay: the statuses (``lane=False``: the lane closed, every request
    on the general path)."""
    guard = WSGIGuard(application, verifier=verifier)
    guard.guard.lane.open = lane
    body, headers = delivery()
    return [post(guard, body, headers).status, post(guard, body, headers).status]


# -- custom replay stores ----------------------------------------------------------------------------


class ReserveOnly:
    """A reserve-only store (the ReplayStore protocol's minimum) answering with truthy values."""

    blocking = False

    def __init__(self, new: object, taken: object) -> None:
        self.keys: set[str] = set()
        self.new, self.taken = new, taken

    def reserve(self, key: str, ttl: float) -> Any:
        if key in self.keys:
            return self.taken
        self.keys.add(key)
        return self.new


@pytest.mark.parametrize(("new", "taken"), [(1, 0), (True, None), ("yes", "")])
def test_reserve_only_store_answering_truthy_values(new: object, taken: object) -> None:
    assert twice(Verifier("github", secrets=SECRET, replay=ReserveOnly(new, taken))) == [200, 409]


class HoldingStore:
    """A holding store whose tokens are whatever ``token`` makes (never expiring, for the test)."""

    blocking: Any = False

    def __init__(self, token: Any = str) -> None:
        self.entries: dict[str, Any] = {}
        self.committed: set[str] = set()
        self.counter = itertools.count(1)
        self.token = token

    def reserve(self, key: str, ttl: float) -> bool:
        return self.hold(key, ttl) is not None

    def hold(self, key: str, ttl: float) -> Any:
        if key in self.entries:
            return None
        token = self.entries[key] = self.token(next(self.counter))
        return token

    def commit(self, key: str, token: Any, ttl: float) -> None:
        self.entries[key] = "committed"
        self.committed.add(key)

    def release(self, key: str, token: Any) -> None:
        if self.entries.get(key) == token:
            del self.entries[key]


@pytest.mark.parametrize("token", [int, lambda n: str(n).encode()], ids=["int", "bytes"])
def test_holding_store_with_tokens_that_are_not_text(token: Any) -> None:
    store = HoldingStore(token)
    guard = WSGIGuard(app, verifier=Verifier("github", secrets=SECRET, replay=store))
    body, headers = delivery()
    assert post(guard, body, headers).status == 200
    assert len(store.committed) == 1  # processed, and committed
    assert post(guard, body, headers).status == 409
    # A delivery whose application failed is released, so that its retry is processed.
    failing = WSGIGuard(_failing_app, verifier=Verifier("github", secrets=SECRET, replay=store))
    body, headers = delivery()
    assert post(failing, body, headers).status == 500
    assert post(guard, body, headers).status == 200


def _failing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("500 Internal Server Error", [])
    return [b""]


@pytest.mark.parametrize("blocking", [0, 1])
def test_store_blocking_flag_that_is_not_a_bool(blocking: int) -> None:
    store = HoldingStore()
    store.blocking = blocking
    assert twice(Verifier("github", secrets=SECRET, replay=store)) == [200, 409]


# -- the application and the middleware's options ----------------------------------------------------


def _tuple_headers_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", (("Content-Type", "text/plain"),))
    return [b"ok"]


def test_application_passing_its_headers_as_a_tuple() -> None:
    assert twice(Verifier("github", secrets=SECRET), _tuple_headers_app) == [200, 409]


@pytest.mark.parametrize("answer", [0, None, ""])
def test_route_check_answering_a_falsy_value(answer: object) -> None:
    guard = WSGIGuard(
        app, verifier=Verifier("github", secrets=SECRET), paths=["/other"], route_check=lambda environ: answer
    )
    # Not a protected route: passed through, unsigned.
    assert post(guard, b"plain", {}).status == 200


# -- environs that break PEP 3333 --------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"bytes", 7], ids=["bytes", "int"])
@pytest.mark.parametrize("key", ["CONTENT_LENGTH", "HTTP_X_GITHUB_DELIVERY", "HTTP_X_HUB_SIGNATURE_256"])
def test_environ_value_that_is_not_text(key: str, value: object) -> None:
    """PEP 3333 wants text; a middleware that breaks it gets 400, never a 500 (pure Python took bytes
    in CONTENT_LENGTH and the delivery id as if text, and answered 500 for the rest)."""
    guard = WSGIGuard(app, verifier=Verifier("github", secrets=SECRET))
    body, headers = delivery()
    headers.setdefault("X-GitHub-Delivery", "abc")
    environ = wsgi_environ("POST", "/webhook", body, headers)
    environ[key] = environ[key].encode() if value == b"bytes" else value
    assert call_wsgi(guard, environ).status == 400


# -- custom schemes ----------------------------------------------------------------------------------


class Custom(Scheme):
    """GitHub's header, parsed into a claim whose fields have the types ``shape`` says."""

    name = "custom"
    header = "X-Hub-Signature-256"

    def __init__(self, shape: str) -> None:
        self.shape = shape

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        return b""

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        return {}

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        signature = bytes.fromhex(headers["x-hub-signature-256"][7:])
        fields: dict[str, Any] = {"algorithm": "sha256", "signatures": (signature,), "prefix": b""}
        shape = self.shape
        if shape in SHAPES_OF_FIELDS:
            name, make = SHAPES_OF_FIELDS[shape]
            fields[name] = make(signature)
        elif shape == "namespace":
            return SimpleNamespace(**fields)  # type: ignore[return-value]
        elif shape == "namespace without prefix":
            return SimpleNamespace(algorithm="sha256", signatures=(signature,))  # type: ignore[return-value]
        elif shape == "plain tuple":
            return ("sha256", [signature], b"")  # type: ignore[return-value]
        elif shape == "tuple of six":
            return ("sha256", (signature,), b"", None, None, None)  # type: ignore[return-value]
        elif shape == "str subclass fields":
            fields["algorithm"], fields["message_id"] = Text("sha256"), Text("id")
        return SignatureClaim(**fields)


class Text(str):
    pass


#: shape -> (the claim's field, its value made from the signature's bytes)
SHAPES_OF_FIELDS: dict[str, tuple[str, Any]] = {
    "list of signatures": ("signatures", lambda sig: [sig]),
    "bytearray signature": ("signatures", lambda sig: (bytearray(sig),)),
    "memoryview signature": ("signatures", lambda sig: (memoryview(sig),)),
    "text signature": ("signatures", lambda sig: (sig.hex(),)),
    "signatures as bytes": ("signatures", lambda sig: sig),
    "whole float timestamp": ("timestamp", lambda sig: float(int(time.time()))),
    "float timestamp": ("timestamp", lambda sig: int(time.time()) + 0.5),
    "bool timestamp": ("timestamp", lambda sig: True),
    "int message id": ("message_id", lambda sig: 12345),
    "bytes message id": ("message_id", lambda sig: b"delivery-1"),
    "non-ascii bytes message id": ("message_id", lambda sig: b"\xff"),
    "no prefix": ("prefix", lambda sig: None),
    "empty text prefix": ("prefix", lambda sig: ""),
    "bytearray prefix": ("prefix", lambda sig: bytearray()),
    "text prefix": ("prefix", lambda sig: "v0:"),
    "unknown hash": ("algorithm", lambda sig: "no-such-hash"),
    "bytes hash name": ("algorithm", lambda sig: b"sha256"),
}


class TimestampedCustom(Custom):
    timestamped = True


#: shape -> the answers to one delivery and its replay, the same in both builds: a claim the guard
#: can read exactly is normalized (200, then 409), any other is SignatureMalformed (400), never a 500.
SHAPES = {
    "list of signatures": [200, 409],
    "bytearray signature": [200, 409],
    "memoryview signature": [200, 409],
    "text signature": [400, 400],
    "signatures as bytes": [400, 400],
    "whole float timestamp": [200, 409],
    "float timestamp": [400, 400],  # fractional: refused, not rounded (schemes/base.py, _timestamp)
    "bool timestamp": [400, 400],
    "int message id": [200, 409],  # its digits, as the replay key had it in pure Python
    "bytes message id": [200, 409],
    "non-ascii bytes message id": [400, 400],
    "no prefix": [200, 409],
    "empty text prefix": [200, 409],
    "bytearray prefix": [200, 409],
    "text prefix": [400, 400],  # not encoded: which encoding was signed is the scheme's to know
    "unknown hash": [400, 400],
    "bytes hash name": [400, 400],
    "namespace": [200, 409],
    "namespace without prefix": [400, 400],
    "plain tuple": [200, 409],
    "tuple of six": [400, 400],
    "str subclass fields": [200, 409],
}


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general path"])
@pytest.mark.parametrize("secrets", [[SECRET], [SECRET, "older"]], ids=["one secret", "two secrets"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_custom_scheme_claim_of_other_types(shape: str, secrets: list[str], lane: bool) -> None:
    """Was a 500 compiled (a list of signatures, a bytearray signature, a float timestamp, an int
    message id, no prefix) where pure Python answered 200: now normalized or refused alike."""
    assert twice(Verifier(Custom(shape), secrets=secrets), lane=lane) == SHAPES[shape]


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general path"])
def test_custom_timestamped_scheme_float_timestamp(lane: bool) -> None:
    assert twice(Verifier(TimestampedCustom("whole float timestamp"), secrets=SECRET), lane=lane) == [
        200,
        409,
    ]
    stale = Verifier(
        TimestampedCustom("whole float timestamp"), secrets=SECRET, clock=lambda: time.time() + 3600
    )
    assert twice(stale, lane=lane) == [400, 400]
    assert twice(Verifier(TimestampedCustom("float timestamp"), secrets=SECRET), lane=lane) == [400, 400]


def test_custom_claims_are_normalized_where_the_scheme_returns_them() -> None:
    """The verifier gets a well-typed SignatureClaim; a signed message id given as bytes is the
    text replay key; the scheme's own parse() answers the normalized claim too."""

    class SignedId(Custom):
        signs_message_id = True

    verifier = Verifier(SignedId("bytes message id"), secrets=SECRET)
    _, headers = delivery()
    claim = verifier.begin(headers).claim
    assert type(claim) is SignatureClaim
    assert claim.message_id == "delivery-1"
    assert verifier.replay_key(claim, b"") == "custom:id:delivery-1"
    parsed = Custom("memoryview signature").parse(lowered(headers))
    assert type(parsed) is SignatureClaim and type(parsed.signatures[0]) is bytes


@pytest.mark.parametrize(
    "scheme", [GenericScheme, GitHubScheme, SlackScheme, StandardWebhooksScheme, StripeScheme]
)
def test_built_in_schemes_parse_without_normalizing(scheme: type[Scheme]) -> None:
    """Our own schemes build well-typed claims: their parsers are not wrapped (no work per request),
    while a subclass's own parser is."""
    assert not hasattr(scheme.parse, "__wrapped__")
    assert not hasattr(scheme.parse_environ, "__wrapped__")

    class Sub(scheme):  # type: ignore[valid-type,misc]
        def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
            return super().parse(headers)

    assert hasattr(Sub.parse, "__wrapped__")


def test_memory_store_subclass_overrides_are_obeyed() -> None:
    """HELD: a MemoryReplayStore subclass's hold/commit are what the compiled verifier calls."""
    calls: list[str] = []

    class Recording(MemoryReplayStore):
        def hold(self, key: str, ttl: float) -> str | None:
            calls.append("hold")
            return super().hold(key, ttl)

        def commit(self, key: str, token: str, ttl: float) -> None:
            calls.append("commit")
            super().commit(key, token, ttl)

    assert twice(Verifier("github", secrets=SECRET, replay=Recording())) == [200, 409]
    assert calls == ["hold", "commit", "hold"]
