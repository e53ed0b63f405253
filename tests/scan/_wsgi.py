"""Small WSGI applications for the enforcement tests, and a threaded server for them.

The server is the standard library's ``wsgiref`` (one thread per connection), bound to 127.0.0.1 on a
free port and shut down when its ``with`` block ends. Like gunicorn it puts the raw request target,
percent-decoded, into ``PATH_INFO`` (``/%2Fwebhook`` arrives as ``//webhook``) and merges nothing.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask
from werkzeug.exceptions import HTTPException

from hmacguard.errors import HmacGuardError
from hmacguard.schemes import get_scheme, sign_body

SECRET = "enforcement-test-secret"
HEADER = "HTTP_X_HUB_SIGNATURE_256"
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(app: WSGIApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields the URL of ``/webhook``."""
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _answer(start_response: Any, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _body(environ: dict[str, Any]) -> bytes:
    # Test bodies are the scanner's probe events: a few hundred bytes.
    return bytes(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))


def _valid(environ: dict[str, Any], body: bytes) -> bool:
    expected = sign_body("github", SECRET, body)["X-Hub-Signature-256"]
    return hmac.compare_digest(expected, environ.get(HEADER, ""))


def _verified(app: WSGIApp, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Verify the request's GitHub signature, then hand the app the body; 400/401 otherwise."""
    if not environ.get(HEADER):
        return _answer(start_response, "400 Bad Request", b"missing signature")
    body = _body(environ)
    if not _valid(environ, body):
        return _answer(start_response, "401 Unauthorized", b"signature mismatch")
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    return app(environ, start_response)


def string_match_guard(app: WSGIApp, paths: frozenset[str] = frozenset({"/webhook"})) -> WSGIApp:
    """The guard before it decided protection on the routed path: it verifies a request whose
    ``PATH_INFO`` is, string for string, one of ``paths``, and passes every other one through."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in paths:
            return app(environ, start_response)
        return _verified(app, environ, start_response)

    return guarded


def routed_guard(app: Flask, endpoints: frozenset[str] = frozenset({"webhook"})) -> WSGIApp:
    """The fix: protection decided on the endpoint Flask's router picks for the request, whatever
    its spelling."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            endpoint, _ = app.url_map.bind_to_environ(environ).match(method=environ["REQUEST_METHOD"])
        except HTTPException:  # not found, a redirect: the app answers those itself, unprotected
            return app(environ, start_response)
        if endpoint not in endpoints:
            return app(environ, start_response)
        return _verified(app, environ, start_response)

    return guarded


def stripe_without_age_check() -> WSGIApp:
    """A Stripe receiver that checks the HMAC over ``t.body`` but never how old ``t`` is."""
    scheme = get_scheme("stripe")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = _body(environ)
        try:
            claim = scheme.parse({scheme.header: environ.get("HTTP_STRIPE_SIGNATURE", "")})
        except HmacGuardError:
            return _answer(start_response, "400 Bad Request", b"malformed signature")
        mac = hmac.new(SECRET.encode(), claim.prefix + body, "sha256").digest()
        if not any(hmac.compare_digest(mac, given) for given in claim.signatures):
            return _answer(start_response, "401 Unauthorized", b"signature mismatch")
        return _answer(start_response, "200 OK", b'{"processed": true}')

    return app


def flask_app(*, catch_all: bool = False) -> Flask:
    """A Flask receiver whose view trusts that something in front verified the request (Werkzeug
    routes ``//webhook`` to it too); ``catch_all``: every other path answers 200 ``caught``."""
    app = Flask(__name__)

    @app.post("/webhook")
    def webhook() -> dict[str, bool]:
        return {"processed": True}

    if catch_all:

        @app.route("/<path:rest>", methods=["GET", "POST"])
        def anything(rest: str) -> str:
            return "caught"

    return app


def catch_all_receiver(*, enforces: bool = True, echo_path: bool = False) -> WSGIApp:
    """``/webhook`` verifies (``enforces``: refusing a missing signature; else only checks one that is
    there); every other path answers 200, ``caught`` (or ``caught <path>`` with ``echo_path``)."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != "/webhook":
            return _answer(start_response, "200 OK", b"caught" + (f" {path}".encode() if echo_path else b""))
        body = _body(environ)
        if not environ.get(HEADER):
            if enforces:
                return _answer(start_response, "400 Bad Request", b"missing signature")
        elif not _valid(environ, body):
            return _answer(start_response, "401 Unauthorized", b"signature mismatch")
        return _answer(start_response, "200 OK", b'{"processed": true}')

    return app
