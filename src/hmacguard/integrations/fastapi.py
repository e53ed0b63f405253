"""FastAPI and Starlette: the ASGI middleware, and a dependency that yields the verified body.

The middleware guards paths before routing (works for any Starlette app)::

    from fastapi import Depends, FastAPI
    from hmacguard import ASGIGuard, Verifier
    from hmacguard.integrations.fastapi import VerifiedBodyDependency, add_problem_handler

    verifier = Verifier("github", secrets=[SECRET])
    app = FastAPI()
    app.add_middleware(ASGIGuard, verifier=verifier, paths=["/webhook"])
    add_problem_handler(app)
    verified = VerifiedBodyDependency(verifier=verifier)

    @app.post("/webhook")
    async def webhook(body: Annotated[VerifiedBody, Depends(verified)]):
        event = json.loads(body.getvalue())

Behind the middleware the dependency only hands over what the middleware verified. Without the
middleware it verifies by itself, reading the body from the ASGI ``receive`` under the same cap,
timeout, replay and rate limits; then ``await request.body()`` / ``request.json()`` return the
verified bytes too. Either way, do not declare a Pydantic body parameter on a protected route:
FastAPI reads such a body, unbounded, before any dependency runs -- parse ``body`` yourself.

Refusals raise :class:`GuardRejection`, an ``HTTPException`` carrying the status and headers
(``Retry-After``, ``Connection: close``); :func:`add_problem_handler` renders it as RFC 9457
problem+json, as the middleware answers. Without that handler FastAPI's default one still sends the
right status and headers, with the problem under ``detail``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's signature at run
# time, and for a callable instance it cannot resolve string annotations (no ``__globals__``).
import json
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Request, Response
from starlette.responses import Response as StarletteResponse

from hmacguard.guard.policy import Guard, Rejected
from hmacguard.guard.problem import PROBLEM_CONTENT_TYPE, Problem
from hmacguard.guard.ratelimit import RateLimiter
from hmacguard.guard.verifier import VerifiedBody, Verifier
from hmacguard.integrations.asgi import VERIFIED_KEY, guard_receive, head_from_scope

__all__ = ["GuardRejection", "VerifiedBodyDependency", "add_problem_handler"]

# Rendered by the response itself; the rest of the problem's headers travel on the exception.
_OWN_HEADERS = frozenset({"content-type", "content-length"})


class GuardRejection(HTTPException):
    """A refused request, as FastAPI's exception handling expects it."""

    def __init__(self, problem: Problem) -> None:
        headers = {n: v for n, v in problem.headers if n.lower() not in _OWN_HEADERS}
        super().__init__(problem.status, detail=json.loads(problem.body), headers=headers)
        self.problem = problem


async def _problem_handler(request: Request, exc: Exception) -> StarletteResponse:
    if not isinstance(exc, GuardRejection):  # pragma: no cover - registered for that class only
        raise exc
    problem = exc.problem
    return StarletteResponse(
        problem.body,
        status_code=problem.status,
        headers=dict(problem.headers),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def add_problem_handler(app: FastAPI) -> None:
    """Answer :class:`GuardRejection` with problem+json (as :class:`~hmacguard.ASGIGuard` does)."""
    app.add_exception_handler(GuardRejection, _problem_handler)


class VerifiedBodyDependency:
    """``Depends(VerifiedBodyDependency(verifier=...))`` yields the request's verified body.

    Keyword-only options as for :class:`~hmacguard.ASGIGuard` (no ``paths``: the routes that
    depend on it are the protected ones). The body is released when the request ends.
    """

    def __init__(self, *, verifier: Verifier, rate_limiter: RateLimiter | None = None) -> None:
        self.guard = Guard(verifier, rate_limiter=rate_limiter)

    async def __call__(self, request: Request, response: Response) -> AsyncIterator[VerifiedBody]:
        already: VerifiedBody | None = request.scope.get(VERIFIED_KEY)
        if already is not None:
            yield already  # the middleware verified it, and releases it
            return
        outcome = await guard_receive(self.guard, head_from_scope(request.scope), request.receive)
        if isinstance(outcome, Rejected):
            raise GuardRejection(outcome.problem)
        body = outcome.body
        try:
            request.scope[VERIFIED_KEY] = body
            # The body was taken from ``receive``; Starlette's cache (the attribute its own
            # ``body()`` fills) makes request.body() and request.json() see the verified bytes
            # instead of waiting on a receive channel that has nothing more to give.
            request._body = body.getvalue()
            for name, value in outcome.headers:
                response.headers[name] = value
            yield body
        finally:
            body.close()
