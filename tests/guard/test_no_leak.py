"""The guard itself keeps nothing per request: 10,000 requests, tracemalloc growth under 64 KiB.

Every part is on -- replay store (bounded, filled to its bound during warm-up), rate limiter with
request and failure budgets -- and the traffic mixes accepted, forged, oversized, malformed, replayed
and gzip requests, so each code path's per-request allocations are exercised.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from hmacguard import ASGIGuard, MemoryReplayStore, RateLimiter, Signer, Verifier, WSGIGuard

from ._inprocess import call_wsgi, webhook_scope, wsgi_environ

pytestmark = pytest.mark.slow
SECRET = "leak-secret"
REQUESTS = 10_000
BUDGET = 64 * 1024
signer = Signer("stripe", secrets=SECRET)
OVERSIZED = b"x" * 2_000_000  # built once: the guard refuses it from its Content-Length alone


def make_verifier() -> Verifier:
    # max_evicted=0: the store's record of ids evicted early grows by design with every eviction,
    # up to its own bound, in buckets (tests/guard/test_evicted_ids.py holds its bound and its size);
    # off here, so that the store is at its bound after the warm-up and turnover nets out.
    store = MemoryReplayStore(max_entries=256, max_evicted=0)
    return Verifier("stripe", secrets=[SECRET, "old"], replay=store)


def make_limiter() -> RateLimiter:
    return RateLimiter(limit="10000000/hour", failure_limit="10000000/hour")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def traffic(i: int) -> tuple[bytes, dict[str, str]]:
    """Request ``i`` of the mix: mostly valid, with every kind of refusal in between."""
    body = b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i % 700))
    kind = i % 8
    if kind == 1:
        return body, {"Stripe-Signature": f"t={int(1e9)},v1=" + "0" * 64}  # stale timestamp
    if kind == 2:
        return body, {**signer.sign(body + b"!")}  # forged
    if kind == 3:
        return body, {}  # missing
    if kind == 4:
        wire = gzip.compress(body)
        return wire, {**signer.sign(wire), "Content-Encoding": "gzip"}
    if kind == 5:
        return OVERSIZED, signer.sign(b"")  # over the cap
    return body, signer.sign(body)


def measure(run: Callable[[int], None]) -> tuple[int, list[str]]:
    # Tracing starts before the warm-up, so what the warm-up leaves at its bound (the replay store's
    # 256 entries) is traced before and after: turnover nets out, only growth remains.
    tracemalloc.start(1)
    try:
        for i in range(2_000):  # warm-up: caches, the replay store at its bound, lazy imports
            run(i)
        gc.collect()
        before_snapshot = tracemalloc.take_snapshot()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000, 2_000 + REQUESTS):
            run(i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        top = tracemalloc.take_snapshot().compare_to(before_snapshot, "lineno")[:8]
    finally:
        tracemalloc.stop()
    return after - before, [str(s) for s in top]


def test_10000_requests_through_the_wsgi_guard_keep_nothing() -> None:
    guard = WSGIGuard(wsgi_app, verifier=make_verifier(), rate_limiter=make_limiter())
    statuses: dict[int, int] = {}

    def run(i: int) -> None:
        body, headers = traffic(i)
        status = call_wsgi(guard, wsgi_environ("POST", "/webhook", body, headers)).status
        statuses[status] = statuses.get(status, 0) + 1

    growth, top = measure(run)
    assert set(statuses) == {200, 400, 401, 413}
    assert growth < BUDGET, "\n".join(top)


def test_10000_requests_through_the_asgi_guard_keep_nothing() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ASGIGuard(app, verifier=make_verifier(), rate_limiter=make_limiter())
    statuses: dict[int, int] = {}
    loop = asyncio.new_event_loop()

    async def one(i: int) -> None:
        body, headers = traffic(i)
        pieces = [body]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            part = pieces.pop(0) if pieces else b""
            return {"type": "http.request", "body": part, "more_body": bool(pieces)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        scope = webhook_scope(
            [*raw, (b"content-length", str(len(body)).encode())], client=("127.0.0.1", 5000)
        )
        await guard(scope, receive, send)
        status = sent[0]["status"]
        statuses[status] = statuses.get(status, 0) + 1

    try:
        growth, top = measure(lambda i: loop.run_until_complete(one(i)))
    finally:
        loop.close()
    assert set(statuses) == {200, 400, 401, 413}
    assert growth < BUDGET, "\n".join(top)
