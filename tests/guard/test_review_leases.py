"""Adversarial review of 741b2af ("guard: in-flight counts on Redis as per-request leases").

The promises under attack: each admission on Redis holds a lease (a sorted-set member
``"<token>:<amount>"`` scored by its deadline in server time) beside a total; the total is always
the sum of the leases it holds, never below zero; a lease lapses on its own after its lifetime
however busy the client is; giving a lease back twice, late, or after the keys are gone changes
nothing; the two keys share one Cluster slot and lapse no earlier than their longest lease.

Attacks, and what they found:

1. DEFECT -- a redis-py client that retries a timed-out call (``redis.Redis(host=..., port=...)``
   does, ten times, in redis-py >= 6) runs the take twice: the first attempt ran on the server
   after the client gave up on it, and the retry's ``ZADD`` of the same member changes nothing
   while its ``INCRBY`` adds the amount again. The total then holds an amount no lease will ever
   give back: the admission itself is refused 429 by its own double count, and the phantom stays
   for as long as the client keeps a lease in flight (was an xfail; fixed since: the script
   INCRBYs only when ZADD NX added the member).
2. DEFECT -- a take that the client timed out on but the server ran (a stall longer than the
   limiter's ``timeout``) is never given back: fail-closed answers 503, fail-open admits with
   nothing counted, and either way the lease holds the whole reservation for its lifetime (a
   minute at least), refusing the client 429 meanwhile although nothing is in flight (was an
   xfail; fixed since: a take that raised or failed open, the breaker closed, owes its give-back).
3. DEFECT (low) -- ``body_timeout=float("inf")``, which the Verifier accepts and which works on
   an in-process store, makes every admission on Redis raise OverflowError in ``_new_lease``
   (a 500 instead of a decision) (was an xfail; fixed since: a non-finite timeout is ignored).
4. DEFECT (low) -- ``in_flight_keys`` replaces braces by parentheses, so the client keys
   ``"t:{a}"`` and ``"t:(a)"`` share one in-flight count: one's upload refuses the other (was an
   xfail; fixed since f2a52cc: braces percent-encoded).
5. Held -- client keys with colons, slashes, unicode, NUL, and 10,000 characters each get their own
   count, which returns to zero with its keys deleted.
6. Held (bounded lag) -- 250 leases lapsing at once (a dead worker with that many requests of one
   client) while a live request keeps the keys: the total drains 100 leases per call, so the first
   admission after the lapse is still refused 429 by 150 lapsed leases, the second is admitted;
   the sorted set only shrinks. (Without a live lease both keys expire at once with the last.)
7. Held -- a lease given back twice, after FLUSHALL + SCRIPT FLUSH, or after both keys expired,
   takes nothing from the reservations of others and never goes below zero.
8. Held -- a give-back whose reply was lost (Redis stalled past the timeout) is owed and paid
   again: the second ZREM finds nothing, so the other reservation stays intact.
9. Held -- both keys expire with the longest lease, never while a live lease is in them; a lease
   given back shortens the expiry only to the next longest.
10. Held -- 16 threads and 2 processes taking, settling, abandoning and settling late on one key:
    the total always equals the sum of the leases (sampled atomically) and is never negative; once
    the abandoned leases lapse, both keys are deleted.
11. Held -- Redis restarted mid-request: an admission meanwhile is a 503 (StoreUnavailable, not
    another exception), so is the settle (its bytes cannot be spent) which still owes both
    give-backs (and the refused admission's take, since the fix of 2); they are paid on the fresh
    server without touching its counts.
12. Held -- on a 3-primary Cluster, leases lapse (server TIME + replicate_commands, PEXPIREAT) for
    keys of every shape.
13. Held (slow) -- gunicorn on its own redis-server, its worker SIGKILLed mid-body holding a
    chunked upload's 90,000-byte reservation; the client keeps sending every 0.3 s: 429 while the
    dead lease is live, 200 once it lapsed (body timeout + 10 s), nothing left on Redis after.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hmacguard import RateLimited, RateLimiter, Signer, StoreUnavailable, Verifier
from hmacguard.guard.limit_stores import in_flight_keys
from hmacguard.guard.ratelimit import RateState

from ._redis_topologies import redis_cluster
from ._servers import REPO, RedisServer, gunicorn, redis_server, service_port

pytestmark = pytest.mark.redis

BYTES = "in-flight-bytes"

# Holds the Redis server busy (single-threaded) for ARGV[1] microseconds: a stall after which the
# commands that arrived meanwhile still run, although their clients have given up on them.
BUSY_LUA = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then break end
end
return 1
"""

