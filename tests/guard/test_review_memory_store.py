"""Adversarial review of the in-memory replay store as merged in d46a6e9 (a485ecc, 9185fe5, 98e4608,
tests 2b10c1a): MemoryReplayStore sets pending holds aside when full and evicts its oldest committed
entry; only when every entry is a pending hold does the oldest hold leave, into the record of evicted
ids (guard/evicted_ids.py: two filter counters per id in one 64-byte block, sealed buckets bisected
through a prefix index).

1. The record against a plain dict (Hypothesis): ids whose hashes are the edges of 64 bits (-2**63,
   2**63 - 1, -1 and -2 -- one id, since hash() turns -1 into -2 --, 0, 2**32), ids sharing a
   filter block or a prefix-index slot, buckets of 1 to 70 ids, expiries and drops: HELD (never
   "held" for an id not held, never "not held" for an id held).
2. A full bucket of 65,536 ids on every fence of its 4,096-slot prefix index (the first and last
   hash of each slot, the hash just before it, empty slots): HELD.
3. Threads racing hold / commit / release / extend / holds on the same and other keys, more holds
   pending at once than the store has entries: HELD (no delivery processed twice, the bounds and
   the store's own bookkeeping kept; since 7c7583e a hold past the bound is answered 503, counted).
   And 20,000 slow deliveries on 30 keys, three pending at once, lapsing, retaken, committed after
   lapse, extended, on a store of 2 and a record of 100: HELD (within 2 entries and
   100 + 2 x 16 - 1 ids throughout; a 503 only when two live holds fill the store).
4. Lapsed holds set aside stay counted while a live hold is evicted instead: DEFECT, fixed (a
   full store now drops the lapsed holds it set aside before it evicts a live one; while the holds
   aside are out of expiry order their expiries are in a heap, bounded: 20,000 set-aside /
   bring-back rounds keep it within 2 x max_entries + 65 items).
5. Nested guards on one store full of pending holds: the outer guard's hold is evicted into the
   record, the inner guard finds its key taken and cannot extend it, answers 409, and the outer
   guard commits a delivery nobody processed -- lost (in process, and under gunicorn and uvicorn):
   DEFECT, left as a strict xfail (the store cannot tell the outer hold's token from the record);
   fixed in 7c7583e: a pending hold is never evicted, a store full of live pending holds answers
   503 to a new delivery instead (its sender retries), and the outer guard's hold stays.
6. A model of holds with several pending times, extends and lapses against an unbounded store:
   while no more holds are live than the store has entries, every live hold is held, extendable
   and freed by its release: HELD once 4. is fixed. Since 7c7583e without that proviso: the
   reference refuses with 503 when ``bound`` holds are live, and the store answers exactly so.
"""

from __future__ import annotations

import http.client
import itertools
import random
import threading
import time
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hmacguard import MemoryReplayStore, Verifier
from hmacguard.errors import StoreUnavailable
from hmacguard.guard import evicted_ids
from hmacguard.guard.evicted_ids import _BIAS, BUCKET, EvictedIds
from hmacguard.schemes import sign_body

from ._clock import Clock
from ._nesting import Seen, nested, post
from ._quiet import quiet_store_warnings  # noqa: F401 (autouse)
from ._threads import run_racing

KINDS = pytest.mark.parametrize("kind", ["wsgi", "asgi"])
counter = itertools.count()


class Hashed(str):
    """A delivery id whose ``hash()`` is chosen by the test (the record only ever asks ``hash``)."""

    __slots__ = ()

    def __hash__(self) -> int:
        return int(self.partition(":")[2])


def _id(hashed: int) -> Hashed:
    return Hashed(f"id:{hashed}")


# -- 1, 2. The record of evicted ids against a plain dict ----------------------------------------

