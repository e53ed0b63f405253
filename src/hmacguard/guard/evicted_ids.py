"""Delivery ids a full in-memory replay store evicted before they expired, in about 25 bytes each.

:class:`~hmacguard.guard.replay.MemoryReplayStore` holds each key as a string in an ordered dict,
about 270 bytes an entry; at its default 100,000 entries and Standard Webhooks' 28 h TTL that is one
delivery a second, and past it the oldest ids went before their time -- a retry of one of them was
processed again. A committed id needs no token and no ordering any more, only "was it seen, and
until when": so the store hands each committed id it evicts early to :class:`EvictedIds`, which keeps
its 64-bit hash and its expiry in two flat arrays (8 + 8 bytes), sorted and searched by bisection,
behind a counting filter (8 bytes of room per id). (So does a pending hold, when every entry of the
store is one: kept until its pending time, see the store.)

Hash: the interpreter's own ``hash(str)`` -- SipHash with a key drawn per process (unless
``PYTHONHASHSEED`` fixes it), computed once per string and cached on it. A collision would answer a
new delivery 409: at 2,000,000 ids the chance for one delivery is about 2e6 / 2**64 ~ 1e-13, and only
ids from deliveries whose signature verified ever get here, so nobody can choose them to collide.
The filter only decides whether the arrays are searched; the answer is always that 64-bit compare.

Layout: ids arrive in a dict (``hash -> expiry``) until there are :data:`BUCKET` of them, which are
then sorted into one sealed bucket (an ``array('q')`` of hashes, an ``array('d')`` of expiries, the
latest expiry, after which the whole bucket is dropped at once, and a prefix index: where each run
of hashes sharing their top bits starts, one fence per 16 ids, so that a bisection covers about 16
entries instead of 65,536 -- 0.6 us instead of 1 us on the machine of bench/bench_replay_store.py).
A lookup bisects each live bucket -- at the default bound 16 or 17 of them -- but first asks a
counting filter, one byte per 8 ids' worth of room: two counters per id, at the hash's low bits and
at another counter of the same 64-byte block (a cache line's worth; but a bytearray's buffer is
only 16-byte aligned -- measured 16 or 48 bytes past a line -- so a block straddles two lines and
the second counter is on another line about 3 times in 8). Either at zero (about 19 lookups in 20
when the record is full; one counter per id left 1 in 8 through) means no id with that hash is
kept, and the bisections are skipped. A bucket dropped takes its counts off the filter,
so the filter never fills up with ids long gone.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from itertools import repeat
from operator import itemgetter
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
#: is about (1 - exp(-2 / FILTER_ROOM)) ** 2, 5 % (two counters an id; with one it was 12 %).
FILTER_ROOM = 8
_SATURATED = 255  # a counter this high stays (never decremented): a missed decrement only costs a bisection
_BLOCK = ~63  # a filter block: 64 counters (a cache line's worth; not aligned to one)
#: Ids per fence of a bucket's prefix index.
_PER_FENCE = 16
_BIAS = 1 << 63  # hash + _BIAS: the hash as an unsigned 64-bit value, its prefix its top bits


class _Bucket(NamedTuple):
    hashes: array[int]  # sorted, unique within the bucket
    expiries: array[float]  # expiries[i] is hashes[i]'s
    latest: float  # the bucket is dropped once this has passed
    # fences[p] is the first index whose hash has prefix p or more, p = (hash + _BIAS) >> shift;
    # fences[2 ** (64 - shift)] is len(hashes).
    fences: array[int]
    shift: int


def _second(first: int, hashed: int) -> int:
    """The filter's second counter for ``hashed``, whose first is ``first = hashed & mask``: in the
    same block of 64, placed by the hash's bits 32-37 (independent of the low bits that place the
    first; the two may coincide, then that counter counts the id twice). Inlined, as
    ``first & _BLOCK | hashed >> 32 & 63``, where it is hot (add, holds, _count_out)."""
    return first & _BLOCK | hashed >> 32 & 63


class EvictedIds:
    """Committed ids evicted early, remembered until their expiry: at least the latest ``max_ids``
    of them (at most ``max_ids + 2 * BUCKET - 1``), in about 16 bytes each once sealed, about 75
    while in the open dict (at most ``BUCKET`` there), plus a filter of ``FILTER_ROOM`` bytes per id
    of room.

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
        #: Counting filter, allocated at the first id: a power of two of counters (one until then,
        #: at zero, so that a lookup before the first id needs no test of its own). Public because
        #: the store probes an id's first counter inline, ``filter[hash(key) & mask]``, and calls
        #: :meth:`holds` only when it is not zero: a Python frame saved on most new keys.
        self.filter = bytearray(1)
        self.mask = 0
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
        # One dict operation for a new id: setdefault hands back our own float when the id was not
        # open. (Were the very same float object filed for that id already, it would be counted
        # twice: counters too high cost a bisection now and then, never a forgotten id.)
        known = opened.setdefault(hashed, expiry)
        if known is expiry:
            self.kept = True
            mask = self.mask
            if not mask:
                mask = self._allocate_filter()
            at = hashed & mask
            counters = self.filter
            if counters[at] < _SATURATED:
                counters[at] += 1
            at = at & _BLOCK | hashed >> 32 & 63
            if counters[at] < _SATURATED:
                counters[at] += 1
            if len(opened) >= self._seal_at:
                self._seal()
        elif known < expiry:
            opened[hashed] = expiry

    def holds(self, key: str, now: float) -> bool:
        """Whether ``key`` was evicted early and has not expired yet."""
        hashed = hash(key)
        counters = self.filter
        at = hashed & self.mask
        if not counters[at] or not counters[at & _BLOCK | hashed >> 32 & 63]:
            return False
        expiry = self._open.get(hashed)
        if expiry is not None and expiry > now:
            return True
        unsigned = hashed + _BIAS
        for bucket in self._sealed:
            if bucket.latest <= now:
                continue
            hashes, fences = bucket.hashes, bucket.fences
            prefix = unsigned >> bucket.shift
            end = fences[prefix + 1]
            at = bisect_left(hashes, hashed, fences[prefix], end)
            if at < end and hashes[at] == hashed and bucket.expiries[at] > now:
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
        # itemgetter looks the expiries up in one C loop (a bound __getitem__ through map() costs a
        # call each); it hands back a bare value, not a tuple, for one id (a bucket of 1, in tests).
        found = itemgetter(*hashes)(opened) if len(hashes) > 1 else [opened[hashes[0]]]
        # Prefix index: 2 ** bits fences, about _PER_FENCE ids apart (none for a handful of ids).
        bits = max(0, (len(hashes) // _PER_FENCE).bit_length() - 1)
        shift = 64 - bits
        starts = range(-_BIAS, _BIAS + 1, 1 << shift)  # the signed hash where each prefix starts
        fences = array("I", map(bisect_left, repeat(hashes, len(starts)), starts))
        bucket = _Bucket(array("q", hashes), array("d", found), max(opened.values()), fences, shift)
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

    def _allocate_filter(self) -> int:
        size = 1 << max(10, (FILTER_ROOM * self.max_ids - 1).bit_length())
        self.filter = bytearray(size)
        self.mask = size - 1
        return self.mask

    def _count_out(self, bucket: _Bucket) -> None:
        """Take a dropped bucket's ids off the filter (a few milliseconds for a full bucket, once
        per bucket: far less than sorting it cost)."""
        self._count -= len(bucket.hashes)
        counters, mask = self.filter, self.mask
        for hashed in bucket.hashes:
            at = hashed & mask
            if counters[at] < _SATURATED:
                counters[at] -= 1
            at = at & _BLOCK | hashed >> 32 & 63
            if counters[at] < _SATURATED:
                counters[at] -= 1
