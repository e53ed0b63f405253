"""RateLimiter: the client-address trust model, the three budgets, the IETF fields, store failures."""

from __future__ import annotations

import logging
import socket

import pytest

from hmacguard import (
    ConfigurationError,
    RateLimited,
    RateLimiter,
    RedisReplayStore,
    RequestHead,
    Signer,
    StoreUnavailable,
    Verifier,
    WSGIGuard,
    client_address,
)

from ._inprocess import wsgi_request

SECRET = "rl-secret"
signer = Signer("github", secrets=SECRET)


def ok_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [])  # type: ignore[operator]
    return [b"ok"]


def head(peer: str, xff: str | None = None, **headers: str) -> RequestHead:
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if xff is not None:
        h["x-forwarded-for"] = xff
    return RequestHead("POST", "/webhook", h, peer)


def test_without_trusted_proxies_x_forwarded_for_is_ignored() -> None:
    assert client_address("203.0.113.9", {"x-forwarded-for": "1.2.3.4"}) == "203.0.113.9"


def test_a_counted_proxy_chain_takes_the_nth_entry_from_the_right() -> None:
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.0.0.2"}
    # Two proxies of ours: the rightmost entry was written by the outer proxy, about the client.
    assert client_address("10.0.0.3", headers, trusted_proxies=2) == "198.51.100.7"
    # The leftmost, client-written entry is never trusted.
    assert client_address("10.0.0.3", {"x-forwarded-for": "1.1.1.1"}, trusted_proxies=2) == "10.0.0.3"


def test_trusted_networks_only_honour_the_header_from_a_trusted_peer() -> None:
    nets = ["10.0.0.0/8"]
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.2.3"}
    assert client_address("10.0.0.1", headers, trusted_proxies=nets) == "198.51.100.7"
    assert client_address("203.0.113.1", headers, trusted_proxies=nets) == "203.0.113.1"
    assert client_address("10.0.0.1", {"x-forwarded-for": "10.9.9.9"}, trusted_proxies=nets) == "10.9.9.9"


def test_keys_by_client_or_key_id_header_or_function() -> None:
    assert RateLimiter().key_for(head("10.0.0.1")) == "ip:10.0.0.1"
    by_id = RateLimiter(key="header:X-Key-Id")
    assert by_id.key_for(head("10.0.0.1", x_key_id="tenant-7")) == "id:tenant-7"
    custom = RateLimiter(key=lambda h: h.path)
    assert custom.key_for(head("10.0.0.1")) == "/webhook"


def test_request_budget_and_retry_after() -> None:
    limiter = RateLimiter(limit="3/minute")
    for _ in range(3):
        limiter.admit("k", declared_bytes=None)
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", declared_bytes=None)
    assert 1 <= info.value.retry_after <= 60


def test_bytes_budget_counts_declared_then_received_bytes() -> None:
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets=SECRET, replay=None),
        rate_limiter=RateLimiter(limit=None, bytes_limit="3000/minute"),
    )
    body = b"x" * 1000
    statuses = [wsgi_request(guard, body, signer.sign(body)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = wsgi_request(guard, b"", signer.sign(b""))
    assert response.status == 429
    assert response.headers["RateLimit-Policy"] == '"bytes";q=3000;qu="content-bytes";w=60'


def test_failure_budget_shuts_out_a_client_that_keeps_failing() -> None:
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets=SECRET, replay=None),
        rate_limiter=RateLimiter(limit="100/minute", failure_limit="3/minute"),
    )
    bad = {"X-Hub-Signature-256": "sha256=" + "1" * 64}
    assert [wsgi_request(guard, b"x", bad).status for _ in range(3)] == [401, 401, 401]
    # Now even a correctly signed request from that client is refused, before its body is read.
    refused = wsgi_request(guard, b"x", signer.sign(b"x"))
    assert refused.status == 429
    assert refused.json()["detail"] == "too many failed verifications"
    assert wsgi_request(guard, b"x", signer.sign(b"x"), peer="10.9.9.9").status == 200