# One atomic look at an in-flight count: {total (or -1 if absent), sum of its leases, leases}.
LOOK_LUA = """
local total = redis.call('GET', KEYS[1])
local sum = 0
local leases = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, lease in ipairs(leases) do
  sum = sum + tonumber(string.match(lease, ':(%d+)$'))
end
return {total and tonumber(total) or -1, sum, #leases}
"""


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def client(redis: RedisServer) -> Iterator[Any]:
    import redis as redis_py

    plain = redis_py.Redis.from_url(redis.url, socket_timeout=10)
    try:
        yield plain
    finally:
        plain.close()


def _prefix() -> str:
    return f"review-leases-{uuid.uuid4().hex[:12]}"


def _limiter(url: str | Any, **kw: Any) -> RateLimiter:
    options: dict[str, Any] = {
        "limit": None,
        "bytes_limit": "100000/minute",
        "storage": url,
        "prefix": _prefix(),
        "breaker_reset": 0.3,
    }
    options.update(kw)
    return RateLimiter(**options)


def _keys(limiter: RateLimiter, key: str, counter: str = BYTES) -> list[str]:
    return in_flight_keys(f"{limiter.prefix}/{counter}/{key}")


def _look(client: Any, limiter: RateLimiter, key: str, counter: str = BYTES) -> tuple[int, int, int]:
    """(total, sum of the leases, number of leases) of one count, read atomically."""
    total, held, leases = client.eval(LOOK_LUA, 2, *_keys(limiter, key, counter))
    return int(total), int(held), int(leases)


def _stall(client: Any, seconds: float) -> threading.Thread:
    """Redis busy for ``seconds`` from now (in a thread; join it)."""
    thread = threading.Thread(target=client.eval, args=(BUSY_LUA, 0, int(seconds * 1_000_000)))
    thread.start()
    time.sleep(0.05)  # the busy script has started
    return thread


def _lease_floor(limiter: RateLimiter, seconds: float) -> None:
    """The shortest lease the limiter takes (a minute at least, in production)."""
    limiter._in_flight_expiry = seconds  # type: ignore[assignment]


def _warm(limiter: RateLimiter) -> None:
    """One admission, so the script is loaded on the server and the connection pool is warm."""
    limiter.settle(limiter.admit("warm-up", declared_bytes=1), 1, failed=False)


# -- 1. a retried take -------------------------------------------------------------------------


def test_a_take_retried_by_the_redis_client_is_counted_once(redis: RedisServer, client: Any) -> None:
    import redis as redis_py

    user_client = redis_py.Redis(host="127.0.0.1", port=redis.port, socket_timeout=0.2)
    try:
        limiter = _limiter(user_client)
        _warm(limiter)
        long_upload = limiter.admit("k", declared_bytes=10_000)  # in flight throughout
        stall = _stall(client, 0.5)
        try:
            upload = limiter.admit("k", declared_bytes=50_000)  # 60,000 of 100,000: fits
        except RateLimited:
            upload = None
        stall.join()
        total, leases_sum, _ = _look(client, limiter, "k")
        assert total == leases_sum  # the total is its leases, nothing more
        assert upload is not None  # 60,000 in flight fit a budget of 100,000
        limiter.settle(upload, 50_000, failed=False)
        later = limiter.admit("k", declared_bytes=30_000)  # 10,000 in flight, 50,000 spent
        limiter.settle(long_upload, 10_000, failed=False)
        assert _look(client, limiter, "k")[0] == 30_000  # only the later one's reservation
        limiter.settle(later, 30_000, failed=False)
    finally:
        user_client.close()


