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

Why around the application, not in ``MIDDLEWARE``: under ASGI, Django's handler reads the whole
request body (spooling it to disk) before the first middleware runs, so a middleware would verify a
body that had already been taken in full. Outside the handler the guard answers 413 before the body
is read, under both servers, and the rest of Django -- middleware, CSRF, views -- runs as before.
Protected views are typically ``@csrf_exempt``: the signature is what authenticates the sender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmacguard.errors import ConfigurationError
from hmacguard.integrations._settings import guard_options
from hmacguard.integrations.asgi import VERIFIED_KEY as _ASGI_KEY
from hmacguard.integrations.asgi import ASGIGuard
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


def get_wsgi_application() -> WSGIGuard:
    """Django's WSGI application behind the guard configured in ``settings.HMACGUARD``."""
    from django.core.wsgi import get_wsgi_application as django_wsgi

    app = django_wsgi()  # sets Django up, so settings are readable from here on
    return WSGIGuard(app, **guard_settings())


def get_asgi_application() -> ASGIGuard:
    """Django's ASGI application behind the guard configured in ``settings.HMACGUARD``."""
    from django.core.asgi import get_asgi_application as django_asgi

    app = django_asgi()
    return ASGIGuard(app, **guard_settings())


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
