"""FastAPI and Starlette: the ASGI middleware, and a dependency that yields the verified body.

The middleware guards paths before routing (works for any Starlette app)::

    from fastapi import Depends, FastAPI
    from hmacguard import ASGIGuard, Verifier
    from hmacguard.integrations.fastapi import VerifiedBodyDependency, add_problem_handler

    verifier = Verifier("github", secrets=[SECRET])
    app = FastAPI()
    app.add_middleware(ASGIGuard, verifier=verifier, paths=["/webhook"])
    install(app)
    verified = VerifiedBodyDependency(verifier=verifier)

    @app.post("/webhook")
    async def webhook(body: Annotated[VerifiedBody, Depends(verified)]):
        event = json.loads(body.getvalue())

Behind the middleware the dependency only hands over what the middleware verified. Without the
middleware it verifies by itself, reading the body from the ASGI ``receive`` under the same cap,
timeout, replay and rate limits; then ``await request.body()`` / ``request.json()`` /
``request.stream()`` read the verified bytes too (streamed from the verified body, never the raw
socket). Either way, do not declare a Pydantic body parameter on a protected route: FastAPI reads
such a body, unbounded, before any dependency runs -- parse ``body`` yourself. The dependency is
the routing decision (it runs for the routes that declare it, whatever the path spelling); the
middleware's matching is described in :mod:`hmacguard.integrations.asgi`.

Refusals raise :class:`GuardRejection`, an ``HTTPException`` carrying the status and headers
(``Retry-After``, ``Connection: close``); :func:`install` renders it as RFC 9457 problem+json, as
the middleware answers, and settles each delivery by the status the sender gets, from around
Starlette's whole stack (a catch-all exception handler's answer included): its replay key is
committed when the response is below 500 and released on a 5xx or an exception, so the sender's
retry is processed. Without :func:`install` FastAPI's default handler still sends the right status
and headers (the problem under ``detail``), and the dependency settles by itself: released when
the endpoint raises, committed as the first background task when it returns, so a failing task of
the endpoint's own cannot reopen it (a 5xx *returned* without raising is not seen).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's signature at run
# time, and for a callable instance it cannot resolve string annotations (no ``__globals__``).
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, Response
from starlette.responses import Response as StarletteResponse

from hmacguard.guard.decision import DecisionSink
from hmacguard.guard.policy import GUARD_KEY, HOLD_KEY, Accepted, Guard, Rejected
from hmacguard.guard.problem import PROBLEM_CONTENT_TYPE, Problem
from hmacguard.guard.ratelimit import RateLimiter
from hmacguard.guard.verifier import VerifiedBody, Verifier
from hmacguard.integrations.asgi import (
    OUTERMOST_KEY,
    VERIFIED_KEY,
    AnswerWatch,
    Receive,
    Scope,
    Send,
    again_from_outer,
    guard_receive,
    head_from_scope,
    replaying_receive,
    settle,
    vouched_in,
)

__all__ = ["DeliverySettler", "GuardRejection", "VerifiedBodyDependency", "add_problem_handler", "install"]

#: Scope key where :class:`DeliverySettler` collects the deliveries verified during a request.
PENDING_KEY = "hmacguard.pending"

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


def install(app: FastAPI) -> None:
    """The documented set-up: :func:`add_problem_handler`, and the :class:`DeliverySettler` around
    the whole middleware stack.

    Around it, not added with ``add_middleware``: Starlette runs a catch-all exception handler
    (``Exception`` or 500) in ServerErrorMiddleware, outside every added middleware, so only from
    there is the answer the sender gets seen -- a 200 from such a handler commits the delivery
    (an ``ASGIGuard`` added with ``add_middleware`` hands its delivery out when the application
    raises before answering, :data:`~hmacguard.integrations.asgi.OUTERMOST_KEY`). Starlette builds
    that stack once, at the first request, with ``build_middleware_stack``: the one Starlette
    method we wrap (tests/guard/frameworks/test_fastapi_private_api.py pins it).
    """
    if getattr(app, _INSTALLED, False):
        return
    if app.middleware_stack is not None:
        raise RuntimeError("install(app) must run before the application starts")
    add_problem_handler(app)
    build = app.build_middleware_stack

    def build_settled() -> Any:
        return DeliverySettler(build())

    app.build_middleware_stack = build_settled  # type: ignore[method-assign]
    setattr(app, _INSTALLED, True)


_INSTALLED = "_hmacguard_installed"


class DeliverySettler:
    """Pure ASGI middleware: settles the deliveries a dependency verified by the response status.

    :func:`install` puts it around Starlette's whole stack, so it sees the status the client gets,
    whatever exception handler produced it (an unhandled error becomes a 500 there): commit below
    500, release otherwise or when no response started. Settled as soon as the response is
    complete, so background tasks cannot change it. It also settles the deliveries an
    :class:`~hmacguard.ASGIGuard` inside hands out when its application raises before answering.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        pending: list[Accepted] = []
        scope[PENDING_KEY] = pending
        scope[OUTERMOST_KEY] = pending
        watch = AnswerWatch(send, pending)
        failed = True
        try:
            await self.app(scope, receive, watch.send)
            failed = False
        finally:
            await watch.finish(failed=failed)


