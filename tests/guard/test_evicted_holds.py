"""A full MemoryReplayStore and the holds pending in it (deliveries being processed).

The promise: a delivery being processed is never processed a second time by a concurrent duplicate,
however full the store -- while it stays bounded (``max_entries`` entries plus the record of
evicted ids, whatever the number of holds pending at once).

Was (strict xfail, BUG): a full store evicted its oldest entry even when that was a pending hold,
and forgot it -- a duplicate arriving while the first delivery was still being processed was
processed too. Then a full store evicted its oldest committed entry and set older pending holds
aside (still counted in max_entries); only when every entry was a pending hold did the oldest
leave, into the record of evicted ids until its pending time -- which still lost deliveries (a
failed delivery's retry refused until then; nested guards, tests/guard/test_review_memory_store.py).
Now a pending hold is never evicted: a store full of live pending holds refuses a new delivery
with 503 (StoreUnavailable; the sender retries) until one of them settles or lapses.
"""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmacguard.errors import StoreUnavailable
from hmacguard.guard import evicted_ids
from hmacguard.guard.replay import MemoryReplayStore

from ._clock import Clock
from ._quiet import quiet_store_warnings  # noqa: F401 (autouse)

PENDING = 30.0
TTL = 3600.0


def test_a_hold_pending_while_committed_traffic_fills_the_store_still_refuses_its_duplicate() -> None:
    """The attack: delivery A is held (its application is slow); three other deliveries are
    processed meanwhile, filling a store of 3; A's duplicate (the sender's retry after a timeout,
    or a replay) arrives while A is still being processed. (Before the fix: a token, A processed
    twice.)"""
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    first = store.hold("A", PENDING)
    assert first is not None
    for key in ("x", "y", "z"):
        clock.now += 1
        assert store.reserve(key, TTL)
    assert store.hold("A", PENDING) is None  # was: a token -- A processed twice
    store.commit("A", first, TTL)
    assert store.hold("A", PENDING) is None
    assert len(store) <= 3


def test_more_holds_pending_than_the_store_has_entries_are_refused_with_503_and_none_is_lost() -> None:
    """The attacker's version: slow deliveries, more of them pending at once than the store has
    entries. A store of 3 holding 3 live pending holds answers 503 (StoreUnavailable) to every new
    delivery -- the sender retries later -- and loses none it holds: each duplicate is still
    refused, each hold is still held under its token, extended, and a release frees its key at
    once (the failed delivery's retry is processed). Nothing goes to the record; the store stays
    within its bound. (Was: the oldest hold left for the record of evicted ids -- its release could
    not take it back, its retry refused until its pending time.)"""
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    tokens = {}
    for n in range(3):
        token = store.hold(f"slow{n}", PENDING)
        assert token is not None
        tokens[f"slow{n}"] = token
    for n in range(3, 10):
        with pytest.raises(StoreUnavailable):
            store.hold(f"slow{n}", PENDING)
        with pytest.raises(StoreUnavailable):
            store.reserve(f"fast{n}", TTL)
        assert len(store) == 3 and store._room == 3 - len(store._aside)
    assert len(store._evicted) == 0  # no hold left for the record
    for key, token in tokens.items():
        assert store.hold(key, PENDING) is None  # a duplicate: refused as one (not a 503)
        assert store.holds(key, token)
        assert store.extend(key, token, 2 * PENDING)
    # The refused deliveries were taken back: only the three held are in the store, so the
    # refused ones' retries are taken once there is room.
    assert set(store._entries) | set(store._aside) == set(tokens)
    # One settles (its application failed): its key is free at once, and the store has room again.
    store.release("slow1", tokens["slow1"])
    retry = store.hold("slow1", PENDING)  # the sender's retry of the failed delivery: processed
    assert retry is not None
    with pytest.raises(StoreUnavailable):
        store.hold("slow3", PENDING)  # full again: still 503
    store.commit("slow0", tokens["slow0"], TTL)  # a commit makes room too (committed, evictable)
    late = store.hold("slow3", PENDING)
    assert late is not None
    assert store.hold("slow0", PENDING) is None  # slow0's replay refused (from the record)
    assert len(store) == 3 and len(store._evicted) == 1
    # Lapsing frees room as well (their workers died): after the pending time, new holds are taken.
    clock.now += 2 * PENDING + 1
    assert store.hold("slow4", PENDING) is not None
    assert store.hold("slow5", PENDING) is not None
    assert len(store) <= 3


