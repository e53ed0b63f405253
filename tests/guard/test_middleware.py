"""WSGIGuard and ASGIGuard in-process: what the app sees, what clients get, what is released."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest

from hmacguard import ASGIGuard, RateLimiter, Signer, Verifier, WSGIGuard
from hmacguard.integrations.wsgi import VERIFIED_KEY
from tests._build import differs_when_compiled

from ._inprocess import asgi_request, call_wsgi, wsgi_environ, wsgi_request

SECRET = "middleware-secret"
BODY = b'{"action": "opened"}'
signer = Signer("github", secrets=SECRET)


class RecordingWSGIApp:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        self.calls.append(
            {
                "body": body,
                "length": environ.get("CONTENT_LENGTH"),
                "encoding": environ.get("HTTP_CONTENT_ENCODING"),
                "verified": environ.get(VERIFIED_KEY),
                "stream": stream,
            }
        )
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']


class RecordingASGIApp:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        self.calls.append(
            {
                "body": b"".join(chunks),
                "messages": len(chunks),
                "length": headers.get(b"content-length"),
                "encoding": headers.get(b"content-encoding"),
                "verified": scope.get("hmacguard.verified"),
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})


def wsgi_guard(**options: Any) -> tuple[WSGIGuard, RecordingWSGIApp]:
    app = RecordingWSGIApp()
    options.setdefault("verifier", Verifier("github", secrets=SECRET))
    return WSGIGuard(app, **options), app


def asgi_guard(**options: Any) -> tuple[ASGIGuard, RecordingASGIApp]:
    app = RecordingASGIApp()
    options.setdefault("verifier", Verifier("github", secrets=SECRET))
    return ASGIGuard(app, **options), app


def test_wsgi_app_gets_the_verified_body_and_it_is_released_after_the_response() -> None:
    guard, app = wsgi_guard()
    response = wsgi_request(guard, BODY, signer.sign(BODY))
    assert response.status == 200
    (call,) = app.calls
    assert call["body"] == BODY
    assert call["length"] == str(len(BODY))
    assert call["verified"].key_index == 0
    assert call["stream"].closed  # released with the request


def test_wsgi_refusal_never_reaches_the_app_and_is_problem_json() -> None:
    guard, app = wsgi_guard()
    response = wsgi_request(guard, BODY, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert response.status == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401
    assert problem["type"].endswith("signature-mismatch")
    assert SECRET not in response.body.decode()
    assert app.calls == []


def test_wsgi_413_before_reading_with_connection_close() -> None:
    class Untouchable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body must not be read")

    guard, _ = wsgi_guard()
    environ = wsgi_environ("POST", "/webhook", Untouchable(), signer.sign(b""))
    environ["CONTENT_LENGTH"] = str(100 * 1024 * 1024)
    response = call_wsgi(guard, environ)
    assert response.status == 413
    assert response.headers["Connection"] == "close"
    assert response.json()["max_body"] == 1024 * 1024


def test_wsgi_chunked_body_over_the_cap_is_cut_off() -> None:
    guard, app = wsgi_guard()
    big = b"x" * (2 * 1024 * 1024)
    environ = wsgi_environ("POST", "/webhook", io.BytesIO(big), signer.sign(big), content_length=False)
    response = call_wsgi(guard, environ)
    assert response.status == 413
    assert environ["wsgi.input"].tell() <= 1024 * 1024 + 64 * 1024
    assert app.calls == []


def test_wsgi_gzip_body_reaches_the_app_inflated_with_its_encoding_removed() -> None:
    guard, app = wsgi_guard()
    wire = gzip.compress(BODY)
    response = wsgi_request(guard, wire, {**signer.sign(wire), "Content-Encoding": "gzip"})
    assert response.status == 200
    assert app.calls[0]["body"] == BODY
    assert app.calls[0]["encoding"] is None


def test_unprotected_paths_pass_through_untouched() -> None:
    guard, app = wsgi_guard(paths=["/webhook", "/hooks/*"])
    assert wsgi_request(guard, b"plain", path="/health").status == 200
    assert app.calls[0]["verified"] is None
    assert wsgi_request(guard, b"plain", path="/hooks/github").status == 400
    assert wsgi_request(guard, b"plain", path="/webhook").status == 400


def test_methods_filter() -> None:
    guard, _ = wsgi_guard(methods=["POST"])
    assert wsgi_request(guard, b"", method="GET").status == 200
    assert wsgi_request(guard, b"", method="POST").status == 400


def test_rate_limit_headers_on_success_and_429_with_retry_after() -> None:
    guard, _ = wsgi_guard(
        rate_limiter=RateLimiter(limit="2/minute"), verifier=Verifier("github", secrets=SECRET, replay=None)
    )
    first = wsgi_request(guard, BODY, signer.sign(BODY), peer="10.0.0.1")
    assert first.status == 200
    assert first.headers["RateLimit-Policy"] == '"requests";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"requests";r=1;t=')
    assert wsgi_request(guard, BODY, signer.sign(BODY), peer="10.0.0.1").status == 200
    third = wsgi_request(guard, BODY, signer.sign(BODY), peer="10.0.0.1")
    assert third.status == 429
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert third.headers["RateLimit"] == f'"requests";r=0;t={third.headers["Retry-After"]}'
    # Another client has its own budget.
    assert wsgi_request(guard, BODY, signer.sign(BODY), peer="10.0.0.2").status == 200


def test_asgi_app_gets_the_body_replayed_and_headers_adjusted() -> None:
    guard, app = asgi_guard()
    wire = gzip.compress(BODY)
    response = asgi_request(guard, [wire[:7], wire[7:]], {**signer.sign(wire), "Content-Encoding": "gzip"})
    assert response.status == 200
    (call,) = app.calls
    assert call["body"] == BODY
    assert call["length"] == str(len(BODY)).encode()
    assert call["encoding"] is None
    assert call["verified"].closed  # released when the app returned


def test_asgi_spooled_body_is_replayed_in_chunks() -> None:
    guard, app = asgi_guard()
    body = bytes(range(256)) * 2048  # 512 KiB, above the 256 KiB spool threshold
    parts = [body[i : i + 10_000] for i in range(0, len(body), 10_000)]
    assert asgi_request(guard, parts, signer.sign(body)).status == 200
    assert app.calls[0]["body"] == body
    assert app.calls[0]["messages"] == 8  # 64 KiB each


def test_asgi_empty_body() -> None:
    guard, app = asgi_guard()
    assert asgi_request(guard, b"", signer.sign(b"")).status == 200
    assert app.calls[0]["body"] == b""


def test_asgi_refusals() -> None:
    guard, app = asgi_guard()
    big = [b"x" * 65536] * 40
    response = asgi_request(guard, big, signer.sign(b""), content_length=False)
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert json.loads(response.body)["status"] == 413
    assert asgi_request(guard, BODY, {}).status == 400
    assert app.calls == []


def test_asgi_slow_drip_gets_408_on_time() -> None:
    guard, app = asgi_guard(verifier=Verifier("github", secrets=SECRET, body_timeout=0.5))
    body = b"x" * 100
    response = asgi_request(
        guard, [body[i : i + 10] for i in range(0, 100, 10)], signer.sign(body), delay=0.2
    )
    assert response.status == 408
    assert response.headers["connection"] == "close"
    assert app.calls == []


def test_asgi_stalled_client_gets_408() -> None:
    guard, _ = asgi_guard(verifier=Verifier("github", secrets=SECRET, body_timeout=0.3))
    headers = {**signer.sign(b"x" * 10), "content-length": "10"}
    # Content-Length promises 10 bytes; only 5 arrive, then the client goes quiet.
    response = asgi_request(guard, [b"x" * 5], headers, content_length=False, stall=True)
    assert response.status == 408


def test_asgi_client_disconnect_mid_body_does_not_reach_the_app() -> None:
    guard, app = asgi_guard()
    body = b"x" * 100
    response = asgi_request(guard, [body[:50], body[50:]], signer.sign(body), disconnect_after=1)
    assert response.status == 400
    assert app.calls == []


def test_asgi_passes_lifespan_and_unprotected_requests() -> None:
    guard, app = asgi_guard(paths=["/webhook"])
    assert asgi_request(guard, b"hello", path="/other").status == 200
    assert app.calls[0]["verified"] is None


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "wsgi",
            marks=differs_when_compiled("verifier='not a verifier' is mypyc's TypeError on entry"),
        ),
        "asgi",
    ],
)
def test_middleware_configuration_is_keyword_only_and_validated(kind: str) -> None:
    from hmacguard import ConfigurationError

    cls = WSGIGuard if kind == "wsgi" else ASGIGuard
    with pytest.raises(TypeError):
        cls(RecordingWSGIApp(), Verifier("github", secrets="s"))  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        cls(RecordingWSGIApp(), verifier="not a verifier")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        cls(RecordingWSGIApp(), verifier=Verifier("github", secrets="s"), paths=["webhook"])  # type: ignore[arg-type]
