"""Review of the process-wide memory budget (MemoryBudget, commit f9e19fe): attacks on its promises.

Never past its limit, never negative; every counted byte given back whatever the outcome (nested
guards, Flask, FastAPI, gzip, spooled bodies, timeouts, disconnects, applications that raise or keep
the body), also under uvicorn and gunicorn gthread; a spilled body handed over whole and exact;
thread-safe. Two defects found here, fixed in guard/body.py:

- A finaliser that gives bytes back (``BoundedBody.__del__``, or ``close()`` from a generator's or
  coroutine's finaliser) run while the same thread holds the budget's lock hung that thread for
  good, and with it every later request of the process. The garbage collector does run
  finalisers there on Python 3.12+ (it runs at the eval breaker, which the ``time.monotonic()``
  call inside ``take()`` checks): a cyclic, unclosed body + an over-budget ``take`` deadlocked
  3.12.1 and 3.13.0 in the reviewer's reproduction. ``give()`` now takes no lock.
- ``_uncount`` read ``_counted``, gave it back, and only then zeroed it: two threads closing the same
  body could both give its bytes back, leaving ``in_use`` negative.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import logging
import random
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hmacguard import ASGIGuard, MemoryBudget, Signer, Verifier, WSGIGuard
from hmacguard.guard.body import BoundedBody
from tests.guard._apps import review_budget_apps
from tests.guard._budget import (
    budget_servers,
    budget_state,
    exchange_in_pieces,
    pieces,
    post_head,
    reading_asgi,
    reading_wsgi,
    wait_for_budget,
)
from tests.guard._inprocess import asgi_request, call_wsgi, wsgi_environ

SECRET = "review-secret"
OTHER = "review-other-secret"
SIGNER = Signer("github", secrets=SECRET)
BIG = random.Random(11).randbytes(200_000)  # four reads of 64 KiB: a counted, multi-read body


def _in_thread(func: Callable[[], None], seconds: float = 5.0) -> bool:
    """Run ``func`` in a daemon thread; whether it finished within ``seconds`` (False: it hangs)."""
    thread = threading.Thread(target=func, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def _counted_body(budget: MemoryBudget, n: int = 100) -> BoundedBody:
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"x" * n)
    return body


# -- finalisers run while the budget's lock is held (the GC does that on Python 3.12+) -----------
def test_a_body_finalised_while_its_thread_holds_the_lock_does_not_hang() -> None:
    budget = MemoryBudget(1000)
    held = [_counted_body(budget)]
    assert budget.in_use == 100

    def drop_inside_take() -> None:
        with budget._lock:  # where take() is when the GC runs a finaliser
            held.clear()  # the last reference: __del__ runs here

    assert _in_thread(drop_inside_take), "the finaliser deadlocked on the budget's lock"
    assert budget.in_use == 0


def test_a_gc_pass_inside_the_lock_gives_cyclic_garbage_back_without_hanging() -> None:
    budget = MemoryBudget(1000)

    def garbage() -> None:
        holder: dict[str, Any] = {"body": _counted_body(budget)}
        holder["self"] = holder  # unreachable only by the cycle collector

    garbage()
    assert budget.in_use == 100

    def collect_inside_take() -> None:
        with budget._lock:
            gc.collect()

    assert _in_thread(collect_inside_take), "the GC's finaliser deadlocked on the budget's lock"
    assert budget.in_use == 0


def test_close_from_a_finaliser_inside_the_lock_does_not_hang() -> None:
    # Guard.process's ``except BaseException: verification.abort()`` runs when an abandoned request's
    # generator (or coroutine) is finalised -- possibly by the GC, possibly inside take().
    budget = MemoryBudget(1000)
    body = _counted_body(budget)

    def process() -> Iterator[None]:
        try:
            yield
        finally:
            body.close()

    steps = [process()]
    next(steps[0])

    def finalise_inside_take() -> None:
        with budget._lock:
            steps.clear()

    assert _in_thread(finalise_inside_take)
    assert budget.in_use == 0


# -- double give-back ----------------------------------------------------------------------------
class _SlowGive(MemoryBudget):
    """A budget whose give() waits a little for a second give(): a thread switch inside
    ``_uncount``, made certain."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.calls = 0
        self.second = threading.Event()

    def give(self, n: int) -> None:
        self.calls += 1
        if self.calls == 1:
            self.second.wait(0.5)
        else:
            self.second.set()
        super().give(n)


