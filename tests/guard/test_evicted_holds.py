"""A full MemoryReplayStore and the holds pending in it (deliveries being processed).

The promise: a delivery being processed is never processed a second time by a concurrent duplicate,
however full the store -- while it stays bounded (``max_entries`` entries plus the record of
evicted ids, whatever the number of holds pending at once).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hmacguard.guard.replay import MemoryReplayStore

from ._clock import Clock

PENDING = 30.0
TTL = 3600.0


@pytest.fixture(autouse=True)
def _quiet_store_warnings() -> Any:
    """The bounded stores here warn on purpose; keep the output readable."""
    logger = logging.getLogger("hmacguard.guard.replay")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a pending hold evicted from a full MemoryReplayStore is forgotten; a concurrent "
    "duplicate of the delivery being processed is processed too",
)
def test_a_hold_pending_while_committed_traffic_fills_the_store_still_refuses_its_duplicate() -> None:
    """The attack: delivery A is held (its application is slow); three other deliveries are
    processed meanwhile, filling a store of 3; A's duplicate (the sender's retry after a timeout,
    or a replay) arrives while A is still being processed."""
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


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a pending hold evicted from a full MemoryReplayStore is forgotten; a concurrent "
    "duplicate of the delivery being processed is processed too",
)
def test_more_holds_pending_than_the_store_has_entries_are_each_refused_once() -> None:
    """The attacker's version: slow deliveries, more of them pending at once than the store has
    entries. Every duplicate of one still pending must be refused; the store stays bounded."""
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    tokens = {}
    for n in range(10):
        token = store.hold(f"slow{n}", PENDING)
        assert token is not None
        tokens[f"slow{n}"] = token
        assert len(store) <= 3
    assert [key for key in tokens if store.hold(key, PENDING) is not None] == []
