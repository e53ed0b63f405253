"""The bypasses this matrix found, each pinned where it is cheapest to see (the matrix has them too)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from hmacguard import Verifier
from hmacguard.integrations.flask import HmacGuard
from hmacguard.schemes import sign_body

SECRET = "bypass-secret"


@pytest.mark.parametrize("mode", ["paths", "decorator"])
def test_flask_extension_over_a_path_rewriting_middleware(mode: str) -> None:
    """``app.wsgi_app = DispatcherMiddleware(...)`` before ``HmacGuard(app)``: the gate sees
    ``/inner/webhook``, Flask routes ``/webhook``. Unsigned requests used to reach the view (paths
    mode); now they are refused before any other before_request function reads the body."""
    app = Flask("inner")
    peeked: list[bytes] = []

    @app.before_request
    def peek() -> None:  # registered first, as another extension's hook would be
        peeked.append(request.get_data())

    app.wsgi_app = DispatcherMiddleware(Response("no", 404), {"/inner": app.wsgi_app})  # type: ignore[method-assign]
    guard = HmacGuard(
        app, verifier=Verifier("github", secrets=SECRET), paths=["/webhook"] if mode == "paths" else None
    )

    def webhook() -> dict[str, Any]:
        return {"body": request.get_data(as_text=True)}

    app.add_url_rule("/webhook", view_func=guard.protected(webhook) if mode == "decorator" else webhook,
                     methods=["POST"])  # fmt: skip
    client = app.test_client()
    for path in (
        "/inner/webhook",
        "/inner//webhook",
        "/inner/%2Fwebhook",
        "/inner/%77ebhook",
        "/inner/webhook?x=1",
    ):
        refused = client.post(path, data=b'{"forged": 1}')
        assert refused.status_code == 400, path
        assert refused.mimetype == "application/problem+json"
    assert peeked == []
    # Werkzeug answers this one itself (strict slashes): no view runs.
    assert client.post("/inner/webhook/", data=b"{}").status_code == 404
    peeked.clear()
    body = b'{"signed": 1}'
    ok = client.post("/inner/webhook", data=body, headers=sign_body("github", SECRET, body))
    assert ok.status_code == 200
    assert ok.get_json() == {"body": body.decode()}
    assert peeked == [body]  # other hooks see the verified body
