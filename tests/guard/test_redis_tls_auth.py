"""The Redis stores as managed and self-hosted production Redis runs: TLS only, with a private CA,
and AUTH (an ACL user, or a password on the default user; Sentinel with or without its own password).

One server, a 3-primary Cluster and Sentinel, each started by the test (tests/guard/_redis_topologies.py).
The replay store (redis-py, built by :func:`hmacguard.guard.redis_urls.redis_client`) and the rate
limiter (a ``limits`` storage) take the same URL and must reach the same server the same way:
verifying the server against the CA the URL names, sending the URL's credentials to the data nodes
and Sentinel's own password (``sentinel_password``) to the Sentinels. A wrong password is an outage
(503 fail-closed, a pass fail-open) logged without the secret, never a 500.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from hmacguard import RateLimiter, RedisReplayStore, Signer, Verifier, WSGIGuard
from hmacguard.errors import RateLimited, StoreUnavailable

from ._inprocess import wsgi_request
from ._redis_topologies import (
    Access,
    Cluster,
    SentinelSetup,
    Single,
    redis_cluster,
    redis_sentinel,
    redis_single,
)
from ._servers import gunicorn, uvicorn
from ._tls import CertificateFiles, private_ca
from .test_redis_servers import APP, delivery, post

pytestmark = [pytest.mark.slow, pytest.mark.redis]
ASGI_APP = "tests.guard._apps.redis_guarded:asgi"

#: URL-special characters: the URL carries it percent-encoded, the server wants it decoded.
PASSWORD = "p@ss:w/rd%-7f3a"
SENTINEL_PASSWORD = "sentinel-only-9c1e"
WRONG = "wr0ng:p@ss-4b2d"
SECRETS = [s for p in (PASSWORD, SENTINEL_PASSWORD, WRONG) for s in (p, quote(p, safe=""))]
#: The breaker is shared by every store on one endpoint in this process: a short window, so a test
#: that opens it (a wrong password) does not refuse the next test's calls.
BREAKER = 0.05
TIMEOUT = 3.0  # TLS handshakes on a loaded two-core machine
TOPOLOGIES = ["single", "cluster", "sentinel"]
Topology = Single | Cluster | SentinelSetup


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return private_ca(Path(tmp_path_factory.mktemp("private-ca")))


@pytest.fixture(scope="module")
def production(certificates: CertificateFiles) -> Access:
    """TLS only, an ACL user (the default user off), and Sentinel with its own password."""
    return Access(tls=certificates, user="guard", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)


@pytest.fixture(scope="module")
def single(production: Access) -> Iterator[Single]:
    with redis_single(production) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(production: Access) -> Iterator[Cluster]:
    with redis_cluster(3, production) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def sentinel(production: Access) -> Iterator[SentinelSetup]:
    with redis_sentinel(access=production) as setup:
        yield setup


@pytest.fixture(scope="module")
def open_sentinel() -> Iterator[SentinelSetup]:
    """The common self-hosted setup: the data nodes ask for a password, Sentinel for none."""
    with redis_sentinel(access=Access(password=PASSWORD)) as setup:
        yield setup


def _topology(request: pytest.FixtureRequest, name: str) -> Any:
    return request.getfixturevalue(name)


def replay_store(target: Any, **options: Any) -> RedisReplayStore:
    if isinstance(target, str):
        return RedisReplayStore(target, timeout=TIMEOUT, breaker_reset=BREAKER, **options)
    return RedisReplayStore(client=target, timeout=TIMEOUT, breaker_reset=BREAKER, **options)


def rate_limiter(storage: Any, **options: Any) -> RateLimiter:
    return RateLimiter(limit="2/hour", storage=storage, timeout=TIMEOUT, breaker_reset=BREAKER, **options)


def replays_refused(target: Any) -> None:
    """A fresh id is held; the same id again is a replay."""
    store = replay_store(target)
    try:
        key = f"tls-auth:{uuid.uuid4().hex}"
        assert store.hold(key, 30) is not None
        assert store.hold(key, 30) is None
    finally:
        store.close()


def budgets_spent(storage: Any) -> None:
    """Two requests a client may make; the third is refused."""
    limiter = rate_limiter(storage)
    key = f"id:tls-auth-{uuid.uuid4().hex}"
    limiter.admit(key, declared_bytes=10)
    limiter.admit(key, declared_bytes=10)
    with pytest.raises(RateLimited):
        limiter.admit(key, declared_bytes=10)


def client_of(topology: Topology) -> Any:
    """A redis-py client of the topology's data, made as its docs say (TLS, CA, ACL user)."""
    if isinstance(topology, SentinelSetup):
        return topology.sentinel_client().master_for(topology.service)
    return topology.client()