def test_two_threads_closing_one_body_give_its_bytes_back_once() -> None:
    budget = _SlowGive(1000)
    body = _counted_body(budget, 300)
    threads = [threading.Thread(target=body.close) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert budget.in_use == 0, "given back twice"
    assert budget.calls == 1


def test_close_then_del_spool_then_close_and_close_twice_give_back_once() -> None:
    budget = MemoryBudget(10_000)
    keep = _counted_body(budget, 1000)  # counted throughout: a double give-back would show as < 1000
    one = _counted_body(budget, 500)
    one.close()
    one.close()
    del one
    two = BoundedBody(limit=10_000, spool_threshold=600, budget=budget)
    two.append(b"a" * 500)
    two.append(b"b" * 500)  # past the threshold: spooled, given back
    assert two.spooled and budget.in_use == 1000
    two.close()
    del two
    three = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    three.append(b"c" * 400)
    with three:
        pass
    del three
    assert budget.in_use == 1000
    keep.close()
    assert budget.in_use == 0


def test_a_body_whose_init_never_ran_is_finalised_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_value))
    with pytest.raises(TypeError):
        BoundedBody()  # type: ignore[call-arg]
    gc.collect()
    assert raised == []


def test_a_refused_chunk_leaves_nothing_counted() -> None:
    budget = MemoryBudget(1000)
    body = BoundedBody(limit=500, spool_threshold=5000, budget=budget)
    body.append(b"a" * 400)
    with pytest.raises(Exception, match="limit"):
        body.append(b"b" * 200)  # past the body's cap: 413, nothing more counted
    assert budget.in_use == 400
    body.close()
    assert budget.in_use == 0


# -- a spilled body is whole and exact -----------------------------------------------------------
def test_spilled_bodies_are_exact_with_a_reused_buffer_and_random_pieces() -> None:
    rng = random.Random(5)
    for _ in range(50):
        budget = MemoryBudget(rng.randint(0, 60_000))
        hog: BoundedBody | None = None
        if rng.random() < 0.5:  # another body holding part of the budget
            hog = BoundedBody(limit=100_000, spool_threshold=100_000, budget=budget)
            hog.append(b"h" * min(budget.limit, rng.randint(0, 50_000)) or b"h")
        data = rng.randbytes(rng.randint(1, 90_000))
        body = BoundedBody(limit=100_000, spool_threshold=rng.randint(1, 100_000), budget=budget)
        buffer = bytearray(16_384)
        at = 0
        while at < len(data):
            size = rng.randint(1, len(buffer))
            piece = data[at : at + size]
            buffer[: len(piece)] = piece
            body.append(memoryview(buffer)[: len(piece)] if rng.random() < 0.5 else buffer[: len(piece)])
            buffer[:] = b"\0" * len(buffer)  # the caller reuses its buffer
            at += len(piece)
            assert 0 <= budget.in_use <= budget.limit
        body.seal()
        assert body.read() == data and body.getvalue() == data
        body.seek(0)
        assert b"".join(body) == data
        body.close()
        if hog is not None:
            hog.close()
        assert budget.in_use == 0


# -- the log does not flood ---------------------------------------------------------------------
def test_a_spent_budget_warns_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    budget = MemoryBudget(10)
    with caplog.at_level(logging.WARNING, logger="hmacguard.guard.body"):
        for _ in range(2000):
            assert not budget.take(11)
    assert len(caplog.records) == 1
    assert budget.spilled == 2000


# -- threads ---------------------------------------------------------------------------------------
def test_threads_closing_dropping_and_spilling_never_pass_the_budget() -> None:
    budget = MemoryBudget(40_000)
    seen: list[int] = []
    stop = threading.Event()
    wrong: list[str] = []

    def watch() -> None:
        while not stop.is_set():
            seen.append(budget.in_use)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            body = BoundedBody(limit=100_000, spool_threshold=rng.randint(1, 50_000), budget=budget)
            data = rng.randbytes(rng.randint(1, 30_000))
            for at in range(0, len(data), 7000):
                body.append(data[at : at + 7000])
            body.seal()
            if body.read() != data:
                wrong.append("body")
            ending = rng.randrange(3)
            if ending == 0:
                body.close()
            elif ending == 1:
                del body  # dropped unclosed: __del__
            else:
                holder: dict[str, Any] = {"body": body}
                holder["self"] = holder  # dropped in a cycle: the GC, in whichever thread
                del body, holder

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    watcher.join(5)
    gc.collect()
    assert wrong == []
    assert all(0 <= used <= budget.limit for used in seen), (min(seen), max(seen))
    assert budget.in_use == 0


