"""A whole Django project in one call, so each Django target fits in one small module."""

from __future__ import annotations

from typing import Any


def configure(urlconf: str, *, middleware: list[str] | None = None, **overrides: Any) -> Any:
    """Configure settings for a single-module project and return its WSGI application."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]", "testserver"],
            ROOT_URLCONF=urlconf,
            SECRET_KEY="hmacguard-lab-django-not-secret",
            MIDDLEWARE=middleware or [],
            INSTALLED_APPS=[],
            USE_TZ=True,
            LOGGING_CONFIG=None,
            **overrides,
        )
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()