# -- 2. a take the client timed out on, but the server ran ----------------------------------------


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_a_take_that_timed_out_but_ran_leaves_no_reservation(
    redis: RedisServer, client: Any, fail_open: bool
) -> None:
    limiter = _limiter(redis.url, timeout=0.2, fail_open=fail_open)
    _warm(limiter)
    stall = _stall(client, 0.6)
    with contextlib.suppress(StoreUnavailable):  # fail-closed: 503; fail-open: passed uncounted
        blind = limiter.admit("k", declared_bytes=None, most_bytes=90_000)
        assert blind.bytes_in_flight == 0
        limiter.settle(blind, 0, failed=False)
    stall.join()
    time.sleep(0.5)  # the breaker has closed again
    state = limiter.admit("k", declared_bytes=20_000)  # nothing in flight, nothing spent
    limiter.settle(state, 20_000, failed=False)


# -- 3. an infinite body timeout ------------------------------------------------------------------


def test_an_infinite_body_timeout_admits_on_redis(redis: RedisServer) -> None:
    verifier = Verifier("github", secrets="s", body_timeout=float("inf"), replay=None)
    assert verifier.body_timeout == float("inf")  # accepted by the Verifier
    on_memory = _limiter("memory://")
    on_memory.settle(on_memory.admit("k", declared_bytes=10, longest=verifier.body_timeout), 10, failed=False)
    limiter = _limiter(redis.url)
    state = limiter.admit("k", declared_bytes=10, longest=verifier.body_timeout)
    limiter.settle(state, 10, failed=False)


# -- 4 and 5. client keys -----------------------------------------------------------------------


def test_client_keys_differing_only_in_braces_and_parens_do_not_share_a_count(
    redis: RedisServer,
) -> None:
    limiter = _limiter(redis.url)
    first = limiter.admit("t:{a}", declared_bytes=80_000)
    try:
        other = limiter.admit("t:(a)", declared_bytes=30_000)  # another client: its own room
        limiter.settle(other, 30_000, failed=False)
    finally:
        limiter.settle(first, 80_000, failed=False)


KEY_SHAPES = [
    "ip:127.0.0.1",
    "ip:::1",
    "id:a:b:c",
    "id:a/b/in-flight/c",
    "id:ключ-🔑",
    "id:nul\x00byte",
    "id:" + "x" * 10_000,
    "id:{",
    "id:}",
]


def test_client_keys_of_any_shape_each_get_their_own_count(redis: RedisServer, client: Any) -> None:
    limiter = _limiter(redis.url, failure_limit="10/minute")
    held = [limiter.admit(key, declared_bytes=60_000) for key in KEY_SHAPES]
    for index, key in enumerate(KEY_SHAPES):
        assert _look(client, limiter, key) == (60_000, 60_000, 1), key
        assert _look(client, limiter, key, "in-flight") == (1, 1, 1), key
        with pytest.raises(RateLimited):  # its own 60,000 in flight: 50,000 more do not fit
            limiter.admit(key, declared_bytes=50_000)
        limiter.settle(held[index], 0, failed=False)
        assert _look(client, limiter, key) == (-1, 0, 0), key  # both keys deleted
    assert client.keys("{" + limiter.prefix + "*") == []


# -- 6. many leases lapsing at once -------------------------------------------------------------


