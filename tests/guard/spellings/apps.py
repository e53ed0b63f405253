"""The applications of the matrix, built per family and mount, behind one dispatcher per server.

Every configuration of :data:`.matrix.CONFIGS` is one application; a server (or the in-process
driver) serves all of one family's under one mount, and :class:`WSGIDispatch` / :class:`ASGIDispatch`
pick the one named by the ``X-Matrix-App`` request header -- a header, so the path each guard sees
is exactly the server's. Django is configured once per process (``FORCE_SCRIPT_NAME`` is the one
setting a mount changes; :func:`set_django_mount` switches it for the in-process driver).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hmacguard import ASGIGuard, Verifier, WSGIGuard

from .matrix import (
    APP_HEADER,
    BY_KEY,
    CATCHALL_MARK,
    OTHER_MARK,
    PROTECTED_MARK,
    SECRET,
    SERVED_HEADER,
    VIEW_HEADER,
)

_HEADER_ENVIRON = "HTTP_" + APP_HEADER.upper().replace("-", "_")
_HEADER_ASGI = APP_HEADER.lower().encode()
_SERVED_ASGI = SERVED_HEADER.lower().encode()


def verifier() -> Verifier:
    return Verifier("github", secrets=SECRET, body_timeout=5.0)


def _text(mark: str) -> str:
    return f"{mark}\n"


# -- WSGI ------------------------------------------------------------------------------------------


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such application\n"]


class WSGIDispatch:
    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.apps.get(environ.get(_HEADER_ENVIRON, ""), _not_found)

        def served(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (SERVED_HEADER, "1")], exc_info)

        return app(environ, served)


def _flask(key: str) -> Any:
    from flask import Blueprint, Flask, Response, request

    from hmacguard.integrations.flask import HmacGuard

    app = Flask(f"matrix-{key}")

    def answer(mark: str, view: str) -> Response:
        request.get_data()  # a view that reads the body, as a webhook receiver does
        return Response(_text(mark), headers={VIEW_HEADER: view}, mimetype="text/plain")

    def protected() -> Response:
        return answer(PROTECTED_MARK, "protected")

    def in_hook(name: str) -> Response:
        return answer(PROTECTED_MARK, "protected")

    def other() -> Response:
        return answer(OTHER_MARK, "other")

    def catchall(rest: str) -> Response:
        return answer(CATCHALL_MARK, "catchall")

    methods = ["GET", "POST", "PUT"]
    if key in ("wsgiguard-flask", "flask-ext-paths"):
        app.url_map.strict_slashes = False  # the common setting the issue names: "/webhook/" routes
        app.add_url_rule("/webhook", view_func=protected, methods=methods)
        app.add_url_rule("/other", view_func=other, methods=methods)
        if key == "wsgiguard-flask":
            app.add_url_rule("/in/<name>", view_func=in_hook, methods=methods)
            return WSGIGuard(app, verifier=verifier(), paths=["/webhook", "/in/*"])
        HmacGuard(app, verifier=verifier(), paths=["/webhook"])
        return app
    guard = HmacGuard(app, verifier=verifier())
    if key == "flask-ext-blueprint":
        app.url_map.strict_slashes = False
        bp = Blueprint("bp", f"matrix-{key}-bp", url_prefix="/bp")
        bp.add_url_rule("/webhook", view_func=guard.protected(protected), methods=methods)
        bp.add_url_rule("/other", endpoint="bp_other", view_func=other, methods=methods)
        app.register_blueprint(bp)
        app.add_url_rule("/other", view_func=other, methods=methods)
        return app
    if key == "flask-ext-inner-mount":
        # The well-known recipe for serving a Flask app under a prefix, before the extension.
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app.wsgi_app = DispatcherMiddleware(_not_found, {"/inner": app.wsgi_app})  # type: ignore[method-assign]
        HmacGuard(app, verifier=verifier(), paths=["/webhook"])
        app.add_url_rule("/webhook", view_func=protected, methods=methods)
        app.add_url_rule("/other", view_func=other, methods=methods)
        return app
    # Decorator mode; the catch-all app keeps strict slashes (Werkzeug's default) for contrast.
    if key == "flask-ext-decorator":
        app.url_map.strict_slashes = False
    app.add_url_rule("/webhook", view_func=guard.protected(protected), methods=methods)
    app.add_url_rule("/other", view_func=other, methods=methods)
    if key == "flask-catchall":
        app.add_url_rule("/", view_func=catchall, defaults={"rest": ""}, methods=methods)
        app.add_url_rule("/<path:rest>", view_func=catchall, methods=methods)
    return app


def configure_django(force_script_name: str | None = None) -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.guard.spellings.django_urls",
            SECRET_KEY="spellings-matrix-not-secret",
            MIDDLEWARE=[
                "django.middleware.security.SecurityMiddleware",
                "django.middleware.locale.LocaleMiddleware",
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
            ],
            INSTALLED_APPS=[],
            USE_TZ=True,
            USE_I18N=True,
            LANGUAGE_CODE="en",
            LANGUAGES=[("en", "English"), ("fr", "French"), ("de", "German")],
            LOGGING_CONFIG=None,
            FORCE_SCRIPT_NAME=force_script_name,
            HMACGUARD={"SECRETS": [SECRET], "PATHS": ["/webhook/", "/intl/webhook/"], "BODY_TIMEOUT": 5},
        )
        # "Not Found: /..." for every 404 of the matrix is noise; errors still show.
        logging.getLogger("django.request").setLevel(logging.ERROR)
        logging.getLogger("django.security").setLevel(logging.ERROR)
    set_django_mount(force_script_name)


def set_django_mount(force_script_name: str | None) -> None:
    from django.conf import settings

    settings.FORCE_SCRIPT_NAME = force_script_name


def _django_wsgi(key: str) -> Any:
    if key == "django-wsgi":
        from hmacguard.integrations.django import get_wsgi_application

        return get_wsgi_application()
    from django.core.wsgi import get_wsgi_application as django_wsgi

    paths = ["/webhook/", "/intl/webhook/", "/fr/intl/webhook/", "/de/intl/webhook/"]
    return WSGIGuard(django_wsgi(), verifier=verifier(), paths=paths)


def wsgi_apps(mount: str) -> dict[str, Any]:
    """Every WSGI configuration's application under ``mount`` (``root`` is the server's business)."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    apps: dict[str, Any] = {}
    for key, config in BY_KEY.items():
        if config.family != "wsgi":
            continue
        app = _django_wsgi(key) if "django" in key else _flask(key)
        if mount == "prefix":
            app = DispatcherMiddleware(_not_found, {config.prefix: app})
        apps[key] = app
    return apps


