"""Claim (d): the in-memory replay store costs the same per delivery in steady state as when new.

A receiver that runs for a while has a store that is either full (every delivery evicts the oldest)
or steadily expiring (every sweep drops the entries whose TTL ran out). Both take entries from the
front of the store. A plain ``dict`` finds its first entry by skipping every slot deleted since it
was last compacted, so in those states each delivery paid for a scan of up to tens of thousands of
dead slots; the store keeps its entries in an ``OrderedDict`` instead.

Side by side in one run, the cost of one delivery (``hold`` then ``commit``, as the integrations
do) in four stores driven by the same simulated clock (1 ms between deliveries):

- new: an empty store (what a short benchmark sees);
- full: 100,000 entries, each delivery evicting the oldest -- which, committed and unexpired, the
  store now keeps in its record of evicted ids (guard/evicted_ids.py, since 2026-12);
- full, record off: the same with ``max_evicted=0``, evicted ids forgotten (the store before);
- expiring: a 50 s TTL, about 50,000 live entries, a sweep every second;
- overflowing: full, with the record of evicted ids at its default bound too (1,000,000 ids, 15
  sealed buckets), once;
- the full and expiring states again with a plain ``dict`` in place of the OrderedDict (the
  store as it was), once, for the record;
- the longest single delivery in the full and overflowing states (since 2026-12): the one that
  seals a bucket of evicted ids -- a sort under the store's lock, every thread of the worker
  waiting -- and, overflowing, also forgets the oldest bucket.

Claim: full / new and expiring / new per-delivery time ratios <= 1.25 (the target). Since the
record of evicted ids, "full" misses it (about 2.7): each delivery also hashes and files the id it
evicts, and sorts a bucket of 65,536 every 65,536 deliveries -- the price of refusing a retry that
a store forgetting ids processed again; "full, record off" is the claim as first measured. The
other ratios are printed, not held. Run: ``python bench/bench_replay_store.py [--deliveries 100000]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from hmacguard.guard.evicted_ids import BUCKET, DEFAULT_MAX_EVICTED
from hmacguard.guard.replay import MemoryReplayStore

TARGET = 1.25
FULL = 100_000


class PlainDictStore(MemoryReplayStore):
    """The store as it was: a ``dict``, its oldest entry found with ``next(iter(...))``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._entries = {}  # type: ignore[assignment]

    def _evict_oldest(self, now: float, new_hold: str | None = None) -> None:
        entries = self._entries
        del entries[next(iter(entries))]


def per_delivery(store: MemoryReplayStore, clock: list[float], count: int, ttl: float, first: int) -> float:
    """Microseconds per hold + commit over ``count`` new deliveries, the clock advancing 1 ms each."""
    t0 = time.perf_counter()
    for i in range(first, first + count):
        clock[0] += 0.001
        key = f"delivery-{i}"
        token = store.hold(key, ttl)
        assert token is not None
        store.commit(key, token, ttl)
    return (time.perf_counter() - t0) / count * 1e6


def longest(warm: int, count: int) -> float:
    """Milliseconds of the longest single delivery (hold + commit) of ``count`` in a full store
    warmed by ``warm`` deliveries (``count`` >= a bucket, so that one of them seals one)."""
    clock = [0.0]
    store = MemoryReplayStore(max_entries=FULL, clock=lambda: clock[0])
    per_delivery(store, clock, warm, 1e9, 0)
    worst = 0.0
    for i in range(warm, warm + count):
        clock[0] += 0.001
        key = f"delivery-{i}"
        t0 = time.perf_counter()
        token = store.hold(key, 1e9)
        assert token is not None
        store.commit(key, token, 1e9)
        worst = max(worst, time.perf_counter() - t0)
    return worst * 1e3


def steady(kind: type[MemoryReplayStore], state: str, count: int, warm: int) -> float:
    """Per-delivery time of a ``kind`` store brought to ``state`` (new, full, full with the record
    off, or expiring) by ``warm`` deliveries first."""
    clock = [0.0]
    ttl = 50.0 if state == "expiring" else 1e9
    options: dict[str, Any] = {"max_entries": FULL if state.startswith("full") else 10 * FULL}
    if state == "full, record off":
        options["max_evicted"] = 0
    store = kind(**options, clock=lambda: clock[0])
    if warm:
        per_delivery(store, clock, warm, ttl, 0)
    return per_delivery(store, clock, count, ttl, warm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=100_000, help="timed deliveries per store")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the full store's eviction warning, once per store
    # Best of three rounds, the stores interleaved within each round; warmed past the bound or past
    # several TTLs (3 x 100,000 deliveries, 300 simulated seconds).
    best: dict[str, float] = {}
    for _ in range(3):
        for state in ("new", "full", "full, record off", "expiring"):
            warm = 0 if state == "new" else 3 * FULL
            best[state] = min(best.get(state, 1e9), steady(MemoryReplayStore, state, args.deliveries, warm))
    # The old store once, 50,000 deliveries into each state (it costs tens of microseconds each
    # there), timed over 10,000: its dead-slot scan varies with where the dict is in its cycle of
    # compactions, so this is one sample of it, not its average.
    best["overflowing"] = steady(MemoryReplayStore, "full", args.deliveries, FULL + DEFAULT_MAX_EVICTED)
    best["dict full"] = steady(PlainDictStore, "full, record off", 10_000, FULL + 50_000)
    best["dict expiring"] = steady(PlainDictStore, "expiring", 10_000, 100_000)
    new = best["new"]
    print(f"in-memory replay store, one delivery (hold + commit), best of 3 x {args.deliveries}:")
    for name, value in best.items():
        print(f"  {name:18s} {value:8.2f} us   ratio to new {value / new:6.2f}")
    pauses = [longest(3 * FULL, BUCKET + 1000), longest(FULL + DEFAULT_MAX_EVICTED, 2 * BUCKET + 1000)]
    print(f"  longest delivery   {pauses[0]:8.1f} ms full, {pauses[1]:.1f} ms overflowing (a bucket sealed)")
    worst = max(best["full"], best["expiring"]) / new
    print(f"ratio steady state / new (full and expiring, worst): {worst:.2f}  (target <= {TARGET})")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