def test_more_than_a_hundred_lapsed_leases_drain_within_two_admissions(
    redis: RedisServer, client: Any
) -> None:
    """A live request keeps the keys alive (alone, 250 lapsed leases go with the keys' own expiry)
    while a dead worker's 250 leases lapse: the count drains 100 leases per script call."""
    limiter = _limiter(redis.url, bytes_limit="400000/minute")
    _lease_floor(limiter, 0.5)  # stands for the lease's minute
    live = limiter.admit("k", declared_bytes=10_000, longest=2.0)  # a live request: a 12 s lease
    for _ in range(250):  # a dead worker's 250 requests of one client: 250,000 in flight
        limiter.admit("k", declared_bytes=1_000)
    assert _look(client, limiter, "k") == (260_000, 260_000, 251)
    time.sleep(0.7)  # the 250 lapsed; 10,000 is in flight
    statuses = []
    for _ in range(2):
        try:
            state = limiter.admit("k", declared_bytes=300_000)
        except RateLimited:
            statuses.append(429)
        else:
            statuses.append(200)
            limiter.settle(state, 0, failed=False)
        total, leases_sum, leases = _look(client, limiter, "k")
        assert total == leases_sum  # what was dropped was subtracted, no more
        assert leases <= 151  # the sorted set only shrinks: bounded
    # The first admission's take drops 100 of the 250 (150,000 + 10,000 + 300,000 > 400,000: a
    # 429 today) and its give-back 100 more; the second drops the last 50 and is admitted. A lag
    # of one refused request per 200 lapsed leases, not a leak.
    assert statuses[1] == 200, statuses
    assert _look(client, limiter, "k") == (10_000, 10_000, 1)  # only the live request's
    limiter.settle(live, 0, failed=False)
    assert _look(client, limiter, "k") == (-1, 0, 0)  # nothing left: both keys deleted


# -- 7. give-backs twice, after a flush, after expiry ---------------------------------------------


def test_a_lease_given_back_twice_or_after_its_keys_are_gone_takes_nothing_from_others(
    redis: RedisServer, client: Any
) -> None:
    limiter = _limiter(redis.url, failure_limit="10/minute")
    first = limiter.admit("k", declared_bytes=30_000)
    second = limiter.admit("k", declared_bytes=40_000)
    limiter._leave_in_flight("k", 30_000, BYTES, first.lease)
    limiter._leave_in_flight("k", 30_000, BYTES, first.lease)  # twice
    limiter._leave_in_flight("k", 1, "in-flight", first.lease)
    limiter._leave_in_flight("k", 1, "in-flight", first.lease)
    assert _look(client, limiter, "k") == (40_000, 40_000, 1)
    assert _look(client, limiter, "k", "in-flight") == (1, 1, 1)
    limiter.settle(second, 0, failed=False)

    # The store is flushed (and its script cache) while a request is in flight.
    gone = limiter.admit("k", declared_bytes=30_000)
    client.execute_command("FLUSHDB")
    client.script_flush()
    fresh = limiter.admit("k", declared_bytes=20_000)  # the script is loaded again
    limiter.settle(gone, 0, failed=False)
    assert _look(client, limiter, "k") == (20_000, 20_000, 1)
    assert _look(client, limiter, "k", "in-flight") == (1, 1, 1)
    limiter.settle(fresh, 0, failed=False)

    # Both keys expired with their only lease; given back after that: nothing goes below zero.
    _lease_floor(limiter, 0.3)
    lapsed = limiter.admit("k", declared_bytes=10_000)
    time.sleep(0.45)
    assert client.exists(*_keys(limiter, "k")) == 0  # expired on their own
    limiter.settle(lapsed, 0, failed=False)
    assert _look(client, limiter, "k") == (-1, 0, 0)
    assert limiter._in_flight("k", 0, BYTES) == 0


# -- 8. a give-back whose reply was lost ----------------------------------------------------------


