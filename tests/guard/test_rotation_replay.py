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
from typing import Any

import httpx
import pytest

from hmacguard import ASGIGuard, MemoryReplayStore, Verifier, WSGIGuard
from hmacguard.schemes import sign_body

from ._apps.rotation_guarded import NEW_SECRET, OLD_SECRET
from ._inprocess import Response, asgi_request, call_wsgi, wsgi_environ
from ._nesting import Seen, nested, post
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


# -- the receiver's own rotation: earlier keys ---------------------------------------------------------


def _github_delivery(secret: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"rotation": %d}' % time.time_ns()
    return body, sign_body("github", secret, body)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_delivery_processed_before_the_receiver_put_a_new_secret_first_stays_refused(framing: str) -> None:
    """GitHub: processed under [old], then the receiver runs [new, old]: the key under the current
    secret is new, but the content's key under the old secret is taken -- 409 (the lane and the
    general path, one store shared as by two workers of a rolling deploy)."""
    store = MemoryReplayStore()
    processed: list[bytes] = []

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        processed.append(environ["wsgi.input"].read())  # type: ignore[attr-defined]
        start_response("200 OK", [])
        return [b"ok"]

    before = WSGIGuard(app, verifier=Verifier("github", secrets=[OLD_SECRET], replay=store))
    after = WSGIGuard(app, verifier=Verifier("github", secrets=[NEW_SECRET, OLD_SECRET], replay=store))
    body, headers = _github_delivery(OLD_SECRET)
    chunked = framing == "chunked"
    first = call_wsgi(before, wsgi_environ("POST", "/webhook", body, headers, content_length=not chunked))
    again = call_wsgi(after, wsgi_environ("POST", "/webhook", body, headers, content_length=not chunked))
    assert (first.status, again.status) == (200, 409)
    assert processed == [body]
    # Refused: the new key the second guard held is released, not kept.
    assert len(store) == 1


def test_a_copy_still_being_processed_under_the_old_order_refuses_the_new_one() -> None:
    """A rolling deploy: worker A ([old]) holds the delivery while its handler runs; the same copy
    reaches worker B ([new, old]) meanwhile: B's probe finds the old key held -- 409, and B's own
    hold of the new key is released (not left pending for the sender's retries)."""
    store = MemoryReplayStore()
    before = Verifier("github", secrets=[OLD_SECRET], replay=store)
    after = Verifier("github", secrets=[NEW_SECRET, OLD_SECRET], replay=store)
    body, headers = _github_delivery(OLD_SECRET)
    held = before.hold(_verified(before, headers, body))
    assert held is not None
    with pytest.raises(Exception, match="already received"):
        after.hold(_verified(after, headers, body))
    held.settle(False)  # worker A's handler failed: the sender's retry must be processed by B
    retry = after.hold(_verified(after, headers, body))
    assert retry is not None
    retry.settle(True)
    assert len(store) == 2  # committed under both of B's secrets: A's order finds it too


def _verified(verifier: Verifier, headers: dict[str, str], body: bytes) -> Any:
    verification = verifier.begin(headers)
    verification.feed(body)
    verification.feed(b"")
    verification.finish()
    return verification


def test_a_reserve_only_store_keeps_every_key_of_the_content() -> None:
    """verify() reserves for good (no holds): the current key and the earlier ones."""
    store = MemoryReplayStore()
    before = Verifier("github", secrets=[OLD_SECRET], replay=store)
    after = Verifier("github", secrets=[NEW_SECRET, OLD_SECRET], replay=store)
    body, headers = _github_delivery(OLD_SECRET)
    before.verify(headers, body)
    with pytest.raises(Exception, match="already received"):
        after.verify(headers, body)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_nested_guards_with_swapped_secrets_take_the_outer_hold_for_an_earlier_key(kind: str) -> None:
    """Outer [A, B] holds the content's A key; inner [B, A] holds its B key and finds the A key held
    -- by the outer guard, for this very request: no replay. Processed once; the replay 409."""
    store = MemoryReplayStore()
    seen = Seen()
    outer = Verifier("github", secrets=[NEW_SECRET, OLD_SECRET], replay=store)
    inner = Verifier("github", secrets=[OLD_SECRET, NEW_SECRET], replay=store)
    app = nested(kind, outer, inner, seen)
    body, headers = _github_delivery(OLD_SECRET)
    assert post(kind, app, body, headers) == 200
    assert post(kind, app, body, headers) == 409
    assert [b for b, _ in seen] == [body]


def test_one_secret_probes_nothing() -> None:
    verifier = Verifier("github", secrets=[OLD_SECRET])
    body, headers = _github_delivery(OLD_SECRET)
    assert _verified(verifier, headers, body).earlier_replay_keys == ()


def test_a_signed_message_id_is_one_key_whatever_the_secret() -> None:
    verifier = Verifier("standard-webhooks", secrets=["whsec_" + "bmV3" * 6, "whsec_" + "b2xk" * 6])
    from hmacguard import Signer

    headers = Signer("standard-webhooks", secrets="whsec_" + "b2xk" * 6).sign(BODY, message_id="msg_1")
    verification = _verified(verifier, headers, BODY)
    assert verification.replay_key == "standard-webhooks:id:msg_1"
    assert verification.earlier_replay_keys == ()


@pytest.mark.slow
def test_a_rolling_deploy_of_a_rotation_under_gunicorn_on_one_redis() -> None:
    """Two gunicorn servers on one redis-server, as the old and the new release of a rotation: a
    delivery processed by the old one ([old]) is refused by the new one ([new, old]), and one the
    new one processed is refused by the old one."""
    from ._servers import redis_server

    app = "tests.guard._apps.rotation_guarded:github_rolling"
    with redis_server() as redis:
        old_env = {"HMACGUARD_TEST_SECRETS": OLD_SECRET, "HMACGUARD_TEST_REDIS": redis.url}
        new_env = {"HMACGUARD_TEST_SECRETS": f"{NEW_SECRET},{OLD_SECRET}", "HMACGUARD_TEST_REDIS": redis.url}
        with gunicorn(app, old_env, workers=1) as old, gunicorn(app, new_env, workers=1) as new:
            for first, then in ((old, new), (new, old)):
                body, headers = _github_delivery(OLD_SECRET)
                answers = [
                    httpx.post(
                        server.base_url + "/webhook", content=body, headers=headers, timeout=10
                    ).status_code
                    for server in (first, then)
                ]
                assert answers == [200, 409]
