"""Review of the breaker and store outages (issues 10 and 14).

The promise: fail-open costs at most one store timeout per request and about nothing while the
breaker is open; fail-closed answers 503 at once while it is open; a half-open probe lets exactly
one call through; never a 500 -- for one Redis, a Cluster and Sentinel alike.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hmacguard import (
    ASGIGuard,
    MemoryReplayStore,
    RateLimiter,
    RedisReplayStore,
    Signer,
    StoreUnavailable,
    Verifier,
    WSGIGuard,
)
from hmacguard.guard.breaker import CircuitBreaker, CircuitOpen

from ._inprocess import asgi_request, wsgi_request
from ._redis_topologies import Cluster, redis_cluster

SECRET = "review-outage-secret"
signer = Signer("github", secrets=SECRET)


def ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [b"ok"]


async def ok_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _body() -> bytes:
    return b'{"delivery": "%s"}' % uuid.uuid4().hex.encode()


def _wsgi_status(app: Any) -> int:
    body = _body()
    try:
        return wsgi_request(app, body, signer.sign(body)).status
    except Exception:
        return 500  # what the server answers when the application raises


def _asgi_status(app: Any) -> int:
    body = _body()
    try:
        return asgi_request(app, body, signer.sign(body)).status
    except Exception:
        return 500


# -- the breaker ------------------------------------------------------------------------------------
def test_a_call_that_succeeds_late_does_not_close_a_breaker_opened_meanwhile() -> None:
    """Thread A's call started while all was well and answers late; meanwhile thread B's call
    failed and opened the breaker. A's success closed it again, so the next calls went to the
    failing store and paid its timeout again (a partial outage -- one Cluster primary down, an
    overloaded Redis -- kept the breaker flapping)."""
    breaker = CircuitBreaker(reset_after=60)
    inside = threading.Event()
    finish = threading.Event()

    def slow_success() -> int:
        inside.set()
        finish.wait(5)
        return 1

    def failure() -> int:
        raise ConnectionError("timed out")

    late = threading.Thread(target=lambda: breaker.call(slow_success, (ConnectionError,)))
    late.start()
    inside.wait(5)
    with pytest.raises(ConnectionError):
        breaker.call(failure, (ConnectionError,))
    finish.set()
    late.join(5)
    assert breaker.is_open
    with pytest.raises(CircuitOpen):
        breaker.call(failure, (ConnectionError,))


# -- what a store call raises that is not a store error -------------------------------------------
class _BrokenStore(MemoryReplayStore):
    """A blocking store whose client raises something that is not one of its store errors."""

    blocking = True

    def hold(self, key: str, ttl: float) -> str | None:
        raise ValueError("the client library failed in a way nobody listed")


def test_wsgi_an_unexpected_store_exception_is_not_blamed_on_the_request_body() -> None:
    """guard_environ answered *any* exception of a step with 400 'body framing is malformed' and
    charged it to the sender's failure budget -- the store's too: a signed delivery refused as the
    client's fault (providers do not retry most 4xx), the sender's budget spent on our failure.
    ASGI lets the same exception through (a 5xx the sender retries); so must WSGI."""
    limiter = RateLimiter(limit=None, failure_limit="1/minute")
    guard = WSGIGuard(
        ok_app, verifier=Verifier("github", secrets=SECRET, replay=_BrokenStore()), rate_limiter=limiter
    )
    assert _wsgi_status(guard) >= 500
    broken = Verifier("github", secrets=SECRET, replay=_BrokenStore())
    assert _asgi_status(ASGIGuard(ok_asgi, verifier=broken)) >= 500


# -- a Redis Cluster that goes away ----------------------------------------------------------------
@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with redis_cluster(3) as running:
        yield running


def _cluster_guards(url: str, *, fail_open: bool, kind: str) -> tuple[WSGIGuard, ASGIGuard]:
    tag = uuid.uuid4().hex
    out = []
    for _ in range(2):
        replay: Any = "memory"
        limiter = None
        if kind == "replay":
            replay = RedisReplayStore(url, fail_open=fail_open, prefix=f"{tag}:", timeout=0.5)
        else:
            limiter = RateLimiter(
                limit="1000/minute", failure_limit="100/minute", storage=url, fail_open=fail_open,
                prefix=tag, timeout=0.5,
            )  # fmt: skip
        out.append(Verifier("github", secrets=SECRET, replay=replay))
    return (
        WSGIGuard(ok_app, verifier=out[0], rate_limiter=limiter),
        ASGIGuard(ok_asgi, verifier=out[1], rate_limiter=limiter),
    )


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["replay", "limiter"])
def test_a_cluster_whose_every_primary_is_gone_fails_closed_with_503_and_open_with_200(
    cluster: Cluster, kind: str
) -> None:
    """Every primary killed: redis-py's cluster client, failing to re-read the slots, raises
    RedisClusterException -- not a RedisError. The stores did not count it as an outage: WSGI
    answered 400 'body framing is malformed' (charged to the sender), ASGI a 500, fail-open or not."""
    closed = _cluster_guards(cluster.url, fail_open=False, kind=kind)
    opened = _cluster_guards(cluster.url, fail_open=True, kind=kind)
    assert [_wsgi_status(closed[0]), _asgi_status(closed[1])] == [200, 200]
    for index in range(len(cluster.ports)):
        cluster.kill(index)
    assert [_wsgi_status(closed[0]) for _ in range(3)] == [503] * 3
    assert [_asgi_status(closed[1]) for _ in range(3)] == [503] * 3
    assert [_wsgi_status(opened[0]) for _ in range(3)] == [200] * 3
    assert [_asgi_status(opened[1]) for _ in range(3)] == [200] * 3


@pytest.mark.slow
@pytest.mark.redis
def test_a_fail_open_guard_starts_while_the_cluster_is_down(cluster: Cluster) -> None:
    """redis-py's RedisCluster (and limits' cluster storage) read the slot map in their
    constructors: built at the first store call instead, inside the breaker, so a worker starts
    during a Cluster outage and the outage is a pass (here) or a 503 per request."""
    url = cluster.url
    for index in range(len(cluster.ports)):
        cluster.kill(index)
    store = RedisReplayStore(url, fail_open=True, timeout=0.5)
    limiter = RateLimiter(limit="10/minute", storage=url, fail_open=True, timeout=0.5)
    guard = WSGIGuard(ok_app, verifier=Verifier("github", secrets=SECRET, replay=store), rate_limiter=limiter)
    assert _wsgi_status(guard) == 200


def test_store_unavailable_is_a_503_problem_for_asgi_too() -> None:
    """Sanity for the tests above: a store that says it is unavailable gets 503, not 500."""

    class Down(MemoryReplayStore):
        blocking = True

        def hold(self, key: str, ttl: float) -> str | None:
            raise StoreUnavailable("down")

    down = Verifier("github", secrets=SECRET, replay=Down())
    assert _asgi_status(ASGIGuard(ok_asgi, verifier=down)) == 503
    assert _wsgi_status(WSGIGuard(ok_app, verifier=down)) == 503


# -- credentials in Cluster and Sentinel URLs ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("fail_open", [False, True])
def test_a_sentinel_url_with_an_acl_user_authenticates_as_that_user(fail_open: bool) -> None:
    """``redis+sentinel://alice:pw@host:port/service``: the user name was dropped and the password
    sent for the default user, so every store call failed -- fail-closed, each signed delivery got
    503; fail-open, replay protection was silently off (a replay passed). limits, reading the same
    URL for the rate limiter, does log in as alice."""
    import redis as redis_py

    from ._redis_topologies import redis_sentinel

    with redis_sentinel() as sentinel:
        # The default user gets a password of its own (a default user without one takes any
        # password), told first to the Sentinel and to the replica so that nothing fails over.
        redis_py.Redis(port=sentinel.sentinel_port).execute_command(
            "SENTINEL", "SET", sentinel.service, "auth-pass", "default-secret"
        )
        redis_py.Redis(port=sentinel.replica_port).config_set("masterauth", "default-secret")
        primary = redis_py.Redis(port=sentinel.primary_port)
        primary.execute_command("ACL", "SETUSER", "alice", "on", ">alice-secret", "~*", "&*", "+@all")
        primary.execute_command("ACL", "SETUSER", "default", "resetpass", ">default-secret")
        url = f"redis+sentinel://alice:alice-secret@127.0.0.1:{sentinel.sentinel_port}/{sentinel.service}"
        store = RedisReplayStore(url, fail_open=fail_open, prefix=f"{uuid.uuid4().hex}:", timeout=0.5)
        guard = WSGIGuard(ok_app, verifier=Verifier("github", secrets=SECRET, replay=store))
        body = _body()
        first = wsgi_request(guard, body, signer.sign(body)).status
        replay = wsgi_request(guard, body, signer.sign(body)).status
    assert (first, replay) == (200, 409)


def test_a_cluster_url_with_an_acl_user_passes_the_user_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for ``redis+cluster://`` (its client connects when built, so the drop shows as an
    authentication error at start-up rather than silently)."""
    from redis import cluster

    from hmacguard.guard.redis_urls import redis_client

    seen: dict[str, Any] = {}

    def capture(**kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    monkeypatch.setattr(cluster, "RedisCluster", capture)
    redis_client("redis+cluster://alice:pw@127.0.0.1:7000,127.0.0.1:7001", timeout=0.5)
    assert (seen.get("username"), seen.get("password")) == ("alice", "pw")