EDGES = [-(2**63), -(2**63) + 1, -2, -1, 0, 1, 2**32 - 1, 2**32, 2**63 - 2, 2**63 - 1]
#: Hashes sharing low bits (one filter block), bits 32-37 (one second counter), or top bits (one
#: prefix-index slot, whatever its width).
NEIGHBOURS = [
    *(base + (n << 40) for base in (5, -(2**63) + 5) for n in range(3)),
    *((7 << 32) + n * 64 for n in range(3)),
    *((2**63 - 1) - n for n in range(3)),
    *(-(2**63) + n for n in range(2, 4)),
]
HASHES = st.one_of(st.sampled_from(EDGES + NEIGHBOURS), st.integers(-(2**63), 2**63 - 1))
RECORD_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), HASHES, st.sampled_from([1.0, 5.0, 50.0, 500.0])),
        st.tuples(st.just("tick"), st.just(0), st.sampled_from([0.5, 4.0, 40.0, 400.0])),
        st.tuples(st.just("expire"), st.just(0), st.just(0.0)),
    ),
    max_size=150,
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=RECORD_OPS, bucket=st.sampled_from([1, 2, 3, 16, 17, 32, 70]))
def test_the_record_answers_as_a_dict_of_hashes_on_edge_hashes(
    ops: list[tuple[str, int, float]], bucket: int
) -> None:
    """Ids added with expiries, clock steps, drops of expired buckets; after every step each id
    ever added and every edge hash is asked: held exactly when a dict of ``hash -> latest expiry``
    says so (max_ids larger than the ids added: nothing forgotten). Buckets of 1 to 70 ids: prefix
    indexes of 1, 2 and 4 slots."""
    with mock.patch.object(evicted_ids, "BUCKET", bucket):
        ids = EvictedIds(max_ids=10_000)
    reference: dict[int, float] = {}
    now = 0.0
    asked = {hash(_id(h)) for h in EDGES + NEIGHBOURS}
    for op, hashed, value in ops:
        if op == "add":
            key = _id(hashed)
            ids.add(key, now + value)
            reference[hash(key)] = max(reference.get(hash(key), 0.0), now + value)
            asked.add(hash(key))
        elif op == "tick":
            now += value
        else:
            ids.expire(now)
        for h in asked:
            assert ids.holds(_id(h), now) == (reference.get(h, 0.0) > now), h
    assert hash(_id(-1)) == hash(_id(-2)) == -2  # one id for the record, as for any dict


def test_a_full_bucket_answers_on_every_fence_of_its_prefix_index() -> None:
    """65,536 ids (one sealed bucket: a prefix index of 4,096 slots, 2**52 hashes each). Slot k
    holds, for k % 3 == 0, its first and last hash; for k % 3 == 1, the hash after its first, not
    the first; for k % 3 == 2, nothing (an empty range: its fence equals the next). Random hashes
    fill the first two kinds. Every slot's start - 1, start, start + 1 and last hash is asked:
    held exactly when it was added (-1 is left out: hash() makes it -2)."""
    slots, width = 4096, 1 << 52
    added: set[int] = set()
    for k in range(slots):
        start = -_BIAS + k * width
        if k % 3 == 0:
            added.update((start, start + width - 1))
        elif k % 3 == 1:
            added.add(start + 1)
    rng = random.Random(7)
    while len(added) < BUCKET:
        k = rng.randrange(slots)
        if k % 3 != 2:
            h = -_BIAS + k * width + rng.randrange(width)
            if h != -1:
                added.add(h)
    ids = EvictedIds(max_ids=BUCKET)
    for h in sorted(added, key=lambda _: rng.random()):
        ids.add(_id(h), 100.0)
    assert len(ids._sealed) == 1 and not ids._open
    bucket = ids._sealed[0]
    assert bucket.shift == 52 and len(bucket.fences) == slots + 1
    assert bucket.fences[0] == 0 and bucket.fences[slots] == BUCKET
    assert all(bucket.fences[k] == bucket.fences[k + 1] for k in range(2, slots, 3))
    for k in range(slots):
        start = -_BIAS + k * width
        for h in (start - 1, start, start + 1, start + width - 1):
            if -_BIAS <= h < _BIAS and h != -1:
                assert ids.holds(_id(h), 0.0) == (h in added), (k, h)
    sample = rng.sample(sorted(added), 2000)
    assert all(ids.holds(_id(h), 0.0) for h in sample)
    assert not any(ids.holds(_id(h), 100.0) for h in sample)  # expired: not held


# -- 3. Threads ---------------------------------------------------------------------------------


