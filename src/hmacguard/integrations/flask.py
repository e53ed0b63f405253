"""Flask: the :class:`HmacGuard` extension and its :meth:`~HmacGuard.protected` view decorator.

::

    from flask import Flask, request
    from hmacguard import Verifier
    from hmacguard.integrations.flask import HmacGuard

    app = Flask(__name__)
    guard = HmacGuard(app, verifier=Verifier("github", secrets=[SECRET]))

    @app.post("/webhook")
    @guard.protected
    def webhook():
        event = request.get_json()      # the verified body, at most max_body bytes
        ...

Or protect by path (``HmacGuard(app, verifier=..., paths=["/hooks/*"])``), or describe the guard
as data in ``app.config["HMACGUARD"]`` (same keys as Django's setting, see
:mod:`hmacguard.integrations._settings`) and call ``guard.init_app(app)`` from an app factory.

The guard runs before the view reads anything: a ``Content-Length`` over the cap is refused with
413 before a body byte is read, a chunked body the moment it passes the cap, and every refusal is
an RFC 9457 problem+json answer. The view then sees only the verified body, through
``request.get_data()``, ``request.get_json()``, ``request.stream`` or ``request.form``;
:func:`verified_body` adds what verification learned. Rate-limit headers are added to the view's
response. The body is released when the request ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, Response, current_app, request

from hmacguard.errors import ConfigurationError
from hmacguard.guard.policy import Guard, Rejected
from hmacguard.integrations._settings import guard_options
from hmacguard.integrations.wsgi import VERIFIED_KEY, guard_environ, install_body

if TYPE_CHECKING:
    from hmacguard.guard.problem import Problem
    from hmacguard.guard.ratelimit import RateLimiter
    from hmacguard.guard.verifier import VerifiedBody, Verifier

__all__ = ["HmacGuard", "verified_body"]

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "hmacguard"
CONFIG_KEY = "HMACGUARD"
_HEADERS_KEY = "hmacguard.headers"
_DONE_KEY = "hmacguard.done"
# werkzeug caches these on first access; they must describe the verified body, not the raw one.
_CACHED = ("stream", "content_length", "_cached_data", "form", "files")


class _AppState:
    """Per-application guard (one extension instance may serve several apps, as factories do)."""

    def __init__(self, guard: Guard, by_path: bool) -> None:
        self.guard = guard
        self.by_path = by_path


def verified_body() -> VerifiedBody | None:
    """The current request's :class:`~hmacguard.VerifiedBody` (``None`` when not protected)."""
    found = request.environ.get(VERIFIED_KEY)
    return cast("VerifiedBody | None", found)


def _problem_response(problem: Problem) -> Response:
    response = current_app.response_class(problem.body, status=problem.status)
    # Replace, not add: the problem's Content-Type and Content-Length are the right ones.
    for name, value in problem.headers:
        response.headers[name] = value
    return response


class HmacGuard:
    """The Flask extension. Keyword-only options as for :class:`~hmacguard.WSGIGuard`.

    With ``verifier`` the guard is configured here; without it, ``init_app`` reads
    ``app.config["HMACGUARD"]``. ``paths``: requests to those paths are verified before routing's
    view runs (``None``, the default: only views decorated with :meth:`protected`).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier | None = None,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        self._options: dict[str, Any] | None = None
        if verifier is not None:
            self._options = {
                "verifier": verifier,
                "rate_limiter": rate_limiter,
                "paths": paths,
                "methods": methods,
            }
            Guard(**self._options)  # validate now, not at the first request
        elif rate_limiter is not None or paths is not None or methods is not None:
            raise ConfigurationError(
                "HmacGuard: pass verifier= with rate_limiter/paths/methods, or put them all in "
                f"app.config[{CONFIG_KEY!r}]"
            )
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the guard on ``app`` (the app-factory pattern)."""
        options = self._options
        if options is None:
            if CONFIG_KEY not in app.config:
                raise ConfigurationError(f"HmacGuard: give verifier= or set app.config[{CONFIG_KEY!r}]")
            options = guard_options(app.config[CONFIG_KEY], where=f"app.config[{CONFIG_KEY!r}]")
        app.extensions[EXTENSION] = _AppState(Guard(**options), options["paths"] is not None)
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        app.teardown_request(self._teardown_request)

    # -- the decorator --------------------------------------------------------------------------
    def protected(self, view: F) -> F:
        """Verify the request before this view runs; refusals never reach it."""

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refusal = self._verify(self._state().guard)
            if refusal is not None:
                return refusal
            return view(*args, **kwargs)

        return cast("F", wrapper)

    # -- hooks -----------------------------------------------------------------------------------
    def _state(self) -> _AppState:
        state = current_app.extensions.get(EXTENSION)
        if not isinstance(state, _AppState):
            raise ConfigurationError(
                "HmacGuard is not registered on this app: call HmacGuard(app) or init_app(app)"
            )
        return state

    def _before_request(self) -> Response | None:
        state = self._state()
        if not state.by_path or not state.guard.protects(request.method, request.path):
            return None
        return self._verify(state.guard)

    def _verify(self, guard: Guard) -> Response | None:
        environ = request.environ
        if environ.get(_DONE_KEY):
            return None  # protected by path and decorated: verified once already
        environ[_DONE_KEY] = True
        outcome = guard_environ(guard, environ)
        if isinstance(outcome, Rejected):
            return _problem_response(outcome.problem)
        install_body(environ, outcome.body)
        for name in _CACHED:
            request.__dict__.pop(name, None)
        environ[_HEADERS_KEY] = outcome.headers
        return None

    @staticmethod
    def _after_request(response: Response) -> Response:
        for name, value in request.environ.get(_HEADERS_KEY, ()):
            response.headers[name] = value
        return response

    @staticmethod
    def _teardown_request(exc: BaseException | None) -> None:
        body = request.environ.get(VERIFIED_KEY)
        if body is not None:
            body.close()