# -- nested guards, gzip, frameworks -------------------------------------------------------------
@pytest.mark.parametrize("inner_secret", [SECRET, OTHER])
@pytest.mark.parametrize("limit", [10_000_000, 250_000, 0])
def test_nested_wsgi_guards_that_verify_again_give_everything_back(inner_secret: str, limit: int) -> None:
    budget = MemoryBudget(limit)
    seen: list[bytes] = []
    inner = WSGIGuard(
        reading_wsgi(seen),
        verifier=Verifier("github", secrets=inner_secret, memory_budget=budget, replay=None),
    )
    outer = WSGIGuard(inner, verifier=Verifier("github", secrets=SECRET, memory_budget=budget, replay=None))
    status = call_wsgi(outer, wsgi_environ("POST", "/webhook", BIG, SIGNER.sign(BIG))).status
    assert status == (200 if inner_secret == SECRET else 401)
    assert seen == ([BIG] if inner_secret == SECRET else [])
    assert budget.in_use == 0


@pytest.mark.parametrize("inner_secret", [SECRET, OTHER])
@pytest.mark.parametrize("limit", [10_000_000, 100_000])
def test_nested_asgi_guards_that_verify_again_give_everything_back(inner_secret: str, limit: int) -> None:
    budget = MemoryBudget(limit)
    seen: list[bytes] = []
    inner = ASGIGuard(
        reading_asgi(seen),
        verifier=Verifier("github", secrets=inner_secret, memory_budget=budget, replay=None),
    )
    outer = ASGIGuard(inner, verifier=Verifier("github", secrets=SECRET, memory_budget=budget, replay=None))
    status = asgi_request(outer, pieces(BIG), SIGNER.sign(BIG)).status
    assert status == (200 if inner_secret == SECRET else 401)
    assert seen == ([BIG] if inner_secret == SECRET else [])
    assert budget.in_use == 0


@pytest.mark.parametrize("case", ["gzip-bomb", "gzip-corrupt", "gzip-spilled", "timeout"])
def test_asgi_gzip_and_timeout_outcomes_leave_nothing_counted(case: str) -> None:
    budget = MemoryBudget(30_000 if case == "gzip-spilled" else 10_000_000)
    seen: list[bytes] = []
    options: dict[str, Any] = {"max_inflated_body": 300_000}
    if case == "gzip-bomb":
        body = gzip.compress(b"\0" * 2_000_000, mtime=0)
    elif case == "gzip-corrupt":
        packed = gzip.compress(BIG, mtime=0)
        body = packed[: len(packed) // 2] + b"\xff" * 64 + packed[len(packed) // 2 :]
    else:
        body = gzip.compress(BIG, mtime=0) if case == "gzip-spilled" else BIG
    headers = SIGNER.sign(body)
    if case.startswith("gzip"):
        headers["Content-Encoding"] = "gzip"
    if case == "timeout":
        options["body_timeout"] = 0.3
    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None, **options)
    app = ASGIGuard(reading_asgi(seen), verifier=verifier)
    parts = pieces(body, 4096)
    if case == "timeout":
        response = asgi_request(app, parts[:5], headers, stall=True, content_length=False)
        assert response.status == 408
    else:
        response = asgi_request(app, parts, headers)
        assert response.status == {"gzip-bomb": 413, "gzip-corrupt": 400, "gzip-spilled": 200}[case]
    if case == "gzip-spilled":
        assert seen == [BIG] and budget.spilled == 1
    assert budget.in_use == 0


def test_flask_gate_with_a_view_that_raises_and_one_that_keeps_the_body() -> None:
    flask = pytest.importorskip("flask")
    from hmacguard.integrations.flask import HmacGuard

    budget = MemoryBudget(10_000_000)
    kept: list[Any] = []
    app = flask.Flask(__name__)

    @app.post("/hooks/raise")
    def fails() -> str:
        flask.request.get_data()
        raise RuntimeError("the view failed")

    @app.post("/hooks/keep")
    def keeps() -> str:
        kept.append(flask.request.environ["wsgi.input"])  # kept past the request
        return hashlib.sha256(flask.request.get_data()).hexdigest()

    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None)
    HmacGuard(app, verifier=verifier, paths=["/hooks/*"])
    client = app.test_client()
    # Werkzeug's client closes the response iterable (as a server does) when the response is closed.
    with client.post("/hooks/raise", data=BIG, headers=SIGNER.sign(BIG)) as failed:
        assert failed.status_code == 500
    assert budget.in_use == 0
    with client.post("/hooks/keep", data=BIG, headers=SIGNER.sign(BIG)) as answer:
        assert answer.status_code == 200 and answer.text == hashlib.sha256(BIG).hexdigest()
    assert budget.in_use == 0 and kept[0].closed  # released at the end, reference or not


