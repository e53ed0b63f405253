"""A hand-written WSGI middleware that verifies the signature when ``PATH_INFO == "/webhook"``, in
front of a Flask app -- the guard as people write it, and the bypass hmacguard's own guard once had.

The comparison is on the raw string; Werkzeug routes on a normalised path (leading slashes merged),
so an unsigned ``POST //webhook`` reaches the same view. Everything else is right: the body is read
under a 1 MiB cap (chunked too) into the HMAC, the signature compared in constant time, a delivery
processed once. (The view only acknowledges the event, so the middleware need not hand the body
on.) What ``hmacguard scan`` should report: ``signature-bypass-path``, and no other enforcement
rule.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask, jsonify

from hmacguard.lab.apps._common import BodyTooLarge, first_delivery, verify_capped

flask_app = Flask(__name__)


@flask_app.post("/webhook")
def webhook() -> Any:
    return jsonify(ok=True)


def _answer(start_response: Any, status: str, close: bool = False) -> list[bytes]:
    headers = [("Content-Type", "text/plain")] + ([("Connection", "close")] if close else [])
    start_response(status, headers)
    return [status.encode() + b"\n"]


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/webhook":  # the flaw: a string comparison, not a route
        return flask_app(environ, start_response)
    signature = environ.get("HTTP_X_HUB_SIGNATURE_256")
    if not signature:
        return _answer(start_response, "400 Bad Request")
    length = environ.get("CONTENT_LENGTH")
    try:
        valid = verify_capped(environ["wsgi.input"], int(length) if length else None, signature)
    except (BodyTooLarge, ValueError):
        return _answer(start_response, "413 Content Too Large", close=True)
    if not valid:
        return _answer(start_response, "401 Unauthorized")
    if not first_delivery(signature):
        return _answer(start_response, "409 Conflict")
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(), "0"
    return flask_app(environ, start_response)
