"""The FastAPI applications of the matrix (no ``from __future__ import annotations``: FastAPI reads the
endpoints' annotations at run time, and string annotations of locals cannot be resolved)."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from hmacguard import ASGIGuard, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

from .matrix import OTHER_MARK, PROTECTED_MARK, VIEW_HEADER

METHODS = ["GET", "POST", "PUT"]


def fastapi_app(*, verifier: Verifier, dependency: bool, prefix: str | None) -> Any:
    """The guarded application: the dependency alone, or ASGIGuard as FastAPI middleware; under
    ``prefix``, mounted in an outer application with ``app.mount``."""
    app = FastAPI()
    install(app)
    if dependency:
        verified = VerifiedBodyDependency(verifier=verifier)

        @app.api_route("/webhook", methods=METHODS)
        async def webhook(body: Annotated[VerifiedBody, Depends(verified)]) -> PlainTextResponse:
            return PlainTextResponse(f"{PROTECTED_MARK}\n", headers={VIEW_HEADER: "protected"})

    else:
        app.add_middleware(ASGIGuard, verifier=verifier, paths=["/webhook"])

        @app.api_route("/webhook", methods=METHODS)
        async def webhook_plain(request: Request) -> PlainTextResponse:
            await request.body()
            return PlainTextResponse(f"{PROTECTED_MARK}\n", headers={VIEW_HEADER: "protected"})

    @app.api_route("/other", methods=METHODS)
    async def other(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse(f"{OTHER_MARK}\n", headers={VIEW_HEADER: "other"})

    if prefix is None:
        return app
    outer = FastAPI()
    outer.mount(prefix, app)
    return outer
