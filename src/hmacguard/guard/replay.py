"""Replay protection: remember each delivery id (or nonce) for as long as a replay could be accepted.

A store answers one question, atomically: "reserve this key for ``ttl`` seconds -- was it new?". The
verifier asks only after the signature has been verified, so an attacker cannot fill the store (or
burn a legitimate delivery's id) with forged requests.

Delivery semantics (two-phase). A reservation becomes permanent only once the application has
processed the delivery. The integrations :meth:`~HoldingReplayStore.hold` the key for a short
``pending`` time before calling the application, then :meth:`~HoldingReplayStore.commit` it for the
full TTL when the application answers below 500, or :meth:`~HoldingReplayStore.release` it when the
application raises, answers 5xx, or the client goes away before a response starts -- so the sender's
retry is processed, while a replay of a processed delivery is still refused (409). A duplicate that
arrives while the first is being processed is refused too (409). A worker that dies mid-request
leaves a pending hold that lapses after the pending time. Holds carry a random token, so a late
commit or release never touches somebody else's hold of the same key.

- :class:`MemoryReplayStore` (the default): one process, bounded in entries and by TTL. Enough for a
  single worker; with several workers each has its own memory and a replay to another worker passes.
- :class:`RedisReplayStore`: ``SET key 1 NX PX ttl`` on a Redis shared by every worker and host.
  redis-py is imported when the store is created, never by ``import hmacguard``.

When the store cannot answer, :class:`~hmacguard.errors.StoreUnavailable` (503) is raised: fail
closed. A store built with ``fail_open=True`` instead logs a warning and lets the request through --
availability over replay protection, a choice the operator makes knowingly.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hmacguard._mypyc import mypyc_attr
from hmacguard.errors import ConfigurationError, StoreUnavailable
from hmacguard.guard.breaker import StoreCalls, noting_failures_open, shared_breaker
from hmacguard.guard.evicted_ids import DEFAULT_MAX_EVICTED, EvictedIds
from hmacguard.guard.redis_urls import (
    KeyedScript,
    check_url,
    cluster_node,
    endpoint_key,
    is_cluster_url,
    keyspace_key,
    redis_client,
    refuse_asyncio_client,
)
from hmacguard.guard.store_protocols import HoldingReplayStore, ReplayStore

if TYPE_CHECKING:
    import redis

__all__ = ["Delivery", "HoldingReplayStore", "MemoryReplayStore", "RedisReplayStore", "ReplayStore"]

log = logging.getLogger(__name__)

#: Default bound on the in-memory store; a full store evicts its oldest entries first.
DEFAULT_MAX_ENTRIES = 100_000
#: A hold's token: whatever the store's ``hold`` handed out (text for the stores here; a custom
#: store's may be an int, bytes...), given back to it as it was. ``Any``, not ``str``: the compiled
#: build (hatch_build.py) would check it is text, where pure Python passed it along.
Token = Any
#: Seconds between sweeps of expired entries (lookups check expiry themselves; the sweep only frees
#: memory, and the entry bound holds between sweeps).
_SWEEP_EVERY = 1.0


@mypyc_attr(allow_interpreted_subclasses=True)
class Delivery:
    """A verified delivery's pending hold, settled once the application has answered.

    The integrations call :meth:`settle` exactly once: ``processed=True`` commits the key for the
    replay TTL, ``False`` releases it so the sender's retry is processed. ``blocking`` says whether
    that may wait on the network (the ASGI middleware then settles in a worker thread). A store that
    fails while settling is logged, never raised into the response: a failed commit leaves the hold
    to lapse after its pending time (a replay after that is accepted), a failed release leaves it
    to lapse the same way (the sender's retries get 409 until then). ``on_failure``, when set (the
    guard sets it when a decision sink listens, see
    :meth:`~hmacguard.guard.decision.DecisionSinks.settle_failed`), is told ``"commit"`` or
    ``"release"`` when that happens -- a store raising, or one configured to fail open passing it by.

    ``also``: more ``(key, token)`` holds of the same delivery -- its keys under the receiver's other
    secrets (:meth:`~hmacguard.guard.verifier.Verifier.hold_key`) -- settled the same way.
    ``owners``: for each of :attr:`outer_keys`, the delivery that holds it and will settle it (the
    guard's around this one, or one further out).
    ``outer_keys``: keys of it a guard around this one holds for the same request, with that hold's
    token: not this delivery's to settle, but what a guard further inside may find held.
    """

    __slots__ = ("also", "key", "on_failure", "outer_keys", "owners", "settled", "store", "token", "ttl")

    def __init__(self, store: HoldingReplayStore, key: str, token: Token, ttl: float) -> None:
        self.store = store
        self.key = key
        self.token = token
        self.ttl = ttl
        self.settled = False
        self.on_failure: Callable[[str], None] | None = None
        self.also: list[tuple[str, Token]] | None = None
        self.outer_keys: list[tuple[str, Token]] | None = None
        self.owners: dict[str, Delivery] | None = None

    def owner_of(self, key: str) -> Delivery:
        """The delivery that settles ``key``: this one, unless ``key`` is one of :attr:`outer_keys`
        -- then the one around it that holds it (so that keeping it longer is asked of that one)."""
        owners = self.owners
        if owners is not None:
            owner = owners.get(key)
            if owner is not None:
                return owner
        return self

    def retaken(self, key: str, token: Token, ttl: float) -> None:
        """This delivery holds ``key`` itself now, under ``token``: it took it again after the hold
        it had of it -- its own, or one inherited from a guard around it -- lapsed. The new token
        replaces the old one (so that settling, and a guard further inside, find the live hold),
        and the delivery keeps its keys at least ``ttl``, and as long as the lapsed hold's delivery
        would have kept it (that one's commit of the lapsed token will find this one's and leave
        it)."""
        ttl = max(ttl, self.owner_of(key).ttl)  # read before the owner is dropped
        if key == self.key:
            self.token = token
        else:
            also = [(held, old) for held, old in self.also or () if held != key]
            self.also = [*also, (key, token)]
        if self.owners is not None and key in self.owners:
            del self.owners[key]
            self.outer_keys = [(held, old) for held, old in self.outer_keys or () if held != key]
        self.ttl = max(self.ttl, ttl)

    def inherit(self, key: str, token: Token, owner: Delivery) -> None:
        """Record ``key``, held under ``token`` by ``owner`` around this delivery, as one of
        :attr:`outer_keys`."""
        if self.outer_keys is None:
            self.outer_keys = []
        self.outer_keys.append((key, token))
        if self.owners is None:
            self.owners = {}
        self.owners[key] = owner

    def token_for(self, key: str) -> Token | None:
        """The token under which ``key`` is held for this delivery (its own key, one of
        :attr:`also` or of :attr:`outer_keys`), or ``None`` when it is none of them."""
        if key == self.key:
            return self.token
        for pairs in (self.also, self.outer_keys):
            for held, token in pairs or ():
                if held == key:
                    return token
        return None

    @property
    def blocking(self) -> bool:
        return store_blocks(self.store)

    def hold_longer(self, key: str, ttl: float) -> bool:
        """Have the store hold ``key`` (this delivery's, under its token) for at least ``ttl``
        seconds from now; ``False`` when it is not held under that token any more or the store has
        no ``extend``. A fail-closed store that cannot answer raises (503: this request is then not
        processed, and the outer guard releases what it holds)."""
        token = self.token_for(key)
        extend = getattr(self.store, "extend", None)
        if token is None or extend is None:
            return False
        return bool(extend(key, token, ttl))

    def still_held(self, key: str | None = None) -> bool:
        """Whether the store still holds ``key`` (default: the delivery's key; or one of
        :attr:`also`) under this delivery's token for it (unsettled, not lapsed). ``False`` when
        the key is not this delivery's, or the store cannot tell (it has no ``holds``) or answer."""
        holds = getattr(self.store, "holds", None)
        if self.settled or holds is None:
            return False
        token = self.token if key is None else self.token_for(key)
        if token is None:
            return False
        try:
            return bool(holds(self.key if key is None else key, token))
        except Exception:  # a store that cannot answer: not known to be ours
            return False

    def settle(self, processed: bool) -> None:
        if self.settled:
            return
        self.settled = True
        if self.on_failure is not None:
            self._settle_watched(processed, self.on_failure)
            return
        try:  # _apply(), inlined for one key: this is every accepted delivery's path
            if self.also:
                self._apply(processed)
            elif processed:
                self.store.commit(self.key, self.token, self.ttl)
            else:
                self.store.release(self.key, self.token)
        except Exception as exc:  # the answer is already decided; a store error must not change it
            _log_settle_failure(processed, exc)

    def undo(self) -> None:
        """Release every key held for this delivery at once: holding one of its later keys failed
        (a replay, or a store that could not answer). See :func:`release_now`."""
        if self.settled:
            return
        self.settled = True
        release_now(self.store, [(self.key, self.token), *(self.also or ())])

    def keep(self) -> None:
        """Commit every key now, raising what the store raises -- undone then (``verify()``'s
        reservation, which has no answer to wait for)."""
        try:
            self._apply(True)
        except BaseException:
            self.undo()
            raise
        self.settled = True

    def _apply(self, processed: bool) -> None:
        # Every key on its own: one that fails leaves the others settled; the first error is raised.
        store = self.store
        failed: Exception | None = None
        for key, token in ((self.key, self.token), *(self.also or ())):
            try:
                if processed:
                    store.commit(key, token, self.ttl)
                else:
                    store.release(key, token)
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    def _settle_watched(self, processed: bool, report: Callable[[str], None]) -> None:
        # A store configured to fail open raises nothing when it cannot answer: it notes itself
        # (breaker.noting_failures_open), which is how its failure is seen here. Any other store
        # raises (the in-memory one never fails): no noting to pay for on every delivery.
        noted: list[str] = []
        try:
            if getattr(self.store, "fail_open", False):
                noting_failures_open(noted, lambda: self._apply(processed))()
            else:
                self._apply(processed)
        except Exception as exc:
            _log_settle_failure(processed, exc)
        else:
            if not noted:
                return
        report("commit" if processed else "release")


def store_blocks(store: object) -> bool:
    """Whether ``store``'s calls may block on the network (its ``blocking``; ``False`` when it has
    none). Read as any object and made a bool here: a custom store's 0 or 1, which pure Python took
    as it was, the compiled build (hatch_build.py) would refuse as a bool."""
    blocking: object = getattr(store, "blocking", False)
    return bool(blocking)


def release_now(store: HoldingReplayStore, holds: Iterable[tuple[str, Token]]) -> None:
    """Release each ``(key, token)`` on its own, through the store's ``release_now`` when it has
    one: past a circuit breaker that the failure being undone may just have opened, which would
    refuse the release and leave the keys pending (the sender's retry 409). Failures are logged:
    the refusal is already decided."""
    release = getattr(store, "release_now", None) or store.release
    for key, token in holds:
        try:
            release(key, token)
        except Exception as exc:
            _log_settle_failure(False, exc)


def _log_settle_failure(processed: bool, exc: Exception) -> None:
    log.warning(
        "replay store: could not %s a delivery (%s); its hold lapses after the pending time",
        "commit" if processed else "release",
        type(exc).__name__,
    )


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryReplayStore:
    """An in-process store bounded in entries (oldest evicted first) and by each entry's TTL.

    Thread-safe (one lock around an ordered dict), so one instance serves every thread of a worker.
    A committed id evicted before its expiry is not forgotten: up to ``max_evicted`` of them are kept
    in about 25 bytes each (:class:`~hmacguard.guard.evicted_ids.EvictedIds`), so that a full store
    still refuses a sender's late retry.

    A pending hold (a delivery being processed) is never evicted: a full store evicts its oldest
    committed entry, setting older pending holds aside (still counted in ``max_entries``, still
    settled and refusing their duplicates as before; those that lapse are dropped first, whatever
    order they lapse in). When every one of its ``max_entries`` entries is a live pending hold --
    that many deliveries in its application at once -- a new delivery is refused with 503
    (:class:`~hmacguard.errors.StoreUnavailable`, logged once per burst) and its sender retries it
    later: evicting a live hold instead would let its duplicate through, keep a failed delivery's
    retry out until the pending time, or make a guard nested inside the one that held it answer
    409 while the outer guard commits -- a delivery nobody processed (tests/guard/test_evicted_holds.py,
    tests/guard/test_review_memory_store.py). Memory stays bounded by the two bounds however many
    holds are pending. Forgetting an unexpired id -- past both bounds, or with ``max_evicted=0`` --
    is logged once per burst: a replay of it would pass.
    """

    blocking = False
    #: Never failing open: unavailable only when full of pending holds, and then a 503 (asked when
    #: a settle is watched: a missing attribute would cost an exception inside getattr on every
    #: watched delivery).
    fail_open = False

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_evicted: int = DEFAULT_MAX_EVICTED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive integer, not {max_entries!r}")
        if isinstance(max_evicted, bool) or not isinstance(max_evicted, int) or max_evicted < 0:
            raise ConfigurationError(f"max_evicted must be a non-negative integer, not {max_evicted!r}")
        self.max_entries = max_entries
        self._evicted = EvictedIds(max_evicted)
        # Bound once: called on every eviction of a full store (None: the record is off).
        self._keep_evicted = self._evicted.add if max_evicted else None
        self._clock = clock
        # key -> (expiry, token of the pending hold or None once committed). Insertion order is
        # update order, so expired entries mostly cluster at the front; lookups check expiry anyway.
        # An OrderedDict, not a dict: the sweep and the eviction take entries from the front, and a
        # dict finds its first entry by skipping every slot deleted since it was last compacted --
        # in a full or steadily expiring store that scan cost 35-100 us per delivery
        # (bench/bench_replay_store.py); the OrderedDict's linked list finds it at once.
        self._entries: collections.OrderedDict[str, tuple[float, str | None]] = collections.OrderedDict()
        # Pending holds a full store set aside rather than evict (see the class docstring), oldest
        # first: key -> (expiry, token). A key is in at most one of the two dicts; every method
        # looks a key up in _entries first and brings it back from here (_restore) when it is here.
        self._aside: collections.OrderedDict[str, tuple[float, str | None]] = collections.OrderedDict()
        # The holds aside are in the order they were set aside, which is their expiry order while
        # every hold has one pending time and none was extended: then the front is the first to
        # lapse, and a sweep from the front finds every lapsed one (_aside_tail: the latest expiry
        # set aside). Otherwise (receivers or guards with other pending times on one store, extends
        # that keep a hold's place) a lapsed hold may sit behind a live one -- still counted, while
        # a full store evicted a live hold instead: from the first hold set aside out of order
        # until the aside is empty again, (expiry, key) of each is also in a heap. Items of holds
        # brought back since are stale (the key's own expiry is checked on the way out); rebuilt
        # from _aside past twice its size, so at most 2 x max_entries + 65 items.
        self._aside_tail = float("-inf")
        self._aside_expiries: list[tuple[float, str]] | None = None
        # How many entries _entries may have before one is evicted: max_entries less the holds
        # set aside (an attribute rather than a sum, read on every new key).
        self._room = max_entries
        self._lock = threading.Lock()
        self._warned = False
        self._full_of_holds = False  # warned that new holds are refused, until the store has room
        # Holds only need tokens unique within this store: a counter is enough (and cheaper than
        # randomness); next() on it is atomic under the GIL.
        self._tokens = itertools.count()
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._entries) + len(self._aside)

    def reserve(self, key: str, ttl: float) -> bool:
        # A hold committed at once: the key is taken from the hold on, as one reservation would take it.
        token = self.hold(key, ttl)
        if token is None:
            return False
        self.commit(key, token, ttl)
        return True

    def hold(self, key: str, ttl: float) -> str | None:
        token = str(next(self._tokens))
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            if now >= self._next_sweep:
                self._expire(now)
                self._next_sweep = now + _SWEEP_EVERY
            # _set(), inlined: the entry is already looked up (an expired one moves to the end).
            entries = self._entries
            entry = entries.get(key)
            if entry is None and self._aside:
                entry = self._restore(key)
            if entry is not None:
                if entry[0] > now:
                    return None
                del entries[key]
            # Committed, then evicted early from a full store: still a replay. Asked after an
            # expired entry too -- a late commit of a lapsed hold for a shorter TTL re-enters the
            # key while the record still keeps it from an earlier, longer commit. Its filter is
            # probed here, inline: most new keys stop at a zero counter without a call.
            evicted = self._evicted
            if evicted.kept and evicted.filter[hash(key) & evicted.mask] and evicted.holds(key, now):
                return None
            entries[key] = (now + ttl, token)
            if len(entries) > self._room:
                self._evict_oldest(now, new_hold=key)
            return token
        finally:
            lock.release()

    # The lock is taken with acquire()/release() rather than ``with``: on a small delivery the
    # context-manager protocol costs as much as the rest of a hold or a commit.

    def commit(self, key: str, token: str, ttl: float) -> None:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            entries = self._entries
            entry = entries.get(key)
            if entry is None and self._aside:
                entry = self._restore(key)
            if entry is not None and entry[1] == token:
                # Our hold: updated in place, keeping its place in the order (holds and commits
                # share one TTL each, so the order stays close to expiry order for the sweep).
                entries[key] = (now + ttl, None)
            elif entry is None or entry[0] <= now:
                # A hold that lapsed meanwhile: keep the key. Somebody else's live hold stays.
                self._set(key, now + ttl, None)
            elif entry[1] is None and entry[0] < now + ttl:
                # Committed already, for less time (nested guards committing one delivery under
                # two tokens, the shorter first): kept for the longer, in place.
                entries[key] = (now + ttl, None)
        finally:
            lock.release()

    def extend(self, key: str, token: str, ttl: float) -> bool:
        """Hold ``key`` under ``token`` for at least ``ttl`` seconds from now (never shorter than it
        was); ``False`` when ``token`` does not hold it (settled, lapsed, or somebody else's)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None and self._aside:
                entry = self._restore(key)
            if entry is None or entry[1] != token or entry[0] <= now:
                return False
            if entry[0] < now + ttl:
                self._entries[key] = (now + ttl, token)  # in place: its order kept, like a commit
            return True

    def holds(self, key: str, token: str) -> bool:
        """Whether ``key`` is held, unexpired, under ``token`` (a pending hold not yet settled)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._aside.get(key)  # looked at, not moved: a question changes nothing
            return entry is not None and entry[1] == token and entry[0] > now

    def release(self, key: str, token: str) -> None:
        lock = self._lock
        lock.acquire()
        try:
            entry = self._entries.get(key)
            if entry is None and self._aside:
                entry = self._restore(key)
            if entry is not None and entry[1] == token:
                del self._entries[key]
        finally:
            lock.release()

    def _set(self, key: str, expiry: float, token: str | None) -> None:
        # Called with the lock held. Re-inserting moves the key to the end.
        entries = self._entries
        if key in entries:
            del entries[key]
        entries[key] = (expiry, token)
        if len(entries) > self._room:
            self._evict_oldest(self._clock())

    def _restore(self, key: str) -> tuple[float, str | None] | None:
        """Bring ``key`` back from the holds set aside into _entries (at the end), so that every
        method settles, extends or refuses it as it would any entry; its entry, or None."""
        entry = self._aside.pop(key, None)
        if entry is not None:
            self._entries[key] = entry
            self._room += 1
            if not self._aside:
                self._in_order_again()
        return entry

    def _evict_oldest(self, now: float, new_hold: str | None = None) -> None:
        # Called with the lock held, when the store is one entry over its bound. An expired entry
        # goes; a committed id still unexpired moves to the compact record. A live pending hold
        # cannot (it has a token to settle, and a duplicate of it may arrive any moment): it is set
        # aside, still counted, and the next oldest entry is tried -- each hold is set aside at
        # most once per time it is held, so this stays O(1) amortised.
        entries = self._entries
        while entries:
            key, entry = entries.popitem(last=False)
            expiry, token = entry
            if expiry <= now:
                return
            if token is None:
                if self._keep_evicted is not None:
                    self._keep_evicted(key, expiry)
                else:
                    self._forgetting()
                return
            aside = self._aside
            aside[key] = entry
            self._room -= 1
            heap = self._aside_expiries
            if heap is None:
                if expiry >= self._aside_tail:
                    self._aside_tail = expiry
                else:
                    self._aside_expiries = heap = [(held[0], name) for name, held in aside.items()]
                    heapq.heapify(heap)
            elif len(heap) > 2 * len(aside) + 64:
                heap[:] = [(held[0], name) for name, held in aside.items()]
                heapq.heapify(heap)
            else:
                heapq.heappush(heap, (expiry, key))
        # Every entry is a pending hold. Those set aside that lapsed go first (their workers died
        # or their deliveries were retaken): then there is room, and no live hold is evicted.
        if self._drop_lapsed_aside(now):
            return
        # Every entry is a live pending hold (max_entries deliveries being processed at once). None
        # of them may leave (see the class docstring): the new hold is taken back and refused, 503.
        # A committed key re-entering (_set) never gets here: it is itself an entry to evict.
        aside = self._aside
        if new_hold is not None and aside.pop(new_hold, None) is not None:
            self._room += 1
            if not aside:
                self._in_order_again()
        if not self._full_of_holds:
            self._full_of_holds = True
            log.warning(
                "replay store full of deliveries being processed (%d pending at once): refusing "
                "new ones with 503 until one is settled -- raise max_entries, or use Redis",
                self.max_entries,
            )
        raise StoreUnavailable("the replay store is full of deliveries being processed")

    def _drop_lapsed_aside(self, now: float) -> int:
        """Drop every hold set aside whose pending time has run out; how many (called with the
        lock held). Each hold aside (each heap item) leaves once: O(1) amortised, O(log n) with
        the heap."""
        aside = self._aside
        heap = self._aside_expiries
        dropped = 0
        if heap is None:  # in expiry order: the lapsed ones are at the front
            while aside:
                key, (expiry, _) = next(iter(aside.items()))
                if expiry > now:
                    break
                del aside[key]
                dropped += 1
        else:
            while heap and heap[0][0] <= now:
                _, key = heapq.heappop(heap)
                entry = aside.get(key)
                # A stale item (the hold was brought back, maybe set aside again since) is
                # skipped; the key's own expiry decides.
                if entry is not None and entry[0] <= now:
                    del aside[key]
                    dropped += 1
        if not aside:
            self._in_order_again()
        self._room += dropped
        return dropped

    def _in_order_again(self) -> None:
        """Nothing is aside: whatever is set aside next is in expiry order again, no heap needed."""
        self._aside_expiries = None
        self._aside_tail = float("-inf")

    def _forgetting(self) -> None:
        """An unexpired key left the entries with the record off (``max_evicted=0``): forgotten,
        said once per burst."""
        if not self._warned:
            self._warned = True
            log.warning("replay store full (%d entries): evicting unexpired delivery ids", self.max_entries)

    def _expire(self, now: float) -> None:
        # Amortised O(1): each entry is popped once (the front found at once); stop at the first live one.
        entries = self._entries
        while entries:
            key, (expiry, _) = next(iter(entries.items()))
            if expiry > now:
                break
            del entries[key]
            self._warned = False
        self._full_of_holds = False  # said again in the next burst, at most once a sweep
        if self._aside:
            self._drop_lapsed_aside(now)
        if self._evicted.kept:
            self._evicted.expire(now)


# Commit: keep the key for the full TTL if our hold still has it, or nobody's does (it lapsed);
# a key committed already is kept for the longer of the two TTLs (never shortened).
_COMMIT = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  return redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
end
if current == '1' and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return false
"""
# Release: delete the key only while our hold has it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Extend: while our hold has the key, make it last at least ARGV[2] ms from now (never shorter).
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
"""


@mypyc_attr(allow_interpreted_subclasses=True)
class RedisReplayStore(StoreCalls):
    """Delivery ids in Redis, shared by every worker and host: ``SET <prefix><key> <token> NX PX <ms>``.

    Built from a URL -- one server (``redis://host:port/db``), a Cluster (``redis+cluster://...``)
    or Sentinel (``redis+sentinel://.../service``), see :mod:`hmacguard.guard.redis_urls` -- or
    from an existing redis-py client (``Redis``, ``RedisCluster``, a Sentinel's ``master_for``). Short socket
    timeouts by default: a Redis that does not answer within ``timeout`` seconds is unavailable, and
    the request fails closed with 503 rather than hanging a worker (or passes, with
    ``fail_open=True``). A :class:`~hmacguard.guard.breaker.CircuitBreaker` then keeps the store from
    being called for ``breaker_reset`` seconds, so an outage costs one timeout per window, not one
    per request. Commit and release are one Lua script each (atomic compare-and-set on the token).
    On a Cluster the breaker is the key's node's: one dead primary costs the deliveries whose keys
    it serves, not the others (:mod:`hmacguard.guard.breaker`).
    """

    blocking = True
    store_name = "replay store"
    store_slug = "replay"
    store_log = log

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str = "hmacguard:replay:",
        timeout: float = 0.5,
        fail_open: bool = False,
        breaker_reset: float = 5.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("RedisReplayStore needs exactly one of url= or client=")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
        try:
            import redis as redis_module
        except ImportError:
            raise ConfigurationError(
                "RedisReplayStore needs redis-py: pip install 'hmacguard[redis]'"
            ) from None
        # RedisClusterException is not a RedisError: a Cluster client that cannot re-read the slot
        # map (every primary gone) raises it, and that is an outage too.
        self.store_errors: tuple[type[BaseException], ...] = (
            redis_module.RedisError,
            redis_module.exceptions.RedisClusterException,
            OSError,
        )
        self._url = url
        self._timeout = timeout
        self._client: Any = client
        self._scripts: tuple[Any, ...] | None = None
        #: Whether the store is on a Cluster: then each node has its own breaker (``_node_of``).
        self._cluster = (
            is_cluster_url(str(url))
            if url is not None
            else callable(getattr(client, "get_node_from_key", None))
        )
        # A Cluster client reads the slot map when it is built: built at the first call, inside the
        # breaker, so a worker starts (and fails open or closed per request) while the Cluster is
        # down. Every other client connects on first use anyway; building it now shows URL mistakes.
        if client is not None:
            refuse_asyncio_client(client, "RedisReplayStore(client=...)")
        if client is None:
            check_url(str(url))
            if not self._cluster:
                self._client = redis_client(str(url), timeout=timeout)
        self.prefix = prefix
        self.fail_open = fail_open
        # One breaker per Redis server, shared with a rate limiter on the same server.
        key = endpoint_key(str(url)) if url is not None else f"client:{id(client)}"
        #: Which keys this store reaches (its URL without credentials; or the client object).
        self.keyspace = keyspace_key(str(url)) if url is not None else key
        self.breaker = shared_breaker(key, reset_after=breaker_reset)

    @property
    def client(self) -> Any:
        """The redis-py client (for a Cluster URL, built at the first store call)."""
        if self._client is None:
            self._client = redis_client(str(self._url), timeout=self._timeout)
        return self._client

    def _node_of(self, key: str) -> str | None:
        if not self._cluster or (self._client is None and not self._connect(lambda: self.client)):
            return None
        return cluster_node(self._client, key)

    def _script(self, index: int) -> Any:
        if self._scripts is None:
            client = self.client
            # On a Cluster, loaded per node (KeyedScript); elsewhere redis-py's own loading is fine.
            load = (lambda lua: KeyedScript(client, lua)) if self._cluster else client.register_script
            self._scripts = tuple(load(lua) for lua in (_COMMIT, _RELEASE, _EXTEND))
        return self._scripts[index]

    def _set_new(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.client.set(self.prefix + key, value, nx=True, px=_ms(ttl)))

    def reserve(self, key: str, ttl: float) -> bool:
        return self._call(lambda: self._set_new(key, "1", ttl), True, self.prefix + key)

    def hold(self, key: str, ttl: float) -> str | None:
        token = secrets.token_hex(8)
        return token if self._call(lambda: self._set_new(key, token, ttl), True, self.prefix + key) else None

    def holds(self, key: str, token: str) -> bool:
        """Whether ``key`` is held under ``token`` (a pending hold not yet settled); ``False`` when
        Redis cannot answer (fail-open or not: this answers a question, it lets nothing through)."""
        value = self._ask(lambda: self.client.get(self.prefix + key), None, self.prefix + key)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return bool(value == token)

    def commit(self, key: str, token: str, ttl: float) -> None:
        name = self.prefix + key
        self._call(lambda: self._script(0)(keys=[name], args=[token, _ms(ttl)]), None, name)

    def release_now(self, key: str, token: str) -> None:
        """:meth:`release`, past the circuit breaker (raising the client's errors): a delivery undoing
        the holds it took before one of its later keys failed -- which may have just opened the
        breaker, while the server that holds these keys answers (a blip; another Cluster node)."""
        self._script(1)(keys=[self.prefix + key], args=[token])

    def release(self, key: str, token: str) -> None:
        name = self.prefix + key
        self._call(lambda: self._script(1)(keys=[name], args=[token]), None, name)

    def extend(self, key: str, token: str, ttl: float) -> bool:
        """See :class:`HoldingReplayStore`. Failing open, a store that cannot answer says ``True``
        (the request passes, as its hold did); failing closed it raises (503)."""
        name = self.prefix + key
        return self._call(lambda: self._extended(name, token, ttl), True, name)

    def _extended(self, name: str, token: str, ttl: float) -> bool:
        # The script answers 0 or 1: a bool here, as the compiled build checks (hatch_build.py).
        return bool(self._script(2)(keys=[name], args=[token, _ms(ttl)]))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def same_keys(first: ReplayStore | None, second: ReplayStore | None) -> bool:
    """Whether two stores hold the same keys: the same object, or Redis stores writing to the same
    server and database under the same prefix (two built from one URL)."""
    if first is None or second is None:
        return False
    if first is second:
        return True
    return (
        isinstance(first, RedisReplayStore)
        and isinstance(second, RedisReplayStore)
        and (first.keyspace, first.prefix) == (second.keyspace, second.prefix)
    )


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
