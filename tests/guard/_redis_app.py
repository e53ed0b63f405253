"""Driving tests/guard/_apps/redis_guarded.py under real servers: its deliveries, a post the
application holds a moment (``X-Test-Hold``), its settle-failure counter scraped from ``/metrics``,
and Redis stopped or frozen while the application holds deliveries."""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from hmacguard import Signer

from ._servers import Server

APP = "tests.guard._apps.redis_guarded"
SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="  # the app's
signer = Signer("standard-webhooks", secrets=SECRET)
_serial = itertools.count()
SETTLE_FAILED = "hmacguard_replay_settle_failed"
#: RedisReplayStore's default key prefix (the app keeps it).
REPLAY_PREFIX = "hmacguard:replay:"


def delivery() -> tuple[bytes, dict[str, str]]:
    body = b'{"redis-app": %d}' % next(_serial)
    return body, signer.sign(body, message_id=f"msg_{uuid.uuid4().hex}")


def post(server: Server, body: bytes, headers: dict[str, str], hold: float = 0.0) -> httpx.Response:
    """POST a delivery; the application holds it ``hold`` seconds before answering."""
    extra = {"X-Test-Hold": str(hold), "X-Test-Client": "one"}
    return httpx.post(server.base_url + "/webhook", content=body, headers={**headers, **extra}, timeout=20)


def scraped_settle_failures(server: Server) -> dict[str, float]:
    """``hmacguard_replay_settle_failed_total`` by action, from the server's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.base_url + "/metrics", timeout=10).text
    return {
        sample.labels["action"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == SETTLE_FAILED
        for sample in family.samples
        if sample.name == SETTLE_FAILED + "_total"
    }


def held_in(redis: Any, message_ids: list[str], within: float = 20.0) -> None:
    """Wait until the guard holds (or has kept) the replay id of every delivery in ``message_ids``."""
    import redis as redis_py

    keys = [f"{REPLAY_PREFIX}standard-webhooks:id:{message_id}" for message_id in message_ids]
    client = redis_py.Redis.from_url(redis.url, socket_timeout=5)
    try:
        deadline = time.monotonic() + within
        while client.exists(*keys) < len(keys):
            if time.monotonic() > deadline:
                raise AssertionError(f"the guard did not hold {len(keys)} deliveries within {within} s")
            time.sleep(0.02)
    finally:
        client.close()


def during_the_hold(
    server: Server, redis: Any, how: str = "terminate", count: int = 1, hold: float = 1.5
) -> list[int]:
    """``count`` deliveries the application holds ``hold`` seconds; Redis stopped (``terminate``)
    or frozen (``sigstop``) meanwhile, once the guard holds their ids (:func:`held_in`); their
    statuses. A frozen Redis is continued only once ``count`` settle failures are scraped (or after
    10 s): under ASGI the answer is out before its commit is tried, and a commit tried after SIGCONT
    would succeed."""
    sent = [delivery() for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        answers = [pool.submit(post, server, body, headers, hold) for body, headers in sent]
        # Stopped only once the guard holds every id (a fixed sleep was too short on a loaded
        # machine: Redis went before a hold, and the delivery got the store's 503).
        held_in(redis, [headers["webhook-id"] for _, headers in sent])
        if how == "sigstop":
            os.kill(redis.process.pid, signal.SIGSTOP)
        else:
            redis.process.terminate()
            redis.process.wait(timeout=10)
        try:
            statuses = [answer.result().status_code for answer in answers]
            deadline = time.monotonic() + 10
            while scraped_settle_failures(server).get("commit", 0) < count and time.monotonic() < deadline:
                time.sleep(0.1)
            return statuses
        finally:
            if how == "sigstop":
                os.kill(redis.process.pid, signal.SIGCONT)