def test_a_store_full_of_pending_holds_says_so_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    """The 503s of one burst are logged once (not once per refused delivery)."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert store.hold("a", PENDING) and store.hold("b", PENDING)
    with caplog.at_level(logging.WARNING, logger="hmacguard.guard.replay"):
        for n in range(50):
            with pytest.raises(StoreUnavailable):
                store.hold(f"new{n}", PENDING)
    said = [r for r in caplog.records if "full of deliveries being processed" in r.getMessage()]
    assert len(said) == 1


def test_a_hold_set_aside_is_settled_extended_and_swept_like_any_other() -> None:
    """A hold set aside by committed traffic: asked (holds), extended, released -- its retry then
    processed at once --, or left to lapse and swept; the store's room comes back each time."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    first = store.hold("A", PENDING)
    assert first is not None
    for key in ("x", "y", "z"):
        assert store.reserve(key, TTL)
    assert list(store._aside) == ["A"] and len(store) == 3
    assert store.holds("A", first) and not store.holds("A", "someone else's")
    assert store.extend("A", first, 2 * PENDING)
    store.release("A", first)
    assert len(store) == 2 and not store._aside and store._room == 3
    retry = store.hold("A", PENDING)  # the sender's retry: processed
    assert retry is not None
    for key in ("w", "v", "u"):  # y, z go to the record; then A, now the oldest, is set aside
        assert store.reserve(key, TTL)
    assert list(store._aside) == ["A"]
    clock.now += PENDING + 2  # A lapses (its worker died)
    store.hold("s", PENDING)  # a sweep
    assert not store._aside and store._room == 3
    assert store.hold("A", PENDING) is not None


