"""Signer: streaming signatures (files, iterators) and the httpx.Auth, verified by our own guard."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from hmacguard import ASGIGuard, ConfigurationError, Signer, Verifier, WSGIGuard
from tests.guard._inprocess import receive_body

SECRETS = {
    "github": "gh",
    "stripe": "st",
    "slack": "sl",
    "standard-webhooks": "whsec_c2VjcmV0",
    "generic": "ge",
}


def echo_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


async def echo_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await receive_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("scheme", sorted(SECRETS))
def test_bytes_file_and_iterator_give_the_same_signature(scheme: str, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    signer = Signer(scheme, secrets=[SECRETS[scheme], "b2xkZXI="], chunk_size=4096)
    fixed = {"timestamp": 1_700_000_000, "message_id": "msg_fixed"}
    one = signer.sign(data, **fixed)
    assert signer.sign_file(path, **fixed) == one
    assert signer.sign(iter([data[:10], data[10:]]), **fixed) == one
    # Receivers accept it, with the same secret list: the signer used the first (current) one.
    verifier = Verifier(scheme, secrets=[SECRETS[scheme], "b2xkZXI="], tolerance=10**10)
    assert verifier.verify(one, data).key_index == 0


def test_signing_a_large_file_holds_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        for _ in range(32):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        Signer("github", secrets="s").sign_file(path)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak


@pytest.mark.parametrize("scheme", sorted(SECRETS))
def test_httpx_auth_signs_requests_our_wsgi_guard_accepts(scheme: str) -> None:
    signer = Signer(scheme, secrets=SECRETS[scheme])
    app = WSGIGuard(echo_wsgi, verifier=Verifier(scheme, secrets=SECRETS[scheme]))
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1") as client:
        ok = client.post("/webhook", content=b"payload", auth=signer.httpx_auth())
        assert ok.status_code == 200
        assert ok.content == b"payload"
        assert client.post("/webhook", json={"a": 1}, auth=signer.httpx_auth()).status_code == 200
        assert client.post("/webhook", content=b"payload").status_code == 400


def test_httpx_auth_with_an_async_client_and_the_asgi_guard() -> None:
    signer = Signer("stripe", secrets="st")
    app = ASGIGuard(echo_asgi, verifier=Verifier("stripe", secrets="st"))

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.post("/hook", content=b"x" * 1000, auth=signer.httpx_auth())

    response = asyncio.run(main())
    assert response.status_code == 200
    assert response.content == b"x" * 1000


def test_httpx_auth_keeps_the_callers_content_type() -> None:
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["type"] = environ.get("CONTENT_TYPE", "")
        start_response("200 OK", [])
        return [b""]

    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1") as client:
        client.post(
            "/",
            content=b"a=1",
            headers={"Content-Type": "text/plain"},
            auth=Signer("github", secrets="g").httpx_auth(),
        )
    assert seen["type"] == "text/plain"


def test_httpx_auth_refuses_a_streamed_body_with_a_clear_error() -> None:
    def chunks() -> Any:
        yield b"abc"

    transport = httpx.WSGITransport(app=echo_wsgi)
    with (
        httpx.Client(transport=transport, base_url="http://127.0.0.1") as client,
        pytest.raises(ConfigurationError, match="sign_file"),
    ):
        client.post("/", content=chunks(), auth=Signer("github", secrets="g").httpx_auth())


def test_signer_configuration_mistakes() -> None:
    with pytest.raises(ConfigurationError):
        Signer("github", secrets=[])
    with pytest.raises(ConfigurationError):
        Signer("standard-webhooks", secrets="not base64!")
    with pytest.raises(ConfigurationError):
        Signer("github", secrets="s", chunk_size=0)
