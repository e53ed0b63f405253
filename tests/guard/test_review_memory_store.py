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
   the store's own bookkeeping kept). And 20,000 slow deliveries on 30 keys, three pending at once,
   lapsing, retaken, committed after lapse, extended, on a store of 2 and a record of 100: HELD
   (within 2 entries and 100 + 2 x 16 - 1 ids throughout).
4. Lapsed holds set aside stay counted while a live hold is evicted instead: DEFECT, fixed (a
   full store now drops the lapsed holds it set aside before it evicts a live one; while the holds
   aside are out of expiry order their expiries are in a heap, bounded: 20,000 set-aside /
   bring-back rounds keep it within 2 x max_entries + 65 items).
5. Nested guards on one store full of pending holds: the outer guard's hold is evicted into the
   record, the inner guard finds its key taken and cannot extend it, answers 409, and the outer
   guard commits a delivery nobody processed -- lost (in process, and under gunicorn and uvicorn):
   DEFECT, left as a strict xfail (the store cannot tell the outer hold's token from the record).
6. A model of holds with several pending times, extends and lapses against an unbounded store:
   while no more holds are live than the store has entries, every live hold is held, extendable
   and freed by its release: HELD once 4. is fixed.
"""

from __future__ import annotations

import itertools
import logging
import random
import sys
import threading
import time
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hmacguard import MemoryReplayStore, Verifier
from hmacguard.guard import evicted_ids
from hmacguard.guard.evicted_ids import _BIAS, BUCKET, EvictedIds
from hmacguard.schemes import sign_body

from ._clock import Clock
from ._nesting import Seen, nested, post

KINDS = pytest.mark.parametrize("kind", ["wsgi", "asgi"])
counter = itertools.count()


@pytest.fixture(autouse=True)
def _quiet_store_warnings() -> Any:
    """The bounded stores here warn on purpose; keep the output readable."""
    logger = logging.getLogger("hmacguard.guard.replay")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


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
    holds pending than entries, some go to the record: their releases cannot free them, which the
    test allows (refused, never accepted). The bounds and the store's bookkeeping hold after."""
    with mock.patch.object(evicted_ids, "BUCKET", 8):
        store = MemoryReplayStore(max_entries=8, max_evicted=100_000)
    keys = [f"race{n}" for n in range(40)]
    ledger_lock = threading.Lock()
    processing: set[str] = set()
    committed: set[str] = set()
    errors: list[str] = []
    barrier = threading.Barrier(12)

    def run(worker: int) -> None:
        rng = random.Random(worker)
        barrier.wait()
        for _ in range(600):
            key = rng.choice(keys)
            token = store.hold(key, 1000.0)
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

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert len(store) <= 8 and store._room == 8 - len(store._aside)
    assert not set(store._entries) & set(store._aside)
    assert all(store.hold(key, 1000.0) is None for key in committed)


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
    pending: list[tuple[str, str]] = []
    for _ in range(20_000):
        key = f"slow{rng.randrange(30)}"
        token = store.hold(key, rng.choice([1.0, 3.0]))
        if token is not None:
            pending.append((key, token))
        if len(pending) > 3:
            old, old_token = pending.pop(rng.randrange(len(pending)))
            settle = rng.choice(["commit", "release", "extend", "lapse"])
            if settle == "commit":
                store.commit(old, old_token, rng.choice([2.0, 50.0]))
            elif settle == "release":
                store.release(old, old_token)
            elif settle == "extend":
                store.extend(old, old_token, 5.0)
        clock.now += rng.choice([0.01, 0.5, 2.0])
        assert len(store) <= 2
        assert len(store._evicted) <= 100 + 2 * 16 - 1
        assert len(store._aside_expiries or ()) <= 2 * 2 + 65
        assert store._room == 2 - len(store._aside)


# -- 5. Nested guards on a store full of pending holds --------------------------------------------


def _filling(kind: str, store: MemoryReplayStore) -> Any:
    """A middleware between the two guards during which two other deliveries enter their
    applications (other threads of the worker, or other tasks): their holds fill the store."""
    others = itertools.count()

    def take_two() -> None:
        for _ in range(2):
            assert store.hold(f"other{next(others)}", 30.0) is not None

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
@pytest.mark.xfail(
    strict=True,
    reason="BUG: nested guards on a memory store full of pending holds: the outer guard's hold is "
    "evicted into the record, the inner guard answers 409 and the outer guard commits a delivery "
    "nobody processed -- lost",
)
def test_nested_guards_on_a_store_full_of_pending_holds_do_not_lose_the_delivery(kind: str) -> None:
    """Outer and inner guard on one store of 2 entries; between them, two other deliveries enter
    their applications. Three holds pending in a store of 2: the oldest -- the outer guard's, for
    this very request -- leaves for the record. The inner guard finds its key taken, cannot extend
    the outer hold (gone from the entries: ``False``), tries to take it again (the record refuses)
    and answers 409; the outer guard sees an answer below 500 and commits. The delivery was never
    processed, and its retry is refused for the replay TTL."""
    store = MemoryReplayStore(max_entries=2)
    seen = Seen()
    outer = Verifier("github", secrets="review-memory", replay=store)
    inner = Verifier("github", secrets="review-memory", replay=store)
    body = b'{"review-memory": %d}' % next(counter)
    headers = sign_body("github", "review-memory", body)
    status = post(kind, nested(kind, outer, inner, seen, between=_filling(kind, store)), body, headers)
    retry = post(kind, nested(kind, outer, inner, seen), body, headers)
    assert (status, retry, len(seen)) in ((200, 409, 1), (503, 200, 1)), (status, retry, len(seen))


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
@pytest.mark.xfail(
    strict=True,
    reason="BUG: under a real server, two slow deliveries fill a memory store of 2 while a nested "
    "guard's request is between its guards: the delivery is answered 409, never processed, and "
    "its retry refused -- lost",
)
def test_nested_guards_lose_a_delivery_to_slow_ones_under_a_real_server(server: str) -> None:
    """tests/guard/_apps/review_memory_store.py: outer and inner guard on one MemoryReplayStore of
    2 entries, 0.8 s between them on /hooks/b. Delivery K is posted to /hooks/b; 0.2 s later two
    other deliveries to /hooks/slow (2 s each) are held by the outer guard -- three pending holds
    in a store of 2, K's the oldest. K must be processed once (or refused with 503 and its retry
    processed); its retry then refused."""
    from ._apps.recording import handled_on, post_status
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
        statuses: list[int] = []
        first = threading.Thread(target=lambda: statuses.append(post_status(port, "/hooks/b", body, headers)))
        first.start()
        time.sleep(0.2)
        slow = []
        for n in range(2):
            other = b'{"slow": %d, "at": %d}' % (n, time.time_ns())
            thread = threading.Thread(
                target=post_status, args=(port, "/hooks/slow", other, sign_body("github", SECRET, other))
            )
            thread.start()
            slow.append(thread)
        first.join(10)
        for thread in slow:
            thread.join(10)
        retry = post_status(port, "/hooks/b", body, headers)
        processed = [b for path, b in handled_on(port) if path == "/hooks/b"]
    assert statuses in ([200], [503]), statuses  # now: [409]
    assert processed.count(body.decode()) == 1, (statuses, retry, processed)  # now: 0
    assert retry == (409 if statuses == [200] else 200)


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
    extends, commits, releases, lapses. The unbounded store is the reference. Until more holds are
    live at once than the bounded store has entries: every live hold is held there under its
    token, its duplicate refused, its extend granted; a released key is free again, as in the
    reference. Always: never accepted where the reference refuses; within the bound. (Was strict
    xfail, BUG, on LAPSED_ASIDE: a live hold evicted while lapsed ones set aside still counted.)"""
    clocks = (Clock(), Clock())
    with mock.patch.object(evicted_ids, "BUCKET", 2):
        bounded = MemoryReplayStore(max_entries=bound, max_evicted=10_000, clock=clocks[0])
    unbounded = MemoryReplayStore(max_entries=10**9, clock=clocks[1])
    outstanding: list[tuple[str, str, str]] = []  # key, bounded token, unbounded token
    overflowed = False
    for op, arg, seconds in ops:
        key = f"k{arg}"
        if op == "tick":
            for clock in clocks:
                clock.now += STEPS[arg % len(STEPS)]
        elif op == "hold":
            got = (bounded.hold(key, seconds), unbounded.hold(key, seconds))
            live = sum(1 for k, _, u in outstanding if unbounded.holds(k, u))
            overflowed = overflowed or live + (got[1] is not None) > bound
            if got[1] is None:
                assert got[0] is None, key  # a duplicate or a replay accepted
            elif not overflowed:
                assert got[0] is not None, key  # a delivery refused that nothing holds
            if got[0] is not None and got[1] is not None:
                outstanding.append((key, got[0], got[1]))
        elif outstanding:
            key, mine, theirs = outstanding.pop(arg % len(outstanding))
            if op == "commit":
                bounded.commit(key, mine, 3600.0)
                unbounded.commit(key, theirs, 3600.0)
            elif op == "release":
                bounded.release(key, mine)
                unbounded.release(key, theirs)
            else:
                granted = (bounded.extend(key, mine, seconds), unbounded.extend(key, theirs, seconds))
                if not overflowed:
                    assert granted[0] == granted[1], key
                if granted[1]:
                    outstanding.append((key, mine, theirs))
        assert len(bounded) <= bound
        if not overflowed:
            for held, mine, theirs in outstanding:
                assert bounded.holds(held, mine) == unbounded.holds(held, theirs), held
