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
  timestamp, an int message id, or ``None`` for an empty prefix: 500 on every request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, Verifier, WSGIGuard
from hmacguard.schemes import SignatureClaim, sign_body
from hmacguard.schemes.base import Scheme
from tests._build import COMPILED

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


def twice(verifier: Verifier, application: Any = app) -> list[int]:
    """One delivery, then its replay: the statuses."""
    guard = WSGIGuard(application, verifier=verifier)
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
        if self.shape == "list of signatures":
            fields["signatures"] = [signature]
        elif self.shape == "bytearray signature":
            fields["signatures"] = (bytearray(signature),)
        elif self.shape == "float timestamp":
            fields["timestamp"] = time.time()
        elif self.shape == "int message id":
            fields["message_id"] = 12345
        elif self.shape == "no prefix":
            fields["prefix"] = None
        return SignatureClaim(**fields)


class TimestampedCustom(Custom):
    timestamped = True


SHAPES = ["list of signatures", "bytearray signature", "float timestamp", "int message id", "no prefix"]


@pytest.mark.xfail(COMPILED, strict=True, reason="BUG: a custom scheme's claim of other types is a 500")
@pytest.mark.parametrize("secrets", [[SECRET], [SECRET, "older"]], ids=["one secret", "two secrets"])
@pytest.mark.parametrize("shape", SHAPES)
def test_custom_scheme_claim_of_other_types(shape: str, secrets: list[str]) -> None:
    assert twice(Verifier(Custom(shape), secrets=secrets)) == [200, 409]


@pytest.mark.xfail(COMPILED, strict=True, reason="BUG: a custom scheme's float timestamp is a 500")
def test_custom_timestamped_scheme_float_timestamp() -> None:
    assert twice(Verifier(TimestampedCustom("float timestamp"), secrets=SECRET)) == [200, 409]
    stale = Verifier(TimestampedCustom("float timestamp"), secrets=SECRET, clock=lambda: time.time() + 3600)
    assert twice(stale) == [400, 400]


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