def test_threads_racing_every_call_at_the_bound_never_process_a_delivery_twice() -> None:
    """12 threads on a store of 8 entries (a record with buckets of 8): each takes keys from a pool
    of 40, holds (pending 1,000 s: no lapse), sometimes extends or asks ``holds``, then commits
    or releases. A shared ledger says which key is being processed: a hold granted while another
    thread processes the key, or once it was committed, is a delivery processed twice. With more
    holds pending than entries (12 threads, 8 entries) a new hold may be answered 503
    (StoreUnavailable): counted, never a token; no hold leaves for the record, so every key not
    committed is free again after. The bounds and the store's bookkeeping hold after."""
    with mock.patch.object(evicted_ids, "BUCKET", 8):
        store = MemoryReplayStore(max_entries=8, max_evicted=100_000)
    keys = [f"race{n}" for n in range(40)]
    ledger_lock = threading.Lock()
    processing: set[str] = set()
    committed: set[str] = set()
    errors: list[str] = []
    unavailable: list[str] = []
    barrier = threading.Barrier(12)

    def run(worker: int) -> None:
        try:
            work(worker)
        except BaseException as error:  # a thread's exception would otherwise pass unseen
            errors.append(repr(error))

    def work(worker: int) -> None:
        rng = random.Random(worker)
        barrier.wait()
        for _ in range(600):
            key = rng.choice(keys)
            try:
                token = store.hold(key, 1000.0)
            except StoreUnavailable:
                unavailable.append(key)  # 503: the sender retries later
                continue
            if token is None:
                continue
            with ledger_lock:
                if key in processing or key in committed:
                    errors.append(f"{key} granted twice")
                processing.add(key)
            if rng.random() < 0.3:
                store.extend(key, token, 2000.0)
            if rng.random() < 0.3:
                store.holds(key, token)
            commit = rng.random() < 0.3
            with ledger_lock:
                processing.discard(key)
                if commit:
                    committed.add(key)
            if commit:
                store.commit(key, token, 1e6)
            else:
                store.release(key, token)

    run_racing(run, 12)
    assert errors == []
    assert len(store) <= 8 and store._room == 8 - len(store._aside)
    assert not set(store._entries) & set(store._aside)
    assert all(store.hold(key, 1000.0) is None for key in committed)
    assert len(store._evicted) <= len(committed)  # only committed ids go to the record
    for key in set(keys) - committed:  # released (or never held): free again, none lost
        token = store.hold(key, 1000.0)
        assert token is not None, key
        store.release(key, token)


# -- 4. Lapsed holds set aside ------------------------------------------------------------------


