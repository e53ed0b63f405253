"""Delivery ids a full in-memory replay store evicted before they expired, in about 24 bytes each.

:class:`~hmacguard.guard.replay.MemoryReplayStore` holds each key as a string in an ordered dict,
about 270 bytes an entry; at its default 100,000 entries and Standard Webhooks' 28 h TTL that is one
delivery a second, and past it the oldest ids went before their time -- a retry of one of them was
processed again. A committed id needs no token and no ordering any more, only "was it seen, and
until when": so the store hands each committed id it evicts early to :class:`EvictedIds`, which keeps
its 64-bit hash and its expiry in two flat arrays (8 + 8 bytes), sorted and searched by bisection,
behind a counting filter (8 bytes of room per id).

Hash: the interpreter's own ``hash(str)`` -- SipHash with a key drawn per process (unless
``PYTHONHASHSEED`` fixes it), computed once per string and cached on it. A collision would answer a
new delivery 409: at 2,000,000 ids the chance for one delivery is about 2e6 / 2**64 ~ 1e-13, and only
ids from deliveries whose signature verified ever get here, so nobody can choose them to collide.

Layout: ids arrive in a dict (``hash -> expiry``) until there are :data:`BUCKET` of them, which are
then sorted into one sealed bucket (an ``array('q')`` of hashes, an ``array('d')`` of expiries, and
the latest expiry, after which the whole bucket is dropped at once). A lookup bisects each live
bucket -- at the default bound 16 of them, 0.5 us each -- but first asks a counting filter, one byte
per 8 ids' worth of room, indexed by the hash's low bits: a zero there (about 9 lookups in 10 when
the record is full) means no id with that hash is kept, and the bisections are skipped. A bucket
dropped takes its counts off the filter, so the filter never fills up with ids long gone.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from typing import NamedTuple

__all__ = ["BUCKET", "DEFAULT_MAX_EVICTED", "EvictedIds"]

log = logging.getLogger("hmacguard.guard.replay")

#: Ids per sealed bucket: large enough that a lookup bisects few buckets, small enough that sorting
#: one (under the store's lock, once per this many early evictions) stays a few tens of milliseconds.
BUCKET = 65_536
#: Default bound: at least the latest 1,000,000 ids; at its fullest about 30 MB (17 MB of sealed
#: buckets, 5 MB of open dict, an 8 MB filter allocated at the first early eviction) -- with the
#: store's 100,000 entries, Standard Webhooks' 28 hours at about 10 deliveries a second.
DEFAULT_MAX_EVICTED = 1_000_000
#: Filter counters per id of room: the share of lookups that still bisect when the record is full
#: is about 1 - exp(-1 / FILTER_ROOM), 12 %.
FILTER_ROOM = 8
_SATURATED = 255  # a counter this high stays (never decremented): a missed decrement only costs a bisection


class _Bucket(NamedTuple):
    hashes: array[int]  # sorted, unique within the bucket
    expiries: array[float]  # expiries[i] is hashes[i]'s
    latest: float  # the bucket is dropped once this has passed


class EvictedIds:
    """Committed ids evicted early, remembered until their expiry: at least the latest ``max_ids``
    of them (at most ``max_ids + 2 * BUCKET - 1``), in 16 bytes each once sealed, about 75 while
    in the open dict (at most ``BUCKET`` there), plus a filter of ``FILTER_ROOM`` bytes per id of
    room.

    Not thread-safe by itself: the store calls it with its lock held. Past ``max_ids`` the oldest
    bucket is forgotten, with one warning per burst (those ids' retries would be processed again).
    """

    def __init__(self, max_ids: int) -> None:
        self.max_ids = max_ids
        self._open: dict[int, float] = {}
        self._sealed: list[_Bucket] = []
        self._count = 0  # ids in sealed buckets
        self._warned = False
        #: Whether any id is kept: a plain attribute, read by the store on every new key (where a
        #: ``__bool__`` call would cost a Python frame on a path that is otherwise a dict lookup).
        self.kept = False
        # Counting filter, allocated at the first id: a power of two of counters (one until then,
        # at zero, so that a lookup before the first id needs no test of its own).
        self._filter = bytearray(1)
        self._mask = 0
        self._seal_at = max(1, min(BUCKET, max_ids))

    def __len__(self) -> int:
        return self._count + len(self._open)

    def __bool__(self) -> bool:
        return self.kept

    def add(self, key: str, expiry: float) -> None:
        """Keep ``key`` until ``expiry`` (the store's clock). Once per delivery when the store is
        full, so kept short: the filter counted inline, its allocation and the seal out of line."""
        hashed = hash(key)
        opened = self._open
        known = opened.get(hashed)
        if known is None:
            opened[hashed] = expiry
            self.kept = True
            if not self._mask:
                self._allocate_filter()
            at = hashed & self._mask
            counters = self._filter
            if counters[at] < _SATURATED:
                counters[at] += 1
            if len(opened) >= self._seal_at:
                self._seal()
        elif known < expiry:
            opened[hashed] = expiry

    def holds(self, key: str, now: float) -> bool:
        """Whether ``key`` was evicted early and has not expired yet."""
        hashed = hash(key)
        if not self._filter[hashed & self._mask]:
            return False
        expiry = self._open.get(hashed)
        if expiry is not None and expiry > now:
            return True
        for bucket in self._sealed:
            if bucket.latest <= now:
                continue
            hashes = bucket.hashes
            at = bisect_left(hashes, hashed)
            if at < len(hashes) and hashes[at] == hashed and bucket.expiries[at] > now:
                return True
        return False

    def expire(self, now: float) -> None:
        """Drop every sealed bucket whose ids have all expired (the open dict is sealed or read
        with its expiries, so it needs no sweep)."""
        if any(bucket.latest <= now for bucket in self._sealed):
            live = []
            for bucket in self._sealed:
                if bucket.latest > now:
                    live.append(bucket)
                else:
                    self._count_out(bucket)
            self._sealed = live
            self._warned = False
            self.kept = bool(live) or bool(self._open)

    def _seal(self) -> None:
        opened = self._open
        self._open = {}
        hashes = sorted(opened)  # ints sort faster than (hash, expiry) pairs
        expiries = array("d", map(opened.__getitem__, hashes))
        bucket = _Bucket(array("q", hashes), expiries, max(expiries))
        self._sealed.append(bucket)
        self._count += len(bucket.hashes)
        # Forget the oldest bucket only while the others still keep max_ids: the record keeps at
        # least the latest max_ids ids (dropping whenever it was over would leave as few as
        # max_ids rounded down to a bucket), and at most max_ids + 2 x BUCKET - 1.
        while len(self._sealed) > 1 and self._count - len(self._sealed[0].hashes) >= self.max_ids:
            self._count_out(self._sealed.pop(0))
            if not self._warned:
                self._warned = True
                log.warning(
                    "replay store full (%d evicted ids kept besides its entries): forgetting delivery "
                    "ids before their time -- raise max_evicted, or use Redis",
                    self.max_ids,
                )

    def _allocate_filter(self) -> None:
        size = 1 << max(10, (FILTER_ROOM * self.max_ids - 1).bit_length())
        self._filter = bytearray(size)
        self._mask = size - 1

    def _count_out(self, bucket: _Bucket) -> None:
        """Take a dropped bucket's ids off the filter (a few milliseconds for a full bucket, once
        per bucket: far less than sorting it cost)."""
        self._count -= len(bucket.hashes)
        counters, mask = self._filter, self._mask
        for hashed in bucket.hashes:
            at = hashed & mask
            if counters[at] < _SATURATED:
                counters[at] -= 1
