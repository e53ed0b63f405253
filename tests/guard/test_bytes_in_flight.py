"""The bytes budget holds under concurrency: uploads in flight reserve the bytes they may bring.

Admission used to test the declared length against the bytes already *received*, and spend only
when a body was done: eight concurrent 60 KiB uploads against 100,000 bytes a minute were all
admitted and all read (480 KiB). Each admission now counts its bytes in flight first (declared
length, or the verifier's cap for a chunked body) and needs room for every reservation in flight.
Attacked in-process, on a real redis-server, and under real gunicorn (gthread, and two workers
sharing Redis) with the uploads held open until all were admitted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hmacguard import RateLimited, RateLimiter, Signer

from ._apps.bytes_budget_guarded import BYTES_PER_MINUTE, SECRET
from ._servers import gunicorn, redis_server

UPLOAD = 60 * 1024
CONCURRENT = 8


@contextlib.contextmanager
def limiters(storage: str) -> Iterator[RateLimiter]:
    limiter = RateLimiter(limit=None, bytes_limit=f"{BYTES_PER_MINUTE}/minute", storage=storage)
    limiter.reset()
    yield limiter


@contextlib.contextmanager
def store(kind: str) -> Iterator[str]:
    if kind == "memory":
        yield "memory://"
    else:
        with redis_server() as redis:
            yield f"redis://127.0.0.1:{redis.port}"


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_reservation_in_flight_takes_its_room_until_settled(kind: str) -> None:
    with store(kind) as storage, limiters(storage) as limiter:
        first = limiter.admit("k", declared_bytes=UPLOAD)
        assert first.bytes_in_flight == UPLOAD
        with pytest.raises(RateLimited):  # 60 KiB in flight + 60 KiB > 100,000
            limiter.admit("k", declared_bytes=UPLOAD)
        assert limiter.admit("other", declared_bytes=UPLOAD).bytes_in_flight == UPLOAD  # per client
        limiter.settle(first, 1000, failed=False)  # cut short: 1,000 spent, the reservation released
        second = limiter.admit("k", declared_bytes=UPLOAD)
        with pytest.raises(RateLimited):  # 1,000 spent + 61,440 in flight + 61,440
            limiter.admit("k", declared_bytes=UPLOAD)
        third = limiter.admit("k", declared_bytes=30_000)  # 1,000 + 61,440 + 30,000 fits
        limiter.settle(second, UPLOAD, failed=True)
        limiter.settle(third, 30_000, failed=False)
        # Nothing in flight any more: 1,000 + 61,440 + 30,000 spent leaves 7,560.
        assert limiter.admit("k", declared_bytes=7_560).bytes_in_flight == 7_560


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_chunked_body_reserves_the_verifiers_cap(kind: str) -> None:
    with store(kind) as storage, limiters(storage) as limiter:
        chunked = limiter.admit("k", declared_bytes=None, most_bytes=UPLOAD)
        assert chunked.bytes_in_flight == UPLOAD
        with pytest.raises(RateLimited):
            limiter.admit("k", declared_bytes=None, most_bytes=UPLOAD)
        limiter.settle(chunked, 10, failed=False)
        limiter.admit("k", declared_bytes=None, most_bytes=UPLOAD)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_refused_admission_releases_its_reservation(kind: str) -> None:
    with store(kind) as storage, limiters(storage) as limiter:
        held = limiter.admit("k", declared_bytes=50_000)
        for _ in range(5):
            with pytest.raises(RateLimited):
                limiter.admit("k", declared_bytes=60_000)
        limiter.settle(held, 0, failed=True)
        # Had the refused ones kept their 60,000 each, this would be refused too.
        limiter.admit("k", declared_bytes=BYTES_PER_MINUTE)


def _held_uploads(port: int, count: int) -> list[int | None]:
    """``count`` signed uploads of UPLOAD bytes, each on its own connection: every head and the
    first kilobyte go out before any upload goes on, so all are admitted (or refused) while every
    other one is still in flight. The status of each."""
    signer = Signer("github", secrets=SECRET)
    bodies = [(b"%08d" % n) * (UPLOAD // 8) for n in range(count)]
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(count)]
    statuses: list[int | None] = [None] * count
    try:
        for sock, body in zip(sockets, bodies, strict=True):
            headers = "".join(f"{k}: {v}\r\n" for k, v in signer.sign(body).items())
            head = (
                f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n{headers}\r\n"
            ).encode()
            sock.sendall(head + body[:1024])
        time.sleep(1.0)  # gthread admits each connection as it reads its head

        def finish(index: int) -> None:
            sock = sockets[index]
            with contextlib.suppress(OSError):  # a 429 may have closed the connection
                sock.sendall(bodies[index][1024:])
            data = b""
            with contextlib.suppress(OSError):
                while piece := sock.recv(65536):
                    data += piece
            if data.startswith(b"HTTP/1."):
                statuses[index] = int(data.split(b" ", 2)[1])

        threads = [threading.Thread(target=finish, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for sock in sockets:
            sock.close()
    return statuses


@pytest.mark.slow
def test_gthread_reads_one_of_eight_concurrent_uploads_the_budget_has_room_for() -> None:
    with gunicorn(
        "tests.guard._apps.bytes_budget_guarded:wsgi", {}, workers=1, worker_class="gthread",
        threads=CONCURRENT,
    ) as server:  # fmt: skip
        statuses = _held_uploads(server.port, CONCURRENT)
    assert sorted(statuses, key=str) == [200] + [429] * (CONCURRENT - 1), statuses


@pytest.mark.slow
def test_two_workers_on_one_redis_read_one_of_eight_concurrent_uploads() -> None:
    with redis_server() as redis, gunicorn(
        "tests.guard._apps.bytes_budget_guarded:wsgi",
        {"HMACGUARD_TEST_RL_STORAGE": f"redis://127.0.0.1:{redis.port}"},
        workers=2, worker_class="gthread", threads=CONCURRENT // 2,
    ) as server:  # fmt: skip
        statuses = _held_uploads(server.port, CONCURRENT)
    assert sorted(statuses, key=str) == [200] + [429] * (CONCURRENT - 1), statuses


def test_a_refused_admission_releases_its_bytes_even_when_undoing_the_other_count_fails() -> None:
    """The failure budget refuses after both counts were taken; undoing the request count then fails
    (a store gone): the bytes reservation is still released -- each count is undone on its own."""
    from hmacguard import StoreUnavailable

    limiter = RateLimiter(limit=None, bytes_limit=f"{BYTES_PER_MINUTE}/minute", failure_limit="1/minute")
    limiter.record_failure("k")  # the failure budget is spent: the next admission is refused
    count = limiter._count_in_flight

    def failing_undo(key: str, delta: int, counter: str = "in-flight", lease: str = "") -> int | None:
        if counter == "in-flight" and delta < 0:
            raise StoreUnavailable("rate-limit store unavailable")
        return count(key, delta, counter, lease)

    limiter._count_in_flight = failing_undo  # type: ignore[method-assign]
    with pytest.raises(RateLimited):
        limiter.admit("k", declared_bytes=UPLOAD)
    assert limiter._in_flight("k", 0, "in-flight-bytes") == 0


def test_releases_the_store_could_not_take_are_owed_and_paid_at_the_next_call() -> None:
    """A store that cannot take a request's release now (a blip, its breaker open): the decrement is
    owed, summed per client and counter, and made at the next admission -- before it asks for room."""
    from hmacguard import StoreUnavailable

    limiter = RateLimiter(limit=None, bytes_limit=f"{BYTES_PER_MINUTE}/minute")
    count = limiter._count_in_flight
    down = {"now": False}

    def flaky(key: str, delta: int, counter: str = "in-flight", lease: str = "") -> int | None:
        if down["now"] and delta < 0:
            raise StoreUnavailable("rate-limit store unavailable")
        return count(key, delta, counter, lease)

    limiter._count_in_flight = flaky  # type: ignore[method-assign]
    first, second = (limiter.admit("k", declared_bytes=30_000) for _ in range(2))
    down["now"] = True
    limiter.settle(first, 0, failed=False)  # never raises for the release: it is owed
    limiter.settle(second, 0, failed=False)
    assert limiter._owed == {("k", "in-flight-bytes", ""): 60_000}  # in process: no lease
    assert limiter._in_flight("k", 0, "in-flight-bytes") == 60_000
    down["now"] = False
    limiter.admit("k", declared_bytes=BYTES_PER_MINUTE)  # the whole budget: only once paid
    assert limiter._owed == {}
