"""Django: the guard around Django's own WSGI and ASGI applications, configured from settings.

In ``wsgi.py`` and ``asgi.py``, swap Django's factory for ours::

    # wsgi.py (gunicorn)                            # asgi.py (uvicorn, daphne, hypercorn)
    from hmacguard.integrations.django import (    from hmacguard.integrations.django import (
        get_wsgi_application,                           get_asgi_application,
    )                                               )
    application = get_wsgi_application()            application = get_asgi_application()

and describe the guard in ``settings.HMACGUARD`` (keys in :mod:`hmacguard.integrations._settings`;
``PATHS`` chooses what is protected). A protected view then reads the verified body as
``request.body`` -- Django sees only that body, with a ``Content-Length`` to match -- and
:func:`verified_body` gives the :class:`~hmacguard.VerifiedBody` (which secret matched, the
timestamp, the message id). Unprotected paths reach Django untouched.

Which requests are protected: every spelling of the path a router could route
(:mod:`hmacguard.guard.paths`), and -- decided after Django's own URL resolution -- any request
whose path Django resolves to a view that a protected exact path resolves to (one view under
several URLs is protected under all of them). Django's path is computed as Django does: under WSGI
``PATH_INFO``; under ASGI ``scope["path"]`` without ``FORCE_SCRIPT_NAME`` or ``root_path``. A
``request.urlconf`` set per request by a middleware is not seen (the guard runs before
middleware); list such paths in ``PATHS``.

Why around the application, not in ``MIDDLEWARE``: under ASGI, Django's handler reads the whole
request body (spooling it to disk) before the first middleware runs, so a middleware would verify a
body that had already been taken in full. Outside the handler the guard answers 413 before the body
is read, under both servers, and the rest of Django -- middleware, CSRF, views -- runs as before.
Protected views are typically ``@csrf_exempt``: the signature is what authenticates the sender.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.paths import ProtectedPaths, wsgi_path
from hmacguard.integrations._settings import guard_options
from hmacguard.integrations.asgi import VERIFIED_KEY as _ASGI_KEY
from hmacguard.integrations.asgi import ASGIApp, ASGIGuard, Receive, Scope, Send
from hmacguard.integrations.wsgi import VERIFIED_KEY as _WSGI_KEY
from hmacguard.integrations.wsgi import WSGIGuard

if TYPE_CHECKING:
    from django.http import HttpRequest

    from hmacguard.guard.verifier import VerifiedBody

__all__ = ["get_asgi_application", "get_wsgi_application", "guard_settings", "verified_body"]

SETTING = "HMACGUARD"


def guard_settings() -> dict[str, Any]:
    """The middleware options from ``settings.HMACGUARD`` (Django must be set up)."""
    from django.conf import settings

    config = getattr(settings, SETTING, None)
    if config is None:
        raise ConfigurationError(f"settings.{SETTING} is not set: describe the guard there")
    return guard_options(config, where=f"settings.{SETTING}")


def _view_key(func: Any) -> Any:
    # Class-based views get a new function from every as_view(); the class identifies them.
    return getattr(func, "view_class", func)


class _DjangoRoutes:
    """Whether Django would route a request to a protected view (the guard's ``route_check``)."""

    def __init__(self, paths: Iterable[str] | str | None) -> None:
        listed = [paths] if isinstance(paths, str) else list(paths or ())
        self._paths = ProtectedPaths(listed) if listed else None
        self._exact = [p for p in listed if not p.endswith("*")]
        self._views: set[Any] | None = None

    def _protected_views(self) -> set[Any]:
        # Resolved at the first request, when URLconfs can be imported.
        if self._views is None:
            from django.urls import Resolver404, resolve

            views = set()
            for path in self._exact:
                try:
                    views.add(_view_key(resolve(path).func))
                except Resolver404:
                    continue
            self._views = views
        return self._views

    def routes_to_protected(self, path_info: str) -> bool:
        """``path_info`` is the path Django resolves; errors other than a 404 propagate (the guard
        then protects the request)."""
        if self._paths is None:
            return False
        if self._paths.matches(path_info):
            return True
        from django.urls import Resolver404, resolve

        try:
            match = resolve(path_info)
        except Resolver404:
            return False
        return _view_key(match.func) in self._protected_views()

    def wsgi(self, environ: dict[str, Any]) -> bool:
        return self.routes_to_protected(wsgi_path(environ.get("PATH_INFO") or "/"))

    def asgi(self, scope: Any) -> bool:
        from django.conf import settings

        # As django.core.handlers.asgi.ASGIRequest computes path_info.
        script = settings.FORCE_SCRIPT_NAME or scope.get("root_path", "")
        path = scope.get("path") or "/"
        return self.routes_to_protected(path.removeprefix(script) if script else path)


def get_wsgi_application() -> WSGIGuard:
    """Django's WSGI application behind the guard configured in ``settings.HMACGUARD``."""
    from django.core.wsgi import get_wsgi_application as django_wsgi

    app = django_wsgi()  # sets Django up, so settings are readable from here on
    options = guard_settings()
    return WSGIGuard(app, route_check=_DjangoRoutes(options["paths"]).wsgi, **options)


def get_asgi_application() -> ASGIGuard:
    """Django's ASGI application behind the guard configured in ``settings.HMACGUARD``.

    It also answers the ASGI lifespan protocol, which Django does not speak (its handler raises on
    a lifespan scope, and servers log that as an error at every start).
    """
    from django.core.asgi import get_asgi_application as django_asgi

    app = _with_lifespan(django_asgi())
    options = guard_settings()
    return ASGIGuard(app, route_check=_DjangoRoutes(options["paths"]).asgi, **options)


def _with_lifespan(app: ASGIApp) -> ASGIApp:
    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application


def verified_body(request: HttpRequest) -> VerifiedBody | None:
    """The verified body of a protected request (``None`` on unprotected paths).

    Under WSGI the guard leaves it in the environ (Django's ``request.META``); under ASGI in the
    scope. ``request.body`` holds the same bytes; this adds what verification learned.
    """
    found = request.META.get(_WSGI_KEY)
    if found is None:
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict):
            found = scope.get(_ASGI_KEY)
    return found  # type: ignore[no-any-return]