def _read_verified_body(request: Request, body: VerifiedBody, chunk_size: int) -> None:
    """Make ``request.body()`` / ``.json()`` / ``.stream()`` read the verified body.

    The dependency took the body from the ASGI ``receive``; Starlette has no public way to give a
    request a new one, so its ``_receive`` (the channel ``stream()`` reads) is pointed at the
    verified body, chunk by chunk -- a spooled body is never loaded whole. This is the one private
    Starlette name we use; tests/guard/frameworks/test_fastapi_dependency.py pins it against the
    Starlette versions we support.
    """
    request._receive = replaying_receive(body, request.receive, chunk_size)


class VerifiedBodyDependency:
    """``Depends(VerifiedBodyDependency(verifier=...))`` yields the request's verified body.

    Keyword-only options as for :class:`~hmacguard.ASGIGuard` (no ``paths``: the routes that
    depend on it are the protected ones). The body is released when the request ends.
    """

    def __init__(
        self,
        *,
        verifier: Verifier,
        rate_limiter: RateLimiter | None = None,
        on_decision: DecisionSink | Iterable[DecisionSink] | None = None,
    ) -> None:
        self.guard = Guard(verifier, rate_limiter=rate_limiter, on_decision=on_decision)

    async def __call__(
        self, request: Request, response: Response, background: BackgroundTasks
    ) -> AsyncIterator[VerifiedBody]:
        vouched = vouched_in(self.guard, request.scope)
        if vouched is not None:
            yield vouched.body  # the middleware verified it, and settles and releases it
            return
        # Otherwise verified here -- also a body a middleware verified for another provider or
        # tenant (read again from the middleware's replay of it, under this verifier's secrets).
        reading, held = again_from_outer(request.scope, request.receive, self.guard.verifier.chunk_size)
        outcome = await guard_receive(self.guard, head_from_scope(request.scope), reading, held)
        if isinstance(outcome, Rejected):
            raise GuardRejection(outcome.problem)
        body = outcome.body
        pending = request.scope.get(PENDING_KEY)
        settled_by_middleware = isinstance(pending, list)
        if isinstance(pending, list):
            pending.append(outcome)
        else:
            # Without install(): committed as the first background task -- the endpoint returned
            # and its answer was sent -- before the endpoint's own tasks, whose failure must not
            # reopen a delivery that was processed (FastAPI closes this dependency after them).
            background.add_task(settle, outcome, True)
        raised = True
        try:
            request.scope[VERIFIED_KEY] = body
            request.scope[GUARD_KEY] = self.guard
            if outcome.delivery is not None:
                request.scope[HOLD_KEY] = (outcome.delivery, self.guard.verifier)
            _read_verified_body(request, body, self.guard.verifier.chunk_size)
            for name, value in outcome.headers:
                response.headers[name] = value
            yield body
            raised = False
        finally:
            if not settled_by_middleware:
                await settle(outcome, not raised)
            body.close()
