"""Property tests: fuzzed headers are answered 4xx (signature headers: 400), never an exception or
a 500; any split of a body into chunks verifies the same, and the cap holds at every boundary."""

from __future__ import annotations

import gzip
import io
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmacguard import ASGIGuard, RateLimiter, Signer, Verifier, WSGIGuard
from tests.guard._inprocess import receive_body

from ._inprocess import asgi_request, call_wsgi, wsgi_environ

SECRETS = {"github": "g", "stripe": "s", "slack": "l", "standard-webhooks": "whsec_c2VjcmV0", "generic": "x"}
SIGNATURE_HEADERS = {
    "github": ["X-Hub-Signature-256", "X-GitHub-Delivery"],
    "stripe": ["Stripe-Signature"],
    "slack": ["X-Slack-Signature", "X-Slack-Request-Timestamp"],
    "standard-webhooks": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "generic": ["X-Signature"],
}
calls: list[bytes] = []


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    calls.append(environ["wsgi.input"].read())
    start_response("200 OK", [])
    return [b"ok"]


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    body = await receive_body(receive)
    calls.append(body)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


WSGI = {s: WSGIGuard(wsgi_app, verifier=Verifier(s, secrets=k, replay=None)) for s, k in SECRETS.items()}
# Every part on: the rate limiter reads Content-Length too, before the verifier does.
FULL = WSGIGuard(
    wsgi_app,
    verifier=Verifier("github", secrets="g", replay=None),
    rate_limiter=RateLimiter(
        limit="1000000/hour", bytes_limit="1000000000/hour", failure_limit="1000000/hour"
    ),
)
ASGI = {s: ASGIGuard(asgi_app, verifier=Verifier(s, secrets=k, replay=None)) for s, k in SECRETS.items()}
CAPPED = WSGIGuard(wsgi_app, verifier=Verifier("github", secrets="g", max_body=1000, replay=None))
CAPPED_ASGI = ASGIGuard(asgi_app, verifier=Verifier("github", secrets="g", max_body=1000, replay=None))

latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=200)
# Values shaped like the real ones, so fuzzing reaches past the first character check.
plausible = st.one_of(
    latin1,
    st.builds(lambda a, b: f"sha256={a}{b}", st.text("0123456789abcdef", max_size=70), latin1),
    st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.integers(-(10**13), 10**13),
        st.text("0123456789abcdefg", max_size=70),
    ),
    st.builds(lambda v: f"v0={v}", st.text("0123456789abcdef", max_size=70)),
    st.builds(lambda v: f"v1,{v}", st.text("ABCDEFabcdef0123456789+/=", max_size=50)),
    st.integers(-(10**13), 10**13).map(str),
)


def problem_ok(status: int, body: bytes, allowed: set[int]) -> None:
    assert status in allowed, (status, body)
    doc = json.loads(body)
    assert doc["status"] == status
    assert set(doc) <= {"type", "title", "status", "detail", "instance", "max_body", "retry_after"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(sorted(SECRETS)),
    values=st.lists(plausible, min_size=0, max_size=3),
    body=st.binary(max_size=100),
)
def test_fuzzed_signature_headers_get_400(scheme: str, values: list[str], body: bytes) -> None:
    headers = dict(zip(SIGNATURE_HEADERS[scheme], values))
    calls.clear()
    response = call_wsgi(WSGI[scheme], wsgi_environ("POST", "/webhook", body, headers))
    # A well-formed header carrying a wrong digest is 401; everything else about them is 400.
    problem_ok(response.status, response.body, {400, 401})
    assert calls == []
    headers_asgi = {k: v for k, v in headers.items()}
    asgi = asgi_request(ASGI[scheme], body, headers_asgi)
    problem_ok(asgi.status, asgi.body, {400, 401})
    assert asgi.status == response.status
    assert calls == []


@settings(max_examples=200, deadline=None)
@given(
    length=st.one_of(
        plausible, st.integers(0, 10**25).map(str), st.sampled_from(["\xb2", "\u0663", "1\xb9"])
    ),
    encoding=st.one_of(st.none(), latin1, st.sampled_from(["gzip", "br", "identity", "x-gzip, gzip"])),
    extra=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20), latin1, max_size=4
    ),
)
def test_fuzzed_framing_headers_never_escape(
    length: str, encoding: str | None, extra: dict[str, str]
) -> None:
    body = b'{"x": 1}'
    headers = {**extra, **Signer("github", secrets="g").sign(body)}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    for guard in (WSGI["github"], FULL):
        environ = wsgi_environ("POST", "/webhook", body, headers)
        environ["CONTENT_LENGTH"] = length
        calls.clear()
        response = call_wsgi(guard, environ)
        if response.status == 200:
            assert calls == [body]
        else:
            problem_ok(response.status, response.body, {400, 401, 413, 415})
            assert calls == []


class ShortReads(io.RawIOBase):
    """A wsgi.input that returns fewer bytes than asked, at the boundaries hypothesis picks."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.pos, self.sizes = data, 0, list(sizes)

    def read(self, size: int = -1) -> bytes:
        step = self.sizes.pop(0) if self.sizes else size
        n = max(1, min(size if size >= 0 else len(self.data), step))
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks)] or [b""]


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=5000),
    points=st.lists(st.integers(0, 5000), max_size=10),
    framing=st.sampled_from(["length", "chunked"]),
    gzipped=st.booleans(),
)
def test_any_chunking_verifies_the_same(body: bytes, points: list[int], framing: str, gzipped: bool) -> None:
    wire = gzip.compress(body) if gzipped else body
    headers = Signer("github", secrets="g").sign(wire)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    parts = cut(wire, points)
    calls.clear()
    stream = ShortReads(wire, [len(p) for p in parts])
    environ = wsgi_environ("POST", "/webhook", stream, headers, content_length=framing == "length")
    if framing == "length":
        environ["CONTENT_LENGTH"] = str(len(wire))
    assert call_wsgi(WSGI["github"], environ).status == 200
    asgi = asgi_request(ASGI["github"], parts, headers, content_length=framing == "length")
    assert asgi.status == 200
    assert calls == [body, body]


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 3000), points=st.lists(st.integers(0, 3000), max_size=10))
def test_the_cap_holds_at_every_boundary(size: int, points: list[int]) -> None:
    body = b"z" * size
    headers = Signer("github", secrets="g").sign(body)
    parts = cut(body, points)
    calls.clear()
    environ = wsgi_environ(
        "POST", "/webhook", ShortReads(body, [len(p) for p in parts]), headers, content_length=False
    )
    expected = 200 if size <= 1000 else 413
    assert call_wsgi(CAPPED, environ).status == expected
    assert asgi_request(CAPPED_ASGI, parts, headers, content_length=False).status == expected
    assert calls == ([body, body] if expected == 200 else [])
