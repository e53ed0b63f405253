"""Review of the decisions (issue 14): what an attacker can make the guard log or count.

The promise: never a secret, a signature or a body byte in a record or a label; a raising sink
never changes the answer; label values bounded whatever the requests.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmacguard import ASGIGuard, Decision, RateLimiter, Signer, Verifier, WSGIGuard, errors
from hmacguard.guard.decision import ACCEPTED

from ._inprocess import asgi_request, wsgi_request

SECRET = "review-observability-secret"
signer = Signer("github", secrets=SECRET)


def ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


async def ok_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("driver", ["wsgi", "asgi"])
def test_a_path_cannot_forge_log_lines(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    """Servers percent-decode the path (``%0A`` is a newline in PATH_INFO and scope["path"]); a
    guard protecting every path put it in the DEBUG message as is, so one request wrote a second,
    forged line into a plain-text log."""
    forged = "/x\nhmacguard accepted github /webhook client=ip:10.0.0.1 bytes=2 key=0 in 0.1 ms"
    verifier = Verifier("github", secrets=SECRET)
    with caplog.at_level(logging.DEBUG, logger="hmacguard"):
        if driver == "wsgi":
            wsgi_request(WSGIGuard(ok_app, verifier=verifier), b"{}", {}, path=forged)
        else:
            asgi_request(ASGIGuard(ok_asgi, verifier=verifier), b"{}", {}, path=forged)
    messages = [r.getMessage() for r in caplog.records if r.name == "hmacguard"]
    assert len(messages) == 1
    assert "\n" not in messages[0] and "\r" not in messages[0], messages[0]
    assert caplog.records[0].path == forged  # type: ignore[attr-defined]  # the field keeps it as is


#: Every refusal the guard can make, by its problem slug: the bounded set of outcome label values.
SLUGS = {
    cls.slug
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.RequestRejected) and cls is not errors.RequestRejected
} | {ACCEPTED, "client-disconnected"}


_header_values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["X-Hub-Signature-256", "Content-Length", "Content-Encoding", "X-Key-Id", "X-GitHub-Delivery"]
        ),
        _header_values,
        max_size=5,
    ),
    body=st.binary(max_size=64),
    path=st.text(max_size=20),
)
def test_hostile_requests_create_no_new_label_values_and_leak_nothing(
    headers: dict[str, str], body: bytes, path: str
) -> None:
    seen: list[Decision] = []
    limiter = RateLimiter(limit="1000/minute", failure_limit="1000/minute", key="header:X-Key-Id")
    guard = WSGIGuard(
        ok_app, verifier=Verifier("github", secrets=SECRET), rate_limiter=limiter, on_decision=seen.append
    )
    try:
        wsgi_request(guard, body, headers, path="/" + path)
    except (UnicodeError, ValueError):
        return  # not a request a server would make
    for decision in seen:
        assert decision.outcome in SLUGS
        assert decision.scheme == "github"
        assert decision.key_index in (None, 0)
        text = decision.message() + repr(decision.to_dict())
        assert SECRET not in text
        # What the client chose to show (its path, its key id) may be shown; nothing else it sent.
        shown = "/" + path + headers.get("X-Key-Id", "")
        signature = headers.get("X-Hub-Signature-256", "")
        if len(signature) > 8 and signature not in shown:
            assert signature not in text
        raw = repr(body)[2:-1]
        if len(body) >= 8 and raw not in shown:
            assert raw not in text