def _lapsed_aside(record: int) -> tuple[MemoryReplayStore, str]:
    """A store of 4: hold A for 300 s, B and C for 30 s (two receivers, or two guards, with other
    pending times on one store), then committed traffic sets all three aside. 31 s later B and C
    have lapsed (their workers died); A is still being processed. Two new deliveries D and E are
    held: three live holds in a store of 4."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=4, max_evicted=record, clock=clock)
    first = store.hold("A", 300.0)
    assert first is not None
    assert store.hold("B", 30.0) and store.hold("C", 30.0)
    assert store.reserve("x", 3600.0) and store.reserve("y", 3600.0)
    assert list(store._aside) == ["A", "B", "C"]
    clock.now += 31
    assert store.hold("D", 30.0) and store.hold("E", 30.0)
    return store, first


def test_lapsed_holds_set_aside_are_dropped_before_a_live_hold_is_evicted() -> None:
    """Was (strict xfail, BUG): the sweep of the holds set aside stopped at the first live one
    (A), so B and C, lapsed behind it, still counted; E's hold found every entry a pending hold
    and evicted A -- with 3 live holds in a store of 4 -- into the record: A's extend said False
    and its release no longer freed it (the sender's retry refused for 300 s). Now a full store
    drops the lapsed holds it set aside before it evicts a live one."""
    store, first = _lapsed_aside(1000)
    assert store.holds("A", first)  # was: False
    assert store.extend("A", first, 300.0)  # was: False
    store.release("A", first)  # the application failed: the sender's retry must be processed
    assert store.hold("A", 300.0) is not None  # was: None until A's pending time
    assert len(store) <= 4


def test_with_the_record_off_a_lapsed_hold_set_aside_lets_a_duplicate_through() -> None:
    """Was (strict xfail, BUG): the same with ``max_evicted=0``: A was forgotten, and its
    duplicate processed while A itself was still being processed -- with room in the store."""
    store, first = _lapsed_aside(0)
    assert store.hold("A", 300.0) is None  # was: a token, A processed twice
    store.commit("A", first, 3600.0)
    assert store.hold("A", 300.0) is None


def test_the_heap_of_holds_set_aside_stays_bounded_while_holds_come_and_go() -> None:
    """Memory: pending holds of other pending times (500 s, 80 s, 50 s: set aside out of expiry
    order, so the store keeps their expiries in a heap too), the last two asked for by their
    duplicates (brought back) and set aside again -- 20,000 rounds on a store of 4: the heap stays
    within 2 x max_entries + 65 items, and the sweep empties it once the holds lapse."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=4, clock=clock)
    for key, pending in (("anchor", 500.0), ("long", 80.0), ("short", 50.0)):
        assert store.hold(key, pending) is not None
    with_heap = 0
    for n in range(20_000):
        assert store.reserve(f"traffic{n}", 100.0)  # sets the oldest pending hold aside
        assert store.hold("long" if n % 3 else "short", 80.0) is None  # brought back, refused
        clock.now += 0.001
        assert len(store) <= 4
        assert len(store._aside_expiries or ()) <= 2 * 4 + 65
        with_heap += store._aside_expiries is not None
    assert with_heap > 10_000
    clock.now += 600
    store.hold("sweep", 1.0)
    assert not store._aside and store._aside_expiries is None


def test_holds_that_lapse_and_are_retaken_keep_the_store_and_the_record_within_their_bounds() -> None:
    """Memory, the attacker's way: on a store of 2 with a record of 100 ids (buckets of 16), 30 keys
    held again and again by slow deliveries -- three pending at once, each lapsing (its worker
    died) or settled late, retaken once free, with commits after lapse and extends. The store stays
    within 2 entries, the record within 100 + 2 x 16 - 1 ids, the heap within its bound."""
    clock = Clock()
    with mock.patch.object(evicted_ids, "BUCKET", 16):
        store = MemoryReplayStore(max_entries=2, max_evicted=100, clock=clock)
    rng = random.Random(3)
    pending: list[tuple[str, str, float]] = []  # key, token, expiry
    lapsing: list[float] = []  # the expiries of holds left to lapse (still pending until then)
    unavailable = 0
    for _ in range(20_000):
        key = f"slow{rng.randrange(30)}"
        pending_time = rng.choice([1.0, 3.0])
        try:
            token = store.hold(key, pending_time)
        except StoreUnavailable:
            # Since 7c7583e a store full of live pending holds answers 503; only then.
            now = clock.now
            live = sum(e > now for _, _, e in pending) + sum(e > now for e in lapsing)
            assert live >= 2, live
            unavailable += 1
            token = None
        if token is not None:
            pending.append((key, token, clock.now + pending_time))
        if len(pending) > 3:
            old, old_token, expiry = pending.pop(rng.randrange(len(pending)))
            settle = rng.choice(["commit", "release", "extend", "lapse"])
            if settle == "commit":
                store.commit(old, old_token, rng.choice([2.0, 50.0]))
            elif settle == "release":
                store.release(old, old_token)
            elif settle == "extend":
                if store.extend(old, old_token, 5.0):
                    lapsing.append(max(expiry, clock.now + 5.0))
                else:
                    assert expiry <= clock.now, old  # a live hold always extendable now
            else:
                lapsing.append(expiry)
        clock.now += rng.choice([0.01, 0.5, 2.0])
        lapsing = [e for e in lapsing if e > clock.now]
        assert len(store) <= 2
        assert len(store._evicted) <= 100 + 2 * 16 - 1
        assert len(store._aside_expiries or ()) <= 2 * 2 + 65
        assert store._room == 2 - len(store._aside)
    assert 0 < unavailable < 20_000


# -- 5. Nested guards on a store full of pending holds --------------------------------------------


def _filling(kind: str, store: MemoryReplayStore, others: list[str]) -> Any:
    """A middleware between the two guards during which two other deliveries enter their
    applications (other threads of the worker, or other tasks): their holds fill the store. Each
    one's answer is put in ``others``: "held", or "503" (the store full of pending holds)."""
    count = itertools.count()

    def take_two() -> None:
        for _ in range(2):
            try:
                token = store.hold(f"other{next(count)}", 30.0)
            except StoreUnavailable:
                others.append("503")
            else:
                others.append("held" if token is not None else "refused")

    def between(app: Any) -> Any:
        if kind == "wsgi":

            def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
                take_two()
                return app(environ, start_response)

            return wsgi

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            take_two()
            await app(scope, receive, send)

        return asgi

    return between


@KINDS
def test_nested_guards_on_a_store_full_of_pending_holds_do_not_lose_the_delivery(kind: str) -> None:
    """Outer and inner guard on one store of 2 entries; between them, two other deliveries enter
    their applications. Was (strict xfail, BUG): three holds pending in a store of 2, the oldest --
    the outer guard's, for this very request -- left for the record; the inner guard found its key
    taken, could not extend the outer hold, answered 409, and the outer guard committed a delivery
    nobody processed (its retry refused for the replay TTL). Now the first other delivery fills the
    store and the second is answered 503 (its sender retries); the outer hold stays, the inner
    guard processes the delivery once, its retry is refused."""
    store = MemoryReplayStore(max_entries=2)
    seen = Seen()
    others: list[str] = []
    outer = Verifier("github", secrets="review-memory", replay=store)
    inner = Verifier("github", secrets="review-memory", replay=store)
    body = b'{"review-memory": %d}' % next(counter)
    headers = sign_body("github", "review-memory", body)
    status = post(
        kind, nested(kind, outer, inner, seen, between=_filling(kind, store, others)), body, headers
    )
    retry = post(kind, nested(kind, outer, inner, seen), body, headers)
    assert (status, retry, len(seen), others) == (200, 409, 1, ["held", "503"])


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST on loopback: the answer's status and content type."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers={**headers, "Connection": "close"})
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.getheader("Content-Type") or ""
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_nested_guards_keep_a_delivery_a_slow_one_gets_503_under_a_real_server(server: str) -> None:
    """tests/guard/_apps/review_memory_store.py: outer and inner guard on one MemoryReplayStore of
    2 entries, 0.8 s between them on /hooks/b. Delivery K is posted to /hooks/b; 0.2 s later two
    other deliveries to /hooks/slow (2 s each) reach the outer guard -- three deliveries pending in
    a store of 2. Was (strict xfail, BUG): K's hold, the oldest, was evicted; K answered 409,
    never processed, its retry refused -- lost. Now K is processed once (200) and its retry
    refused; one slow delivery fills the store, the other is answered 503 problem+json, and its
    retry once the store has room is processed, once, then refused."""
    from ._apps.recording import handled_on
    from ._apps.review_memory_store import SECRET
    from ._servers import gunicorn, uvicorn

    if server == "gunicorn":
        running = gunicorn(
            "tests.guard._apps.review_memory_store:application",
            {},
            workers=1,
            worker_class="gthread",
            threads=6,
        )
    else:
        running = uvicorn("tests.guard._apps.review_memory_store:asgi")
    with running as http_server:
        port = http_server.port
        body = b'{"review-memory-real": %d}' % time.time_ns()
        headers = sign_body("github", SECRET, body)
        statuses: list[tuple[int, str]] = []
        first = threading.Thread(target=lambda: statuses.append(_post(port, "/hooks/b", body, headers)))
        first.start()
        time.sleep(0.2)
        slow: list[threading.Thread] = []
        slow_answers: dict[bytes, tuple[int, str]] = {}
        for n in range(2):
            other = b'{"slow": %d, "at": %d}' % (n, time.time_ns())
            signed = sign_body("github", SECRET, other)

            def deliver(other: bytes = other, signed: dict[str, str] = signed) -> None:
                slow_answers[other] = _post(port, "/hooks/slow", other, signed)

            thread = threading.Thread(target=deliver)
            thread.start()
            slow.append(thread)
        first.join(10)
        for thread in slow:
            thread.join(10)
        retry = _post(port, "/hooks/b", body, headers)[0]
        refused = [other for other, (status, _) in slow_answers.items() if status == 503]
        assert sorted(status for status, _ in slow_answers.values()) == [200, 503], slow_answers
        assert slow_answers[refused[0]][1] == "application/problem+json"
        # The refused delivery's retry, now that the store has room: processed, then refused.
        later = sign_body("github", SECRET, refused[0])
        again = [_post(port, "/hooks/slow", refused[0], later)[0] for _ in range(2)]
        processed = handled_on(port)
    assert [status for status, _ in statuses] == [200], statuses  # was: [409]
    on_b = [b for path, b in processed if path == "/hooks/b"]
    assert on_b.count(body.decode()) == 1, (statuses, retry, processed)  # was: 0
    assert retry == 409
    assert again == [200, 409], again
    on_slow = [b for path, b in processed if path == "/hooks/slow"]
    assert on_slow.count(refused[0].decode()) == 1, processed


# -- 6. A model with several pending times ------------------------------------------------------

MODEL_OPS = st.lists(
    st.tuples(
        st.sampled_from(["hold", "hold", "commit", "release", "extend", "tick"]),
        st.integers(0, 6),  # key; or which outstanding token; or which clock step
        st.sampled_from([5.0, 30.0, 300.0]),  # the hold's pending time, or the extend's
    ),
    max_size=100,
)
STEPS = (0.5, 6.0, 31.0, 301.0)


# 4. as the model finds it: A 300 s, B and C 30 s, committed traffic sets them aside, B and C lapse.
LAPSED_ASIDE = [
    *(("hold", n, p) for n, p in ((0, 300.0), (1, 30.0), (2, 30.0), (3, 30.0))),
    ("commit", 3, 0.0),
    ("hold", 4, 30.0),
    ("commit", 3, 0.0),
    ("tick", 2, 0.0),
    ("hold", 5, 30.0),
    ("hold", 6, 30.0),
]


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=MODEL_OPS, bound=st.integers(1, 4))
@example(ops=LAPSED_ASIDE, bound=4)
def test_a_model_of_holds_with_several_pending_times_against_an_unbounded_store(
    ops: list[tuple[str, int, float]], bound: int
) -> None:
    """Holds of 5, 30 and 300 s (receivers or guards with other pending times on one store),
    extends, commits, releases, lapses. The reference: the unbounded store, refusing with 503 a
    delivery it would take while ``bound`` holds are live already (the bounded store is full of
    deliveries being processed). The bounded store answers exactly as the reference: 503 then and
    only then, a token where it takes one, a refusal where it refuses; every live hold is held
    there under its token, its extend granted as in the reference; a released key is free again.
    Always within the bound. (Was strict xfail, BUG, on LAPSED_ASIDE: a live hold evicted while
    lapsed ones set aside still counted. Before 7c7583e the model stopped checking once more holds
    were live than the store had entries: the oldest then left for the record.)"""
    clocks = (Clock(), Clock())
    with mock.patch.object(evicted_ids, "BUCKET", 2):
        bounded = MemoryReplayStore(max_entries=bound, max_evicted=10_000, clock=clocks[0])
    unbounded = MemoryReplayStore(max_entries=10**9, clock=clocks[1])
    outstanding: list[tuple[str, str, str]] = []  # key, bounded token, unbounded token
    for op, arg, seconds in ops:
        key = f"k{arg}"
        if op == "tick":
            for clock in clocks:
                clock.now += STEPS[arg % len(STEPS)]
        elif op == "hold":
            live = sum(1 for k, _, u in outstanding if unbounded.holds(k, u))
            try:
                mine: str | None = bounded.hold(key, seconds)
                unavailable = False
            except StoreUnavailable:
                mine, unavailable = None, True
            theirs = unbounded.hold(key, seconds)
            if theirs is not None and live >= bound:  # the reference, full: refused with 503
                unbounded.release(key, theirs)
                assert unavailable, key  # a token past the bound
            else:
                assert not unavailable, key  # a 503 with room, or for a duplicate
                assert (mine is None) == (theirs is None), key  # a replay accepted, or one refused
                if mine is not None and theirs is not None:
                    outstanding.append((key, mine, theirs))
        elif outstanding:
            key, mine_t, theirs_t = outstanding.pop(arg % len(outstanding))
            if op == "commit":
                bounded.commit(key, mine_t, 3600.0)
                unbounded.commit(key, theirs_t, 3600.0)
            elif op == "release":
                bounded.release(key, mine_t)
                unbounded.release(key, theirs_t)
            else:
                granted = (bounded.extend(key, mine_t, seconds), unbounded.extend(key, theirs_t, seconds))
                assert granted[0] == granted[1], key
                if granted[1]:
                    outstanding.append((key, mine_t, theirs_t))
        assert len(bounded) <= bound
        for held, mine_t, theirs_t in outstanding:
            assert bounded.holds(held, mine_t) == unbounded.holds(held, theirs_t), held