def test_a_give_back_whose_reply_was_lost_is_paid_again_harmlessly(redis: RedisServer, client: Any) -> None:
    limiter = _limiter(redis.url, timeout=0.2)
    _warm(limiter)
    first = limiter.admit("k", declared_bytes=30_000)
    other = limiter.admit("k", declared_bytes=40_000)
    stall = _stall(client, 0.6)
    limiter.settle(first, 0, failed=False)  # times out: owed -- but it runs once Redis is free
    stall.join()
    assert limiter._owed == {("k", BYTES, first.lease): 30_000}
    deadline = time.monotonic() + 2  # Redis runs the abandoned call soon after the stall
    while _look(client, limiter, "k") != (40_000, 40_000, 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _look(client, limiter, "k") == (40_000, 40_000, 1)  # the lost give-back ran
    time.sleep(0.4)  # the breaker closed
    later = limiter.admit("k", declared_bytes=10_000)  # pays the owed give-back again first
    assert limiter._owed == {}
    assert _look(client, limiter, "k") == (50_000, 50_000, 2)  # other's 40,000 intact
    limiter.settle(other, 0, failed=False)
    limiter.settle(later, 0, failed=False)
    assert _look(client, limiter, "k") == (-1, 0, 0)


# -- 9. the keys' expiry against the longest lease ------------------------------------------------


def test_both_keys_live_as_long_as_their_longest_lease(redis: RedisServer, client: Any) -> None:
    limiter = _limiter(redis.url)
    limiter._in_flight_expiry = 1  # the lease's floor (a minute): the body timeout's + 10 s rules
    total_key, leases_key = _keys(limiter, "k")
    long_lease = limiter.admit("k", declared_bytes=30_000, longest=2.0)  # lives 12 s
    _lease_floor(limiter, 0.3)
    short = limiter.admit("k", declared_bytes=20_000)  # a worker with a shorter lease: 0.3 s
    for key in (total_key, leases_key):
        assert 11_000 < client.pttl(key) <= 12_000  # the long lease's, not the last one's
    time.sleep(0.45)
    assert limiter._in_flight("k", 0, BYTES) == 30_000  # the short one lapsed, the long one counts
    limiter.settle(short, 0, failed=False)  # late: nothing
    assert _look(client, limiter, "k") == (30_000, 30_000, 1)
    newer = limiter.admit("k", declared_bytes=5_000)
    limiter.settle(long_lease, 0, failed=False)  # the longest goes: the expiry shrinks to newer's
    for key in (total_key, leases_key):
        assert 0 < client.pttl(key) <= 300
    assert _look(client, limiter, "k") == (5_000, 5_000, 1)
    limiter.settle(newer, 0, failed=False)
    assert _look(client, limiter, "k") == (-1, 0, 0)


# -- 10. many threads and processes on one key ----------------------------------------------------


def _hammer(url: str, prefix: str, seconds: float, seed: int) -> int:
    """Admit, settle, abandon and settle late on key "k" for ``seconds``; the admissions made."""
    rng = random.Random(seed)
    limiter = RateLimiter(
        limit=None,
        bytes_limit="1000000000/minute",
        failure_limit="1000000/minute",
        storage=url,
        prefix=prefix,
        timeout=5,
    )
    _lease_floor(limiter, 0.25)
    late: list[RateState] = []
    admitted = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = limiter.admit("k", declared_bytes=rng.randint(0, 5_000))
        admitted += 1
        roll = rng.random()
        if roll < 0.1:
            continue  # abandoned: a worker that died mid-request
        if roll < 0.2:
            late.append(state)  # given back after its lease lapsed (or not yet)
        else:
            if roll < 0.3:
                time.sleep(rng.random() * 0.01)
            limiter.settle(state, 0, failed=False)
        if len(late) > 5:
            time.sleep(0.05)
            for old in late:
                limiter.settle(old, 0, failed=False)
            late.clear()
    for old in late:
        limiter.settle(old, 0, failed=False)
    return admitted


def _hammer_process(url: str, prefix: str, seconds: float, seed: int, out: Any) -> None:
    out.put(_hammer(url, prefix, seconds, seed))


def test_many_threads_and_processes_keep_the_total_equal_to_its_leases(
    redis: RedisServer, client: Any
) -> None:
    prefix = _prefix()
    names = {c: in_flight_keys(f"{prefix}/{c}/k") for c in (BYTES, "in-flight")}
    seconds = 2.0
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [
        context.Process(target=_hammer_process, args=(redis.url, prefix, seconds + 1.5, 100 + n, out))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    time.sleep(1.5)  # the processes import and start meanwhile
    looks: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for keys in names.values():
                looks.append(tuple(int(v) for v in client.eval(LOOK_LUA, 2, *keys)))  # type: ignore[arg-type]

    sampler = threading.Thread(target=sample)
    sampler.start()
    errors: list[BaseException] = []
    counts: list[int] = []

    def thread(seed: int) -> None:
        try:
            counts.append(_hammer(redis.url, prefix, seconds, seed))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(16)]
    try:
        for each in threads:
            each.start()
        for each in threads:
            each.join()
        for process in processes:
            process.join(timeout=20)
            assert process.exitcode == 0
        counts.extend(out.get(timeout=5) for _ in processes)
    finally:
        stop.set()
        sampler.join()
        for process in processes:
            if process.is_alive():
                process.kill()
    assert errors == []
    assert sum(counts) > 500  # the attack really ran
    assert len(looks) > 50
    assert max(leases for _, _, leases in looks) > 1  # requests really overlapped
    # The total is its leases (-1: no total, which is right only with no lease), never negative.
    wrong = [look for look in looks if max(look[0], 0) != look[1] or look[0] < -1]
    assert wrong == [], wrong[:5]
    time.sleep(0.4)  # the abandoned leases lapse
    limiter = RateLimiter(
        limit=None, failure_limit="10/minute", bytes_limit="10/minute", storage=redis.url, prefix=prefix
    )
    for _ in range(30):  # 100 lapsed leases dropped per call
        if limiter._in_flight("k", 0, BYTES) == 0 and limiter._in_flight("k", 0, "in-flight") == 0:
            break
    assert client.exists(*names[BYTES], *names["in-flight"]) == 0


# -- 11. Redis restarted mid-request --------------------------------------------------------------


def test_redis_restarted_mid_request_answers_503_and_never_goes_below_zero() -> None:
    import redis as redis_py

    port = service_port()
    with redis_server(port) as first_server:
        limiter = _limiter(first_server.url, failure_limit="10/minute", timeout=0.3)
        in_flight = limiter.admit("k", declared_bytes=60_000)
    # Redis is gone, with every count.
    with pytest.raises(StoreUnavailable) as refused:
        limiter.admit("k", declared_bytes=1_000)
    assert refused.value.status == 503
    with pytest.raises(StoreUnavailable):  # its bytes cannot be spent: a 503, not a 500
        limiter.settle(in_flight, 60_000, failed=False)
    # Owed: the settle's two give-backs, and the refused admission's take (it may have run on a
    # server that answered too late; giving back a lease never taken is harmless).
    assert len(limiter._owed) == 3
    with redis_server(port) as second_server:
        plain = redis_py.Redis.from_url(second_server.url, socket_timeout=5)
        try:
            time.sleep(0.4)  # the breaker closed
            fresh = limiter.admit("k", declared_bytes=70_000)  # pays the owed give-backs first
            assert limiter._owed == {}
            assert _look(plain, limiter, "k") == (70_000, 70_000, 1)
            assert _look(plain, limiter, "k", "in-flight") == (1, 1, 1)
            limiter.settle(fresh, 70_000, failed=False)
            assert plain.keys("{" + limiter.prefix + "*") == []
        finally:
            plain.close()


# -- 12. on a Cluster ---------------------------------------------------------------------------


@pytest.mark.slow
def test_leases_lapse_on_a_redis_cluster_for_keys_of_every_shape() -> None:
    with redis_cluster(3) as cluster:
        limiter = RateLimiter(
            limit=None, bytes_limit="100000/minute", failure_limit="3/minute", storage=cluster.url
        )
        _lease_floor(limiter, 0.4)
        keys = [*KEY_SHAPES[:6], "id:{a}b", "id:}{"]
        for key in keys:  # dead workers' requests
            limiter.admit(key, declared_bytes=None, most_bytes=100_000)
            with pytest.raises(RateLimited):
                limiter.admit(key, declared_bytes=1)
        time.sleep(0.5)
        for key in keys:
            state = limiter.admit(key, declared_bytes=90_000)  # the dead lease lapsed
            assert limiter._in_flight(key, 0, BYTES) == 90_000
            limiter.settle(state, 0, failed=False)
            assert limiter._in_flight(key, 0, BYTES) == 0
            assert limiter._in_flight(key, 0, "in-flight") == 0


# -- 13. a real worker killed mid-body ------------------------------------------------------------

SECRET = "review-leases-secret"
KILLED_APP = """
import os

from hmacguard import RateLimiter, Verifier, WSGIGuard
from tests.guard._apps.plain_guarded import reading_wsgi_app

limiter = RateLimiter(
    limit=None,
    bytes_limit="100000/minute",
    failure_limit="1000/minute",
    storage=os.environ["HMACGUARD_TEST_RL_STORAGE"],
    breaker_reset=0.5,
)
limiter._in_flight_expiry = 1  # the lease's floor (a minute): the body timeout + 10 s rules here
verifier = Verifier("github", secrets=%r, max_body=90_000, body_timeout=2.0, replay=None)
wsgi = WSGIGuard(reading_wsgi_app, verifier=verifier, rate_limiter=limiter, paths=["/webhook"])
"""
#: The dead request's lease: its body timeout + 10 s.
LEASE_LIFE = 12.0


def _post(port: int, body: bytes) -> int | None:
    headers = Signer("github", secrets=SECRET).sign(body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{head}\r\n"
    )
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode() + body)
        with contextlib.suppress(OSError):
            while piece := sock.recv(65536):
                answer += piece
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else None