# -- ASGI ------------------------------------------------------------------------------------------


class ASGIDispatch:
    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        key = dict(scope.get("headers", ())).get(_HEADER_ASGI, b"").decode()
        app = self.apps.get(key)

        async def served(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (_SERVED_ASGI, b"1")]}
            await send(message)

        if app is None:
            await served({"type": "http.response.start", "status": 404, "headers": []})
            await served({"type": "http.response.body", "body": b"no such application\n"})
            return
        await app(scope, receive, served)


def _starlette_routes(catchall: bool) -> list[Any]:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def view(mark: str, name: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> PlainTextResponse:
            await request.body()
            return PlainTextResponse(_text(mark), headers={VIEW_HEADER: name})

        return endpoint

    methods = ["GET", "POST", "PUT"]
    routes = [
        Route("/webhook", view(PROTECTED_MARK, "protected"), methods=methods),
        Route("/other", view(OTHER_MARK, "other"), methods=methods),
    ]
    if catchall:
        routes.append(Route("/{rest:path}", view(CATCHALL_MARK, "catchall"), methods=methods))
    else:  # protected by the "/in/*" prefix
        routes.append(Route("/in/{name}", view(PROTECTED_MARK, "protected"), methods=methods))
    return routes


def _starlette(key: str, mount: str) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    catchall = key == "starlette-catchall"
    paths = ["/webhook"] if catchall else ["/webhook", "/in/*"]
    app: Any = ASGIGuard(Starlette(routes=_starlette_routes(catchall)), verifier=verifier(), paths=paths)
    if mount == "prefix":
        app = Starlette(routes=[Mount(BY_KEY[key].prefix, app=app)])
    return app


def _fastapi(key: str, mount: str) -> Any:
    from .fastapi_apps import fastapi_app

    prefix = BY_KEY[key].prefix if mount == "prefix" else None
    return fastapi_app(verifier=verifier(), dependency=key == "fastapi-dependency", prefix=prefix)


def asgi_apps(mount: str) -> dict[str, Any]:
    """Every ASGI configuration's application under ``mount`` (``root`` is the server's business)."""
    from hmacguard.integrations.django import get_asgi_application

    apps: dict[str, Any] = {}
    for key, config in BY_KEY.items():
        if config.family != "asgi":
            continue
        if key == "django-asgi":
            apps[key] = get_asgi_application()
        elif "fastapi" in key:
            apps[key] = _fastapi(key, mount)
        else:
            apps[key] = _starlette(key, mount)
    return apps


def build(family: str, mount: str) -> Any:
    """The dispatcher serving every configuration of ``family`` under ``mount``."""
    configure_django(BY_KEY["django-wsgi"].prefix if mount == "prefix" else None)
    if family == "wsgi":
        return WSGIDispatch(wsgi_apps(mount))
    return ASGIDispatch(asgi_apps(mount))
