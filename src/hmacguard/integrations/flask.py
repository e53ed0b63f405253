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

How it decides, and when. The extension wraps ``app.wsgi_app``, so verification happens before Flask
builds the request context: no ``before_request`` hook, ``url_value_preprocessor`` or other
extension can read an unverified body first. It routes the request with Flask's own URL adapter
(``app.create_url_adapter``) and protects it when

- the matched view is decorated with :meth:`protected` (on the app or a blueprint), or
- ``paths`` is set and any spelling of the path matches (:mod:`hmacguard.guard.paths`: repeated,
  leading and trailing slashes, percent-encoding, dot segments, case), or the matched view is one
  that a protected path's rule leads to (an endpoint registered under several rules is protected
  under all of them).

A middleware that ``init_app`` finds already in ``app.wsgi_app`` runs inside the gate, and may change
the path Flask routes on (the well-known recipe ``app.wsgi_app = DispatcherMiddleware(..., {"/prefix":
app.wsgi_app})`` does). So the extension also checks, as the first ``before_request`` function, every
request the gate let through: one that Flask routed to a protected view (by either rule above, on the
path Flask saw) is verified there, before any other ``before_request`` function or the view runs.

A ``Content-Length`` over the cap is refused with 413 before a body byte is read, a chunked body the
moment it passes the cap, and every refusal is an RFC 9457 problem+json answer. The view then sees
only the verified body, through ``request.get_data()``, ``request.get_json()``,
``request.stream`` or ``request.form``; :func:`verified_body` adds what verification learned.
Rate-limit headers are added to the response. The delivery's replay key is committed when the
response is below 500 and released otherwise, so the sender's retry is processed; the body is
released when the response ends.

