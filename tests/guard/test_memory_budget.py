"""The process's memory budget for bodies in flight (MemoryBudget): counted exactly, never passed,
always given back -- whatever the request's outcome -- and a body it has no room for is spooled and
still served whole. The attack it answers: many connections each trickling a body just below the
spool threshold, which the per-request cap alone lets hold (connections x threshold) bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hmacguard import ASGIGuard, MemoryBudget, Signer, Verifier, WSGIGuard
from hmacguard.errors import BodyStorageUnavailable, ConfigurationError
from hmacguard.guard.body import DEFAULT_MEMORY_BUDGET, BoundedBody
from hmacguard.integrations._settings import guard_options
from tests.guard._apps import budget_guarded
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
from tests.guard._servers import uvicorn

SECRET = "budget-secret"
SIGNER = Signer("github", secrets=SECRET)


# -- the budget and the body -----------------------------------------------------------------------
def test_take_counts_up_to_the_limit_and_a_refusal_counts_nothing() -> None:
    budget = MemoryBudget(100)
    assert budget.take(60) and budget.in_use == 60
    assert not budget.take(41)  # would pass the limit: nothing counted
    assert budget.in_use == 60 and budget.spilled == 1
    assert budget.take(40) and budget.in_use == 100
    budget.give(100)
    assert budget.in_use == 0


@pytest.mark.parametrize("limit", [-1, True, 1.5, "64"])
def test_a_bad_limit_is_refused_at_start_up(limit: Any) -> None:
    with pytest.raises(ConfigurationError, match="memory_budget"):
        MemoryBudget(limit)
    with pytest.raises(ConfigurationError, match="memory_budget"):
        Verifier("github", secrets=SECRET, memory_budget=limit)


def test_verifier_default_none_int_and_a_shared_budget() -> None:
    assert Verifier("github", secrets=SECRET).memory_budget.limit == DEFAULT_MEMORY_BUDGET  # type: ignore[union-attr]
    assert Verifier("github", secrets=SECRET, memory_budget=None).memory_budget is None
    assert Verifier("github", secrets=SECRET, memory_budget=5).memory_budget.limit == 5  # type: ignore[union-attr]
    shared = MemoryBudget(10)
    one = Verifier("github", secrets=SECRET, memory_budget=shared)
    two = Verifier("stripe", secrets="whsec_x", memory_budget=shared)
    assert one.memory_budget is two.memory_budget is shared


def test_settings_key_reaches_the_verifier() -> None:
    options = guard_options({"SECRETS": [SECRET], "MEMORY_BUDGET": 1234}, where="HMACGUARD")
    assert options["verifier"].memory_budget.limit == 1234


def test_a_body_counts_its_chunks_and_gives_them_back_on_close() -> None:
    budget = MemoryBudget(1000)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"a" * 300)
    body.append(bytearray(b"b" * 200))
    assert budget.in_use == 500 and not body.spooled
    body.close()
    assert budget.in_use == 0


def test_a_chunk_with_no_room_spools_the_body_and_its_bytes_are_given_back() -> None:
    budget = MemoryBudget(1000)
    other = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    other.append(b"x" * 700)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"a" * 200)
    assert budget.in_use == 900
    body.append(b"b" * 200)  # 1100 > 1000: this body goes to disk, with what it held
    assert body.spooled and budget.in_use == 700 and budget.spilled == 1
    body.append(b"c" * 3000)  # on disk now: never counted again
    assert budget.in_use == 700
    body.seal()
    assert body.read() == b"a" * 200 + b"b" * 200 + b"c" * 3000
    body.close()
    other.close()
    assert budget.in_use == 0


def test_passing_the_spool_threshold_gives_the_bytes_back() -> None:
    budget = MemoryBudget(10_000)
    body = BoundedBody(limit=10_000, spool_threshold=500, budget=budget)
    body.append(b"a" * 400)
    assert budget.in_use == 400
    body.append(b"b" * 400)
    assert body.spooled and budget.in_use == 0 and budget.spilled == 0  # the threshold, not the budget
    body.close()
    assert budget.in_use == 0


def test_a_body_nobody_closed_gives_its_bytes_back_when_it_goes() -> None:
    budget = MemoryBudget(1000)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"a" * 300)
    del body
    assert budget.in_use == 0


def test_a_zero_budget_sends_every_counted_body_to_disk() -> None:
    budget = MemoryBudget(0)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"a")
    assert body.spooled and budget.in_use == 0


def test_threads_never_pass_the_budget_and_end_at_zero() -> None:
    budget = MemoryBudget(50_000)
    over: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            body = BoundedBody(limit=100_000, spool_threshold=40_000, budget=budget)
            for _ in range(rng.randint(1, 6)):
                body.append(b"z" * rng.randint(1, 12_000))
                used = budget.in_use
                if used > budget.limit or used < 0:
                    over.append(used)
            body.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert over == []
    assert budget.in_use == 0
    assert budget.spilled > 0  # the budget was reached, so the test exercised the spill


# -- every outcome gives the bytes back, under both drivers ----------------------------------------
BIG = bytes(random.Random(7).randrange(256) for _ in range(200_000))  # four reads of 64 KiB


def _guarded_wsgi(budget: MemoryBudget, seen: list[bytes], **options: Any) -> WSGIGuard:
    fail = options.pop("fail", False)
    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None, **options)
    return WSGIGuard(reading_wsgi(seen, fail=fail), verifier=verifier)


def _wsgi_call(app: WSGIGuard, body: bytes, headers: dict[str, str], **environ_options: Any) -> int:
    environ = wsgi_environ("POST", "/webhook", body, headers, **environ_options)
    return call_wsgi(app, environ).status


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("accepted", 200),
        ("accepted-spilled", 200),
        ("mismatch", 401),
        ("too-large-unframed", 413),
        ("short", 400),
        ("gzip", 200),
        ("application-raises", None),
    ],
)
def test_wsgi_outcomes_leave_nothing_counted(case: str, expected: int | None) -> None:
    budget = MemoryBudget(100_000 if case == "accepted-spilled" else DEFAULT_MEMORY_BUDGET)
    seen: list[bytes] = []
    body, headers = BIG, SIGNER.sign(BIG)
    options: dict[str, Any] = {}
    environ_options: dict[str, Any] = {}
    if case == "mismatch":
        headers = SIGNER.sign(BIG[:-1])
    elif case == "too-large-unframed":
        options["max_body"] = 150_000
        environ_options["content_length"] = False
    elif case == "short":
        headers = {**headers, "Content-Length": str(len(BIG) + 10)}
    elif case == "gzip":
        body = gzip.compress(BIG, mtime=0)
        headers = {**SIGNER.sign(body), "Content-Encoding": "gzip"}
    elif case == "application-raises":
        options["fail"] = True
    app = _guarded_wsgi(budget, seen, **options)
    if expected is None:
        with pytest.raises(RuntimeError):
            _wsgi_call(app, body, headers, **environ_options)
    else:
        assert _wsgi_call(app, body, headers, **environ_options) == expected
    if expected == 200:
        assert seen == [BIG]  # whole and exact, spilled or not
    assert budget.in_use == 0
    assert budget.spilled == (1 if case == "accepted-spilled" else 0)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("accepted", 200),
        ("accepted-spilled", 200),
        ("mismatch", 401),
        ("disconnect", None),
        ("application-raises", None),
    ],
)
def test_asgi_outcomes_leave_nothing_counted(case: str, expected: int | None) -> None:
    budget = MemoryBudget(50_000 if case == "accepted-spilled" else DEFAULT_MEMORY_BUDGET)
    seen: list[bytes] = []
    headers = SIGNER.sign(BIG[:-1] if case == "mismatch" else BIG)
    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None)
    app = ASGIGuard(reading_asgi(seen, fail=case == "application-raises"), verifier=verifier)
    if case == "disconnect":  # the client leaves after 5 of 13 pieces: refused, never processed
        assert asgi_request(app, pieces(BIG), headers, disconnect_after=5).status == 400
        assert seen == []
    elif case == "application-raises":
        with pytest.raises(RuntimeError):
            asgi_request(app, pieces(BIG), headers)
    else:
        assert asgi_request(app, pieces(BIG), headers).status == expected
    if expected == 200:
        assert seen == [BIG]
    assert budget.in_use == 0
    assert budget.spilled == (1 if case == "accepted-spilled" else 0)


# -- under real servers: held uploads pass the budget, deliveries are still served ----------------
HELD = 30
DECLARED = 200_000
SENT = 150_000  # per held upload: 30 x 150 KB = 4.5 MB against a 2 MiB budget


def _held_uploads(port: int) -> Iterator[list[socket.socket]]:
    forged = b"sha256=" + b"0" * 64
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"X-Hub-Signature-256: " + forged + b"\r\nContent-Length: %d\r\n\r\n" % DECLARED
    )
    sockets: list[socket.socket] = []
    try:
        for _ in range(HELD):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sockets.append(sock)
            sock.sendall(head)
            for piece in pieces(b"a" * SENT):
                sock.sendall(piece)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _signed_in_pieces(port: int, body: bytes) -> bytes:
    answer = exchange_in_pieces(port, post_head(b"/webhook", SIGNER_LAB.sign(body), len(body)), body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return answer.partition(b"\r\n\r\n")[2]


SIGNER_LAB = Signer("github", secrets=budget_guarded.SECRET)


@pytest.mark.slow
@pytest.mark.parametrize("start", budget_servers("tests.guard._apps.budget_guarded", threads=40))
def test_held_uploads_stay_within_the_budget_and_deliveries_are_served(start: Callable[[], Any]) -> None:
    with start() as server:
        port = server.port
        held = _held_uploads(port)
        next(held)  # every upload's head and 150 KB sent, the connections kept open
        in_use, spilled = wait_for_budget(port, lambda used, spilled: spilled >= 10)
        assert in_use <= budget_guarded.BUDGET
        assert spilled >= 10, (in_use, spilled)  # the uploads did pass the budget: bodies spilled
        # A genuine delivery while the budget is spent: spooled, and handed over whole and exact.
        body = bytes(random.Random(3).randrange(256) for _ in range(180_000))
        digest, spooled = _signed_in_pieces(port, body).split()
        assert digest == hashlib.sha256(body).hexdigest().encode()
        assert spooled == b"1"
        assert budget_state(port)[0] <= budget_guarded.BUDGET
        held.close()  # the uploaders go away: every counted byte comes back
        in_use, _ = wait_for_budget(port, lambda used, spilled: used == 0)
        assert in_use == 0
        assert "Traceback" not in server.log()


# -- a spill with nowhere to go: 503 problem+json, never the server's 500 --------------------------
def test_a_body_with_no_temporary_file_to_go_to_is_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/hmacguard-test")
    budget = MemoryBudget(1000)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=budget)
    body.append(b"a" * 800)
    with pytest.raises(BodyStorageUnavailable) as raised:
        body.append(b"b" * 800)  # no room in the budget: to a file that cannot be made
    assert raised.value.status == 503 and raised.value.close_connection
    body.close()
    assert budget.in_use == 0


@pytest.mark.parametrize("driver", ["wsgi", "asgi"])
def test_the_guard_answers_a_failed_spill_503_and_the_application_never_runs(
    driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/hmacguard-test")
    budget = MemoryBudget(0)  # every multi-read body spills
    seen: list[bytes] = []
    verifier = Verifier("github", secrets=SECRET, memory_budget=budget, replay=None)
    headers = SIGNER.sign(BIG)
    if driver == "wsgi":
        response = call_wsgi(
            WSGIGuard(reading_wsgi(seen), verifier=verifier), wsgi_environ("POST", "/webhook", BIG, headers)
        )
    else:
        response = asgi_request(ASGIGuard(reading_asgi(seen), verifier=verifier), pieces(BIG), headers)
    assert response.status == 503
    assert response.json()["type"].endswith(":body-storage-unavailable")
    assert seen == [] and budget.in_use == 0


@pytest.mark.slow
def test_under_uvicorn_a_failed_spill_is_a_503_problem_and_the_server_goes_on() -> None:
    env = {"HMACGUARD_TEST_TEMPDIR": "/nonexistent/hmacguard-test"}
    with uvicorn("tests.guard._apps.budget_guarded:asgi", env) as server:
        body = random.Random(5).randbytes(300_000)  # past spool_threshold: must go to a file
        answer = exchange_in_pieces(
            server.port, post_head(b"/webhook", SIGNER_LAB.sign(body), len(body)), body
        )
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"body-storage-unavailable" in answer
        small = b'{"ok": true}'  # one read, in memory: served as ever
        answer = exchange_in_pieces(
            server.port, post_head(b"/webhook", SIGNER_LAB.sign(small), len(small)), small
        )
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert wait_for_budget(server.port, lambda used, spilled: used == 0)[0] == 0
        assert "Traceback" not in server.log()


def test_on_spill_is_told_each_spill_and_a_failing_hook_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    spilled = prometheus_client.Counter(
        "hmacguard_bodies_spilled", "Bodies sent to disk early for want of budget", registry=registry
    )
    budget = MemoryBudget(100, on_spill=spilled.inc)  # the guide's multiprocess-safe recipe
    bodies = [BoundedBody(limit=10_000, spool_threshold=5000, budget=budget) for _ in range(3)]
    for body in bodies:
        body.append(b"a" * 60)  # the first fits; the next two spill
    assert registry.get_sample_value("hmacguard_bodies_spilled_total") == 2 == budget.spilled
    for body in bodies:
        body.close()

    def broken() -> None:
        raise RuntimeError("metrics backend down")

    failing = MemoryBudget(0, on_spill=broken)
    body = BoundedBody(limit=10_000, spool_threshold=5000, budget=failing)
    body.append(b"a" * 60)  # spilled all the same
    assert body.spooled and failing.spilled == 1
    body.seal()
    assert body.read() == b"a" * 60
    body.close()
    assert "on_spill raised RuntimeError" in caplog.text
    with pytest.raises(ConfigurationError, match="on_spill"):
        MemoryBudget(10, on_spill="counter.inc")  # type: ignore[arg-type]
