"""The Flask extension's configuration paths, in-process with Flask's own test client.

What it does under gunicorn with real sockets is in test_guarded_targets.py; here: the app-factory
pattern, ``app.config["HMACGUARD"]``, protection by path, the decorator, and mistakes.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmacguard import ConfigurationError, RateLimiter, Verifier
from hmacguard.integrations.flask import HmacGuard, verified_body
from hmacguard.schemes import sign_body

SECRET = "flask-extension-secret"


def _app(guard: HmacGuard | None = None) -> Flask:
    app = Flask(__name__)

    @app.post("/hooks/<name>")
    def hook(name: str) -> dict[str, Any]:
        verified = verified_body()
        return {
            "name": name,
            "body": request.get_data(as_text=True),
            "key": verified.key_index if verified else None,
        }

    @app.post("/open")
    def open_route() -> dict[str, Any]:
        return {"body": request.get_data(as_text=True), "verified": verified_body() is not None}

    if guard is not None:

        @app.post("/form")
        @guard.protected
        def form() -> dict[str, Any]:
            return {"form": request.form.to_dict()}

        @app.post("/decorated")
        @guard.protected
        def decorated() -> dict[str, Any]:
            return {"json": request.get_json()}

    return app


def _post(app: Flask, path: str, body: bytes, secret: str = SECRET) -> Any:
    headers = sign_body("github", secret, body)
    return app.test_client().post(path, data=body, headers=headers)


def test_paths_from_app_config_in_a_factory() -> None:
    guard = HmacGuard()
    app = _app()
    app.config["HMACGUARD"] = {
        "SECRETS": ["old-secret", SECRET],
        "PATHS": ["/hooks/*"],
        "RATE_LIMIT": {"LIMIT": "100/minute"},
    }
    guard.init_app(app)
    ok = _post(app, "/hooks/github", b'{"a": 1}')
    assert ok.status_code == 200
    assert ok.get_json() == {"name": "github", "body": '{"a": 1}', "key": 1}
    assert "RateLimit" in ok.headers
    bad = _post(app, "/hooks/github", b'{"a": 2}', secret="nope")
    assert bad.status_code == 401 and bad.mimetype == "application/problem+json"
    # Not under PATHS: untouched, no signature needed.
    plain = app.test_client().post("/open", data=b"hello")
    assert plain.get_json() == {"body": "hello", "verified": False}


def test_decorator_protects_only_its_view() -> None:
    guard = HmacGuard(verifier=Verifier("github", secrets=[SECRET]))
    app = _app(guard)
    guard.init_app(app)
    ok = _post(app, "/decorated", b'{"event": "push"}')
    assert ok.status_code == 200 and ok.get_json() == {"json": {"event": "push"}}
    assert _post(app, "/decorated", b'{"event": "push"}').status_code == 409  # replay
    missing = app.test_client().post("/decorated", data=b"{}")
    assert missing.status_code == 400
    assert missing.get_json()["type"] == "urn:hmacguard:problem:signature-missing"
    # No paths given: other routes are not guarded.
    assert app.test_client().post("/hooks/x", data=b"free").status_code == 200


def test_form_parsing_reads_the_verified_body() -> None:
    guard = HmacGuard(verifier=Verifier("github", secrets=[SECRET]))
    app = _app(guard)
    guard.init_app(app)
    body = b"payload=%7B%22a%22%3A1%7D&x=2"
    headers = sign_body("github", SECRET, body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"  # as GitHub's form deliveries
    response = app.test_client().post("/form", data=body, headers=headers)
    assert response.get_json() == {"form": {"payload": '{"a":1}', "x": "2"}}


def test_oversized_body_is_413_before_the_view() -> None:
    guard = HmacGuard(verifier=Verifier("github", secrets=[SECRET], max_body=1024))
    app = _app(guard)
    guard.init_app(app)
    big = b"x" * 2048
    response = _post(app, "/decorated", big)
    assert response.status_code == 413
    assert response.get_json()["max_body"] == 1024


def test_path_and_decorator_together_verify_once() -> None:
    guard = HmacGuard(
        verifier=Verifier("github", secrets=[SECRET]),
        rate_limiter=RateLimiter(limit="100/minute"),
        paths=["/decorated"],
    )
    app = _app(guard)
    guard.init_app(app)
    # A second verification would find the body consumed, or the replay store holding it: 409.
    assert _post(app, "/decorated", b'{"once": true}').status_code == 200


@pytest.mark.parametrize(
    "config",
    [
        {"SECRETS": [SECRET], "MAX_BODDY": 10},
        {"SECRETS": []},
        {"SECRETS": [SECRET], "RATE_LIMIT": {"LIMT": "1/second"}},
        {"SECRETS": [SECRET], "REPLAY": "postgres://nope"},
        {"SECRETS": [SECRET], "SCHEME": "gitlab"},
        {"SECRETS": [SECRET], "PATHS": ["no-slash"]},
        "not a dict",
    ],
)
def test_configuration_mistakes_raise_at_init(config: object) -> None:
    app = _app()
    app.config["HMACGUARD"] = config
    with pytest.raises(ConfigurationError):
        HmacGuard(app)


def test_options_without_a_verifier_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        HmacGuard(paths=["/webhook"])
    with pytest.raises(ConfigurationError):
        HmacGuard(_app())  # neither verifier= nor app.config["HMACGUARD"]


_header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    signature=_header_text,
    length=st.one_of(st.none(), _header_text, st.integers(-5, 5000).map(str)),
    encoding=st.one_of(st.none(), st.sampled_from(["gzip", "br", "identity, gzip", "x"])),
)
def test_fuzzed_headers_never_reach_a_500(signature: str, length: str | None, encoding: str | None) -> None:
    guard = HmacGuard(verifier=Verifier("github", secrets=[SECRET], max_body=4096))
    app = _app(guard)
    guard.init_app(app)
    environ: dict[str, Any] = {"HTTP_X_HUB_SIGNATURE_256": signature}
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if encoding is not None:
        environ["HTTP_CONTENT_ENCODING"] = encoding
    response = app.test_client().post("/decorated", data=b"{}", environ_overrides=environ)
    assert 400 <= response.status_code < 500, response.data
    assert response.mimetype == "application/problem+json"


def test_non_ascii_digit_content_length_with_a_rate_limiter_is_400() -> None:
    # '\xb2' passes str.isdigit(); servers that pass such a header through must still get a 400.
    guard = HmacGuard(
        verifier=Verifier("github", secrets=[SECRET]), rate_limiter=RateLimiter(limit="100/minute")
    )
    app = _app(guard)
    guard.init_app(app)
    environ = {"CONTENT_LENGTH": "\xb2", "HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64}
    response = app.test_client().post("/decorated", data=b"{}", environ_overrides=environ)
    assert response.status_code == 400


def test_the_werkzeug_cache_names_the_late_path_clears_are_still_werkzeugs() -> None:
    """Pin for integrations/flask.py's one private use: the names it drops from a request's
    __dict__ are the attributes Werkzeug caches the raw body under, in the version installed."""
    from werkzeug.utils import cached_property
    from werkzeug.wrappers import Request as WerkzeugRequest

    for name in ("stream", "content_length", "form", "files"):
        assert isinstance(getattr(WerkzeugRequest, name, None), cached_property), name
    app = Flask(__name__)
    with app.test_request_context("/", method="POST", data=b"raw"):
        assert request.get_data() == b"raw"
        assert "_cached_data" in request.__dict__


def test_a_decorated_view_called_directly_is_verified_at_the_call() -> None:
    """The last line of defence: an unprotected view that calls a decorated one by hand."""
    app = Flask(__name__)
    guard = HmacGuard(app, verifier=Verifier("github", secrets=SECRET))

    @guard.protected
    def receiver() -> dict[str, Any]:
        return {"body": request.get_data(as_text=True)}

    @app.post("/proxy")
    def proxy() -> Any:
        request.content_length  # Werkzeug caches the raw length (and stream) here
        return receiver()

    body = b'{"n": 1}'
    signed = app.test_client().post("/proxy", data=body, headers=sign_body("github", SECRET, body))
    assert signed.status_code == 200 and signed.json == {"body": body.decode()}
    unsigned = app.test_client().post("/proxy", data=b'{"n": 2}')
    assert unsigned.status_code == 400 and unsigned.content_type == "application/problem+json"
