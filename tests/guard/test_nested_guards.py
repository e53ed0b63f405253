"""Guards nested over overlapping paths: the inner one takes the outer one's verification only when
it vouches for it (``Guard.vouched``: the very Verifier that verified, and the same rate limiter if
it has one), and otherwise verifies again, under its own policy -- a delivery signed for another
tenant is refused. Verifying again on the outer guard's replay store takes no second hold of the
same delivery (``Verifier.hold`` with the ``OuterHold``): that would answer 409, and the outer
guard would commit a delivery nobody processed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from hmacguard import MemoryReplayStore, RedisReplayStore, Verifier, WSGIGuard
from hmacguard.guard.replay import same_keys
from hmacguard.schemes import sign_body

from ._inprocess import wsgi_request
from ._nesting import Seen, nested, post, wsgi_app

A, B = "nested-tenant-a", "nested-tenant-b"
counter = iter(range(10**6))


def _delivery(secret: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(counter)
    return body, sign_body("github", secret, body)


def _on_one_store(
    kind: str, seen: Seen, outer_secrets: list[str] | None = None
) -> tuple[Any, MemoryReplayStore]:
    """Outer: A's and B's secrets; inner: B's; one replay store for both (vouched for)."""
    store = MemoryReplayStore()
    outer = Verifier("github", secrets=outer_secrets or [A, B], replay=store)
    return nested(kind, outer, Verifier("github", secrets=B, replay=store), seen), store


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_two_verifiers_on_one_store_take_one_hold(kind: str) -> None:
    """The two verifiers' current secrets agree (B), so their replay keys do: the inner one sees
    the outer one's hold and takes no second hold of the same key (which would answer 409). The
    store has the outer guard's two keys (the content under B and under A), no more."""
    seen = Seen()
    app, store = _on_one_store(kind, seen, outer_secrets=[B, A])
    body, headers = _delivery(B)
    assert post(kind, app, body, headers) == 200
    assert post(kind, app, body, headers) == 409
    assert seen == [(body, 0)]
    assert len(store) == 2


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_two_verifiers_with_other_current_secrets_hold_a_key_each(kind: str) -> None:
    """A replay key is the content's digest under the verifier's current secret (A outside, B
    inside), and the outer guard holds the content under its other secret (B) too: the inner one
    finds its key held by that very hold and takes none. Verified again, processed once, the
    replay refused."""
    seen = Seen()
    app, store = _on_one_store(kind, seen)
    body, headers = _delivery(B)
    assert post(kind, app, body, headers) == 200
    assert post(kind, app, body, headers) == 409
    # The application sees the inner verifier's index of the secret (0), not the outer one's (1).
    assert seen == [(body, 0)]
    assert len(store) == 2


def test_two_redis_stores_on_one_url_are_the_same_keys() -> None:
    url = "redis://127.0.0.1:6399/3"  # never connected to: the keys' identity is the URL and prefix
    assert same_keys(RedisReplayStore(url), RedisReplayStore(url))
    assert not same_keys(RedisReplayStore(url), RedisReplayStore(url, prefix="other:"))
    assert not same_keys(RedisReplayStore(url), RedisReplayStore("redis://127.0.0.1:6399/4"))
    assert same_keys(RedisReplayStore(url), RedisReplayStore("redis://user:secret@127.0.0.1:6399/3"))
    assert not same_keys(MemoryReplayStore(), MemoryReplayStore())


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_an_inner_guard_with_its_own_store_verifies_again(kind: str) -> None:
    """Distinct replay stores: the outer one's check is not the inner one's, so the inner guard
    verifies again and holds in its own store (no collision)."""
    seen = Seen()
    inner_store = MemoryReplayStore()
    app = nested(
        kind, Verifier("github", secrets=[A, B]), Verifier("github", secrets=B, replay=inner_store), seen
    )
    body, headers = _delivery(B)
    assert post(kind, app, body, headers) == 200
    assert post(kind, app, body, headers) == 409
    assert seen == [(body, 0)] and len(inner_store) == 1


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_another_tenants_delivery_is_refused_by_the_inner_guard(kind: str) -> None:
    seen = Seen()
    app, _ = _on_one_store(kind, seen)
    assert post(kind, app, *_delivery(A)) == 401  # passed the outer guard (A's secret), not B's
    assert seen == []