@pytest.mark.slow
def test_a_worker_killed_mid_body_frees_its_reservation_after_the_lease_under_steady_traffic(
    tmp_path: Path,
) -> None:
    import redis as redis_py

    module = f"review_leases_killed_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(KILLED_APP % SECRET))
    path = os.pathsep.join([str(tmp_path), str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    body = b"a" * 90_000
    headers = Signer("github", secrets=SECRET).sign(body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n{head}\r\n"
    )
    total_key = in_flight_keys("hmacguard/in-flight-bytes/ip:127.0.0.1")[0]
    with redis_server() as redis:
        plain = redis_py.Redis.from_url(redis.url, socket_timeout=5)
        env = {"HMACGUARD_TEST_RL_STORAGE": redis.url, "PYTHONPATH": path}
        try:
            with gunicorn(f"{module}:wsgi", env, workers=1) as server:
                assert _post(server.port, b"warm") == 200
                (worker,) = server.worker_pids()
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as upload:
                    upload.sendall(request.encode() + b"400\r\n" + body[:1024] + b"\r\n")
                    deadline = time.monotonic() + 5
                    while plain.get(total_key) != b"90000" and time.monotonic() < deadline:
                        time.sleep(0.005)
                    assert plain.get(total_key) == b"90000"  # admitted: the cap reserved
                    admitted = time.monotonic()
                    os.kill(worker, signal.SIGKILL)  # well inside its 2 s body timeout
                    upload.settimeout(5)
                    with contextlib.suppress(OSError):
                        assert upload.recv(65536) == b""  # no answer: the worker is gone
                seen: list[tuple[float, int | None]] = []
                while time.monotonic() - admitted < LEASE_LIFE + 5:
                    status = _post(server.port, b"b" * 20_000)  # 90,000 + 20,000 > 100,000
                    seen.append((time.monotonic() - admitted, status))
                    if [s for _, s in seen[-2:]] == [200, 200]:
                        break
                    time.sleep(0.3)
                assert {s for _, s in seen} <= {200, 429}, seen
                assert worker not in server.worker_pids()
                assert "Traceback" not in server.log()
            first_ok = next(t for t, s in seen if s == 200)
            assert all(s == 429 for t, s in seen if t < first_ok), seen
            assert seen[0][1] == 429  # the dead worker's lease counts while it lives
            assert LEASE_LIFE - 1.0 < first_ok < LEASE_LIFE + 3.0, seen  # then lapses
            assert plain.keys("{hmacguard/in-flight*") == []  # nothing left behind
        finally:
            plain.close()