# -- 1. TLS with a private CA ---------------------------------------------------------------------


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_the_replay_store_verifies_the_server_against_the_urls_ca(
    request: pytest.FixtureRequest, name: str
) -> None:
    replays_refused(_topology(request, name).url)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_the_rate_limiter_verifies_the_server_against_the_urls_ca(
    request: pytest.FixtureRequest, name: str
) -> None:
    budgets_spent(_topology(request, name).url)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_without_the_ca_a_private_certificate_is_refused_by_both_stores(
    request: pytest.FixtureRequest, name: str
) -> None:
    """``rediss://`` verifies by default: with only the system's CAs, both stores are unavailable
    (503), neither connects to a server it cannot verify."""
    url = _topology(request, name).url_with(ssl_ca_certs="")
    store = replay_store(url)
    with pytest.raises(StoreUnavailable):
        store.hold(f"tls-auth:{uuid.uuid4().hex}", 30)
    limiter = rate_limiter(url)
    with pytest.raises(StoreUnavailable):
        limiter.admit(f"id:{uuid.uuid4().hex}", declared_bytes=10)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_ssl_cert_reqs_none_is_honoured_by_both_stores(request: pytest.FixtureRequest, name: str) -> None:
    """``ssl_cert_reqs=none``: encrypted, the server not verified (insecure: the guide says so)."""
    url = _topology(request, name).url_with(ssl_ca_certs="", ssl_cert_reqs="none")
    replays_refused(url)
    budgets_spent(url)


# -- 2. Sentinel's own password --------------------------------------------------------------------


def test_both_stores_reach_data_nodes_with_a_password_behind_an_open_sentinel(
    open_sentinel: SentinelSetup,
) -> None:
    """The URL's password is the data nodes'; a Sentinel without one must not be sent it."""
    replays_refused(open_sentinel.url)
    budgets_spent(open_sentinel.url)


def test_without_sentinel_password_a_protected_sentinel_is_an_outage_for_both(
    sentinel: SentinelSetup,
) -> None:
    url = sentinel.url_with(sentinel_password="")
    store = replay_store(url)
    with pytest.raises(StoreUnavailable):
        store.hold(f"tls-auth:{uuid.uuid4().hex}", 30)
    with pytest.raises(StoreUnavailable):
        rate_limiter(url).admit(f"id:{uuid.uuid4().hex}", declared_bytes=10)


# -- 3. A wrong password ---------------------------------------------------------------------------

signer = Signer("github", secrets="tls-auth-secret")


def ok_app(environ: dict[str, object], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
@pytest.mark.parametrize("name", TOPOLOGIES)
def test_a_wrong_password_is_an_outage_logged_without_the_secret(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, name: str, fail_open: bool
) -> None:
    url = _topology(request, name).url_with(password=WRONG)
    time.sleep(BREAKER * 2)  # the previous test's breaker on this endpoint has closed
    guard = WSGIGuard(
        ok_app,
        verifier=Verifier("github", secrets="tls-auth-secret", replay=replay_store(url, fail_open=fail_open)),
        rate_limiter=rate_limiter(url, fail_open=fail_open),
    )
    body = b'{"wrong": "password"}'
    with caplog.at_level(logging.DEBUG):
        response = wsgi_request(guard, body, signer.sign(body))
    assert response.status == (200 if fail_open else 503), response.body
    text = caplog.text + response.body.decode()
    assert "AuthenticationError" in caplog.text, caplog.text  # the cause, named
    for secret in SECRETS:
        assert secret not in text


# -- 4. Client objects -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_both_stores_take_a_tls_acl_client_object(request: pytest.FixtureRequest, name: str) -> None:
    topology = _topology(request, name)
    replays_refused(client_of(topology))
    budgets_spent(client_of(topology))


# -- End to end, under gunicorn and uvicorn --------------------------------------------------------


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_servers_share_replays_and_budgets_over_tls_with_an_acl_user(
    request: pytest.FixtureRequest, name: str
) -> None:
    """gunicorn (two workers) and uvicorn on one TLS + ACL deployment: a delivery accepted by one
    is a replay (409) at the other, one client's budget is spent across both (429). With a wrong
    password the server answers 503, and the secret is nowhere: not in its log, the problem+json
    body, or a metric."""
    topology = _topology(request, name)
    env = {"HMACGUARD_TEST_REDIS": topology.url, "HMACGUARD_TEST_RATE": "3/hour"}
    with gunicorn(APP, env, workers=2) as wsgi, uvicorn(ASGI_APP, env) as asgi:
        body, headers = delivery(f"client-{uuid.uuid4().hex}")
        assert post(wsgi, body, headers).status_code == 200
        assert post(asgi, body, headers).status_code == 409
        assert post(wsgi, body, headers).status_code == 409
        client = f"budget-{uuid.uuid4().hex}"
        statuses = [post(server, *delivery(client)).status_code for server in [asgi, wsgi] * 3]
        assert statuses == [200, 200, 200, 429, 429, 429]
        logs = wsgi.log() + asgi.log()
    assert "Traceback" not in logs, logs
    wrong = {"HMACGUARD_TEST_REDIS": topology.url_with(password=WRONG), "HMACGUARD_TEST_METRICS": "1"}
    with uvicorn(ASGI_APP, wrong) as server:
        answers = [post(server, *delivery()) for _ in range(2)]
        metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
        log = server.log()
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].headers["content-type"] == "application/problem+json"
    assert "Traceback" not in log, log
    assert "unavailable" in log, log
    for secret in SECRETS:
        assert all(secret not in text for text in [log, metrics, *(a.text for a in answers)]), secret