def test_a_body_read_in_between_reaches_the_application_whole() -> None:
    """A middleware between the guards reads part of the verified body; the inner guard vouches and
    the application still reads it from the start."""
    store = MemoryReplayStore()
    seen = Seen()
    inner = WSGIGuard(
        wsgi_app(seen), verifier=Verifier("github", secrets=B, replay=store), paths=["/hooks/b"]
    )

    def peek(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"].read(3)
        return inner(environ, start_response)

    app = WSGIGuard(peek, verifier=Verifier("github", secrets=B, replay=store), paths=["/hooks/*"])
    body, headers = _delivery(B)
    assert wsgi_request(app, body, headers, path="/hooks/b").status == 200
    assert seen == [(body, 0)]


def test_a_laxer_outer_guard_is_not_vouched_for() -> None:
    """The outer guard has a larger cap than the inner one: the inner one verifies again, under its
    own cap."""
    seen = Seen()
    store = MemoryReplayStore()
    app = nested(
        "wsgi",
        Verifier("github", secrets=B, replay=store, max_body=1 << 20),
        Verifier("github", secrets=B, replay=MemoryReplayStore(), max_body=16),
        seen,
    )
    body = b'{"padding": "%s"}' % (b"x" * 64)
    assert post("wsgi", app, body, sign_body("github", B, body)) == 413
    assert seen == []


def test_an_inner_guard_with_a_rate_limiter_verifies_again_under_its_limits() -> None:
    """Vouching would skip the inner guard's rate limit: a guard with a limiter of its own verifies
    again (its own replay store, so no collision), and its budget holds."""
    from hmacguard import RateLimiter

    seen = Seen()
    inner = WSGIGuard(
        wsgi_app(seen),
        verifier=Verifier("github", secrets=B, replay=MemoryReplayStore()),
        rate_limiter=RateLimiter(limit="2/hour"),
        paths=["/hooks/b"],
    )
    app = WSGIGuard(inner, verifier=Verifier("github", secrets=B), paths=["/hooks/*"])
    statuses = [wsgi_request(app, *_delivery(B), path="/hooks/b").status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(seen) == 2


def test_the_same_rate_limiter_inside_and_outside_vouches_and_charges_once() -> None:
    """The FastAPI recipe with a rate limiter passed to the middleware and the dependency alike (or
    two nested guards sharing one): the inner guard vouches -- admission and budgets were applied by
    the outer one -- so no second hold (which would collide, 409) and no second charge."""
    from hmacguard import RateLimiter

    limiter = RateLimiter(limit="3/hour")
    store = MemoryReplayStore()
    seen = Seen()
    verifier = Verifier("github", secrets=B, replay=store)
    inner = WSGIGuard(wsgi_app(seen), verifier=verifier, rate_limiter=limiter, paths=["/hooks/b"])
    app = WSGIGuard(inner, verifier=verifier, rate_limiter=limiter, paths=["/hooks/*"])
    statuses = [wsgi_request(app, *_delivery(B), path="/hooks/b").status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # charged once each: three of three
    assert len(seen) == 3


def test_a_shorter_outer_key_is_kept_for_the_inner_guards_ttl_whatever_the_clocks() -> None:
    """The outer guard keeps keys for its timestamp window only (shorter than the inner guard's
    TTL), on a clock that lags or not: its hold stands for the inner one's, and is committed for the
    inner guard's TTL -- so a replay after the outer window finds the key still taken. (Before, a
    lagging clock made it not stand, and the inner guard answered its own request 409.)"""
    from hmacguard.guard.verifier import OuterHold

    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0])
    inner = Verifier("stripe", secrets="whsec_nested", replay=store, tolerance=600)
    same_clock = Verifier("stripe", secrets="whsec_nested", replay=store, tolerance=300)
    lagging = Verifier(
        "stripe", secrets="whsec_nested", replay=store, tolerance=300, clock=lambda: time.time() - 200
    )
    assert same_clock.replay_ttl < inner.replay_ttl
    for outer in (same_clock, lagging):
        now[0] = 1000.0
        delivery = outer.hold_key(f"stripe:sig:{outer is lagging}")
        assert delivery is not None
        hold = OuterHold(delivery, outer)
        assert hold.covers(inner, delivery.key)
        hold.keep_for(inner, delivery.key)
        delivery.settle(True)
        now[0] += inner.replay_ttl - 1  # long past the outer guard's own TTL
        assert store.hold(delivery.key, 10) is None  # still taken: a replay is refused
        now[0] += 2
        assert store.hold(delivery.key, 10) is not None