def test_a_committed_entry_is_evicted_before_any_pending_hold() -> None:
    """Two holds pending, then committed traffic through a store of 3: the committed ids go to the
    record one by one, the holds stay; committing them later keeps them as committed entries."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    tokens = [store.hold(key, PENDING) for key in ("A", "B")]
    for n in range(20):
        clock.now += 0.1
        assert store.reserve(f"traffic{n}", TTL)
        assert len(store) == 3
        assert store.hold("A", PENDING) is None and store.hold("B", PENDING) is None
    assert len(store._evicted) == 19  # every committed id but the last, none of the holds
    for key, token in zip(("A", "B"), tokens):
        assert token is not None
        store.commit(key, token, TTL)
    assert {key: token for key, (_, token) in store._entries.items()} == {
        "traffic19": None,
        "A": None,
        "B": None,
    }


HOLD_OPS = st.lists(
    st.tuples(
        st.sampled_from(["hold", "hold", "commit", "release", "extend", "reserve", "tick"]),
        st.integers(0, 7),  # key; or which outstanding token; or which clock step
    ),
    max_size=120,
)
STEPS = (0.5, 5.0, 25.0, 200.0)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=HOLD_OPS, bound=st.integers(1, 4), record=st.sampled_from([0, 3, 1000]))
def test_a_model_of_pending_holds_in_a_full_store(
    ops: list[tuple[str, int]], bound: int, record: int
) -> None:
    """Holds, commits, releases and extends of any outstanding token, reservations, clock steps,
    on a store of 1 to 4 entries and a record of 0, 3 or 1000 ids. After every operation: within
    max_entries, each key in one place, the room in step with the holds set aside. The model: a
    hold or reservation is refused with 503 exactly when the store is full of live pending holds
    (and the key is not a duplicate or replay, refused as such) -- never with room -- and never
    takes a token then. Every hold still pending is held under its token wherever the store keeps
    it, extendable, and refused to a duplicate, whatever the record's size. (Was: once more holds
    were pending than the store had entries, the oldest left for the record -- or was forgotten
    with a small record -- and the model stopped checking them.)"""
    clock = Clock()
    with mock.patch.object(evicted_ids, "BUCKET", 2):
        store = MemoryReplayStore(max_entries=bound, max_evicted=record, clock=clock)
    outstanding: list[tuple[str, str, float]] = []  # key, token, expiry (as the model knows it)
    for op, arg in ops:
        key = f"k{arg}"
        now = clock.now
        if op == "tick":
            clock.now += STEPS[arg % len(STEPS)]
        elif op in ("hold", "reserve"):
            live = {held for held, _, expiry in outstanding if expiry > now}
            full = len([1 for _, _, expiry in outstanding if expiry > now]) >= bound
            try:
                got = store.hold(key, PENDING) if op == "hold" else store.reserve(key, TTL)
            except StoreUnavailable:
                assert full, key  # a 503 with room in the store
                assert key not in live, key  # a duplicate answered 503, not refused as one
            else:
                if full or key in live:
                    assert not got, key  # a token taken past the bound, or a duplicate processed
                if op == "hold" and isinstance(got, str):
                    outstanding.append((key, got, now + PENDING))
        elif outstanding:
            key, token, expiry = outstanding.pop(arg % len(outstanding))
            if op == "commit":
                store.commit(key, token, TTL)
            elif op == "release":
                store.release(key, token)
            elif store.extend(key, token, 2 * PENDING):
                outstanding.append((key, token, max(expiry, now + 2 * PENDING)))
            elif expiry > now:
                raise AssertionError(f"a live hold of {key} could not be extended")
        assert len(store) <= bound
        assert not set(store._entries) & set(store._aside)
        assert store._room == bound - len(store._aside)
        assert all(token is not None for _, token in store._aside.values())
        # Asked without moving anything (a hold would bring it back from aside).
        for held, token, expiry in outstanding:
            assert store.holds(held, token) == (expiry > clock.now), held
    for held, _, expiry in outstanding:
        if expiry > clock.now:
            assert store.hold(held, PENDING) is None, held


def test_the_memory_bound_holds_under_many_pending_holds() -> None:
    """Memory, the attacker's way under the 503 policy: a store of 1,000 entries held by 1,000
    slow deliveries, then 100,000 new ones, each refused with 503 -- with duplicates and committed
    traffic among them. The store stays at its 1,000 entries, the record empty (no hold left for
    it, nothing committed got in), and a refused hold leaves nothing behind: from the first 503 on
    what Python allocates stays under 1 MiB (measured 0.33-0.45 MiB: each refusal leaves a stale
    item in the heap of expiries until it is rebuilt, past 2 x max_entries + 64 items, and the
    holds' dict resizes as keys come and go) with no trend -- where keeping the 100,000 refused
    ids, 57 bytes of key each, would take over 5 MiB."""
    import tracemalloc

    clock = Clock()
    store = MemoryReplayStore(max_entries=1_000, clock=clock)
    for n in range(1_000):
        assert store.hold(f"slow{n}", 10 * PENDING) is not None
        clock.now += 0.001
    with pytest.raises(StoreUnavailable):
        store.hold("first", PENDING)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        grown = []
        for n in range(100_000):
            with pytest.raises(StoreUnavailable):
                store.hold(f"new{n}", PENDING)
            if n % 10 == 0:
                assert store.hold(f"slow{n % 1_000}", PENDING) is None  # a duplicate: refused
                with pytest.raises(StoreUnavailable):
                    store.reserve(f"fast{n}", TTL)
            clock.now += 0.0001
            if n % 10_000 == 9_999:
                grown.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    assert len(store) == 1_000 and len(store._evicted) == 0
    assert len(store._aside_expiries or ()) <= 2 * 1_000 + 65
    assert max(grown) < 1024 * 1024, grown
    assert grown[-1] <= max(grown[:5]) + 64 * 1024, grown  # no trend: bounded, not per refusal
