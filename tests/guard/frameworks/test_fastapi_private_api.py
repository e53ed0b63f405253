"""Pins for what integrations/fastapi.py relies on in Starlette beyond its documented API:
``Request._receive``, the channel ``stream()`` / ``body()`` / ``json()`` read (the dependency points
it at the verified body, chunk by chunk, so a spooled body is streamed from its file and never
loaded whole by the guard); and ``build_middleware_stack``, which Starlette calls once, at the first
request, to build the stack ``install()`` wraps."""

# No ``from __future__ import annotations``: FastAPI resolves the endpoint's annotations at run time.
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from hmacguard import VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install
from hmacguard.schemes import sign_body

from .._inprocess import asgi_request

SECRET = "fastapi-private-api"


def test_starlette_request_reads_what_its_receive_channel_gives() -> None:
    import asyncio

    async def run() -> bytes:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"from the socket", "more_body": False}

        async def verified() -> dict[str, Any]:
            return {"type": "http.request", "body": b"verified", "more_body": False}

        request = Request({"type": "http", "method": "POST", "headers": []}, receive)
        request._receive = verified  # the name the dependency sets
        return await request.body()

    assert asyncio.run(run()) == b"verified"


def test_a_spooled_body_streams_to_the_endpoint_in_chunks() -> None:
    chunk_sizes: list[int] = []
    app = FastAPI()
    install(app)
    verified = VerifiedBodyDependency(
        verifier=Verifier("github", secrets=SECRET, spool_threshold=1024, chunk_size=4096)
    )

    @app.post("/webhook")
    async def webhook(request: Request, body: Annotated[VerifiedBody, Depends(verified)]) -> dict[str, Any]:
        async for piece in request.stream():
            if piece:
                chunk_sizes.append(len(piece))
        return {"spooled": body.file.spooled, "size": body.size}

    payload = b"x" * 20_000
    response = asgi_request(app, payload, sign_body("github", SECRET, payload))
    assert response.status == 200 and response.json() == {"spooled": True, "size": 20_000}
    assert sum(chunk_sizes) == 20_000 and max(chunk_sizes) <= 4096


def test_install_wraps_the_stack_starlette_builds_at_the_first_request() -> None:
    from hmacguard.integrations.fastapi import DeliverySettler

    app = FastAPI()
    install(app)
    install(app)  # twice: one settler
    assert app.middleware_stack is None

    @app.get("/")
    async def root() -> dict[str, str]:
        return {}

    asgi_request(app, b"", {}, method="GET", path="/")
    stack = app.middleware_stack
    assert isinstance(stack, DeliverySettler)
    assert not isinstance(stack.app, DeliverySettler)
    assert type(stack.app).__name__ == "ServerErrorMiddleware"


def test_install_after_the_first_request_is_refused() -> None:
    import pytest

    app = FastAPI()
    asgi_request(app, b"", {}, method="GET", path="/")
    with pytest.raises(RuntimeError, match="before the application starts"):
        install(app)
