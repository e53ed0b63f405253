"""A delivery signed during a secret roll is processed once, whichever of its signatures comes back.

Stripe signs each delivery once per active endpoint secret while a secret is rolled (one ``v1=`` for
each). The replay key was the digest under the secret that matched, so whoever holds one delivery
(a log, a proxy) could strip the new secret's ``v1`` and send it again: the old secret then matched,
the key differed, and the application processed the same delivery twice (200, 200, 409 where
200, 409, 409 is right). The key is now the content's digest under the current secret, whichever
signature matched. Attacked in-process on both of the guard's paths (the lane's one read, and the
general path a chunked body takes) and under real gunicorn (gthread) and uvicorn.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx
import pytest

from hmacguard import ASGIGuard, Verifier, WSGIGuard

from ._apps.rotation_guarded import NEW_SECRET, OLD_SECRET
from ._inprocess import Response, asgi_request, call_wsgi, wsgi_environ
from ._servers import gunicorn, uvicorn

BODY = b'{"id":"evt_rotation","type":"invoice.paid"}'


def v1(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def stripe_header(timestamp: int, body: bytes, *secrets: str) -> dict[str, str]:
    signatures = ",".join(f"v1={v1(secret, timestamp, body)}" for secret in secrets)
    return {"Stripe-Signature": f"t={timestamp},{signatures}", "Content-Type": "application/json"}


#: The delivery as Stripe sends it mid-roll, then the same delivery cut down to each signature and
#: with the two reordered: one content, one timestamp -- one delivery.
SPELLINGS: list[tuple[str, ...]] = [
    (NEW_SECRET, OLD_SECRET),
    (OLD_SECRET,),
    (NEW_SECRET,),
    (OLD_SECRET, NEW_SECRET),
]


def _expected() -> list[int]:
    return [200] + [409] * (len(SPELLINGS) - 1)


def _counting_wsgi() -> tuple[WSGIGuard, list[int]]:
    processed: list[int] = []

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        environ["wsgi.input"].read()  # type: ignore[attr-defined]
        processed.append(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    verifier = Verifier("stripe", secrets=[NEW_SECRET, OLD_SECRET])
    return WSGIGuard(app, verifier=verifier, paths=["/webhook"]), processed


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_wsgi_processes_a_rolled_delivery_once_whichever_signature_comes_back(framing: str) -> None:
    guard, processed = _counting_wsgi()
    timestamp = int(time.time())
    statuses = []
    for secrets in SPELLINGS:
        environ = wsgi_environ(
            "POST", "/webhook", BODY, stripe_header(timestamp, BODY, *secrets),
            content_length=framing == "content-length",
        )  # fmt: skip
        statuses.append(call_wsgi(guard, environ).status)
    assert statuses == _expected()
    assert len(processed) == 1


@pytest.mark.parametrize("chunks", [[BODY], [BODY[:10], BODY[10:]]], ids=["one-message", "two-messages"])
def test_asgi_processes_a_rolled_delivery_once_whichever_signature_comes_back(chunks: list[bytes]) -> None:
    processed: list[int] = []

    async def app(scope: object, receive: Callable[..., object], send: Callable[..., object]) -> None:
        more = True
        while more:
            message = await receive()  # type: ignore[misc]
            more = message.get("more_body", False)
        processed.append(1)
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[misc]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[misc]

    guard = ASGIGuard(app, verifier=Verifier("stripe", secrets=[NEW_SECRET, OLD_SECRET]), paths=["/webhook"])
    timestamp = int(time.time())
    responses: list[Response] = [
        asgi_request(guard, chunks, stripe_header(timestamp, BODY, *secrets)) for secrets in SPELLINGS
    ]
    assert [r.status for r in responses] == _expected()
    assert len(processed) == 1


def test_a_delivery_signed_with_the_old_secret_alone_is_still_accepted_once() -> None:
    """The fix keys by the current secret's digest even when only the old secret signed: a sender
    that has not rolled yet is served, and its delivery is not accepted twice."""
    guard, processed = _counting_wsgi()
    timestamp = int(time.time())
    headers = stripe_header(timestamp, BODY, OLD_SECRET)
    statuses = [call_wsgi(guard, wsgi_environ("POST", "/webhook", BODY, headers)).status for _ in range(2)]
    assert statuses == [200, 409]
    assert len(processed) == 1


def _send_spellings(base_url: str) -> list[int]:
    timestamp = int(time.time())
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return [
            client.post(
                "/webhook", content=BODY, headers=stripe_header(timestamp, BODY, *secrets)
            ).status_code
            for secrets in SPELLINGS
        ]


@pytest.mark.slow
def test_gunicorn_gthread_processes_a_rolled_delivery_once() -> None:
    with gunicorn(
        "tests.guard._apps.rotation_guarded:wsgi", {}, workers=1, worker_class="gthread", threads=4
    ) as server:
        assert _send_spellings(server.base_url) == _expected()


@pytest.mark.slow
def test_uvicorn_processes_a_rolled_delivery_once() -> None:
    with uvicorn("tests.guard._apps.rotation_guarded:asgi") as server:
        assert _send_spellings(server.base_url) == _expected()
