"""A Standard Webhooks retry of a processed delivery is refused for as long as the sender retries.

Svix-style senders keep ``webhook-id`` constant across attempts and sign each one anew, with a fresh
timestamp. The guard keys such a delivery by its id -- but kept the key only for the timestamp
window (361 s), so a retry after a success that came six minutes later (Svix's third attempt comes
5 min 5 s after the first, the next at 35 min) was processed again. The key is now kept 28 hours by
default, past the last attempt of that schedule (~27 h 35 min).
"""

from __future__ import annotations

import time

import pytest

from hmacguard import MemoryReplayStore, Signer, Verifier, WSGIGuard

from . import _redis_app as redis_app
from ._inprocess import call_wsgi, wsgi_environ
from ._servers import gunicorn, redis_server

SECRET = "whsec_cmV0ZW50aW9uLXNlY3JldA=="
HOUR = 3600


class Clock:
    """One clock for the verifier's timestamp check (wall time) and the store's expiry."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock, **options: float) -> tuple[WSGIGuard, list[bytes]]:
    processed: list[bytes] = []

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        processed.append(environ["wsgi.input"].read())  # type: ignore[attr-defined]
        start_response("200 OK", [])  # type: ignore[operator]
        return [b"ok"]

    store = MemoryReplayStore(clock=clock)
    verifier = Verifier("standard-webhooks", secrets=SECRET, replay=store, clock=clock, **options)
    return WSGIGuard(app, verifier=verifier, paths=["/webhook"]), processed


def _attempt(guard: WSGIGuard, clock: Clock, body: bytes, message_id: str) -> int:
    """One attempt as the sender makes it: signed now, with the delivery's constant id."""
    headers = Signer("standard-webhooks", secrets=SECRET).sign(
        body, timestamp=int(clock.now), message_id=message_id
    )
    return call_wsgi(guard, wsgi_environ("POST", "/webhook", body, headers)).status


#: Svix's schedule, seconds after the first attempt (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after
#: the attempt before each).
RETRIES = [5, 305, 2105, 9305, 27305, 63305, 99305]


def test_every_retry_of_a_processed_delivery_is_refused_through_the_whole_schedule() -> None:
    clock = Clock()
    start = clock.now
    guard, processed = _guard(clock)
    body = b'{"type":"invoice.paid"}'
    assert _attempt(guard, clock, body, "msg_retained") == 200
    statuses = []
    for after in RETRIES:
        clock.now = start + after
        statuses.append(_attempt(guard, clock, body, "msg_retained"))
    assert statuses == [409] * len(RETRIES)
    assert processed == [body]


def test_the_schedule_over_the_id_is_forgotten_and_another_id_is_never_blocked() -> None:
    clock = Clock()
    guard, processed = _guard(clock)
    body = b"{}"
    assert _attempt(guard, clock, body, "msg_a") == 200
    assert _attempt(guard, clock, body, "msg_b") == 200  # same body, another delivery
    clock.now += 28 * HOUR + 1
    assert _attempt(guard, clock, body, "msg_a") == 200
    assert len(processed) == 3


def test_an_explicit_replay_ttl_is_kept() -> None:
    """A receiver that wants the old behaviour (keys for the timestamp window only) says so."""
    clock = Clock()
    guard, processed = _guard(clock, replay_ttl=361)
    assert _attempt(guard, clock, b"{}", "msg_short") == 200
    clock.now += 362
    assert _attempt(guard, clock, b"{}", "msg_short") == 200
    assert len(processed) == 2


def test_the_default_retention_by_scheme() -> None:
    assert Verifier("standard-webhooks", secrets=SECRET).replay_ttl == 28 * HOUR
    # Never shorter than the timestamp window (tolerance + future tolerance + 1 s).
    assert Verifier("standard-webhooks", secrets=SECRET, tolerance=40 * HOUR).replay_ttl == 40 * HOUR + 60 + 1
    assert Verifier("stripe", secrets="whsec_x").replay_ttl == 300 + 60 + 1  # the window: no constant id
    assert Verifier("github", secrets="x").replay_ttl == 24 * HOUR


@pytest.mark.slow
def test_gunicorn_on_redis_keeps_a_processed_id_for_28_hours() -> None:
    import redis as redis_py

    with (
        redis_server() as redis,
        gunicorn(f"{redis_app.APP}:application", {"HMACGUARD_TEST_REDIS": redis.url}) as server,
    ):
        body, headers = redis_app.delivery()
        assert redis_app.post(server, body, headers).status_code == 200
        message_id = headers["webhook-id"]
        client = redis_py.Redis.from_url(redis.url, socket_timeout=5)
        key = f"{redis_app.REPLAY_PREFIX}standard-webhooks:id:{message_id}"
        # Committed once the answer is out (held for 60 s until then); then kept past the last retry.
        deadline = time.monotonic() + 10
        while client.pttl(key) < 3600 * 1000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.pttl(key) > (28 * HOUR - 60) * 1000
        again = Signer("standard-webhooks", secrets=redis_app.SECRET).sign(body, message_id=message_id)
        assert redis_app.post(server, body, again).status_code == 409


def test_the_verifier_names_its_replay_store_even_when_the_store_is_empty() -> None:
    # An empty MemoryReplayStore is falsy (it has a length): the repr said replay=None.
    assert "replay=MemoryReplayStore" in repr(Verifier("github", secrets="x"))
    assert "replay=None" in repr(Verifier("github", secrets="x", replay=None))