def test_fastapi_dependency_with_an_endpoint_that_raises_gives_back() -> None:
    fastapi = pytest.importorskip("fastapi")
    from hmacguard.integrations.fastapi import VerifiedBodyDependency

    budget = MemoryBudget(10_000_000)
    verified = VerifiedBodyDependency(
        verifier=Verifier("github", secrets=SECRET, memory_budget=budget, replay=None)
    )
    app = fastapi.FastAPI()
    hits: list[bytes] = []

    @app.post("/webhook")
    async def hook(body: Any = fastapi.Depends(verified)) -> dict[str, str]:
        hits.append(body.getvalue())
        raise RuntimeError("the endpoint failed")

    with pytest.raises(RuntimeError):
        asgi_request(app, pieces(BIG), SIGNER.sign(BIG))
    assert hits == [BIG]
    assert budget.in_use == 0
    assert asgi_request(app, pieces(BIG), SIGNER.sign(BIG[:-1])).status == 401
    assert budget.in_use == 0


def test_a_cancelled_asgi_request_gives_back() -> None:
    budget = MemoryBudget(10_000_000)
    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None)
    app = ASGIGuard(reading_asgi([]), verifier=verifier)
    headers = [(k.lower().encode(), v.encode()) for k, v in SIGNER.sign(BIG).items()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhook",
        "headers": [*headers, (b"content-length", str(len(BIG)).encode())],
        "client": ("127.0.0.1", 1),
    }
    parts = pieces(BIG)

    async def main() -> int:
        sent = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent >= 4:
                await asyncio.sleep(3600)
            sent += 1
            return {"type": "http.request", "body": parts[sent - 1], "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            pass

        task = asyncio.ensure_future(app(scope, receive, send))
        while sent < 4:
            await asyncio.sleep(0.01)
        counted = budget.in_use
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return counted

    assert asyncio.run(main()) > 0
    assert budget.in_use == 0


# -- under real servers: timeouts, disconnects, an application that raises ----------------------
SIGNER_LAB = Signer("github", secrets=review_budget_apps.SECRET)


@pytest.mark.slow
@pytest.mark.parametrize("start", budget_servers("tests.guard._apps.review_budget_apps", threads=32))
def test_real_servers_timeouts_disconnects_and_raising_apps_give_everything_back(
    start: Callable[[], Any],
) -> None:
    body = random.Random(9).randbytes(180_000)
    signed = SIGNER_LAB.sign(body)
    with start() as server:
        port = server.port
        # 1. Stalled uploads: 12 x 150 KB of 180 KB sent (past the 1 MiB budget), then silence ->
        # 408 after the body timeout; each client reads its answer and goes.
        stalled = []
        try:
            for _ in range(12):
                sock = socket.create_connection(("127.0.0.1", port), timeout=15)
                stalled.append(sock)
                sock.sendall(post_head(b"/webhook", signed, len(body)))
                for piece in pieces(body[:150_000]):
                    sock.sendall(piece)
            for sock in stalled:
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
                sock.close()
        finally:
            for sock in stalled:
                sock.close()
        assert wait_for_budget(port, lambda used, spilled: used == 0)[0] == 0
        # 2. Uploads that go away mid-body.
        for _ in range(12):
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(post_head(b"/webhook", signed, len(body)))
                sock.sendall(body[:90_000])
        assert wait_for_budget(port, lambda used, spilled: used == 0)[0] == 0
        # 3. An application that raises after reading a counted (and a spilled) body.
        answer = exchange_in_pieces(port, post_head(b"/raise", signed, len(body)), body)
        assert answer.startswith(b"HTTP/1.1 500"), answer[:200]
        assert wait_for_budget(port, lambda used, spilled: used == 0)[0] == 0
        # 4. A genuine delivery afterwards: served whole and exact.
        answer = exchange_in_pieces(port, post_head(b"/webhook", signed, len(body)), body)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        digest = answer.partition(b"\r\n\r\n")[2].split()[0]
        assert digest == hashlib.sha256(body).hexdigest().encode()
        assert budget_state(port)[0] == 0
        in_use, spilled = budget_state(port)
        assert in_use == 0 and spilled > 0  # the stalled uploads did pass the budget
        assert "Exception ignored" not in server.log()