def test_requests_in_flight_count_against_the_failure_budget() -> None:
    """Admission makes room for every request still being read, so concurrency cannot overrun it."""
    limiter = RateLimiter(limit=None, failure_limit="3/minute")
    admitted = [limiter.admit("k", declared_bytes=None) for _ in range(3)]
    with pytest.raises(RateLimited):  # three bodies in flight fill a budget of three
        limiter.admit("k", declared_bytes=None)
    limiter.settle(admitted[0], 10, failed=False)  # one verified: its place is free again
    admitted.append(limiter.admit("k", declared_bytes=None))
    for state in admitted[1:]:
        limiter.settle(state, 10, failed=True)  # three failures spend the whole budget
    with pytest.raises(RateLimited):
        limiter.admit("k", declared_bytes=None)
    assert limiter.admit("other", declared_bytes=None).in_flight


def test_a_content_length_of_thousands_of_digits_is_a_400_with_a_rate_limiter() -> None:
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets=SECRET),
        rate_limiter=RateLimiter(limit="10/minute", bytes_limit="1000000/minute"),
    )
    for length in ("9" * 5000, "1" * 20, "0" * 4301):
        environ_headers = {**signer.sign(b"x"), "Content-Length": length}
        from ._inprocess import call_wsgi, wsgi_environ

        environ = wsgi_environ("POST", "/webhook", b"x", environ_headers)
        environ["CONTENT_LENGTH"] = length
        response = call_wsgi(guard, environ)
        assert response.status in (400, 413), (length[:10], response.status)
        assert response.headers["Content-Type"] == "application/problem+json"


def test_a_counted_proxy_chain_warns_that_any_peer_is_trusted() -> None:
    with pytest.warns(UserWarning, match="trusts X-Forwarded-For from any peer"):
        RateLimiter(trusted_proxies=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RateLimiter(trusted_proxies=["10.0.0.0/8"])
        RateLimiter(trusted_proxies=0)


def test_ratelimit_fields_follow_the_ietf_draft_syntax() -> None:
    limiter = RateLimiter(limit="10/second", failure_limit="5/hour")
    state = limiter.admit("k", declared_bytes=None)
    fields = dict(limiter.headers(state))
    assert fields["RateLimit-Policy"] == '"requests";q=10;w=1, "failures";q=5;w=3600'
    requests, failures = fields["RateLimit"].split(", ")
    assert requests.startswith('"requests";r=9;t=')
    assert failures.startswith('"failures";r=5;t=')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_fails_closed_with_503() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets=SECRET, replay=RedisReplayStore(url)),
        rate_limiter=RateLimiter(storage=url),
    )
    response = wsgi_request(guard, b"x", signer.sign(b"x"))
    assert response.status == 503
    assert response.json()["type"].endswith("store-unavailable")
    only_replay = WSGIGuard(ok_app, verifier=Verifier("github", secrets=SECRET, replay=RedisReplayStore(url)))
    assert wsgi_request(only_replay, b"x", signer.sign(b"x")).status == 503


def test_unreachable_redis_passes_with_a_warning_when_fail_open(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets=SECRET, replay=RedisReplayStore(url, fail_open=True)),
        rate_limiter=RateLimiter(storage=url, fail_open=True),
    )
    with caplog.at_level(logging.DEBUG, logger="hmacguard"):
        assert wsgi_request(guard, b"x", signer.sign(b"x")).status == 200
    messages = [r.getMessage() for r in caplog.records]
    assert any("replay store unavailable" in m for m in messages)
    assert any("rate-limit store unavailable" in m for m in messages)
    # Both stores share the server's circuit breaker: the outage is one warning, the calls the open
    # breaker refused are debug records.
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_store_unavailable_error_is_a_503() -> None:
    assert StoreUnavailable.status == 503


@pytest.mark.parametrize(
    "options",
    [
        {"limit": "lots"},
        {"limit": None},
        {"strategy": "token-bucket"},
        {"key": "cookie:x"},
        {"trusted_proxies": -1},
        {"trusted_proxies": ["not-a-network"]},
        {"storage": "nosuch://x"},
    ],
)
def test_configuration_mistakes_raise(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["redis+cluster://127.0.0.1", "redis+cluster://:7000", "redis+sentinel://h:1"]
)
def test_a_malformed_cluster_or_sentinel_url_is_refused_at_construction(url: str) -> None:
    # A Cluster client is built at the first store call (so a worker starts during an outage), but
    # a URL that can never work is a mistake to report at start-up.
    with pytest.raises(ConfigurationError):
        RedisReplayStore(url)
    if "+cluster" in url:
        with pytest.raises(ConfigurationError):
            RateLimiter(storage=url)