The decorator's limits. The decorator alone cannot protect anything before Flask calls the view; it
is the extension (``HmacGuard(app)`` or ``init_app``) that verifies early. A decorated view called
directly from another view (not through routing) is verified at that call, as a last line of
defence; a body the calling view already read makes that verification fail (fail closed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, Response, after_this_request, current_app, request
from werkzeug.exceptions import HTTPException

from hmacguard.errors import ConfigurationError, RequestRejected
from hmacguard.guard.paths import ProtectedPaths
from hmacguard.guard.policy import Guard, Rejected, processed
from hmacguard.integrations._settings import guard_options
from hmacguard.integrations.wsgi import (
    VERIFIED_KEY,
    call_verified,
    guard_environ,
    install_body,
    request_paths,
    send_rejection,
)

if TYPE_CHECKING:
    from hmacguard.guard.decision import DecisionSink
    from hmacguard.guard.problem import Problem
    from hmacguard.guard.ratelimit import RateLimiter
    from hmacguard.guard.verifier import VerifiedBody, Verifier
    from hmacguard.integrations.wsgi import StartResponse, WSGIApp

__all__ = ["HmacGuard", "verified_body"]

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "hmacguard"
CONFIG_KEY = "HMACGUARD"
_DONE_KEY = "hmacguard.done"
#: Attribute set on views wrapped by :meth:`HmacGuard.protected`.
_MARK = "__hmacguard_protected__"


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


def _forget_cached_body(flask_request: Any) -> None:
    """Drop what Werkzeug cached about the raw body, so the view reads the verified one.

    Only the last-line-of-defence path (a decorated view called directly, bypassing the gate)
    needs this. Werkzeug offers no public way to re-point a request at a new ``wsgi.input`` once
    ``stream``, ``content_length``, ``form``, ``files`` or the data cache were computed; these are
    its ``cached_property`` names, pinned by tests/guard/frameworks/test_flask_extension.py against
    the Werkzeug versions we support.
    """
    for name in ("stream", "content_length", "_cached_data", "form", "files"):
        flask_request.__dict__.pop(name, None)


class _AppState:
    """Per-application guard (one extension instance may serve several apps, as factories do)."""

    def __init__(self, guard: Guard, paths: Iterable[str] | None) -> None:
        self.guard = guard
        self.paths = None if paths is None else ProtectedPaths(paths)
        # Endpoints some rule under a protected path leads to; built at the first request, when
        # every rule is registered (Flask refuses new rules after it).
        self._path_endpoints: frozenset[str] | None = None

    def path_endpoints(self, app: Flask) -> frozenset[str]:
        if self._path_endpoints is None:
            paths = self.paths
            found = set()
            if paths is not None:
                for rule in app.url_map.iter_rules():
                    try:
                        if paths.matches(rule.rule):
                            found.add(rule.endpoint)
                    except RequestRejected:
                        continue
            self._path_endpoints = frozenset(found)
        return self._path_endpoints


def _endpoint_protected(app: Flask, state: _AppState, endpoint: str) -> bool:
    """Whether the view behind ``endpoint`` is decorated, or one a protected path's rule leads to."""
    if getattr(app.view_functions.get(endpoint), _MARK, False):
        return True
    return endpoint in state.path_endpoints(app)


class _Gate:
    """The WSGI layer ``init_app`` puts in front of ``app.wsgi_app``: verify before Flask runs."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp, state: _AppState) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.state = state

    def _routed_to_protected(self, environ: dict[str, Any]) -> bool:
        app = self.app
        adapter = app.create_url_adapter(app.request_class(environ))
        if adapter is None:
            return False
        try:
            rule, _ = adapter.match(return_rule=True)
        except HTTPException:
            # 404, 405, or a redirect (strict slashes, merged slashes): Flask answers that without
            # calling a view. Spellings of protected paths were already matched by string.
            return False
        return _endpoint_protected(app, self.state, rule.endpoint)

    def protects(self, environ: dict[str, Any]) -> bool:
        guard = self.state.guard
        method = environ.get("REQUEST_METHOD", "GET")
        if self.state.paths is None:
            # Decorator mode: protect what routing sends to a decorated view (any method filter
            # still applies).
            if not guard.protects(method):
                return False
            try:
                return self._routed_to_protected(environ)
            except Exception:  # cannot tell where Flask would route it: protect it
                return True
        return guard.protects(
            method, *request_paths(environ), routed=lambda: self._routed_to_protected(environ)
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        guard = self.state.guard
        try:
            protected = self.protects(environ)
        except RequestRejected as error:
            return send_rejection(guard.reject(error), start_response)
        if not protected:
            return self.wsgi_app(environ, start_response)
        environ[_DONE_KEY] = True
        outcome = guard_environ(guard, environ)
        if isinstance(outcome, Rejected):
            return send_rejection(outcome, start_response)
        return call_verified(self.wsgi_app, environ, start_response, outcome, guard)


class HmacGuard:
    """The Flask extension. Keyword-only options as for :class:`~hmacguard.WSGIGuard`.

    With ``verifier`` the guard is configured here; without it, ``init_app`` reads
    ``app.config["HMACGUARD"]``. ``paths``: requests to those paths are verified before Flask runs
    (``None``, the default: only views decorated with :meth:`protected`). See the module docstring
    for how requests are matched.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: Verifier | None = None,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
        on_decision: DecisionSink | Iterable[DecisionSink] | None = None,
    ) -> None:
        self._options: dict[str, Any] | None = None
        if verifier is not None:
            self._options = {
                "verifier": verifier,
                "rate_limiter": rate_limiter,
                "paths": paths,
                "methods": methods,
                "on_decision": on_decision,
            }
            Guard(**self._options)  # validate now, not at the first request
        elif rate_limiter is not None or paths is not None or methods is not None or on_decision is not None:
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
        paths = options["paths"]
        if isinstance(paths, str):
            paths = [paths]
        state = _AppState(Guard(**{**options, "paths": paths}), paths)
        app.extensions[EXTENSION] = state
        app.wsgi_app = _Gate(app, app.wsgi_app, state)  # type: ignore[method-assign]
        # First of the app's before_request functions: what the gate could not see (a middleware
        # already in app.wsgi_app changed the path) is verified before any other such function.
        app.before_request_funcs.setdefault(None, []).insert(0, self._verify_ungated)

    # -- the decorator --------------------------------------------------------------------------
    def protected(self, view: F) -> F:
        """Verify requests routed to this view before Flask runs (see the module docstring)."""

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not request.environ.get(_DONE_KEY):
                refusal = self._verify_late()
                if refusal is not None:
                    return refusal
            return view(*args, **kwargs)

        setattr(wrapper, _MARK, True)
        return cast("F", wrapper)

    def _verify_ungated(self) -> Response | None:
        """A request the gate let through but Flask routed to a protected view: verify it now."""
        environ = request.environ
        rule = request.url_rule
        state = current_app.extensions.get(EXTENSION)
        if environ.get(_DONE_KEY) or rule is None or not isinstance(state, _AppState):
            return None  # verified already, or no view will run (404, 405, redirect)
        app = current_app
        guard = state.guard
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if state.paths is None:
                protected = guard.protects(method) and _endpoint_protected(app, state, rule.endpoint)
            else:
                protected = guard.protects(
                    method,
                    *request_paths(environ),
                    routed=lambda: _endpoint_protected(app, state, rule.endpoint),
                )
        except RequestRejected as error:
            return _problem_response(guard.reject(error).problem)
        return self._verify_late() if protected else None

    def _verify_late(self) -> Response | None:
        """The last line of defence: a decorated view reached without the gate (a direct call)."""
        state = current_app.extensions.get(EXTENSION)
        if not isinstance(state, _AppState):
            raise ConfigurationError(
                "HmacGuard is not registered on this app: call HmacGuard(app) or init_app(app)"
            )
        environ = request.environ
        environ[_DONE_KEY] = True
        outcome = guard_environ(state.guard, environ)
        if isinstance(outcome, Rejected):
            return _problem_response(outcome.problem)
        install_body(environ, outcome, state.guard)
        _forget_cached_body(request)

        @after_this_request
        def _settle(response: Response) -> Response:
            for name, value in outcome.headers:
                response.headers[name] = value
            if outcome.delivery is not None:
                outcome.delivery.settle(processed(response.status_code))
            response.call_on_close(outcome.body.close)
            return response

        return None
