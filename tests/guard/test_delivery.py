"""Delivery semantics: a delivery the application did not process stays deliverable.

Providers retry a delivery when the receiver fails (5xx, an exception, a timeout). The replay key is
held while the application runs and only committed when it answers below 500; an answer of 500, an
exception, or no answer at all releases it, so the retry -- the same headers, the same body -- is
processed. A replay of a delivery that *was* processed still gets 409. Every scheme, the memory and
the Redis store, every integration that runs the application itself.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoint's annotations at run time.
import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.responses import PlainTextResponse
from flask import Flask, request

from hmacguard import (
    ASGIGuard,
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    Signer,
    VerifiedBody,
    Verifier,
    WSGIGuard,
)
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install
from hmacguard.integrations.flask import HmacGuard

from ._inprocess import asgi_request, asgi_status, wsgi_request
from ._servers import RedisServer, redis_server

SECRETS = {
    "github": "delivery-secret",
    "stripe": "whsec_delivery_stripe",
    "slack": "delivery-slack-secret",
    "standard-webhooks": "whsec_ZGVsaXZlcnktdGVzdC1zZWNyZXQ=",
}
SCHEMES = sorted(SECRETS)


# -- the application under the guard: what it does is chosen per request ------------------------
def _outcome(value: str | None) -> int:
    if value == "raise":
        raise RuntimeError("the database blinked")
    return 500 if value == "500" else 200


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = _outcome(environ.get("HTTP_X_OUTCOME"))
    environ["wsgi.input"].read()
    start_response(f"{status} X", [("Content-Type", "text/plain")])
    return [b"processed" if status < 500 else b"failed"]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = dict(scope["headers"])
    status = _outcome(headers.get(b"x-outcome", b"").decode() or None)
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"processed"})


def flask_app(verifier: Verifier) -> Flask:
    app = Flask(__name__)
    guard = HmacGuard(app, verifier=verifier)

    @app.post("/webhook")
    @guard.protected
    def webhook() -> tuple[str, int]:
        request.get_data()
        status = _outcome(request.headers.get("X-Outcome"))
        return "processed", status

    return app


def fastapi_app(verifier: Verifier) -> FastAPI:
    app = FastAPI()
    install(app)
    verified = VerifiedBodyDependency(verifier=verifier)

    @app.post("/webhook")
    async def webhook(
        body: Annotated[VerifiedBody, Depends(verified)],
        x_outcome: Annotated[str | None, Header()] = None,
    ) -> PlainTextResponse:
        return PlainTextResponse("processed", status_code=_outcome(x_outcome))

    return app


# -- drivers: one request, as a server would make it --------------------------------------------
Send = Callable[[bytes, dict[str, str], str], int]


def _wsgi_sender(app: Any) -> Send:
    def send(body: bytes, headers: dict[str, str], outcome: str) -> int:
        try:
            return wsgi_request(app, body, {**headers, "X-Outcome": outcome}).status
        except RuntimeError:
            return 500  # what a server answers when the application raises

    return send


def _asgi_sender(app: Any) -> Send:
    def send(body: bytes, headers: dict[str, str], outcome: str) -> int:
        try:
            return asgi_request(app, body, {**headers, "X-Outcome": outcome}).status
        except RuntimeError:
            return 500  # what a server answers when the application raises

    return send


INTEGRATIONS: dict[str, Callable[[Verifier], Send]] = {
    "wsgi": lambda v: _wsgi_sender(WSGIGuard(wsgi_app, verifier=v, paths=["/webhook"])),
    "asgi": lambda v: _asgi_sender(ASGIGuard(asgi_app, verifier=v, paths=["/webhook"])),
    "flask": lambda v: _wsgi_sender(flask_app(v)),
    "fastapi-dependency": lambda v: _asgi_sender(fastapi_app(v)),
}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _store(kind: str, redis: RedisServer | None) -> ReplayStore:
    if kind == "memory":
        return MemoryReplayStore()
    assert redis is not None
    return RedisReplayStore(redis.url, prefix=f"test-delivery:{uuid.uuid4().hex}:")


@pytest.mark.parametrize("store_kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.parametrize("integration", sorted(INTEGRATIONS))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_failed_delivery_is_retried_and_a_processed_one_is_never_processed_twice(
    scheme: str, integration: str, store_kind: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis") if store_kind == "redis" else None
    verifier = Verifier(scheme, secrets=SECRETS[scheme], replay=_store(store_kind, server))
    send = INTEGRATIONS[integration](verifier)
    signer = Signer(scheme, secrets=SECRETS[scheme])
    body = b'{"event": "%s"}' % uuid.uuid4().hex.encode()
    headers = signer.sign(body)

    # The application answers 500: the provider retries the very same delivery, which is processed.
    assert send(body, headers, "500") == 500
    # It raises (the framework answers 500, or the server does): the retry is processed again.
    assert send(body, headers, "raise") == 500
    assert send(body, headers, "ok") == 200
    # Processed once: a replay, however the application would answer it, is refused.
    assert send(body, headers, "ok") == 409
    assert send(body, headers, "500") == 409


def test_a_duplicate_arriving_while_the_first_is_processed_is_refused() -> None:
    """Two deliveries of one id at once: one is processed, the other refused, none twice."""
    verifier = Verifier("standard-webhooks", secrets=SECRETS["standard-webhooks"])
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ASGIGuard(slow_app, verifier=verifier)
    body = b'{"n": 1}'
    headers = [
        (k.lower().encode(), v.encode())
        for k, v in Signer("standard-webhooks", secrets=SECRETS["standard-webhooks"]).sign(body).items()
    ]
    headers.append((b"content-length", str(len(body)).encode()))

    async def one() -> int:
        return await asgi_status(guard, body, headers)

    async def both() -> list[int]:
        first = asyncio.create_task(one())
        await started.wait()
        second = await one()  # refused while the first is still being processed
        release.set()
        return [await first, second]

    assert asyncio.run(both()) == [200, 409]


def test_a_client_leaving_before_the_response_releases_the_delivery() -> None:
    """The application returns without answering (it saw the disconnect): the retry is processed."""
    verifier = Verifier("github", secrets=SECRETS["github"])
    answered = {"n": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            continue
        if answered["n"]:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    guard = ASGIGuard(app, verifier=verifier)
    body = b'{"n": 2}'
    headers = Signer("github", secrets=SECRETS["github"]).sign(body)
    # The guard replays the body, then the server reports the client gone; the app answers nothing.
    with pytest.raises(StopIteration):
        asgi_request(guard, body, headers, disconnect_after=1)
    answered["n"] = 1
    assert asgi_request(guard, body, headers, disconnect_after=1).status == 200
    assert asgi_request(guard, body, headers, disconnect_after=1).status == 409


def test_a_hold_lapses_when_its_worker_dies() -> None:
    """A worker killed mid-request never settles: the hold lapses after the pending time."""
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0])
    token = store.hold("k", 60)
    assert token is not None
    assert store.hold("k", 60) is None  # in processing: a duplicate is refused
    now[0] += 61
    retry = store.hold("k", 60)
    assert retry is not None
    # The dead worker's late release (had it come back) cannot free somebody else's hold.
    store.release("k", token)
    assert store.hold("k", 60) is None
    store.commit("k", retry, 3600)
    now[0] += 3000
    assert store.hold("k", 60) is None  # committed for the full TTL
    now[0] += 601
    assert store.hold("k", 60) is not None


@pytest.mark.redis
def test_redis_holds_are_token_guarded(redis: RedisServer) -> None:
    store = RedisReplayStore(redis.url, prefix=f"test-hold:{uuid.uuid4().hex}:")
    token = store.hold("k", 0.3)
    assert token is not None and store.hold("k", 0.3) is None
    store.release("k", "somebody-else")
    assert store.hold("k", 0.3) is None
    store.release("k", token)
    again = store.hold("k", 0.3)
    assert again is not None
    store.commit("k", again, 60)
    import time

    time.sleep(0.5)  # past the pending time: committed keys stay
    assert store.hold("k", 0.3) is None
    assert store.reserve("k", 60) is False
